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

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::{Parser, ValueEnum};
use indicatif::ProgressBar;
use mio::Token;
use serde::Serialize;

use crate::catalog::Lab;
use crate::core::{Ctx, Datagram, EventLoop, Handler, Limits, TimerId};
use crate::error::{bind_error, LabError};
use crate::impair::{self, parse_duration, parse_percent, Relay, RelayStats, Settings};
use crate::out::{bad, bold, code, dim, good, progress, warn};
use crate::say;
use crate::sys::MAX_BATCH;
use crate::wire::probe::{Kind, Packet, Repr, Tally, HEADER_LEN, MAX_LEN};

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

/// `max`, `20000` or `20000pps` (datagrams/s), `10Mbps`, `500kbps`, `1Gbps` (bits/s).
fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "max" {
        return Ok(Rate::Max);
    }
    let bad = || format!("`{s}` is not a rate (try max, 20000pps or 10Mbps)");
    let (num, rate): (&str, fn(f64) -> Rate) = if let Some(n) = t.strip_suffix("gbps") {
        (n, |v| Rate::Bps(v * 1e9))
    } else if let Some(n) = t.strip_suffix("mbps") {
        (n, |v| Rate::Bps(v * 1e6))
    } else if let Some(n) = t.strip_suffix("kbps") {
        (n, |v| Rate::Bps(v * 1e3))
    } else if let Some(n) = t.strip_suffix("bps") {
        (n, Rate::Bps)
    } else if let Some(n) = t.strip_suffix("pps") {
        (n, Rate::Pps)
    } else {
        (t.as_str(), Rate::Pps)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v > 0.0 && v.is_finite()) {
        return Err(format!("`{s}`: a rate must be above 0 (or `max`)"));
    }
    Ok(rate(v))
}

fn parse_size(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes"))?;
    if !(HEADER_LEN..=MAX_LEN).contains(&v) {
        return Err(format!(
            "{v} bytes: a probe datagram is {HEADER_LEN} (the header) to {MAX_LEN} (the largest UDP payload)"
        ));
    }
    Ok(v)
}

