//! `lab impair`: the command's flags, running the relay for a while, and its printed
//! statistics.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::{Relay, RelayStats, Settings};
use crate::core::EventLoop;
use crate::error::LabError;
use crate::out::{bold, code, dim};
use crate::rng::Rng;
use crate::say;
use crate::units;

/// Flags of `lab impair` (also used by `lab run 03 --role relay`).
#[derive(Debug, Clone, Args)]
pub struct ImpairArgs {
    /// Address to receive datagrams on.
    #[arg(long, default_value = "127.0.0.1:7004")]
    pub listen: SocketAddr,
    /// Address to forward them to.
    #[arg(long, default_value = "127.0.0.1:7003")]
    pub forward: SocketAddr,
    /// Share of datagrams dropped, e.g. 5%.
    #[arg(long, default_value = "0%", value_parser = units::percent)]
    pub loss: f64,
    /// Share of datagrams sent twice.
    #[arg(long, default_value = "0%", value_parser = units::percent)]
    pub dup: f64,
    /// Share of datagrams held back so the next one overtakes them.
    #[arg(long, default_value = "0%", value_parser = units::percent)]
    pub reorder: f64,
    /// Delay added to every datagram, e.g. 10ms.
    #[arg(long, default_value = "0ms", value_parser = units::delay)]
    pub delay: Duration,
    /// Random variation of the delay, plus or minus, e.g. 5ms.
    #[arg(long, default_value = "0ms", value_parser = units::delay)]
    pub jitter: Duration,
    /// Seed of the decisions (default: random, and printed so the run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this long: seconds (`30`) or with a unit (`500ms`, `2m`); default: run
    /// until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    pub duration: Option<Duration>,
    /// Print the final counts as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ImpairArgs {
    /// The settings, with the seed chosen.
    pub fn settings(&self, seed: u64) -> Settings {
        Settings {
            loss: self.loss,
            dup: self.dup,
            reorder: self.reorder,
            delay: self.delay,
            jitter: self.jitter,
            seed,
        }
    }
}

/// A seed from the clock and the process id, for runs that did not ask for one.
pub fn random_seed() -> u64 {
    let t = crate::wire::epoch_ns();
    let mut r = Rng::new(t ^ (u64::from(std::process::id()) << 32));
    r.next_u64() % 1_000_000 // short enough to retype
}

/// Runs a relay until Ctrl-C or `duration`, and returns its counts. (On a background
/// thread, run it with [`crate::core::LoopThread`] instead; it flushes in `on_stop`.)
pub fn run_relay(
    mut ev: EventLoop,
    relay: &mut Relay,
    duration: Option<Duration>,
) -> Result<RelayStats> {
    match duration {
        Some(d) => ev.run_for(relay, d)?,
        None => ev.run(relay)?,
    }
    relay.release(ev.ctx(), true);
    Ok(relay.stats.clone())
}

/// Prints the relay's counts for people.
pub fn print_stats(s: &RelayStats) -> std::io::Result<()> {
    say!(
        "relay: {} datagrams in; forwarded {}, dropped {}, duplicated {}, reordered {}, delayed {}",
        s.datagrams,
        s.forwarded,
        s.dropped,
        s.duplicated,
        s.reordered,
        s.delayed
    )?;
    say!(
        "{}",
        dim(format!(
            "       end markers {} (dropped {}), replies returned {}, relay overflow {}, relay kernel drops {}",
            s.end_markers, s.end_markers_dropped, s.returned, s.overflow, s.kernel_drops
        ))
    )
}

/// `lab impair`.
pub fn run(args: &ImpairArgs) -> Result<()> {
    if args.forward.ip().is_unspecified() {
        return Err(LabError::usage(format!(
            "cannot forward to {}: that is \"any address\"",
            args.forward
        ))
        .fix("name the receiver's address, e.g. --forward 127.0.0.1:7003")
        .into());
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    let settings = args.settings(seed);
    let ev = EventLoop::new()?.with_signals()?;
    let mut ev = ev;
    let (mut relay, local) = Relay::bind(&mut ev, args.listen, args.forward, settings)?;
    if args.json {
        // stdout carries only the JSON; scripts learn the address here.
        eprintln!("relaying {local} -> {}", args.forward);
    } else {
        say!("{} {} -> {}", bold("relaying"), local, args.forward)?;
        say!("  {}", settings.describe())?;
        say!(
            "  {}",
            dim(format!(
                "repeat with --seed {seed}; Ctrl-C stops and prints the counts"
            ))
        )?;
        say!(
            "  try: {}",
            code(format!("lab run 03 --role sender --connect {local}"))
        )?;
    }
    let stats = run_relay(ev, &mut relay, args.duration).context("relay failed")?;
    if args.json {
        let doc = serde_json::json!({ "seed": seed, "relay": stats });
        say!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print_stats(&stats)?;
    }
    Ok(())
}
