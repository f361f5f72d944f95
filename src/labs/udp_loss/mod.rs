//! # 03-udp-loss: loss, duplicates, reordering and jitter, counted exactly
//!
//! What you will learn: UDP promises nothing about delivery. A datagram arrives zero,
//! one or two times, in any order, after a varying delay, and nothing tells the sender. A receiver can still account for every datagram exactly if each one carries a
//! sequence number and the sender says, at the end, how many it sent.
//!
//! Run `lab run 03` and read along: a sender numbers datagrams ([`crate::wire::probe`]),
//! a seeded impairment relay ([`crate::impair`]) plays a bad network, and the receiver's
//! counts are set beside what the relay really did. `--kernel-drops` shows loss with no
//! relay at all: a receiver with a tiny receive buffer and a sender at full speed.
//! Split across machines with `--role sender|receiver|relay`.
//!
//! The pieces in the order events happen: the sender (paced by timers, batched with
//! sendmmsg), the relay (in `crate::impair`), the receiver (a [`Tally`] fed by the event
//! loop), then the reports.

pub mod checks;
mod demo;
mod receiver;
mod roles;
mod sender;
pub mod tally;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::error::LabError;
use crate::sys::MAX_BATCH;
use crate::units;
use crate::wire::probe::HEADER_LEN;
use crate::wire::MAX_DATAGRAM;

/// The receiver's documented default address.
pub const DEFAULT_RECEIVER: &str = "127.0.0.1:7003";
/// The relay's documented default address.
pub const DEFAULT_RELAY: &str = "127.0.0.1:7004";
/// Pause between the last data datagram and the first end marker, so queues along the
/// way (the relay's, the receiver's socket buffer) drain first and the marker's arrival
/// finds every datagram that is coming already there.
const END_PAUSE: Duration = Duration::from_millis(50);
/// Spacing of the repeated end markers: a burst of loss rarely takes them all.
const END_SPACING: Duration = Duration::from_millis(10);
/// Receive buffer (SO_RCVBUF) the receiver asks for unless told otherwise: 4 MiB, which
/// Linux caps at net.core.rmem_max and then doubles. A receiver that is descheduled for
/// a few milliseconds (a busy machine) would otherwise overflow the ~200 KiB default
/// and report its own hiccup as loss; measured on loopback at full speed, this doubled
/// the datagrams received per second and cut the receiver's CPU per datagram by ~25%
/// (it sleeps and wakes less often).
const DEFAULT_RCVBUF: usize = 4 << 20;
/// Bytes of each datagram the receiver copies out of the kernel. It needs only the
/// 32-byte header, and the kernel still reports each datagram's full length (MSG_TRUNC).
/// 2 KiB takes any datagram up to Ethernet's 1500-byte MTU whole; 64 slots of it stay in
/// cache, where 64 slots of 64 KiB measured ~30% slower at 64-byte datagrams.
const READ_SLOT: usize = 2048;
/// Datagrams sent per timer turn at `--rate max` before yielding to the loop (16
/// sendmmsg calls of 64), so the loop still sees timers and signals.
const MAX_BURST: u64 = 16 * MAX_BATCH as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Sender, relay and receiver in one process on loopback.
    Demo,
    /// Only the sender: numbered datagrams to --connect.
    Sender,
    /// Only the receiver: counts what arrives on --bind.
    Receiver,
    /// Only the impairment relay: --listen to --forward (same as `lab impair`).
    Relay,
}

/// A sending rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rate {
    /// As fast as the kernel takes them.
    Max,
    /// Datagrams per second.
    Pps(f64),
    /// Bits per second of UDP payload (iperf3's `-b`); converted with `--size`.
    Bps(f64),
}

impl Rate {
    fn pps(self, size: usize) -> Option<f64> {
        match self {
            Rate::Max => None,
            Rate::Pps(p) => Some(p),
            Rate::Bps(b) => Some(b / (size as f64 * 8.0)),
        }
    }
}