/// Flags of `lab run 03-udp-loss`.
#[derive(Debug, Parser)]
#[command(
    about = "UDP loss, duplicates, reordering and jitter, counted exactly beside a relay's ground truth."
)]
struct Args {
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
    #[arg(long)]
    count: Option<u64>,
    /// Send for this many seconds instead of a count.
    #[arg(long, conflicts_with = "count")]
    duration: Option<f64>,
    /// Sending rate: `max`, datagrams/s (`20000` or `20000pps`) or bits/s (`10Mbps`).
    /// Default: 10000pps in the demo, max with --kernel-drops and for --role sender.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<Rate>,
    /// Bytes per datagram, header included (32..=65507).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: usize,
    /// Relay: share of datagrams dropped.
    #[arg(long, default_value = "3%", value_parser = parse_percent)]
    loss: f64,
    /// Relay: share of datagrams duplicated.
    #[arg(long, default_value = "1%", value_parser = parse_percent)]
    dup: f64,
    /// Relay: share of datagrams held back so the next one overtakes them.
    #[arg(long, default_value = "2%", value_parser = parse_percent)]
    reorder: f64,
    /// Relay: delay added to every datagram.
    #[arg(long, default_value = "2ms", value_parser = parse_duration)]
    delay: Duration,
    /// Relay: random variation of the delay, plus or minus.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
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
    /// Seconds per report line.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Receiver: SO_RCVBUF to ask for, in bytes (default 4 MiB; 4096 with
    /// --kernel-drops). Linux caps it at net.core.rmem_max, then doubles it.
    #[arg(long)]
    rcvbuf: Option<usize>,
    /// Receiver: receive buffer per datagram (32..=65507); a longer datagram is cut
    /// short, counted as truncated, and so as lost.
    #[arg(long, default_value_t = MAX_LEN)]
    buffer: usize,
    /// Receiver: after the end marker, wait this long for stragglers if some are missing.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    linger: Duration,
    /// Receiver: give up when nothing arrived for this long once traffic started.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    idle: Duration,
    /// Receiver: give up when nothing at all arrived for this long (default 60s; 2s in
    /// the demo).
    #[arg(long, value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Sender: how many end markers to send (0 shows what happens when all are lost).
    #[arg(long, default_value_t = 5)]
    end_markers: u32,
    /// Sender: the first sequence number (default 0; large values test 64-bit counting).
    #[arg(long, default_value_t = 0, hide = true)]
    first_seq: u64,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    if args.interval <= 0.0 || args.duration.is_some_and(|d| d.is_nan() || d <= 0.0) {
        return Err(
            LabError::usage("--interval and --duration must be above 0 seconds")
                .fix("for example --interval 1 --duration 5")
                .into(),
        );
    }
    if !(HEADER_LEN..=MAX_LEN).contains(&args.buffer) {
        return Err(LabError::usage(format!(
            "--buffer {}: the receiver must read at least the {HEADER_LEN}-byte header",
            args.buffer
        ))
        .fix(format!("use --buffer {HEADER_LEN}..={MAX_LEN}"))
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
        Role::Demo => demo(&args),
        Role::Sender => sender_role(&args),
        Role::Receiver => receiver_role(&args),
        Role::Relay => relay_role(&args),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// ---------------------------------------------------------------------------------------
// 1. The sender: numbered datagrams at a steady rate, then "I sent N", several times.
// ---------------------------------------------------------------------------------------

/// What the sender reports.
#[derive(Debug, Clone, Serialize)]
struct SenderReport {
    /// Data datagrams the kernel accepted (iperf3: `packets`).
    packets: u64,
    /// Their bytes.
    bytes: u64,
    /// Seconds from the first to the last data datagram.
    seconds: f64,
    /// Datagrams per second achieved.
    packets_per_second: f64,
    /// The session id, in hex.
    session: String,
    /// End markers sent.
    end_markers: u32,
}

/// Where the sender is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending data datagrams.
    Data,
    /// Sending end markers; this many are left.
    Ending(u32),
}

/// The sender's state: a [`Handler`] driven by its own timers.
struct Sender {
    /// Its UDP socket, connected to the destination.
    sock: Token,
    /// This run's random id.
    session: u64,
    /// First sequence number.
    first_seq: u64,
    /// Datagram size.
    size: usize,
    /// Stop after this many data datagrams...
    count: Option<u64>,
    /// ...or at this time.
    until: Option<Instant>,
    /// Datagrams per second (`None`: as fast as possible).
    pps: Option<f64>,
    /// When sending started.
    start: Instant,
    /// When the last data datagram went out.
    last: Instant,
    /// Data datagrams the kernel took.
    sent: u64,
    /// One zeroed buffer per batch slot; only the header is rewritten.
    bufs: Vec<Vec<u8>>,
    /// Current phase.
    phase: Phase,
    /// End markers to send.
    end_markers: u32,
    /// Progress on stderr (hidden off a terminal).
    bar: ProgressBar,
    /// A send error that ended the run.
    error: Option<io::Error>,
}

impl Sender {
    fn done_sending(&self, now: Instant) -> bool {
        self.count.is_some_and(|c| self.sent >= c) || self.until.is_some_and(|u| now >= u)
    }

    /// Sends data datagrams up to `target` in sendmmsg batches. Returns false if the
    /// kernel's buffer filled up first.
    fn send_until(&mut self, ctx: &mut Ctx, target: u64) -> io::Result<bool> {
        // After a batch stopped part way, the next batch is a single datagram. Why:
        // sendmmsg stops when one datagram fails, returns the count sent and drops the
        // error. If the error was ECONNREFUSED (nothing listens: the ICMP reply to the
        // previous datagram), one datagram alone provokes it again, and the following
        // batch then fails on its first datagram and reports it. A full buffer instead
        // answers the lone datagram with WouldBlock, and we wait.
        let mut single = false;
        while self.sent < target {
            let k = if single {
                1
            } else {
                ((target - self.sent) as usize).min(MAX_BATCH)
            };
            let t = now_ns();
            for (i, buf) in self.bufs.iter_mut().take(k).enumerate() {
                let h = Repr {
                    kind: Kind::Data,
                    session: self.session,
                    seq: self.first_seq + self.sent + i as u64,
                    sent_ns: t,
                };
                h.emit(&mut Packet::new_unchecked(&mut buf[..]));
            }
            let slices: Vec<&[u8]> = self.bufs[..k].iter().map(|b| &b[..]).collect();
            let n = ctx.send_batch(self.sock, &slices, None)?;
            self.sent += n as u64;
            if n == 0 {
                return Ok(false); // the kernel's buffer is full
            }
            single = n < k;
        }
        Ok(true)
    }

    fn send_end_marker(&mut self, ctx: &mut Ctx) -> io::Result<()> {
        let mut buf = vec![0u8; self.size];
        Repr {
            kind: Kind::End,
            session: self.session,
            seq: self.sent,
            sent_ns: now_ns(),
        }
        .emit(&mut Packet::new_unchecked(&mut buf[..]));
        ctx.send_batch(self.sock, &[&buf], None)?;
        Ok(())
    }

    fn report(&self) -> SenderReport {
        let seconds = self.last.duration_since(self.start).as_secs_f64();
        SenderReport {
            packets: self.sent,
            bytes: self.sent * self.size as u64,
            seconds,
            packets_per_second: if seconds > 0.0 {
                self.sent as f64 / seconds
            } else {
                0.0
            },
            session: format!("{:016x}", self.session),
            end_markers: self.end_markers,
        }
    }
}

impl Handler for Sender {
    // Ctrl-C while sending: stop sending data but still send the end markers, so the
    // receiver learns the count. A second Ctrl-C stops at once.
    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        match self.phase {
            Phase::Data if self.count != Some(self.sent) => self.count = Some(self.sent),
            _ => ctx.stop(),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx, _t: TimerId) {
        let now = Instant::now();
        let result = match self.phase {
            Phase::Data => {
                // Paced: as many as are due by now (so a late timer catches up). Max: a
                // burst, then yield to the loop.
                let mut target = match self.pps {
                    Some(pps) => (now.duration_since(self.start).as_secs_f64() * pps) as u64,
                    None => self.sent + MAX_BURST,
                };
                if let Some(c) = self.count {
                    target = target.min(c);
                }
                // Sequence numbers never wrap: stop at the last one there is.
                target = target.min(u64::MAX - self.first_seq);
                if self.until.is_some_and(|u| now >= u) {
                    target = self.sent;
                }
                match self.send_until(ctx, target) {
                    Ok(all) => {
                        self.last = Instant::now();
                        self.bar.set_position(self.sent);
                        if self.done_sending(Instant::now()) {
                            self.phase = Phase::Ending(self.end_markers);
                            ctx.timer_after(END_PAUSE);
                        } else if !all {
                            // The kernel's send buffer is full: try again very soon.
                            ctx.timer_after(Duration::from_micros(100));
                        } else if let Some(pps) = self.pps {
                            // Next tick when the next datagram is due, at least 1 ms on.
                            let next = Duration::from_secs_f64((1.0 / pps).max(0.001));
                            ctx.timer_after(next);
                        } else {
                            ctx.timer_after(Duration::ZERO);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Phase::Ending(0) => {
                ctx.stop();
                Ok(())
            }
            Phase::Ending(left) => {
                self.phase = Phase::Ending(left - 1);
                let r = match self.send_end_marker(ctx) {
                    // A receiver that had everything leaves at the first end marker;
                    // its host then refuses the rest. That is the normal end.
                    Err(e)
                        if e.kind() == io::ErrorKind::ConnectionRefused
                            && left < self.end_markers =>
                    {
                        ctx.stop();
                        Ok(())
                    }
                    r => r,
                };
                ctx.timer_after(if left > 1 {
                    END_SPACING
                } else {
                    Duration::ZERO
                });
                r
            }
        };
        if let Err(e) = result {
            self.error = Some(e);
            ctx.stop();
        }
    }
}

/// Runs a sender to completion on its own loop.
fn send(
    to: SocketAddr,
    args: &Args,
    pps: Option<f64>,
    count: Option<u64>,
    show_bar: bool,
) -> Result<SenderReport> {
    let local: SocketAddr = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse()?;
    let mut ev = EventLoop::with_limits(Limits::default())?.with_signals()?;
    let udp = UdpSocket::bind(local)?;
    // Connected: the kernel looks the route up once instead of per datagram, and a
    // "port unreachable" from the receiver's host comes back as ECONNREFUSED.
    udp.connect(to)?;
    let sock = ev.ctx().adopt_udp(udp, 1)?;
    let mut session = impair::Rng::new(now_ns() ^ u64::from(std::process::id()));
    let total = count.unwrap_or(0);
    let bar = if show_bar && total > 0 {
        progress(total, "sending")
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut s = Sender {
        sock,
        session: session.next_u64(),
        first_seq: args.first_seq,
        size: args.size,
        count,
        until: args.duration.map(|d| start + Duration::from_secs_f64(d)),
        pps,
        start,
        last: start,
        sent: 0,
        bufs: vec![vec![0u8; args.size]; MAX_BATCH],
        phase: Phase::Data,
        end_markers: args.end_markers,
        bar,
        error: None,
    };
    ev.ctx().timer_after(Duration::ZERO);
    ev.run(&mut s)?;
    s.bar.finish_and_clear();
    if let Some(e) = s.error {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            return Err(LabError::usage(format!(
                "{to} refused the datagrams after {} were sent: nothing listens there",
                s.sent
            ))
            .fix("start the receiver first (`lab run 03 --role receiver`), or check --connect")
            .into());
        }
        return Err(anyhow::Error::new(e).context(format!("sending to {to}")));
    }
    Ok(s.report())
}

// ---------------------------------------------------------------------------------------
// 2. The receiver: every datagram goes through the tally; reports come from it.
// ---------------------------------------------------------------------------------------

/// One report line's worth.
#[derive(Debug, Clone, Serialize)]
struct IntervalReport {
    /// Seconds since the first datagram, start of the interval.
    start: f64,
    /// End of the interval.
    end: f64,
    /// Unique data datagrams in this interval.
    packets: u64,
    /// Their bytes.
    bytes: u64,
    /// Their bits per second.
    bits_per_second: f64,
    /// Duplicates in this interval.
    duplicates: u64,
    /// Out-of-order arrivals in this interval.
    out_of_order: u64,
    /// Kernel drops in this interval.
    kernel_drops: u64,
    /// Jitter estimate at the end of the interval.
    jitter_ms: f64,
    /// Sequence numbers not (yet) received below the highest one, at the end of the
    /// interval: a running view of loss; only the totals are exact.
    missing: u64,
}

/// The receiver's totals. Names that iperf3's JSON has keep iperf3's meaning.
#[derive(Debug, Clone, Serialize)]
struct ReceiverReport {
    /// Datagrams the sender sent per its end marker (iperf3: total packets), or the
    /// highest sequence + 1 when no end marker arrived.
    packets: u64,
    /// Unique data datagrams received.
    received: u64,
    /// packets - received.
    lost_packets: u64,
    /// lost_packets as a share of packets, in percent.
    lost_percent: f64,
    /// True when an end marker gave the sender's count; false means loss at the tail
    /// may be missing from lost_packets.
    count_known: bool,
    /// Copies of datagrams already received.
    duplicates: u64,
    /// First copies that arrived after a higher sequence number.
    out_of_order: u64,
    /// Datagrams too far below the window to classify (counted as lost).
    late: u64,
    /// RFC 3550 interarrival jitter, milliseconds.
    jitter_ms: f64,
    /// Datagrams the receiving kernel dropped: the socket buffer was full (SO_RXQ_OVFL).
    kernel_drops: u64,
    /// Datagrams that were not this session's probes (other senders, other runs, noise).
    foreign: u64,
    /// This session's datagrams longer than the receive buffer (counted as lost).
    truncated: u64,
    /// End markers received.
    end_markers: u64,
    /// Bytes of unique data datagrams.
    bytes: u64,
    /// Seconds from the first to the last data datagram of the session.
    seconds: f64,
    /// Received bits per second.
    bits_per_second: f64,
    /// Session id in hex, once one was seen.
    session: Option<String>,
    /// Per-interval lines.
    intervals: Vec<IntervalReport>,
}

/// Counters at the start of the current interval.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    /// Unique data datagrams so far.
    received: u64,
    /// Their bytes.
    bytes: u64,
    /// Duplicates so far.
    duplicates: u64,
    /// Out-of-order arrivals so far.
    out_of_order: u64,
    /// Kernel drops so far.
    kernel_drops: u64,
}

/// The receiver's state.
struct Receiver {
    /// Receive buffer per datagram (--buffer): longer datagrams count as truncated.
    buffer: usize,
    /// The session (and its source) locked in by the first data datagram.
    session: Option<(u64, SocketAddr)>,
    /// Exact counts for the session.
    tally: Tally,
    /// The sender's count, from an end marker.
    sent: Option<u64>,
    /// Datagrams that are not this session's probes.
    foreign: u64,
    /// This session's data datagrams longer than `buffer`.
    truncated: u64,
    /// This session's end markers received.
    end_markers: u64,
    /// The socket's SO_RXQ_OVFL count (all datagrams, foreign ones included).
    kernel_drops: u64,
    /// First datagram of the session: the start of the intervals.
    first: Option<Instant>,
    /// Last data datagram of the session: the end of the rate's time span.
    last: Option<Instant>,
    /// When the receiver started (for --wait).
    started: Instant,
    /// Last time anything arrived.
    heard: Instant,
    /// Give up after the end marker at this time.
    linger_until: Option<Instant>,
    /// How long to wait for stragglers after the end marker (--linger).
    linger: Duration,
    /// Silence that ends a session once traffic started (--idle).
    idle: Duration,
    /// Silence before any datagram that ends the wait (--wait).
    wait: Duration,
    /// Report line period (--interval).
    interval: Duration,
    /// Counters at the last interval boundary.
    mark: Mark,
    /// Closed intervals, one per `interval` (a line per second: small for any real run).
    intervals: Vec<IntervalReport>,
    /// Print each interval as it ends.
    print: bool,
    /// The sender's first sequence number (hidden --first-seq, default 0): the base of
    /// `missing`, and of the count when no end marker arrived.
    first_seq: u64,
}

impl Receiver {
    fn new(args: &Args, wait: Duration, print: bool) -> Receiver {
        let now = Instant::now();
        Receiver {
            buffer: args.buffer.clamp(1, MAX_LEN),
            session: None,
            tally: Tally::new(),
            sent: None,
            foreign: 0,
            truncated: 0,
            end_markers: 0,
            kernel_drops: 0,
            first: None,
            last: None,
            started: now,
            heard: now,
            linger_until: None,
            linger: args.linger,
            idle: args.idle,
            wait,
            interval: Duration::from_secs_f64(args.interval),
            mark: Mark::default(),
            intervals: Vec::new(),
            print,
            first_seq: args.first_seq,
        }
    }

    fn missing(&self) -> u64 {
        let expected = self
            .tally
            .highest
            .map_or(0, |h| h.saturating_sub(self.first_seq).saturating_add(1));
        expected.saturating_sub(self.tally.received)
    }

    /// Closes the current interval and starts the next.
    fn close_interval(&mut self) {
        let Some(first) = self.first else { return };
        let start = self.intervals.last().map_or(0.0, |i| i.end);
        let end = first.elapsed().as_secs_f64().max(start);
        let t = &self.tally;
        let bytes = t.bytes - self.mark.bytes;
        let secs = end - start;
        let line = IntervalReport {
            start,
            end,
            packets: t.received - self.mark.received,
            bytes,
            bits_per_second: if secs > 0.0 {
                bytes as f64 * 8.0 / secs
            } else {
                0.0
            },
            duplicates: t.duplicates - self.mark.duplicates,
            out_of_order: t.out_of_order - self.mark.out_of_order,
            kernel_drops: self.kernel_drops - self.mark.kernel_drops,
            jitter_ms: t.jitter_ns / 1e6,
            missing: self.missing(),
        };
        self.mark = Mark {
            received: t.received,
            bytes: t.bytes,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            kernel_drops: self.kernel_drops,
        };
        if self.print {
            if self.intervals.is_empty() {
                say!(
                    "{}",
                    dim(format!(
                        "  {:>13}  {:>8} {:>10} {:>10} {:>9} {:>8} {:>5} {:>5} {:>6}",
                        "interval",
                        "received",
                        "bytes",
                        "Mbit/s",
                        "jitter",
                        "missing",
                        "dup",
                        "ooo",
                        "kdrop"
                    ))
                );
            }
            say!(
                "  {:>5.2}-{:<5.2} s  {:>8} {:>10} {:>10.2} {:>6.3} ms {:>8} {:>5} {:>5} {:>6}",
                line.start,
                line.end,
                line.packets,
                line.bytes,
                line.bits_per_second / 1e6,
                line.jitter_ms,
                line.missing,
                line.duplicates,
                line.out_of_order,
                line.kernel_drops
            );
        }
        self.intervals.push(line);
    }

    fn finished(&self) -> bool {
        self.sent
            .is_some_and(|n| self.tally.received + self.truncated + self.tally.late >= n)
    }

    fn report(&self) -> ReceiverReport {
        let t = &self.tally;
        let count_known = self.sent.is_some();
        let packets = match self.sent {
            Some(n) => n,
            None => t
                .highest
                .map_or(0, |h| h.saturating_sub(self.first_seq).saturating_add(1)),
        };
        let lost = packets.saturating_sub(t.received);
        let seconds = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        ReceiverReport {
            packets,
            received: t.received,
            lost_packets: lost,
            lost_percent: if packets > 0 {
                lost as f64 * 100.0 / packets as f64
            } else {
                0.0
            },
            count_known,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            late: t.late,
            jitter_ms: t.jitter_ns / 1e6,
            kernel_drops: self.kernel_drops,
            foreign: self.foreign,
            truncated: self.truncated,
            end_markers: self.end_markers,
            bytes: t.bytes,
            seconds,
            bits_per_second: if seconds > 0.0 {
                t.bytes as f64 * 8.0 / seconds
            } else {
                0.0
            },
            session: self.session.map(|(s, _)| format!("{s:016x}")),
            intervals: self.intervals.clone(),
        }
    }
}

impl Handler for Receiver {
    fn on_datagram(&mut self, ctx: &mut Ctx, _sock: Token, d: Datagram<'_>) {
        let now = Instant::now();
        self.heard = now;
        let arrival = d.arrival_ns.unwrap_or_else(now_ns);
        // Not a probe at all (too short, wrong magic or version): somebody else's.
        let Ok(h) = Repr::parse_bytes(d.data) else {
            self.foreign += 1;
            return;
        };
        // The first data datagram decides the session; anything else is foreign. (An
        // end marker alone cannot start a session: it may be a previous run's straggler.)
        let ours = match self.session {
            None if h.kind == Kind::Data => {
                self.session = Some((h.session, d.from));
                self.first = Some(now);
                ctx.timer_after(self.interval);
                true
            }
            None => false,
            Some((s, from)) => s == h.session && from == d.from,
        };
        if !ours {
            self.foreign += 1;
            return;
        }
        if h.kind == Kind::Data {
            // The rate is over the data: the pause before the end markers is not traffic.
            self.last = Some(now);
        }
        match h.kind {
            // Longer than the receive buffer the user chose: cut short, not received.
            Kind::Data if d.wire_len > self.buffer => self.truncated += 1,
            Kind::Data => {
                self.tally.data(&h, d.wire_len, arrival);
            }
            Kind::End => {
                self.end_markers += 1;
                if self.sent.is_none() {
                    self.sent = Some(h.seq);
                    self.linger_until = Some(now + self.linger);
                    ctx.timer_after(self.linger);
                }
            }
        }
        if self.finished() {
            ctx.stop();
        }
    }

    fn on_kernel_drops(&mut self, _ctx: &mut Ctx, _sock: Token, total: u64) {
        self.kernel_drops = total;
    }

    fn on_udp_error(&mut self, _ctx: &mut Ctx, _sock: Token, _err: &io::Error) {}

    fn on_timer(&mut self, ctx: &mut Ctx, _t: TimerId) {
        let now = Instant::now();
        if let Some(first) = self.first {
            // Interval boundaries are multiples of --interval after the first datagram.
            let done = self.intervals.len() as u32 + 1;
            if now >= first + self.interval * done {
                self.close_interval();
                ctx.timer_at(first + self.interval * (done + 1));
            }
        }
        let gave_up = match self.first {
            None => now >= self.started + self.wait,
            Some(_) => now >= self.heard + self.idle,
        };
        if gave_up || self.linger_until.is_some_and(|t| now >= t) {
            ctx.stop();
        }
    }
}

/// A receiver socket on its own loop, ready to run.
fn bind_receiver(
    args: &Args,
    bind: SocketAddr,
    rcvbuf: Option<usize>,
) -> Result<(EventLoop, SocketAddr, usize)> {
    let sock = UdpSocket::bind(bind).map_err(|e| bind_error(bind, e, "--bind"))?;
    let granted = crate::sys::set_recv_buffer(&sock, rcvbuf.unwrap_or(DEFAULT_RCVBUF))?;
    let local = sock.local_addr()?;
    let mut ev = EventLoop::new()?.with_signals()?;
    // The receiver needs only the header; MSG_TRUNC still reports each datagram's full
    // length, which the byte counts and the --buffer truncation check use.
    let slot = args.buffer.clamp(1, READ_SLOT);
    ev.ctx().adopt_udp_batched(sock, slot, MAX_BATCH)?;
    Ok((ev, local, granted))
}

/// Runs a receiver until its end condition; the idle checks tick every 100 ms.
fn receive(mut ev: EventLoop, rx: &mut Receiver) -> Result<ReceiverReport> {
    ev.ctx().timer_after(Duration::from_millis(100));
    struct Ticking<'a>(&'a mut Receiver);
    impl Handler for Ticking<'_> {
        fn on_datagram(&mut self, ctx: &mut Ctx, s: Token, d: Datagram<'_>) {
            self.0.on_datagram(ctx, s, d)
        }
        fn on_kernel_drops(&mut self, ctx: &mut Ctx, s: Token, total: u64) {
            self.0.on_kernel_drops(ctx, s, total)
        }
        fn on_timer(&mut self, ctx: &mut Ctx, t: TimerId) {
            self.0.on_timer(ctx, t);
            if !ctx.is_stopped() {
                ctx.timer_after(Duration::from_millis(100));
            }
        }
    }
    ev.run(&mut Ticking(rx))?;
    rx.close_interval();
    Ok(rx.report())
}

// ---------------------------------------------------------------------------------------
// 3. The roles and the demo.
// ---------------------------------------------------------------------------------------

fn settings(args: &Args, seed: u64) -> Settings {
    Settings {
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        delay: args.delay,
        jitter: args.jitter,
        seed,
    }
}

fn sender_role(args: &Args) -> Result<()> {
    let pps = args.rate.unwrap_or(Rate::Max).pps(args.size);
    let count = if args.duration.is_some() {
        None
    } else {
        Some(args.count.unwrap_or(20_000))
    };
    if !args.json {
        say!(
            "{} {} datagrams of {} bytes to {} at {}",
            bold("sending"),
            count.map_or_else(
                || format!("{} s of", args.duration.unwrap_or(0.0)),
                |c| c.to_string()
            ),
            args.size,
            args.connect,
            pps.map_or("full speed".to_string(), |p| format!("{p:.0}/s"))
        );
    }
    let rep = send(args.connect, args, pps, count, !args.json)?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "sender": rep }))?
        );
    } else {
        say!(
            "sent {} datagrams ({} bytes) in {:.2} s, {:.0}/s, session {}; then {} end markers saying \"{}\"",
            rep.packets,
            rep.bytes,
            rep.seconds,
            rep.packets_per_second,
            rep.session,
            rep.end_markers,
            rep.packets
        );
    }
    Ok(())
}

