//! The sender A: numbers records, sends them, and keeps each until it is acknowledged.
//!
//! In the order events happen:
//!
//! 1. **Records come in**: from a file or stdin (a reader thread frames the lines and
//!    hands them over through a bounded channel and the loop's waker), or generated
//!    sensor readings paced by `--rate`. Each gets `sender` (a random id for the run,
//!    unless it has one) and `seq` (1, 2, 3 ... per sender, unless it has one).
//! 2. **Sent, and kept.** A record leaves for the receiver and joins the *unacknowledged*
//!    queue. At most `--window` records wait there: that bounds memory, and the sender
//!    reads no more records until acks free room.
//! 3. **Acks arrive in order**, one reply line per record line (TCP keeps order), so the
//!    k-th reply is about the k-th record sent on this connection. `ok SEQ` lets the
//!    record go. `error SEQ not saved: ...` (the receiver's disk is full) keeps it, to be
//!    resent; any other `error` means the receiver will never take it: dropped, counted
//!    as rejected.
//! 4. **The connection breaks** (the receiver crashed or restarted): every record in the
//!    queue is unacknowledged, so after reconnecting it is sent again, from the first.
//!    Some of them were saved and only their acks were lost; the receiver recognises
//!    those by (sender, seq) and does not save them twice. Reconnects back off
//!    exponentially with random jitter, so many senders do not hammer a restarting
//!    receiver in lockstep.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver as Rx, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::core::{Closed, ConnId, Ctx, EventLoop, Handler, SendError, TimerId};
use crate::out::{dim, narrate, warn, OrStopLater};
use crate::rng::Rng;
use crate::wire::jsonl::{self, Ack, Record, MAX_RECORD};
use crate::wire::lines::{Line, LineDecoder};

/// Records in flight by default: enough to keep a loopback receiver busy through its
/// fsyncs, small enough (a few MiB of typical records) to hold.
pub const DEFAULT_WINDOW: usize = 4096;
/// First reconnect delay; doubled per failed attempt up to [`BACKOFF_MAX`].
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest reconnect delay: a restarted receiver is found within about this long.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Housekeeping period: pacing for `--rate`, and the give-up clock.
const TICK: Duration = Duration::from_millis(10);
/// Bytes of records handed to one `send` call.
const SEND_CHUNK: usize = 64 * 1024;
/// Longest reply line accepted from the receiver.
const MAX_REPLY: usize = 4096;

/// Where records come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `N` generated sensor readings.
    Generate(u64),
    /// A JSON Lines file.
    File(PathBuf),
    /// JSON Lines on stdin.
    Stdin,
}

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The receiver.
    pub connect: SocketAddr,
    /// Where records come from.
    pub source: Source,
    /// Records per second (0: as fast as the window allows).
    pub rate: f64,
    /// Sender id for records without one (`None`: random).
    pub sender: Option<String>,
    /// Most unacknowledged records held.
    pub window: usize,
    /// Stop after this long without an acknowledgement.
    pub give_up: Duration,
    /// Seed of the id, the readings and the jitter.
    pub seed: u64,
    /// Narrate connects, resends and backoff.
    pub verbose: bool,
}

/// What the sender did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Records sent at least once.
    pub sent: u64,
    /// Records acknowledged with `ok`.
    pub acknowledged: u64,
    /// Sends of a record that had been sent before (after a reconnect).
    pub resent: u64,
    /// Records the receiver refused for good (`error`).
    pub rejected: u64,
    /// Input lines that were not JSON objects (not sent).
    pub skipped: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Records still unacknowledged when the sender stopped (gave up).
    pub unacked: u64,
}

impl Totals {
    /// The closing line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "sent {}, acknowledged {}, resent {} (after {} reconnects)",
            self.sent, self.acknowledged, self.resent, self.reconnects
        );
        if self.rejected > 0 {
            s.push_str(&format!(", rejected {}", self.rejected));
        }
        if self.skipped > 0 {
            s.push_str(&format!(", skipped {} input lines", self.skipped));
        }
        if self.unacked > 0 {
            s.push_str(&format!(", {} never acknowledged", self.unacked));
        }
        s
    }
}

