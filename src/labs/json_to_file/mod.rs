//! # 06-json-to-file: JSON records from A saved at B, nothing lost, nothing twice
//!
//! What you will learn: how a durable system (a database log, Kafka, Vector) takes
//! records from the network and keeps them. Three ideas carry it:
//!
//! - **Acknowledge only what is on disk.** `write()` puts bytes in the kernel's page
//!   cache; `fsync()` puts them on the disk. The receiver replies `ok SEQ` only after
//!   both, so an acknowledged record survives a crash.
//! - **Group commit.** An fsync costs a disk round trip whatever its size, so the
//!   receiver writes every record that arrived during one turn of its event loop and
//!   syncs them with one fsync, then sends all their acks.
//! - **Idempotence.** Records carry `sender` and `seq`. A sender resends whatever was
//!   not acknowledged (the ack may have been lost, not the record); the receiver
//!   remembers each sender's highest seq, even across restarts (it reads its file back),
//!   and acknowledges a resend without saving it again. At-least-once delivery plus
//!   idempotent saving gives exactly-once records in the file.
//!
//! Run `lab run 06` and read along: a sender streams sensor readings to a receiver that
//! runs as a real child process; midway the receiver is killed with SIGKILL and
//! restarted; the report checks the file line by line. Split across machines with
//! `--role receiver --bind 0.0.0.0:7006 --out FILE` on one and `--role sender --connect
//! HOST:7006` on the other; `nc HOST 7006` works as a sender too.
//!
//! The files, in the order events happen: [`sender`] (A), [`receiver`] (B, on the
//! event-loop core), [`store`] (B's file), [`demo`] (the story), [`checks`] (the grader
//! suite of the exercise). The protocol's bytes are in [`crate::wire::jsonl`].

pub mod checks;
pub mod demo;
pub mod receiver;
pub mod sender;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::core::EventLoop;
use crate::error::{bind_error, LabError};
use crate::out::{bold, code, dim, warn, OrStopLater};
use crate::say;
use crate::units::{self, Rate};

/// The receiver's documented default address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7006";
/// The receiver's default file.
pub const DEFAULT_OUT: &str = "received.jsonl";
/// Backlog for `listen()`: eight senders of the benchmark and a class's worth of `nc`s.
const BACKLOG: i32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Sender and receiver on loopback; the receiver is killed midway and restarted.
    Demo,
    /// B: save records to --out, acknowledge each once it is on disk.
    Receiver,
    /// A: send records (a file, stdin, or --generate) until each is acknowledged.
    Sender,
}