fn receiver_role(args: &Args) -> Result<()> {
    let (ev, local, granted) = bind_receiver(args, args.bind, args.rcvbuf)?;
    let wait = args.wait.unwrap_or(Duration::from_secs(60));
    if args.json {
        // stdout carries only the JSON; scripts learn the address here.
        eprintln!("receiving on {local}");
    } else {
        say!(
            "{} on {} (waiting up to {} s for a sender; receive buffer {} bytes)",
            bold("receiving"),
            local,
            wait.as_secs_f64(),
            granted
        );
        say!(
            "  try: {}",
            code(format!("lab run 03 --role sender --connect {local}"))
        );
    }
    let mut rx = Receiver::new(args, wait, !args.json);
    let rep = receive(ev, &mut rx)?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "receiver": rep }))?
        );
    } else {
        print_receiver(&rep);
    }
    if rep.session.is_none() {
        return Err(LabError::failed(format!(
            "no datagram of a probe session arrived in {} s: everything was lost, or no sender ran",
            wait.as_secs_f64()
        ))
        .into());
    }
    Ok(())
}

fn relay_role(args: &Args) -> Result<()> {
    impair::run(&impair::ImpairArgs {
        listen: args.listen,
        forward: args.forward,
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        delay: args.delay,
        jitter: args.jitter,
        seed: args.seed,
        duration: args.duration,
        json: args.json,
    })
}

