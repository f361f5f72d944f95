//! `lab impair`: a seeded UDP impairment relay, the lossy network of every lab and test.
//!
//! `tc netem` is not available on our machines, so this relay plays the network: it
//! receives datagrams on `--listen`, and forwards each to `--forward` after deciding, from
//! a seeded random stream, whether to drop it, send it twice, hold it back so the next
//! one overtakes it, and how long to delay it. Replies from the forward address go back,
//! unimpaired, to the last sender, so request/response labs (02-udp-echo) work through it.
//!
//! Deterministic: datagram number i (counted from 0 in arrival order) always gets the
//! same decision for a given seed, whatever the other settings, because every datagram
//! draws the same four random numbers. What the relay did is counted exactly; those
//! counts are the ground truth a receiver's accounting is checked against.
//!
//! The decisions, in order, for each datagram:
//! 1. **loss**: dropped with probability `loss`; nothing else applies.
//! 2. **duplication**: with probability `dup` a second copy follows the original.
//! 3. **reordering**: with probability `reorder` the datagram (and its copy) is held back
//!    and sent right after the next datagram that is forwarded, which thus overtakes it.
//!    If no datagram follows within [`HOLD_LIMIT`], it is sent anyway, in order, and not
//!    counted as reordered (nothing overtook it).
//! 4. **delay**: `delay` plus a uniform random `-jitter..=+jitter`, never below 0. The
//!    relay keeps delivery in FIFO order (a datagram never leaves before one that arrived
//!    earlier), so jitter varies the spacing without reordering; only step 3 reorders.
//!
//! Probe end markers (lab 03's "I sent N") are dropped, duplicated and delayed like
//! everything else but counted apart (`end_markers`, `end_markers_dropped`), so
//! `forwarded`, `dropped`, `duplicated` and `reordered` count data datagrams only. An end
//! marker is never held back, and never overtakes data that is held: that data leaves
//! first, so a receiver that stops at the first end marker has seen everything.
//!
//! Memory is bounded: at most [`MAX_QUEUED_BYTES`] wait in the delay queue and
//! [`MAX_HELD`] are held for reordering; a datagram beyond that is dropped and counted
//! under `overflow`, as is one the kernel refuses to send.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::core::{Ctx, Datagram, EventLoop, Handler, TimerId, UdpId, MAX_DATAGRAM};
use crate::error::{bind_error, LabError};
use crate::out::{bold, code, dim};
use crate::say;
use crate::units;
use crate::wire::probe::{Kind, Repr};

/// How long a datagram held for reordering waits for one to overtake it. 50 ms is far
/// longer than the gap between datagrams of any flow worth reordering, and short enough
/// not to stall the end of a run.
pub const HOLD_LIMIT: Duration = Duration::from_millis(50);
/// Most datagrams held for reordering at once (consecutive "reorder" decisions).
pub const MAX_HELD: usize = 64;
/// Most bytes waiting in the delay queue: 64 MiB holds 100 ms of 5 Gbit/s.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Receive buffer the relay asks for: 4 MiB (capped by net.core.rmem_max).
const RCVBUF: usize = 4 << 20;
/// Datagrams read per recvmmsg by the relay.
const BATCH: usize = 32;

/// Impairment settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Probability of dropping a datagram, 0..=1.
    pub loss: f64,
    /// Probability of sending a second copy, 0..=1.
    pub dup: f64,
    /// Probability of holding a datagram back so the next overtakes it, 0..=1.
    pub reorder: f64,
    /// Base delay added to every datagram.
    pub delay: Duration,
    /// Uniform variation of the delay, plus or minus.
    pub jitter: Duration,
    /// Seed of the decision stream.
    pub seed: u64,
}

impl Settings {
    /// One line for reports: `loss 3% dup 1% reorder 2% delay 0ms±0ms seed 42`.
    pub fn describe(&self) -> String {
        format!(
            "loss {}% dup {}% reorder {}% delay {}±{} seed {}",
            self.loss * 100.0,
            self.dup * 100.0,
            self.reorder * 100.0,
            fmt_dur(self.delay),
            fmt_dur(self.jitter),
            self.seed
        )
    }
}

fn fmt_dur(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// The seeded generator behind every decision (shared by the whole crate).
pub use crate::rng::Rng;

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Dropped (nothing else applies).
    pub drop: bool,
    /// A second copy follows it.
    pub duplicate: bool,
    /// Held back until the next forwarded datagram has gone.
    pub reorder: bool,
    /// Extra time before it leaves.
    pub delay: Duration,
}

/// The pure decision stream: the same seed gives the same decisions.
#[derive(Debug, Clone)]
pub struct Impairer {
    /// The settings the decisions follow.
    settings: Settings,
    /// Random stream seeded from `settings.seed`.
    rng: Rng,
}

