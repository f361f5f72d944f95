//! # 08-latency: how long does a message take, and what makes it longer?
//!
//! What you will learn: latency is a distribution, not a number (percentiles, and why
//! p99 matters more than the mean); how an HdrHistogram keeps every sample in little
//! memory; that message size barely matters on loopback while buffering matters a lot;
//! what Nagle's algorithm does with delayed ACKs; and why a load generator must measure
//! from the *intended* send time (coordinated omission).
//!
//! Run `lab run 08-latency` and read along: a short guided sweep using the same harness
//! as `lab latency` (see `src/latency/`), each step explained before it runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::catalog::Lab;
use crate::latency::{self, Mode, Opts, Role};
use crate::out::{bold, code, dim};
use crate::say;
use crate::units;

/// Flags of `lab run 08-latency`.
#[derive(Debug, Parser)]
#[command(
    about = "A guided latency sweep: ping-pong sizes, TCP vs UDP, Nagle, stream buffer sizes."
)]
pub(crate) struct Args {
    /// Also write each step's full report (plots, .hgrm, CSV, JSON) under this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace the reports already under --out.
    #[arg(long, requires = "out")]
    force: bool,
    /// Round trips per size (the real tool defaults to 10000; the tour is shorter).
    #[arg(long, default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    count: u64,
    /// Time per stream buffer size: seconds (`1`) or with a unit (`500ms`).
    #[arg(long, default_value = "1", value_name = "SECONDS", value_parser = units::seconds)]
    stream_seconds: Duration,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    say!(
        "{}",
        bold("08-latency: measuring latency, and what changes it")
    )?;
    say!("Every figure below is measured now, on this machine, over loopback.")?;

    step(
        1,
        "Round trips per message size (TCP, Nagle off)",
        &[
            "A client sends a message, the server echoes it, the client times the round trip.",
            "Thousands of round trips go into an HdrHistogram: every sample kept to 0.1%, in",
            "a few kilobytes. Read p50 (the typical case) and p99 (1 request in 100 is slower).",
        ],
    )?;
    let base = opts(&args, "1-sizes");
    latency::run(&Opts {
        mode: vec![Mode::Tcp],
        sizes: vec![1, 64, 1024, 16384],
        ..base.clone()
    })?;
    aside("On loopback a round trip is system calls and wake-ups, not bytes: 1 B and 1 KiB cost")?;
    aside("about the same. Copying only shows at tens of kilobytes. The max is one unlucky")?;
    aside("sample (another process took the CPU): compare percentiles, not maxima.")?;
    aside("If one size's p99 still stands out, it is rarely the size: run the sizes in another")?;
    aside("order (`lab latency --sizes 64,1`) and the tail follows the position, not the size.")?;

    step(
        2,
        "The same over UDP",
        &["No connection, no acknowledgements, no ordering: usually a little faster."],
    )?;
    latency::run(&Opts {
        mode: vec![Mode::Udp],
        sizes: vec![1, 64, 1024, 16384],
        ..opts(&args, "2-udp")
    })?;

    step(
        3,
        "Nagle's algorithm meets delayed ACKs",
        &[
            "Each message is now written in two halves (a header, then a body), as many",
            "programs do. With Nagle on, TCP holds the second half until the first is",
            "acknowledged; the server delays its ACK hoping to send it with a reply, which it",
            "only sends once the whole message is in. Both wait: about 40 ms on Linux.",
        ],
    )?;
    latency::run(&Opts {
        mode: vec![Mode::Tcp, Mode::TcpNagle],
        sizes: vec![64],
        count: Some(20),
        warmup: 3,
        split_writes: true,
        ..opts(&args, "3-nagle")
    })?;
    aside("The fix is TCP_NODELAY (setsockopt), or writing each message in one call.")?;

    step(
        4,
        "Buffer size against latency: the Arduino stream",
        &[
            "Samples are produced 896 times a second, like the Arduino's A0, and sent in",
            "buffers of N. A sample waits for its buffer to fill: the first of N waits",
            "(N-1)/rate, so the average age can never be below (N-1)/rate/2. Compare the",
            "mean with `floor avg` and the max with `floor max`.",
        ],
    )?;
    latency::run(&Opts {
        mode: vec![Mode::Stream],
        buffer_sizes: vec![1, 16, 64],
        count: None,
        duration: Some(args.stream_seconds),
        warmup: 64,
        ..opts(&args, "4-stream")
    })?;
    aside("Bigger buffers mean fewer packets but older samples; the network adds")?;
    aside("microseconds, the buffer adds milliseconds. The course's 16-byte buffers cost ~8 ms.")?;

    say!()?;
    say!("{}", bold("Next"))?;
    say!(
        "  {}   your own sweep, with plots and a report",
        code("lab latency --mode tcp,udp --out report/")
    )?;
    say!(
        "  {}   open loop: latency from the intended send time",
        code("lab latency --rate 20000")
    )?;
    say!(
        "  {}   two runs side by side",
        code("lab latency compare before/ after/")
    )?;
    say!(
        "  {}   the lesson: percentiles, coordinated omission, Nagle",
        code("lab show 08")
    )?;
    Ok(())
}

/// The tour's common options; `dir` names the step's report folder under `--out`.
fn opts(args: &Args, dir: &str) -> Opts {
    Opts {
        mode: vec![Mode::Tcp],
        sizes: vec![16],
        buffer_sizes: vec![1],
        count: Some(args.count),
        duration: None,
        // The first series of a run used to show a tail of milliseconds whatever its
        // size (a fresh process and connection: page faults, cold caches, the CPU's
        // clock ramping up; with 200 warm-up round trips, 5 runs of 5 had it): 2000
        // round trips, about 20 ms, absorb it (0 of 3 runs).
        warmup: 2000,
        rate: None,
        busy_poll: false,
        split_writes: false,
        role: Role::Client,
        bind: latency::DEFAULT_ADDR
            .parse()
            .expect("valid default address"),
        connect: None,
        peer: latency::Peer::Lab,
        out: args.out.as_ref().map(|o| o.join(dir)),
        force: args.force,
        seed: None,
        serve_for: None,
    }
}

fn step(n: u32, title: &str, lines: &[&str]) -> std::io::Result<()> {
    say!()?;
    say!("{}", bold(format!("{n}. {title}")))?;
    for l in lines {
        say!("   {}", dim(l))?;
    }
    say!()
}

fn aside(text: &str) -> std::io::Result<()> {
    say!("   {}", dim(text))
}