fn print_receiver(r: &ReceiverReport) {
    say!();
    say!("{}", bold("receiver totals"));
    let known = if r.count_known {
        String::new()
    } else {
        warn(" (no end marker arrived: counted up to the highest sequence seen; loss at the tail is invisible)")
    };
    say!(
        "  received {} of {} datagrams; lost {} ({:.2}%){known}",
        r.received,
        r.packets,
        r.lost_packets,
        r.lost_percent
    );
    say!(
        "  duplicates {}, out of order {}, jitter {:.3} ms, kernel drops {}, foreign {}, truncated {}, late {}",
        r.duplicates,
        r.out_of_order,
        r.jitter_ms,
        r.kernel_drops,
        r.foreign,
        r.truncated,
        r.late
    );
    say!(
        "  {} bytes in {:.2} s = {:.2} Mbit/s",
        r.bytes,
        r.seconds,
        r.bits_per_second / 1e6
    );
}

/// The whole demo's result, the `--json` document.
#[derive(Debug, Serialize)]
struct DemoReport {
    /// The relay's seed (null with --kernel-drops).
    seed: Option<u64>,
    /// Impairment settings, in words.
    impairment: Option<String>,
    /// What the sender sent.
    sender: SenderReport,
    /// What the relay did (null with --kernel-drops): the ground truth.
    relay: Option<RelayStats>,
    /// What the receiver counted.
    receiver: ReceiverReport,
}