/// One record waiting for its ack.
struct Pending {
    /// Its seq, to check the ack against.
    seq: u64,
    /// The line sent, newline included.
    line: Vec<u8>,
    /// Sent on an earlier connection: sending it again is a resend.
    sent_before: bool,
}

/// Where the next record comes from, inside the loop.
enum Feed {
    /// Generated readings: how many are left, and the last value (a random walk).
    Generate { left: u64, value: f64 },
    /// Lines from the reader thread; `None` in the channel marks the end.
    Lines(Rx<Option<Vec<u8>>>),
    /// Nothing more.
    Done,
}

/// The sender's handler.
struct Sender {
    opts: Options,
    /// The id of records without one.
    id: String,
    /// Next seq per sender id.
    next_seq: HashMap<String, u64>,
    feed: Feed,
    /// Unacknowledged records, oldest first.
    queue: VecDeque<Pending>,
    /// How many from the front of `queue` were sent on the current connection.
    in_flight: usize,
    /// The connection, while connected.
    conn: Option<ConnId>,
    /// Replies' framing, per connection.
    replies: LineDecoder,
    /// Failed connection attempts in a row (backoff exponent).
    attempts: u32,
    /// Connections made so far.
    connections: u64,
    /// The current connection is established (not still connecting).
    connected: bool,
    rng: Rng,
    /// Start, for `--rate` pacing.
    began: Instant,
    /// Records produced so far (pacing).
    produced: u64,
    /// Last time an ack arrived or the sender started (give-up clock).
    last_progress: Instant,
    /// The reconnect timer, while waiting.
    reconnect: Option<TimerId>,
    /// The housekeeping timer.
    tick: Option<TimerId>,
    totals: Totals,
    /// Acks so far, for a watcher in another thread (the demo).
    acked_out: Option<Arc<AtomicU64>>,
    /// Gave up: the loop ends with records unacknowledged.
    gave_up: bool,
}

/// Runs the sender to the end: every record acknowledged (or rejected), or given up.
/// `acked` is updated as acks arrive, for a watcher in another thread.
pub fn run(opts: &Options, acked: Option<Arc<AtomicU64>>) -> Result<Totals> {
    let mut ev = EventLoop::new()?.with_signals()?;
    let mut rng = Rng::new(opts.seed);
    let id = opts
        .sender
        .clone()
        .unwrap_or_else(|| format!("s-{:08x}", rng.next_u64() as u32));
    let feed = match &opts.source {
        Source::Generate(n) => Feed::Generate {
            left: *n,
            value: 512.0,
        },
        Source::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| {
                crate::error::LabError::usage(format!("cannot read {}: {e}", p.display()))
                    .fix("give --input an existing JSON Lines file, or `-` for stdin")
            })?;
            Feed::Lines(spawn_reader(Box::new(f), ev.ctx().waker()))
        }
        Source::Stdin => Feed::Lines(spawn_reader(Box::new(std::io::stdin()), ev.ctx().waker())),
    };
    if opts.verbose {
        narrate(
            "sender",
            &format!("connect({})", opts.connect),
            &format!("-> records without a sender id get \"{id}\""),
        )?;
    }
    let mut s = Sender {
        opts: opts.clone(),
        id,
        next_seq: HashMap::new(),
        feed,
        queue: VecDeque::new(),
        in_flight: 0,
        conn: None,
        replies: LineDecoder::new(MAX_REPLY),
        attempts: 0,
        connections: 0,
        connected: false,
        rng,
        began: Instant::now(),
        produced: 0,
        last_progress: Instant::now(),
        reconnect: None,
        tick: None,
        totals: Totals::default(),
        acked_out: acked,
        gave_up: false,
    };
    s.connect(ev.ctx());
    s.tick = Some(ev.ctx().timer_after(TICK));
    ev.run(&mut s)?;
    s.totals.unacked = s.queue.len() as u64;
    Ok(s.totals)
}