impl Impairer {
    /// A decision stream for these settings.
    pub fn new(settings: Settings) -> Impairer {
        Impairer {
            settings,
            rng: Rng::new(settings.seed),
        }
    }

    /// The decision for the next datagram. Always draws four numbers, so datagram i's
    /// fate depends only on the seed and i.
    pub fn decide(&mut self) -> Decision {
        let s = &self.settings;
        let (u_loss, u_dup, u_reorder, u_jitter) = (
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
        );
        let drop = u_loss < s.loss;
        let jitter = s.jitter.as_nanos() as f64 * (2.0 * u_jitter - 1.0);
        let delay_ns = (s.delay.as_nanos() as f64 + jitter).max(0.0);
        Decision {
            drop,
            duplicate: !drop && u_dup < s.dup,
            reorder: !drop && u_reorder < s.reorder,
            delay: Duration::from_nanos(delay_ns as u64),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The relay on the event loop.
// ---------------------------------------------------------------------------------------

/// What the relay did; every field is an exact count.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RelayStats {
    /// Data datagrams that arrived from senders.
    pub datagrams: u64,
    /// Data datagrams passed on to the forward address (originals, not copies).
    pub forwarded: u64,
    /// Data datagrams dropped on purpose.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams sent after a later one (held back and overtaken).
    pub reordered: u64,
    /// Data datagrams that waited in the delay queue (delay > 0), copies included.
    pub delayed: u64,
    /// Probe end markers seen (counted apart from data).
    pub end_markers: u64,
    /// Of those, dropped on purpose.
    pub end_markers_dropped: u64,
    /// Datagrams the relay had to drop itself: its queue was full or the kernel refused
    /// the send. Not an impairment decision.
    pub overflow: u64,
    /// Datagrams the kernel dropped before the relay could read them (its receive
    /// buffer was full; SO_RXQ_OVFL). Also not a decision.
    pub kernel_drops: u64,
    /// Replies from the forward address sent back to the sender (not impaired).
    pub returned: u64,
}

/// One datagram waiting to leave.
struct Pending {
    /// When it may leave.
    at: Instant,
    /// Its bytes.
    data: Vec<u8>,
    /// A probe end marker (counted apart).
    end: bool,
    /// The second copy of a duplicated datagram.
    copy: bool,
}

/// The relay: a [`Handler`] on one UDP socket.
pub struct Relay {
    /// The decision stream.
    imp: Impairer,
    /// Where datagrams go.
    forward: SocketAddr,
    /// The last sender seen; replies from `forward` go back to it.
    client: Option<SocketAddr>,
    /// The relay's socket.
    sock: UdpId,
    /// Datagrams waiting for their delay, in FIFO order of `at`.
    queue: VecDeque<Pending>,
    /// Bytes in `queue`, bounded by [`MAX_QUEUED_BYTES`].
    queued_bytes: usize,
    /// Datagrams held back for reordering (with their copies), oldest first.
    held: Vec<Pending>,
    /// When the oldest held datagram was held.
    held_since: Option<Instant>,
    /// The release time of the newest queued datagram (FIFO: none leaves before it).
    last_at: Option<Instant>,
    /// The armed timer and its deadline.
    timer: Option<(TimerId, Instant)>,
    /// Exact counts.
    pub stats: RelayStats,
}

impl Relay {
    /// Binds `listen` on `ev` and returns the relay and the bound address.
    pub fn bind(
        ev: &mut EventLoop,
        listen: SocketAddr,
        forward: SocketAddr,
        settings: Settings,
    ) -> Result<(Relay, SocketAddr)> {
        let sock = UdpSocket::bind(listen).map_err(|e| bind_error(listen, e, "--listen"))?;
        // A large receive buffer, so a relay descheduled for a moment does not drop
        // datagrams it was not asked to drop (those would show up as kernel_drops).
        crate::sys::set_recv_buffer(&sock, RCVBUF)?;
        let local = sock.local_addr()?;
        let token = ev.ctx().adopt_udp_batched(sock, MAX_DATAGRAM, BATCH)?;
        let relay = Relay {
            imp: Impairer::new(settings),
            forward,
            client: None,
            sock: token,
            queue: VecDeque::new(),
            queued_bytes: 0,
            held: Vec::new(),
            held_since: None,
            last_at: None,
            timer: None,
            stats: RelayStats::default(),
        };
        Ok((relay, local))
    }

    /// Sends one datagram now and counts it.
    fn send(&mut self, ctx: &mut Ctx, p: &Pending) {
        let ok = matches!(ctx.send_to(self.sock, &p.data, self.forward), Ok(true));
        match (ok, p.end, p.copy) {
            (false, _, _) => self.stats.overflow += 1,
            (true, true, _) => {}
            (true, false, false) => self.stats.forwarded += 1,
            (true, false, true) => self.stats.duplicated += 1,
        }
    }

    /// Puts a datagram in the delay queue (or sends it now when nothing waits).
    fn enqueue(&mut self, ctx: &mut Ctx, p: Pending) {
        let now = Instant::now();
        if self.queue.is_empty() && p.at <= now {
            self.send(ctx, &p);
            return;
        }
        if self.queued_bytes + p.data.len() > MAX_QUEUED_BYTES {
            self.stats.overflow += 1;
            return;
        }
        if p.at > now && !p.end {
            self.stats.delayed += 1;
        }
        // FIFO: never before the datagram queued ahead of it.
        let at = self.last_at.map_or(p.at, |last| p.at.max(last));
        self.last_at = Some(at);
        self.queued_bytes += p.data.len();
        self.queue.push_back(Pending { at, ..p });
    }

    /// Sends what is due and lets held datagrams go once nobody overtook them in time.
    fn release(&mut self, ctx: &mut Ctx, everything: bool) {
        let now = Instant::now();
        if self
            .held_since
            .is_some_and(|t| everything || now >= t + HOLD_LIMIT)
        {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                self.enqueue(ctx, Pending { at: now, ..p });
            }
        }
        while let Some(front) = self.queue.front() {
            if !everything && front.at > now {
                break;
            }
            let p = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= p.data.len();
            self.send(ctx, &p);
        }
        self.arm(ctx);
    }

    /// Keeps one timer armed for the earliest thing to do.
    fn arm(&mut self, ctx: &mut Ctx) {
        let next = [
            self.queue.front().map(|p| p.at),
            self.held_since.map(|t| t + HOLD_LIMIT),
        ]
        .into_iter()
        .flatten()
        .min();
        match (next, self.timer) {
            (Some(at), Some((_, armed))) if armed <= at => {}
            (Some(at), old) => {
                if let Some((id, _)) = old {
                    ctx.cancel_timer(id);
                }
                self.timer = Some((ctx.timer_at(at), at));
            }
            (None, _) => {}
        }
    }

    /// The impairment path for a datagram from a sender.
    fn impair(&mut self, ctx: &mut Ctx, data: &[u8]) {
        let end = matches!(
            Repr::parse_bytes(data),
            Ok(Repr {
                kind: Kind::End,
                ..
            })
        );
        if end {
            self.stats.end_markers += 1;
        } else {
            self.stats.datagrams += 1;
        }
        let d = self.imp.decide();
        if d.drop {
            if end {
                self.stats.end_markers_dropped += 1;
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let at = Instant::now() + d.delay;
        let mut copies = vec![Pending {
            at,
            data: data.to_vec(),
            end,
            copy: false,
        }];
        if d.duplicate {
            copies.push(Pending {
                at,
                data: data.to_vec(),
                end,
                copy: true,
            });
        }
        // An end marker is never held back and never overtakes data: data still held
        // leaves first, in order. So a receiver that stops at the first end marker has
        // seen every datagram that was going to arrive.
        if end && !self.held.is_empty() {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                self.enqueue(ctx, Pending { at, ..p });
            }
        }
        if d.reorder && !end && self.held.len() + copies.len() <= MAX_HELD {
            self.held_since.get_or_insert_with(Instant::now);
            self.held.extend(copies);
            self.arm(ctx);
            return;
        }
        for p in copies {
            self.enqueue(ctx, p);
        }
        // Whatever is still held leaves right behind this data datagram: it has been
        // overtaken, and a receiver will see a sequence number lower than one it has.
        if !self.held.is_empty() {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                if !p.end && !p.copy {
                    self.stats.reordered += 1;
                }
                self.enqueue(ctx, Pending { at, ..p });
            }
        }
        self.arm(ctx);
    }
}

impl Handler for Relay {
    // From a sender: impair and forward. From the forward address: a reply, pass it back.
    fn on_datagram(&mut self, ctx: &mut Ctx, _sock: UdpId, d: Datagram<'_>) {
        if d.from == self.forward {
            if let Some(client) = self.client {
                if matches!(ctx.send_to(self.sock, d.data, client), Ok(true)) {
                    self.stats.returned += 1;
                }
            }
            return;
        }
        self.client = Some(d.from);
        self.impair(ctx, d.data);
    }

