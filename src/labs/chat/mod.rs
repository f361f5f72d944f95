//! # 05-chat: many clients on one event loop
//!
//! What you will learn: how one thread serves hundreds of chatting clients (an event
//! loop: readable, writable, and nothing else); why a chat needs framing (TCP delivers
//! bytes, people send lines); why a broadcast must never *wait* for one receiver (a
//! client that stops reading would stall everybody); and how departures (EOF, reset,
//! `/quit`, silence) free a nickname at once.
//!
//! Run `lab run 05` and read along: a server and three scripted clients in one process
//! on loopback. You see each event the loop handles: which socket was readable, what
//! was read, whose queue grew because its reader fell behind, which queue a writable
//! event drained, and who was dropped and why.
//!
//! The real thing: `lab run 05 --role server` (on 127.0.0.1:7005), then in other
//! terminals `nc 127.0.0.1 7005` or `lab run 05 --role client --nick ann`. The
//! protocol is in [`crate::wire::chat`]; lines are capped at 4096 bytes and each
//! client's queue at [`server::OUTBOUND_CAP`], so memory stays bounded whatever the
//! clients do.

pub mod checks;
mod client;
mod demo;
pub mod server;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::core::EventLoop;
use crate::error::bind_error;
use crate::out::{bold, code};
use crate::say;
use crate::units;

use server::{ChatServer, Options, Verbosity};

/// The documented default address of `--role server`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7005";

/// Backlog for `listen()`: a thousand clients may connect at once without retries
/// (the kernel caps it at net.core.somaxconn, 4096 on current Linux).
const BACKLOG: i32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// A server and three scripted clients in one process, every event narrated.
    Demo,
    /// The chat server: serves clients until Ctrl-C.
    Server,
    /// A chat client: your stdin to the server, the server's lines to your stdout.
    Client,
}

/// Flags of `lab run 05-chat`.
#[derive(Debug, Parser)]
#[command(
    about = "A chat server on one event loop (nc is a client), a client, and a narrated demo."
)]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Server: the address to listen on (`0.0.0.0:7005` to accept other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Client: the server to connect to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    connect: SocketAddr,
    /// Client: the nickname to ask for once connected (sends `/nick N`).
    #[arg(long)]
    nick: Option<String>,
    /// Server: disconnect a client silent for this many seconds (0: never). The
    /// demo never times out.
    #[arg(long, default_value = "300", value_name = "SECONDS", value_parser = units::seconds_or_zero)]
    idle_timeout: Duration,
    /// Server: TCP keepalive after this many idle seconds (0: off), so a client whose
    /// machine vanished is noticed.
    #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = units::seconds_or_zero)]
    keepalive: Duration,
    /// Server: print only the address, not every join and departure.
    #[arg(long, short)]
    quiet: bool,
    /// Server: stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    duration: Option<Duration>,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    match args.role {
        Role::Demo => demo::run(),
        Role::Server => serve(&args),
        Role::Client => client::run(args.connect, args.nick.as_deref()),
    }
}

/// A duration flag where 0 means off.
fn seconds(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Binds the listening socket on a new event loop with the chat's limits.
fn listen(addr: SocketAddr) -> Result<(EventLoop, SocketAddr)> {
    let mut ev = EventLoop::with_limits(server::limits())?;
    let token = ev
        .ctx()
        .listen(addr, BACKLOG)
        .map_err(|e| bind_error(addr, e, "--bind"))?;
    let local = ev
        .ctx()
        .local_addr(token)
        .context("listener has no address")?;
    Ok((ev, local))
}

/// `--role server`.
fn serve(args: &Args) -> Result<()> {
    // Each client is a file descriptor; the usual soft limit (1024) would stop a
    // thousand clients. Raise it to the hard limit (capped at the kernel's usual
    // nr_open) and say what we got.
    let fds = match crate::sys::nofile_limit() {
        Ok((_, hard)) => crate::sys::raise_nofile_limit(hard.min(1 << 20)).ok(),
        Err(_) => None,
    };
    let (ev, local) = listen(args.bind)?;
    let mut ev = ev.with_signals()?;
    say!("05-chat server listening on {} (Ctrl-C stops)", bold(local))?;
    say!(
        "  try: {}   or   {}",
        code(format!("nc {} {}", local.ip(), local.port())),
        code(format!(
            "lab run 05 --role client --connect {local} --nick ann"
        ))
    )?;
    if let Some(n) = fds {
        say!(
            "  open-file limit {n}: up to about {} clients",
            n.saturating_sub(16)
        )?;
    }
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Connections
    };
    let mut server = ChatServer::new(Options {
        idle_timeout: seconds(args.idle_timeout),
        keepalive: seconds(args.keepalive),
        verbosity,
    });
    server.start(ev.ctx());
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    crate::out::run_while_stdout_open(&mut ev, &mut server, args.duration)?;
    say!(
        "server stopped: {} lines delivered, {} clients dropped as too slow, {} still connected",
        server.stats.delivered,
        server.stats.too_slow,
        server.clients()
    )?;
    Ok(())
}