/// Reads JSON Lines in a thread (files and stdin block), framed and bounded, handing
/// each line to the loop through a bounded channel; `None` marks the end.
fn spawn_reader(mut input: Box<dyn Read + Send>, waker: crate::core::Waker) -> Rx<Option<Vec<u8>>> {
    // 1024 lines: the thread stays ahead of the loop without holding the whole file.
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        let mut dec = LineDecoder::new(MAX_RECORD);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut lines = Vec::new();
            dec.push(&buf[..n], |l| {
                lines.push(match l {
                    Line::Complete(b) => b.to_vec(),
                    Line::TooLong => Vec::new(), // rejected by the parser as not JSON
                })
            });
            for l in lines {
                if tx.send(Some(l)).is_err() {
                    return;
                }
            }
            let _ = waker.wake();
        }
        if let Some(last) = dec.take_partial() {
            let _ = tx.send(Some(last));
        }
        let _ = tx.send(None);
        let _ = waker.wake();
    });
    rx
}

impl Sender {
    fn connect(&mut self, ctx: &mut Ctx) {
        self.reconnect = None;
        match ctx.connect(self.opts.connect) {
            Ok(t) => self.conn = Some(t),
            // Failing at once (no route, no ports left): treat like a refused connect.
            Err(_) => self.schedule_reconnect(ctx),
        }
    }

    /// Exponential backoff with jitter: base * 2^attempts, capped, times 0.5..1.5.
    fn schedule_reconnect(&mut self, ctx: &mut Ctx) {
        if self.reconnect.is_some() {
            return;
        }
        let exp = BACKOFF_BASE.saturating_mul(1 << self.attempts.min(10));
        let delay = exp.min(BACKOFF_MAX).mul_f64(0.5 + self.rng.unit());
        self.attempts += 1;
        if self.opts.verbose {
            narrate(
                "sender",
                "(waits before reconnecting)",
                &format!(
                    "-> {:.0} ms (attempt {}; backoff doubles, with random jitter)",
                    delay.as_secs_f64() * 1e3,
                    self.attempts
                ),
            )
            .or_stop_later();
        }
        self.reconnect = Some(ctx.timer_after(delay));
    }