/// Flags of `lab run 06-json-to-file`.
#[derive(Debug, Parser)]
#[command(
    about = "JSON records from A saved to a file at B: acknowledged once on disk, resent until acknowledged, saved exactly once."
)]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Receiver: address to listen on (`0.0.0.0:7006` to accept other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Receiver: the JSON Lines file records are appended to (created if missing; read
    /// back on start). Demo: keep the file here instead of a temporary folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sender: the receiver's address.
    #[arg(long, default_value = DEFAULT_ADDR)]
    connect: SocketAddr,
    /// Sender: read JSON Lines records from this file (`-` for stdin, the default when
    /// --generate is not given).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Sender: generate this many sensor-like readings instead of reading records.
    #[arg(long)]
    generate: Option<u64>,
    /// Sender: records per second (default: as fast as acknowledgements allow).
    #[arg(long, value_parser = units::rate)]
    rate: Option<Rate>,
    /// Sender: the sender id given to records without one (default: random per run).
    #[arg(long)]
    sender: Option<String>,
    /// Sender: most records in flight (sent, not yet acknowledged). Bounds memory; the
    /// sender reads no more records while this many wait.
    #[arg(long, default_value_t = sender::DEFAULT_WINDOW)]
    window: usize,
    /// Sender: give up after this many seconds without any acknowledgement.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = units::seconds)]
    give_up: Duration,
    /// Seed for the sender's id, readings and backoff jitter (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Receiver: narrate the calls (write, fdatasync, send) of the first N commits.
    #[arg(long, default_value_t = 0)]
    narrate: u64,
    /// Print only the first line and the totals.
    #[arg(long, short)]
    quiet: bool,
    /// Receiver: stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    duration: Option<Duration>,
    /// Demo: records to send.
    #[arg(long, default_value_t = 2000)]
    count: u64,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    match args.role {
        Role::Demo => demo::run(args.count, args.out.clone(), args.seed),
        Role::Receiver => receive(&args),
        Role::Sender => send(&args),
    }
}

/// `--role receiver`.
fn receive(args: &Args) -> Result<()> {
    // Past the file-size limit, write() must fail (EFBIG) rather than kill us (SIGXFSZ):
    // a full disk is something to report and survive.
    crate::sys::ignore_sigxfsz()?;
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT));
    let (store, recovered) = store::Store::open(&path).map_err(|e| {
        LabError::usage(format!("cannot open {}: {e}", path.display()))
            .fix("give --out a file in a folder you can write (it is created if missing)")
    })?;
    let mut ev = EventLoop::new()?.with_signals()?;
    let token = ev
        .ctx()
        .listen(args.bind, BACKLOG)
        .map_err(|e| bind_error(args.bind, e, "--bind"))?;
    let local = ev.ctx().local_addr(token).unwrap_or(args.bind);
    say!(
        "06-json-to-file receiver listening on {} saving to {} (Ctrl-C stops)",
        bold(local),
        path.display()
    )?;
    report_recovery(&path, &recovered);
    if !args.quiet {
        say!(
            "  try: {}",
            code(format!(
                "echo '{{\"temp\": 21.5}}' | nc -q1 {} {}",
                local.ip(),
                local.port()
            ))
        )?;
    }
    let talk = receiver::Talk {
        connections: !args.quiet,
        narrate_commits: args.narrate,
    };
    let waker = ev.ctx().waker();
    let mut rx = receiver::Receiver::new(store, recovered, talk, waker)?;
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    let limit = args.duration;
    crate::out::run_while_stdout_open(&mut ev, &mut rx, limit)?;
    // A stop by --duration: what is batched still gets saved and acknowledged.
    rx.finish(ev.ctx());
    if rx.failed_fatally() {
        return Err(LabError::failed("fdatasync failed: the receiver stopped (see above)").into());
    }
    let t = rx.totals;
    say!(
        "receiver stopped: {} saved, {} duplicates acknowledged again, {} lines rejected, {} fsyncs ({:.1} records per fsync){}",
        t.saved,
        t.duplicates,
        t.rejected,
        t.commits,
        t.saved as f64 / t.commits.max(1) as f64,
        if t.failed_commits > 0 {
            format!(", {} failed writes", t.failed_commits)
        } else {
            String::new()
        }
    )?;
    Ok(())
}

/// Says what was found in the file on start.
fn report_recovery(path: &std::path::Path, r: &store::Recovery) {
    if r.lines > 0 || r.torn > 0 {
        say!(
            "  {} {} records from {} sender{} in {}",
            dim("recovered"),
            r.lines,
            r.highest.len(),
            if r.highest.len() == 1 { "" } else { "s" },
            path.display()
        )
        .or_stop_later();
    }
    if r.torn > 0 {
        say!(
            "  {} cut a torn last line ({} bytes without a newline): a write that never finished; it was never acknowledged, so its sender will send it again",
            warn("recovery:"),
            r.torn
        ).or_stop_later();
    }
    if r.foreign_count > 0 {
        say!(
            "  {} {} lines are not records with sender and seq (lines {:?}{}): kept as they are",
            warn("note:"),
            r.foreign_count,
            r.foreign,
            if r.foreign_count as usize > r.foreign.len() {
                ", ..."
            } else {
                ""
            }
        )
        .or_stop_later();
    }
}

/// `--role sender`.
fn send(args: &Args) -> Result<()> {
    let seed = args.seed.unwrap_or_else(crate::grade::fresh_seed);
    let source = match (args.generate, &args.input) {
        (Some(_), Some(_)) => {
            return Err(LabError::usage("--generate and --input both given")
                .fix("send generated readings (--generate N) or records from a file (--input FILE), not both")
                .into())
        }
        (Some(n), None) => sender::Source::Generate(n),
        (None, Some(p)) if p.as_os_str() != "-" => sender::Source::File(p.clone()),
        (None, _) => sender::Source::Stdin,
    };
    let opts = sender::Options {
        connect: args.connect,
        source,
        rate: args.rate.map_or(0.0, Rate::per_second),
        sender: args.sender.clone(),
        window: args.window.max(1),
        give_up: args.give_up,
        seed,
        verbose: !args.quiet,
    };
    if !args.quiet {
        eprintln!("{}", dim(format!("sender seed {seed}")));
    }
    let totals = sender::run(&opts, None)?;
    say!("{}", totals.summary())?;
    if totals.unacked > 0 {
        return Err(LabError::failed(format!(
            "{} records were never acknowledged",
            totals.unacked
        ))
        .fix("start the receiver (`lab run 06 --role receiver`) and send again: records it already saved are not saved twice")
        .into());
    }
    Ok(())
}