/// Most `--end-markers`: they leave [`END_SPACING`] apart, so a hundred take a second,
/// and a burst of loss that takes a hundred in a row is no longer a network.
const MAX_END_MARKERS: i64 = 100;
/// Most datagrams `--count` sends: ten billion is hours at full speed on one core; longer
/// runs are `--duration`'s job.
const MAX_COUNT: u64 = 10_000_000_000;

/// Fastest `--rate` in datagrams per second: 100 million is far past what `max` reaches
/// on one core (about a million), so any higher number is a typo.
const MAX_PPS: f64 = 1e8;
/// Fastest `--rate` in bits per second: 1 Tbit/s, for the same reason.
const MAX_BPS: f64 = 1e12;

/// `max`, `20000` or `20000pps` (datagrams/s), `10Mbps`, `500kbps`, `1Gbps` (bits/s).
/// The number itself follows [`units`]' grammar (plain digits, one point).
fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "max" {
        return Ok(Rate::Max);
    }
    let bad = || {
        format!(
            "`{}` is not a rate: write max, 20000pps or 10Mbps",
            s.chars().take(24).collect::<String>()
        )
    };
    let (num, scale, bits) = if let Some(n) = t.strip_suffix("gbps") {
        (n, 1e9, true)
    } else if let Some(n) = t.strip_suffix("mbps") {
        (n, 1e6, true)
    } else if let Some(n) = t.strip_suffix("kbps") {
        (n, 1e3, true)
    } else if let Some(n) = t.strip_suffix("bps") {
        (n, 1.0, true)
    } else if let Some(n) = t.strip_suffix("pps") {
        (n, 1.0, false)
    } else {
        (t.as_str(), 1.0, false)
    };
    let v = units::plain_number(num).ok_or_else(bad)? * scale;
    // At least one datagram every 100 s (or 1 bit/s); at most far beyond `max`.
    if bits && !(1.0..=MAX_BPS).contains(&v) {
        return Err(format!(
            "`{}` is out of range: give 1bps to 1000Gbps (or max)",
            s.chars().take(24).collect::<String>()
        ));
    }
    if !bits && !(units::MIN_RATE..=MAX_PPS).contains(&v) {
        return Err(format!(
            "`{}` is out of range: give 0.01 to 100000000 datagrams/s (or max)",
            s.chars().take(24).collect::<String>()
        ));
    }
    Ok(if bits { Rate::Bps(v) } else { Rate::Pps(v) })
}

fn parse_size(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes"))?;
    if !(HEADER_LEN..=MAX_DATAGRAM).contains(&v) {
        return Err(format!(
            "{v} bytes: a probe datagram is {HEADER_LEN} (the header) to {MAX_DATAGRAM} (the largest UDP payload)"
        ));
    }
    Ok(v)
}