    /// Tops the queue up from the feed, within the window and the rate.
    fn fill(&mut self) {
        let allowed = if self.opts.rate > 0.0 {
            (self.began.elapsed().as_secs_f64() * self.opts.rate) as u64 + 1
        } else {
            u64::MAX
        };
        while self.queue.len() < self.opts.window && self.produced < allowed {
            let line = match &mut self.feed {
                Feed::Done => return,
                Feed::Generate { left: 0, .. } => {
                    self.feed = Feed::Done;
                    return;
                }
                Feed::Generate { left, value } => {
                    *left -= 1;
                    // A sensor-like reading: a bounded random walk around mid-scale.
                    *value = (*value + (self.rng.unit() - 0.5) * 16.0).clamp(0.0, 1023.0);
                    let v = (*value * 10.0).round() / 10.0;
                    format!(
                        "{{\"sensor\":\"A0\",\"value\":{v},\"t_ms\":{}}}",
                        self.began.elapsed().as_millis()
                    )
                    .into_bytes()
                }
                Feed::Lines(rx) => match rx.try_recv() {
                    Ok(Some(l)) => l,
                    Ok(None) | Err(TryRecvError::Disconnected) => {
                        self.feed = Feed::Done;
                        return;
                    }
                    Err(TryRecvError::Empty) => return,
                },
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut rec: Record = match jsonl::parse(&line) {
                Ok(r) => r,
                Err((_, why)) => {
                    self.totals.skipped += 1;
                    eprintln!("{} input line skipped: {why}", warn("note:"));
                    continue;
                }
            };
            let sender = rec.sender.clone().unwrap_or_else(|| self.id.clone());
            let next = self.next_seq.entry(sender.clone()).or_insert(1);
            let seq = rec.seq.unwrap_or(*next);
            *next = seq.saturating_add(1).max(*next);
            if rec.sender.is_none() || rec.seq.is_none() {
                rec.stamp(&sender, seq);
            }
            self.produced += 1;
            self.queue.push_back(Pending {
                seq,
                line: rec.to_line(),
                sent_before: false,
            });
        }
    }

    /// Sends queued records not yet sent on this connection, in chunks, until the
    /// core's buffer is full (then `on_drained` calls again).
    fn pump(&mut self, ctx: &mut Ctx) {
        let Some(conn) = self.conn else { return };
        if ctx.queued(conn) > 0 {
            return; // wait for on_drained: the kernel is not taking more yet
        }
        let mut chunk = Vec::with_capacity(SEND_CHUNK);
        while self.in_flight < self.queue.len() {
            let start = self.in_flight;
            chunk.clear();
            let mut resent = 0;
            let mut first = 0;
            while self.in_flight < self.queue.len() && chunk.len() < SEND_CHUNK {
                let p = &mut self.queue[self.in_flight];
                chunk.extend_from_slice(&p.line);
                if p.sent_before {
                    resent += 1;
                } else {
                    first += 1;
                    p.sent_before = true;
                }
                self.in_flight += 1;
            }
            if resent > 0 && self.opts.verbose {
                narrate(
                    "sender",
                    &format!("send({resent} unacknowledged records again)"),
                    "-> the resend: some may be saved already; the receiver will know",
                )
                .or_stop_later();
            }
            match ctx.send(conn, &chunk) {
                Ok(()) => {
                    self.totals.sent += first;
                    self.totals.resent += resent;
                    if ctx.queued(conn) > 0 {
                        return;
                    }
                }
                Err(SendError::Full(_)) | Err(SendError::Gone) => {
                    // Not sent: roll the counters back; they go out after on_drained.
                    for p in self
                        .queue
                        .range_mut(start..self.in_flight)
                        .rev()
                        .take(first as usize)
                    {
                        p.sent_before = false;
                    }
                    self.in_flight = start;
                    return;
                }
            }
        }
    }

    /// One reply line from the receiver.
    fn on_reply(&mut self, ctx: &mut Ctx, line: &[u8]) {
        let Some(ack) = Ack::parse(line) else {
            eprintln!(
                "{} the receiver said \"{}\", which is not `ok SEQ` or `error ...`: reconnecting",
                warn("protocol:"),
                crate::out::escape_bytes(line, 60)
            );
            self.drop_conn(ctx);
            return;
        };
        let Some(front) = self.queue.front() else {
            return; // a reply to nothing we sent: ignore
        };
        let seq = front.seq;
        match ack {
            Ack::Ok(s) if s == seq => {
                self.queue.pop_front();
                self.in_flight = self.in_flight.saturating_sub(1);
                self.totals.acknowledged += 1;
                self.attempts = 0;
                self.last_progress = Instant::now();
                if let Some(a) = &self.acked_out {
                    a.store(self.totals.acknowledged, Ordering::Relaxed);
                }
            }
            Ack::Error(_, why) if why.starts_with("not saved") => {
                // The receiver could not write (disk full): keep it, try again later.
                eprintln!(
                    "{} record {seq} not saved by the receiver ({why}): will resend",
                    warn("note:")
                );
                self.drop_conn(ctx);
            }
            Ack::Error(_, why) => {
                eprintln!("{} record {seq} rejected: {why}", warn("note:"));
                self.queue.pop_front();
                self.in_flight = self.in_flight.saturating_sub(1);
                self.totals.rejected += 1;
            }
            Ack::Ok(s) => {
                eprintln!(
                    "{} expected the ack of record {seq}, got `ok {s}`: reconnecting",
                    warn("protocol:")
                );
                self.drop_conn(ctx);
            }
        }
    }

    fn drop_conn(&mut self, ctx: &mut Ctx) {
        if let Some(c) = self.conn.take() {
            ctx.abort(c);
        }
        self.in_flight = 0;
        self.replies = LineDecoder::new(MAX_REPLY);
        self.schedule_reconnect(ctx);
    }

    fn finished(&self) -> bool {
        matches!(self.feed, Feed::Done) && self.queue.is_empty()
    }

    /// Everything sent and acknowledged: close and stop.
    fn maybe_finish(&mut self, ctx: &mut Ctx) {
        if self.finished() {
            if let Some(c) = self.conn.take() {
                ctx.close(c);
            }
            ctx.stop();
        }
    }
}

impl Handler for Sender {
    fn on_connected(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if Some(conn) != self.conn {
            return;
        }
        self.connections += 1;
        self.connected = true;
        if self.connections > 1 {
            self.totals.reconnects += 1;
        }
        // Records are many and small: no Nagle delay on the last one of a burst.
        let _ = ctx.set_nodelay(conn, true);
        if self.opts.verbose && (self.connections > 1 || !self.queue.is_empty()) {
            narrate(
                "sender",
                &format!("connect({})", self.opts.connect),
                &format!(
                    "-> connected again; {} records are unacknowledged",
                    self.queue.len()
                ),
            )
            .or_stop_later();
        }
        self.in_flight = 0;
        self.fill();
        self.pump(ctx);
    }

