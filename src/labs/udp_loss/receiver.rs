//! The receiver: every datagram goes through the tally ([`super::tally::Tally`]);
//! the per-interval lines and the final report come from it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::tally::Tally;
use super::{Args, DEFAULT_RCVBUF, READ_SLOT};
use crate::core::{Ctx, Datagram, EventLoop, Handler, TimerId, UdpId};
use crate::error::bind_error;
use crate::out::OrStopLater;
use crate::out::{dim, duration_us};
use crate::say;
use crate::sys::MAX_BATCH;
use crate::wire::probe::{Kind, Repr};
use crate::wire::{epoch_ns, MAX_DATAGRAM};

/// One report line's worth. Every name iperf3's UDP receiver intervals also have
/// (`iperf3 -u -R -J`: `intervals[].sum`) means what it means there: `packets` is the
/// count *expected* in the interval, from sequence numbers, and `lost_packets` /
/// `lost_percent` are this interval's, not running totals.
#[derive(Debug, Clone, Serialize)]
pub(super) struct IntervalReport {
    /// Seconds since the first datagram, start of the interval.
    pub(super) start: f64,
    /// End of the interval.
    pub(super) end: f64,
    /// end - start.
    pub(super) seconds: f64,
    /// Datagrams expected in this interval (iperf3's meaning): how far the highest
    /// sequence number received advanced.
    pub(super) packets: u64,
    /// Unique data datagrams that arrived in this interval (not an iperf3 name).
    pub(super) received: u64,
    /// Lost in this interval (iperf3's meaning): the change in the count of sequence
    /// numbers still missing below the highest. Negative when late arrivals filled
    /// more earlier gaps than new ones opened, as in iperf3; only the totals are final.
    pub(super) lost_packets: i64,
    /// lost_packets as a share of packets, in percent.
    pub(super) lost_percent: f64,
    /// Bytes of the unique data datagrams that arrived.
    pub(super) bytes: u64,
    /// Their bits per second.
    pub(super) bits_per_second: f64,
    /// Jitter estimate at the end of the interval (RFC 3550, as iperf3).
    pub(super) jitter_ms: f64,
    /// Duplicates in this interval.
    pub(super) duplicates: u64,
    /// Out-of-order arrivals in this interval.
    pub(super) out_of_order: u64,
    /// Kernel drops in this interval.
    pub(super) kernel_drops: u64,
}

/// The receiver's totals. Names that iperf3's JSON has keep iperf3's meaning.
#[derive(Debug, Clone, Serialize)]
pub(super) struct ReceiverReport {
    /// Datagrams the sender sent per its end marker (iperf3: total packets), or the
    /// highest sequence + 1 when no end marker arrived.
    pub(super) packets: u64,
    /// Unique data datagrams received.
    pub(super) received: u64,
    /// packets - received.
    pub(super) lost_packets: u64,
    /// lost_packets as a share of packets, in percent.
    pub(super) lost_percent: f64,
    /// True when an end marker gave the sender's count; false means loss at the tail
    /// may be missing from lost_packets.
    pub(super) count_known: bool,
    /// Copies of datagrams already received.
    pub(super) duplicates: u64,
    /// First copies that arrived after a higher sequence number.
    pub(super) out_of_order: u64,
    /// Datagrams too far below the window to classify (counted as lost).
    pub(super) late: u64,
    /// RFC 3550 interarrival jitter, milliseconds.
    pub(super) jitter_ms: f64,
    /// Datagrams the receiving kernel dropped: the socket buffer was full (SO_RXQ_OVFL).
    pub(super) kernel_drops: u64,
    /// Datagrams that were not this session's probes (other senders, other runs, noise).
    pub(super) foreign: u64,
    /// This session's datagrams longer than the receive buffer (counted as lost).
    pub(super) truncated: u64,
    /// End markers received.
    pub(super) end_markers: u64,
    /// Bytes of unique data datagrams.
    pub(super) bytes: u64,
    /// Seconds from the first to the last data datagram of the session.
    pub(super) seconds: f64,
    /// Received bits per second.
    pub(super) bits_per_second: f64,
    /// Session id in hex, once one was seen.
    pub(super) session: Option<String>,
    /// Per-interval lines.
    pub(super) intervals: Vec<IntervalReport>,
    /// Reasons to doubt the figures above (a claimed count the evidence contradicts,
    /// another sender streaming while the session is silent); empty when none.
    pub(super) warnings: Vec<String>,
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
    /// Datagrams expected so far (highest sequence + 1 - first).
    expected: u64,
    /// Sequence numbers missing below the highest, so far.
    missing: u64,
}