    // ECONNREFUSED for an earlier send (nothing listens at the forward address yet):
    // that datagram is gone, like on a real network. Keep relaying.
    fn on_udp_error(&mut self, _ctx: &mut Ctx, _sock: UdpId, _err: &io::Error) {}

    fn on_kernel_drops(&mut self, _ctx: &mut Ctx, _sock: UdpId, total: u64) {
        self.stats.kernel_drops = total;
    }

    fn on_timer(&mut self, ctx: &mut Ctx, _timer: TimerId) {
        self.timer = None;
        self.release(ctx, false);
    }

    // LoopThread::stop (lab 03's demo): send what is still queued, so counts are final.
    fn on_stop(&mut self, ctx: &mut Ctx) {
        self.release(ctx, true);
    }

    // Ctrl-C: send what is still queued, so the counts are final, then stop.
    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        self.release(ctx, true);
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------
// `lab impair`.
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> Settings {
        Settings {
            loss: 0.05,
            dup: 0.01,
            reorder: 0.02,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            seed,
        }
    }

    #[test]
    fn same_seed_same_decisions() {
        let a: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(7)), |i, _| Some(i.decide()))
            .collect();
        let b: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(7)), |i, _| Some(i.decide()))
            .collect();
        let c: Vec<Decision> = (0..1000)
            .scan(Impairer::new(settings(8)), |i, _| Some(i.decide()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn drop_decisions_do_not_depend_on_the_other_settings() {
        let mut plain = Impairer::new(Settings {
            dup: 0.0,
            reorder: 0.0,
            ..settings(3)
        });
        let mut full = Impairer::new(settings(3));
        for i in 0..1000 {
            assert_eq!(plain.decide().drop, full.decide().drop, "datagram {i}");
        }
    }

    #[test]
    fn rates_and_delays_are_as_asked() {
        let seed = 12345;
        let mut imp = Impairer::new(settings(seed));
        let n = 100_000;
        let (mut drops, mut dups, mut reorders) = (0, 0, 0);
        for _ in 0..n {
            let d = imp.decide();
            drops += d.drop as u32;
            dups += d.duplicate as u32;
            reorders += d.reorder as u32;
            assert!(
                !(d.drop && (d.duplicate || d.reorder)),
                "a dropped datagram has no other fate"
            );
            assert!(
                d.delay >= Duration::from_millis(5) && d.delay <= Duration::from_millis(15),
                "{:?}",
                d.delay
            );
        }
        // Binomial standard deviations at n = 100,000 are 69, 31 and 44: 6 sigma bounds.
        let near = |got: u32, p: f64, sd: f64| (got as f64 - n as f64 * p).abs() < 6.0 * sd;
        assert!(near(drops, 0.05, 69.0), "seed {seed}: {drops} drops");
        assert!(near(dups, 0.0095, 31.0), "seed {seed}: {dups} dups");
        assert!(
            near(reorders, 0.019, 44.0),
            "seed {seed}: {reorders} reorders"
        );
    }

    /// The relay's rules, without sockets: the arrival order a receiver sees for `n`
    /// datagrams, and the counts the relay would report.
    fn model(settings: Settings, n: u64) -> (Vec<u64>, u64, u64, u64) {
        let mut imp = Impairer::new(settings);
        let (mut out, mut held) = (Vec::new(), Vec::new());
        let (mut dropped, mut duplicated, mut reordered) = (0u64, 0u64, 0u64);
        for seq in 0..n {
            let d = imp.decide();
            if d.drop {
                dropped += 1;
                continue;
            }
            let copies = if d.duplicate { 2 } else { 1 };
            duplicated += copies as u64 - 1;
            if d.reorder && held.len() + copies <= MAX_HELD {
                held.extend(std::iter::repeat_n(seq, copies));
                continue;
            }
            out.extend(std::iter::repeat_n(seq, copies));
            reordered +=
                held.len() as u64 - held.windows(2).filter(|w| w[0] == w[1]).count() as u64;
            out.append(&mut held);
        }
        out.append(&mut held); // the end marker lets held data go first, in order
        (out, dropped, duplicated, reordered)
    }

    #[test]
    fn tally_agrees_with_the_relay_rules_for_a_thousand_seeds() {
        use crate::labs::udp_loss::tally::Tally;
        use crate::wire::probe::{Kind, Repr};
        for seed in 0..1000u64 {
            let settings = Settings {
                loss: (seed % 7) as f64 / 20.0,
                dup: (seed % 5) as f64 / 20.0,
                reorder: (seed % 3) as f64 / 10.0,
                ..settings(seed)
            };
            let n = 500 + seed % 500;
            let (arrivals, dropped, duplicated, reordered) = model(settings, n);
            let mut t = Tally::new();
            for seq in arrivals {
                let h = Repr {
                    kind: Kind::Data,
                    session: 1,
                    seq,
                    sent_ns: 0,
                };
                t.data(&h, 64, 0);
            }
            assert_eq!(t.lost(Some(n)), dropped, "seed {seed}: lost == dropped");
            assert_eq!(
                t.duplicates, duplicated,
                "seed {seed}: duplicates == duplicated"
            );
            assert_eq!(
                t.out_of_order, reordered,
                "seed {seed}: out_of_order == reordered"
            );
            assert_eq!(
                t.received + t.lost(Some(n)),
                n,
                "seed {seed}: sent == unique + lost"
            );
        }
    }
}