    // Replies: any piece of them.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        if Some(conn) != self.conn {
            return;
        }
        let mut lines = Vec::new();
        self.replies.push(data, |l| {
            if let Line::Complete(b) = l {
                lines.push(b.to_vec());
            }
        });
        for l in lines {
            if self.conn.is_none() {
                break;
            }
            self.on_reply(ctx, &l);
        }
        self.fill();
        self.pump(ctx);
        self.maybe_finish(ctx);
    }

    fn on_drained(&mut self, ctx: &mut Ctx, _conn: ConnId) {
        self.pump(ctx);
    }

    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        ctx.abort(conn);
    }

    // The connection broke or never came up: everything in the queue is unacknowledged.
    fn on_closed(&mut self, ctx: &mut Ctx, conn: ConnId, why: Closed) {
        if Some(conn) != self.conn {
            return;
        }
        self.conn = None;
        self.in_flight = 0;
        self.replies = LineDecoder::new(MAX_REPLY);
        let was_connected = std::mem::replace(&mut self.connected, false);
        if self.finished() {
            ctx.stop();
            return;
        }
        if self.opts.verbose {
            let how = match why {
                Closed::Error(e) => e.to_string(),
                _ => "closed by the receiver".into(),
            };
            narrate(
                "sender",
                if was_connected {
                    "(connection lost)"
                } else {
                    "(connect failed)"
                },
                &format!(
                    "-> {how}; {} records wait for an ack and will be resent",
                    self.queue.len()
                ),
            )
            .or_stop_later();
        }
        self.schedule_reconnect(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {
        if Some(timer) == self.reconnect {
            self.connect(ctx);
        } else if Some(timer) == self.tick {
            if self.last_progress.elapsed() > self.opts.give_up {
                eprintln!(
                    "{} no acknowledgement for {:.0} s: giving up",
                    warn("sender:"),
                    self.opts.give_up.as_secs_f64()
                );
                self.gave_up = true;
                ctx.stop();
                return;
            }
            self.fill();
            self.pump(ctx);
            self.maybe_finish(ctx);
            self.tick = Some(ctx.timer_after(TICK));
        }
    }

    fn on_wake(&mut self, ctx: &mut Ctx) {
        self.fill();
        self.pump(ctx);
        self.maybe_finish(ctx);
    }

    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        eprintln!("{}", dim("sender: interrupted"));
        ctx.stop();
    }
}