fn demo(args: &Args) -> Result<()> {
    let kernel = args.kernel_drops;
    let count = if args.duration.is_some() {
        None
    } else {
        Some(args.count.unwrap_or(if kernel { 100_000 } else { 20_000 }))
    };
    let rate = args.rate.unwrap_or(if kernel {
        Rate::Max
    } else {
        Rate::Pps(10_000.0)
    });
    let pps = rate.pps(args.size);
    let seed = args.seed.unwrap_or_else(impair::random_seed);
    let text = !args.json;

    // The receiver first, so nothing is sent to a port nobody listens on.
    let rcvbuf = if kernel {
        Some(args.rcvbuf.unwrap_or(4096))
    } else {
        args.rcvbuf
    };
    let (rx_ev, rx_addr, granted) = bind_receiver(args, "127.0.0.1:0".parse()?, rcvbuf)?;
    // 2 s of silence before the first datagram means nothing is coming (plus whatever
    // delay the relay was asked to add).
    let wait = args
        .wait
        .unwrap_or(Duration::from_secs(2) + args.delay + args.jitter);
    let mut rx = Receiver::new(args, wait, text);

    // Then the relay in front of it (not with --kernel-drops).
    let mut relay_parts = None;
    let target = if kernel {
        rx_addr
    } else {
        let mut ev = EventLoop::new()?;
        let (relay, addr) = Relay::bind(
            &mut ev,
            "127.0.0.1:0".parse()?,
            rx_addr,
            settings(args, seed),
        )?;
        relay_parts = Some((ev, relay));
        addr
    };

    if text {
        say!(
            "{}",
            bold("03-udp-loss: numbered datagrams through a bad network, counted exactly")
        );
        let what = count.map_or_else(
            || format!("for {} s", args.duration.unwrap_or(0.0)),
            |c| c.to_string(),
        );
        let speed = pps.map_or("at full speed".to_string(), |p| format!("at {p:.0}/s"));
        say!(
            "  sender   -> {target}: {what} datagrams of {} bytes {speed}",
            args.size
        );
        if kernel {
            say!(
                "  receiver    {rx_addr}: SO_RCVBUF asked {} bytes, the kernel gave {granted} (tiny); no relay",
                rcvbuf.unwrap_or(0)
            );
        } else {
            say!(
                "  relay       {target} -> {rx_addr}: {}",
                settings(args, seed).describe()
            );
            say!("  receiver    {rx_addr}");
            say!(
                "  {}",
                dim(format!("repeat this exact run with --seed {seed}"))
            );
        }
        say!();
    }

    let rx_thread = thread::spawn(move || receive(rx_ev, &mut rx));
    let relay_thread = relay_parts.map(|(mut ev, mut relay)| {
        let stop = relay.stop.clone();
        let waker = ev.ctx().waker();
        let handle = thread::spawn(move || impair::run_relay(ev, &mut relay, None));
        (stop, waker, handle)
    });

    let sent = send(target, args, pps, count, text);
    let received = rx_thread
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    let relay = match relay_thread {
        Some((stop, waker, handle)) => {
            stop.store(true, Ordering::SeqCst);
            waker.wake()?;
            Some(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("relay thread panicked"))??,
            )
        }
        None => None,
    };
    let sender = sent?;
    let receiver = received?;

    let doc = DemoReport {
        seed: (!kernel).then_some(seed),
        impairment: (!kernel).then(|| settings(args, seed).describe()),
        sender,
        relay,
        receiver,
    };
    let verdict = compare(&doc);
    if args.json {
        say!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_receiver(&doc.receiver);
        if let Some(r) = &doc.relay {
            impair::print_stats(r);
        }
        explain(&doc, &verdict);
    }
    match verdict.mismatch {
        Some(m) => Err(LabError::failed(m).into()),
        None => Ok(()),
    }
}