/// Flags of `lab run 03-udp-loss`.
#[derive(Debug, Parser)]
#[command(
    about = "UDP loss, duplicates, reordering and jitter, counted exactly beside a relay's ground truth."
)]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Sender: where to send (the receiver, or a relay in front of it).
    #[arg(long, default_value = DEFAULT_RECEIVER)]
    connect: SocketAddr,
    /// Receiver: address to bind (`0.0.0.0:7003` to hear other machines).
    #[arg(long, default_value = DEFAULT_RECEIVER)]
    bind: SocketAddr,
    /// Relay: address to receive on.
    #[arg(long, default_value = DEFAULT_RELAY)]
    listen: SocketAddr,
    /// Relay: address to forward to.
    #[arg(long, default_value = DEFAULT_RECEIVER)]
    forward: SocketAddr,
    /// Data datagrams to send (default 20000, or 100000 with --kernel-drops).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=MAX_COUNT))]
    count: Option<u64>,
    /// Send for this long instead of a count: seconds (`5`) or with a unit (`500ms`).
    #[arg(long, conflicts_with = "count", value_name = "SECONDS", value_parser = units::seconds)]
    duration: Option<Duration>,
    /// Sending rate: `max`, datagrams/s (`20000` or `20000pps`) or bits/s (`10Mbps`).
    /// Default: 10000pps in the demo, max with --kernel-drops and for --role sender.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<Rate>,
    /// Bytes per datagram, header included (32..=65507).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: usize,
    /// Relay: share of datagrams dropped.
    #[arg(long, default_value = "3%", value_parser = units::percent)]
    loss: f64,
    /// Relay: share of datagrams duplicated.
    #[arg(long, default_value = "1%", value_parser = units::percent)]
    dup: f64,
    /// Relay: share of datagrams held back so the next one overtakes them.
    #[arg(long, default_value = "2%", value_parser = units::percent)]
    reorder: f64,
    /// Relay: delay added to every datagram.
    #[arg(long, default_value = "2ms", value_parser = units::delay)]
    delay: Duration,
    /// Relay: random variation of the delay, plus or minus.
    #[arg(long, default_value = "1ms", value_parser = units::delay)]
    jitter: Duration,
    /// Relay: seed of its decisions (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Demo: no relay; a tiny receive buffer and a sender at full speed show loss in the
    /// receiving kernel itself.
    #[arg(long)]
    kernel_drops: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Time per report line: seconds (`1`) or with a unit (`500ms`); at least 100ms.
    #[arg(long, default_value = "1", value_name = "SECONDS", value_parser = units::report_interval)]
    interval: Duration,
    /// Receiver: SO_RCVBUF to ask for, in bytes (default 4 MiB; 4096 with
    /// --kernel-drops). Linux caps it at net.core.rmem_max, then doubles it.
    #[arg(long)]
    rcvbuf: Option<usize>,
    /// Receiver: receive buffer per datagram (32..=65507); a longer datagram is cut
    /// short, counted as truncated, and so as lost.
    #[arg(long, default_value_t = MAX_DATAGRAM)]
    buffer: usize,
    /// Receiver: after the end marker, wait this long for stragglers if some are missing.
    #[arg(long, default_value = "200ms", value_parser = units::delay)]
    linger: Duration,
    /// Receiver: give up when nothing arrived for this long once traffic started.
    #[arg(long, default_value = "2s", value_parser = units::delay)]
    idle: Duration,
    /// Receiver: give up when nothing at all arrived for this long (default 60s; 2s in
    /// the demo).
    #[arg(long, value_parser = units::delay)]
    wait: Option<Duration>,
    /// Sender: how many end markers to send (0 shows what happens when all are lost).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=MAX_END_MARKERS))]
    end_markers: u32,
    /// Sender: the first sequence number (default 0; large values test 64-bit counting).
    #[arg(long, default_value_t = 0, hide = true)]
    first_seq: u64,
    /// Receiver: count only this session (its id in hex, as the sender prints it). UDP
    /// has no authentication: otherwise the first probe to arrive claims the session.
    #[arg(long, value_name = "HEX", value_parser = session_id)]
    session: Option<u64>,
    /// Receiver: count only datagrams from this sender address (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    from: Option<SocketAddr>,
}

/// `--session`: a session id in hex, as printed (`00c0ffee...`, an optional `0x`).
fn session_id(s: &str) -> Result<u64, String> {
    let hex = s.trim().trim_start_matches("0x");
    u64::from_str_radix(hex, 16)
        .map_err(|_| format!("`{s}` is not a session id: give the 16 hex digits the sender prints"))
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    if !(HEADER_LEN..=MAX_DATAGRAM).contains(&args.buffer) {
        return Err(LabError::usage(format!(
            "--buffer {}: the receiver must read at least the {HEADER_LEN}-byte header",
            args.buffer
        ))
        .fix(format!("use --buffer {HEADER_LEN}..={MAX_DATAGRAM}"))
        .into());
    }
    let count = args.count.unwrap_or(0);
    if args.first_seq.checked_add(count).is_none() {
        return Err(LabError::usage(format!(
            "--first-seq {} plus --count {count} passes 2^64: sequence numbers never wrap",
            args.first_seq
        ))
        .fix("lower --first-seq or --count")
        .into());
    }
    match args.role {
        Role::Demo => demo::demo(&args),
        Role::Sender => roles::sender_role(&args),
        Role::Receiver => roles::receiver_role(&args),
        Role::Relay => roles::relay_role(&args),
    }
}