/// The receiver's state.
pub(super) struct Receiver {
    /// Receive buffer per datagram (--buffer): longer datagrams count as truncated.
    buffer: usize,
    /// The session (and its source) locked in by the first data datagram that matches
    /// the pins.
    session: Option<(u64, SocketAddr)>,
    /// `--session` and `--from`: only a matching datagram may claim the session.
    pin: (Option<u64>, Option<SocketAddr>),
    /// Probes of another session or source, the first such sender and how many it sent:
    /// evidence that the wrong sender claimed the session (bounded: one sender kept).
    rival: Option<(u64, SocketAddr, u64)>,
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
    /// When the current report line ends (a boundary `interval`s after the first
    /// datagram); `None` before the session starts.
    next_line: Option<Instant>,
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
    pub(super) fn new(args: &Args, wait: Duration, print: bool) -> Receiver {
        let now = Instant::now();
        Receiver {
            buffer: args.buffer.clamp(1, MAX_DATAGRAM),
            session: None,
            pin: (args.session, args.from),
            rival: None,
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
            interval: args.interval,
            next_line: None,
            mark: Mark::default(),
            intervals: Vec::new(),
            print,
            first_seq: args.first_seq,
        }
    }

    /// Datagrams expected so far: every sequence number up to the highest received.
    fn expected(&self) -> u64 {
        self.tally
            .highest
            .map_or(0, |h| h.saturating_sub(self.first_seq).saturating_add(1))
    }

    /// Sequence numbers not (yet) received below the highest one.
    fn missing(&self) -> u64 {
        self.expected().saturating_sub(self.tally.received)
    }

    /// Closes the current interval and starts the next.
    fn close_interval(&mut self) {
        let Some(first) = self.first else { return };
        let start = self.intervals.last().map_or(0.0, |i| i.end);
        let end = first.elapsed().as_secs_f64().max(start);
        let t = &self.tally;
        let bytes = t.bytes - self.mark.bytes;
        let secs = end - start;
        let (expected, missing) = (self.expected(), self.missing());
        let packets = expected.saturating_sub(self.mark.expected);
        let lost = missing as i64 - self.mark.missing as i64;
        let line = IntervalReport {
            start,
            end,
            seconds: secs,
            packets,
            received: t.received - self.mark.received,
            lost_packets: lost,
            lost_percent: if packets > 0 {
                lost as f64 * 100.0 / packets as f64
            } else {
                0.0
            },
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
        };
        self.mark = Mark {
            received: t.received,
            bytes: t.bytes,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            kernel_drops: self.kernel_drops,
            expected,
            missing,
        };
        if self.print {
            if self.intervals.is_empty() {
                say!(
                    "{}",
                    dim(format!(
                        "  {:>13}  {:>8} {:>8} {:>6} {:>8} {:>10} {:>9} {:>5} {:>5} {:>6}",
                        "interval",
                        "expected",
                        "received",
                        "lost",
                        "lost %",
                        "Mbit/s",
                        "jitter",
                        "dup",
                        "ooo",
                        "kdrop"
                    ))
                )
                .or_stop_later();
            }
            say!(
                "  {:>5.2}-{:<5.2} s  {:>8} {:>8} {:>6} {:>7.2}% {:>10.2} {:>9} {:>5} {:>5} {:>6}",
                line.start,
                line.end,
                line.packets,
                line.received,
                line.lost_packets,
                line.lost_percent,
                line.bits_per_second / 1e6,
                duration_us(line.jitter_ms * 1000.0),
                line.duplicates,
                line.out_of_order,
                line.kernel_drops
            )
            .or_stop_later();
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
            warnings: self.doubts(packets),
        }
    }