/// The receiver's figures against the ground truth.
struct Verdict {
    /// Rows: what, receiver's figure, the truth, its source, equal.
    rows: Vec<(&'static str, u64, u64, String, bool)>,
    /// Set when a figure that must match does not.
    mismatch: Option<String>,
    /// Losses inside this machine that make exact matching impossible to promise.
    inexact: bool,
}

fn compare(doc: &DemoReport) -> Verdict {
    let r = &doc.receiver;
    let s = &doc.sender;
    let mut rows = Vec::new();
    let inexact;
    match &doc.relay {
        Some(rel) => {
            // Every datagram lost is one the relay dropped, or lost inside this machine
            // (a full queue in the relay or the receiver), or cut short at the receiver.
            let truth =
                rel.dropped + rel.overflow + rel.kernel_drops + r.kernel_drops + r.truncated;
            inexact = rel.overflow + rel.kernel_drops + r.kernel_drops > 0;
            let src = if truth == rel.dropped {
                "dropped by the relay".to_string()
            } else {
                format!(
                    "{} dropped + {} lost inside this machine",
                    rel.dropped,
                    truth - rel.dropped
                )
            };
            rows.push(("lost", r.lost_packets, truth, src, r.lost_packets == truth));
            rows.push((
                "duplicates",
                r.duplicates,
                rel.duplicated,
                "duplicated by the relay".into(),
                r.duplicates == rel.duplicated,
            ));
            rows.push((
                "out of order",
                r.out_of_order,
                rel.reordered,
                "reordered by the relay".into(),
                r.out_of_order == rel.reordered,
            ));
        }
        None => {
            inexact = false;
            rows.push((
                "lost",
                r.lost_packets,
                r.kernel_drops,
                "kernel drops (SO_RXQ_OVFL)".into(),
                r.lost_packets == r.kernel_drops,
            ));
        }
    }
    rows.push((
        "sent = received + lost",
        s.packets,
        r.received + r.lost_packets,
        "the receiver's sum".into(),
        s.packets == r.received + r.lost_packets,
    ));
    let mismatch = if !r.count_known {
        None // explained in the closing text; nothing exact to hold it to
    } else {
        rows.iter()
            .filter(|row| !row.4)
            // Losses inside the machine excuse the other rows, never the sum.
            .filter(|row| !inexact || row.0 == "sent = received + lost")
            .map(|row| {
                format!(
                    "the receiver's {} ({}) differs from the truth ({})",
                    row.0, row.1, row.2
                )
            })
            .next()
    };
    Verdict {
        rows,
        mismatch,
        inexact,
    }
}

fn explain(doc: &DemoReport, v: &Verdict) {
    let r = &doc.receiver;
    say!();
    say!("{}", bold("Receiver beside the ground truth"));
    for (what, got, truth, src, ok) in &v.rows {
        let mark = if *ok { good("✓") } else { bad("✗") };
        say!("  {mark} {what:<24} {got:>8}   {truth:>8} {}", dim(src));
    }
    let mut notes = String::new();
    if r.session.is_none() {
        let _ = writeln!(
            notes,
            "  - Nothing of the session arrived before the receiver gave up (--wait): every datagram, and\n    every end marker, was lost. A receiver cannot tell \"all lost\" from \"no sender\", so it\n    stops after a timeout instead of hanging."
        );
    } else if !r.count_known {
        let _ = writeln!(
            notes,
            "  - All end markers were lost, so the sender's count is unknown: loss is counted up to the\n    highest sequence seen ({}), and any loss at the tail is invisible (iperf3 always counts this way).",
            r.packets
        );
    }
    if v.inexact {
        let _ = writeln!(
            notes,
            "  - Some datagrams were lost inside this machine (a full socket buffer), not by the relay's choice;\n    a datagram overtaken by one that was then dropped is not out of order, so those rows may differ."
        );
    }
    say!();
    say!("{}", bold("What you saw"));
    if doc.relay.is_some() {
        say!("  - The sender never learned of any of it: UDP has no acknowledgements and no retransmission.");
        say!("  - Loss is exact because the sender said how many it sent (its end marker, sent 5 times).");
        say!("  - Duplicates are counted apart, so a duplicate never hides a loss.");
        say!("  - Out of order: a sequence number lower than one already received. Jitter (RFC 3550) is the");
        say!("    smoothed variation of transit time; the relay's delay ± jitter made it, not the distance.");
    } else {
        say!("  - No network and no relay, and still loss: the receiver's socket buffer was full, so its kernel");
        say!("    dropped datagrams and counted them (SO_RXQ_OVFL). A faster sender than reader always loses.");
        say!("  - Raise the buffer (--rcvbuf) or read faster (batching: recvmmsg) and the loss shrinks.");
    }
    if !notes.is_empty() {
        say!("{}", notes.trim_end());
    }
    say!();
    say!(
        "Next: {}, {}, or split it across machines with {}",
        code("lab show 03"),
        code("lab run 03 --kernel-drops"),
        code("--role sender|relay|receiver")
    );
}