    /// What the evidence says against the session's own figures. UDP has no
    /// authentication: any datagram with our magic can claim the session or a count.
    fn doubts(&self, packets: u64) -> Vec<String> {
        let mut doubts = Vec::new();
        let received = self.tally.received;
        // A claim a thousand times what arrived, from anything, is not a loss figure.
        if packets > 1000 * (received + self.foreign) + 1000 {
            doubts.push(format!(
                "the session claims {packets} datagrams but {received} arrived (and {} others): a forged or stray claim, not a loss rate; pin the sender with --from ADDR or --session ID",
                self.foreign
            ));
        }
        if let Some((s, from, n)) = self.rival {
            if n > received {
                doubts.push(format!(
                    "another sender ({from}, session {s:016x}) sent {n} probes while the session counted {received}: the session may have been claimed by a stray or forged datagram; pin it with --from {from} or --session {s:016x}"
                ));
            }
        }
        doubts
    }
}

impl Handler for Receiver {
    fn on_datagram(&mut self, ctx: &mut Ctx, _sock: UdpId, d: Datagram<'_>) {
        let now = Instant::now();
        self.heard = now;
        let arrival = d.arrival_ns.unwrap_or_else(epoch_ns);
        // Not a probe at all (too short, wrong magic or version): somebody else's.
        let Ok(h) = Repr::parse_bytes(d.data) else {
            self.foreign += 1;
            return;
        };
        // The first data datagram decides the session; anything else is foreign. (An
        // end marker alone cannot start a session: it may be a previous run's straggler.)
        let pinned =
            self.pin.0.is_none_or(|s| s == h.session) && self.pin.1.is_none_or(|a| a == d.from);
        let ours = match self.session {
            None if h.kind == Kind::Data && pinned => {
                self.session = Some((h.session, d.from));
                self.first = Some(now);
                self.next_line = Some(now + self.interval);
                ctx.timer_after(self.interval);
                true
            }
            None => false,
            Some((s, from)) => s == h.session && from == d.from,
        };
        if !ours {
            self.foreign += 1;
            if h.kind == Kind::Data {
                match &mut self.rival {
                    None => self.rival = Some((h.session, d.from, 1)),
                    Some((s, a, n)) if *s == h.session && *a == d.from => *n += 1,
                    Some(_) => {}
                }
            }
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

    fn on_kernel_drops(&mut self, _ctx: &mut Ctx, _sock: UdpId, total: u64) {
        self.kernel_drops = total;
    }

    fn on_udp_error(&mut self, _ctx: &mut Ctx, _sock: UdpId, _err: &io::Error) {}

    fn on_timer(&mut self, ctx: &mut Ctx, _t: TimerId) {
        let now = Instant::now();
        if let (Some(first), Some(due)) = (self.first, self.next_line) {
            // Interval boundaries are multiples of --interval after the first datagram.
            // A loop that was late (a busy machine) closes one longer line up to now and
            // aims at the next boundary still ahead: never a backlog of lines to catch up
            // on, and the counts stay exact (each line reports the change since the last).
            if now >= due {
                self.close_interval();
                let passed =
                    (now.duration_since(first).as_secs_f64() / self.interval.as_secs_f64()).floor();
                let next = first + self.interval.mul_f64(passed + 1.0);
                self.next_line = Some(next);
                ctx.timer_at(next);
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
pub(super) fn bind_receiver(
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
pub(super) fn receive(mut ev: EventLoop, rx: &mut Receiver) -> Result<ReceiverReport> {
    ev.ctx().timer_after(Duration::from_millis(100));
    struct Ticking<'a>(&'a mut Receiver);
    impl Handler for Ticking<'_> {
        fn on_datagram(&mut self, ctx: &mut Ctx, s: UdpId, d: Datagram<'_>) {
            self.0.on_datagram(ctx, s, d)
        }
        fn on_kernel_drops(&mut self, ctx: &mut Ctx, s: UdpId, total: u64) {
            self.0.on_kernel_drops(ctx, s, total)
        }
        fn on_timer(&mut self, ctx: &mut Ctx, t: TimerId) {
            self.0.on_timer(ctx, t);
            if !ctx.is_stopped() {
                ctx.timer_after(Duration::from_millis(100));
            }
        }
    }
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    crate::out::run_while_stdout_open(&mut ev, &mut Ticking(rx), None)?;
    rx.close_interval();
    Ok(rx.report())
}
