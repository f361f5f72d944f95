//! The server: samples in from the source thread, buffers of N out to every client.
//!
//! Each wake-up takes everything the source's channel holds into one shared queue
//! ([`super::staged`]). Each client reads that queue from a position of its own: from
//! the first sample born after it connected, N samples at a time, each buffer sent as
//! one frame when all N are there. A turn of the loop builds and sends at most
//! [`TURN_BUDGET`] bytes of frames, shared equally among the clients with buffers
//! ready (and rotating, when the budget is smaller than a round), so the loop always
//! gets back to accepting and hearing Ctrl-C. A client whose socket is backed up skips
//! buffers instead of slowing anyone down. With `--framing stamped` a client first
//! subscribes (choosing its buffer size) and may ask for our clock.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::source::{self, SourceEvent, SourceHandle};
use super::staged::Staged;
use super::{duration_limit, source_spec, Args, Framing, BACKLOG, MAX_CLIENT_INBOUND};
use crate::core::{Closed, ConnId, Ctx, EventLoop, Handler, ListenerId};
use crate::error::bind_error;
use crate::out::OrStopLater;
use crate::out::{bold, code, dim, warn};
use crate::say;
use crate::wire::stamped::{self, Request};
use crate::wire::{epoch_ns, WallClock};

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[path = "server_turn.rs"]
mod turn;
use turn::Turn;

/// Bytes of frames one turn of the loop builds and hands to sockets, all clients
/// together. The simulator makes a chunk a millisecond and the loop turns thousands of
/// times a second, so a healthy loop needs a few KiB a turn; 256 KiB lets one that fell
/// behind catch up in a few turns, and keeps the turn to a fraction of a millisecond of
/// copying (at 300 clients and 1-sample buffers, about 4,000 sends), so the loop keeps
/// accepting and hearing Ctrl-C whatever the rate and the number of clients.
const TURN_BUDGET: usize = 256 * 1024;

/// What a frame costs the budget beyond its bytes (building it, one `Ctx::send`), and
/// what skipping a client's buffers costs: 1-sample frames are cheap in bytes, not in
/// calls.
const FRAME_COST: usize = 64;

/// A buffer complete for this long and still not sent is not live any more (a plot
/// would lag by that much): a loop this far behind skips it, counted, to catch up with
/// the present. Chunks that waited this long in the channel (a stalled loop) are
/// dropped before they are staged.
const STALE_AFTER: Duration = Duration::from_secs(1);

/// What the server keeps per client.
struct Client {
    /// The client's address, for the log.
    peer: SocketAddr,
    /// When it connected (or subscribed): samples born before this are stale for it
    /// and never sent.
    since: Instant,
    /// Samples per send: the server's `--buffer`, or what a stamped client asked for.
    buffer: usize,
    /// Gets samples: always with raw framing; with stamped framing once it subscribed
    /// (before that it may be syncing clocks, and a sample frame would confuse that).
    subscribed: bool,
    /// Stamped framing: bytes received and not yet parsed; at most
    /// [`MAX_CLIENT_INBOUND`].
    inbound: Vec<u8>,
    /// Number (in the staged queue) of the first sample of its next buffer; `None`
    /// until the first sample born after `since` is staged.
    pos: Option<u64>,
    /// Index of the first sample of its next buffer, counted from when it connected.
    seq: u64,
    /// Bytes handed to the socket so far.
    sent: u64,
    /// Samples skipped because the client was not keeping up (or the loop was not).
    skipped: u64,
    /// It is skipping now (so the log says so once, not once per buffer).
    lagging: bool,
    /// The demo's probe watches this client.
    probed: bool,
}

/// Tells the demo's client when each buffer's first sample was read, so it can measure
/// latency with raw framing (both run in one process and share a clock).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// Total bytes sent to the client once this buffer is sent.
    pub end: u64,
    /// When the buffer's first (oldest) sample was born.
    pub oldest: Instant,
}

/// Running totals of the server, printed when it stops.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Samples read from the source.
    pub(super) samples: u64,
    /// Samples read while no client was connected (discarded: nobody to send them to).
    pub(super) unwatched: u64,
    /// Clients accepted.
    pub(super) clients: u64,
    /// Samples skipped for slow clients, all clients together.
    pub(super) skipped: u64,
    /// Times the device went away.
    pub(super) lost: u64,
    /// Reopen attempts that failed.
    pub(super) retries: u64,
    /// Chunks that waited over `STALE_AFTER` in the channel for a stalled loop, and
    /// were dropped to catch up (apart from the reader's drops: a full channel means the
    /// serial side had to wait, a stale chunk means the loop did).
    pub(super) stale: u64,
    /// Samples skipped for clients the loop served too late (whole buffers complete for
    /// over `STALE_AFTER`, or dropped from the staged queue at its cap), all clients
    /// together: the loop was behind, not the client.
    pub(super) late: u64,
}

/// The streaming server: the event loop's handler.
pub(super) struct Streamer {
    /// The source thread's channel.
    source: SourceHandle,
    /// Samples per send (stamped clients may choose another size).
    buffer: usize,
    /// Time between two samples at the source's nominal rate, ns: stamps the frames and
    /// dates the samples within a chunk that arrived together.
    period_ns: u32,
    /// Wire format.
    framing: Framing,
    /// Set TCP_NODELAY on new clients.
    nodelay: bool,
    /// Open clients by token; removed in `on_closed`.
    clients: HashMap<ConnId, Client>,
    /// The same clients in the order they are served; a turn starts at `cursor`,
    /// where the last one's budget ran out.
    order: Vec<ConnId>,
    /// Index in `order` of the client the next turn serves first.
    cursor: usize,
    /// Samples from the source that some client has yet to get.
    staged: Staged,
    /// Counters for the closing summary.
    pub(super) totals: Totals,
    /// Log every client (false with --quiet).
    pub(super) verbose: bool,
    /// The demo's latency probe: stamps for the first client.
    pub(super) probe: Option<SyncSender<Stamp>>,
    /// Scratch for one buffer's samples, reused.
    samples: Vec<u8>,
    /// Scratch for encoding one buffer, reused.
    frame: Vec<u8>,
}

impl Streamer {
    fn new(source: SourceHandle, args: &Args) -> Streamer {
        let buffer = args.buffer as usize;
        Streamer {
            source,
            buffer,
            // Nanoseconds fit u32 down to 0.24 samples/s; slower rates are clamped.
            period_ns: (1e9 / args.rate.per_second()).round().min(u32::MAX as f64) as u32,
            framing: args.framing,
            nodelay: args.nodelay,
            clients: HashMap::new(),
            order: Vec::new(),
            cursor: 0,
            staged: Staged::default(),
            totals: Totals::default(),
            verbose: !args.quiet,
            probe: None,
            samples: Vec::with_capacity(buffer),
            frame: Vec::with_capacity(buffer),
        }
    }

    /// Takes what the source handed over into the staged queue: bounded by the
    /// channel's size, since the source refills it while we take. Returns whether the
    /// source is gone, and whether the channel may hold more.
    fn stage(&mut self) -> (bool, bool) {
        for _ in 0..source::CHANNEL_CHUNKS {
            match self.source.rx.try_recv() {
                Ok(SourceEvent::Samples { at, .. }) if at.elapsed() > STALE_AFTER => {
                    self.totals.stale += 1;
                }
                Ok(SourceEvent::Samples { data, at }) => {
                    self.totals.samples += data.len() as u64;
                    if self.clients.is_empty() {
                        // Nobody is watching: drop them now rather than hand them to a
                        // client that connects later as if they were fresh.
                        self.totals.unwatched += data.len() as u64;
                    } else {
                        self.staged.push(&data, at);
                    }
                }
                Ok(ev) => self.status(ev),
                Err(TryRecvError::Empty) => return (false, false),
                Err(TryRecvError::Disconnected) => return (true, false),
            }
        }
        (false, true)
    }

    /// One turn's sending: clients in `order` from `cursor`, each up to an equal share
    /// of [`TURN_BUDGET`] (at least one frame), until the budget is spent. Returns
    /// whether some client still has a whole buffer ready (then we come back).
    fn serve(&mut self, ctx: &mut Ctx) -> bool {
        let n = self.order.len();
        if n == 0 {
            return false;
        }
        let fresh_from = Instant::now()
            .checked_sub(STALE_AFTER)
            .map_or(self.staged.base(), |t| self.staged.fresh_from(t));
        let mut turn = Turn {
            staged: &self.staged,
            totals: &mut self.totals,
            probe: self.probe.as_ref(),
            samples: &mut self.samples,
            frame: &mut self.frame,
            framing: self.framing,
            period_ns: self.period_ns,
            verbose: self.verbose,
            wall: WallClock::now(),
            fresh_from,
            share: TURN_BUDGET / n,
        };
        let mut budget = TURN_BUDGET;
        let mut more = false;
        let mut visited = 0;
        while visited < n && budget > 0 {
            let token = self.order[(self.cursor + visited) % n];
            visited += 1;
            let Some(c) = self.clients.get_mut(&token) else {
                continue;
            };
            let (spent, left) = turn.serve(ctx, token, c);
            budget = budget.saturating_sub(spent);
            more |= left;
        }
        self.cursor = (self.cursor + visited) % n;
        // Clients the budget did not reach this turn may have buffers ready too.
        more || visited < n
    }

    /// Forgets staged samples that no client needs any more: those before every
    /// client's position (a client waiting for its first sample needs those born after
    /// it connected).
    fn trim(&mut self) {
        let head = self.staged.head();
        let needed = self
            .clients
            .values()
            .filter(|c| c.subscribed)
            .map(|c| {
                c.pos
                    .or_else(|| self.staged.first_since(c.since))
                    .unwrap_or(head)
            })
            .min()
            .unwrap_or(head);
        self.staged.drop_before(needed);
    }
}

impl Streamer {
    /// The device went away or came back: say so.
    fn status(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Samples { .. } => {}
            SourceEvent::Lost { why, retry_in } => {
                self.totals.lost += 1;
                say!(
                    "  {} serial device lost ({why}): retrying in {} ms",
                    warn("serial"),
                    retry_in.as_millis()
                )
                .or_stop_later();
            }
            SourceEvent::RetryFailed { why, retry_in } => {
                self.totals.retries += 1;
                if self.verbose {
                    say!(
                        "  {} reopen failed ({why}): retrying in {} ms",
                        dim("serial"),
                        retry_in.as_millis()
                    )
                    .or_stop_later();
                }
            }
            SourceEvent::Back => {
                say!("  {} serial device back: forwarding again", warn("serial")).or_stop_later()
            }
        }
    }
}

impl Streamer {
    /// Bytes from a stamped client: whole frames are acted on, a partial one is kept
    /// (bounded), anything that can never be a frame closes the client.
    fn stamped_request(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.inbound.len() + data.len() > MAX_CLIENT_INBOUND {
            if self.verbose {
                say!("  {} client {} sent too much: closed", warn("bad"), c.peer).or_stop_later();
            }
            ctx.abort(conn);
            return;
        }
        c.inbound.extend_from_slice(data);
        loop {
            let request = match stamped::next_request(&mut c.inbound) {
                Ok(None) => return,
                Ok(Some(request)) => request,
                Err(e) => {
                    if self.verbose {
                        say!(
                            "  {} client {} does not speak the stamped framing ({e}): closed (leave out --framing for raw clients)",
                            warn("bad"),
                            c.peer
                        ).or_stop_later();
                    }
                    ctx.abort(conn);
                    return;
                }
            };
            match request {
                // A subscription: `samples` per buffer (0: the server's --buffer).
                // The stream starts now, from an empty buffer, like a new client's.
                Request::Subscribe {
                    samples,
                    period_ns: theirs,
                } => {
                    let asked = samples as usize;
                    if asked > stamped::MAX_SAMPLES {
                        if self.verbose {
                            say!(
                                "  {} client {} asked for {asked} samples per buffer (at most 65535): closed",
                                warn("bad"),
                                c.peer
                            ).or_stop_later();
                        }
                        ctx.abort(conn);
                        return;
                    }
                    c.buffer = if asked == 0 { self.buffer } else { asked };
                    c.subscribed = true;
                    c.since = Instant::now();
                    c.pos = None;
                    c.seq = 0;
                    if self.verbose {
                        let note = if theirs != 0
                            && theirs.abs_diff(self.period_ns) > self.period_ns / 100
                        {
                            format!(
                                " (it expects {:.0} samples/s; ours come at {:.0}, and the frames say so)",
                                1e9 / f64::from(theirs),
                                1e9 / f64::from(self.period_ns)
                            )
                        } else {
                            String::new()
                        };
                        say!(
                            "  client {} subscribed: stamped buffers of {} samples{note}",
                            c.peer,
                            c.buffer
                        )
                        .or_stop_later();
                    }
                }
                // A clock probe: answer with our wall clock, so a client on another
                // machine can estimate the offset between its clock and ours.
                Request::ClockProbe { seq } => {
                    // A client too far behind to take 22 bytes loses its answer only.
                    let _ = ctx.send(conn, &stamped::clock_reply(seq, epoch_ns()));
                }
                // Samples or clock replies are ours to send, not to receive: ignored.
                Request::Other(_) => {}
            }
        }
    }
}

impl Handler for Streamer {
    // A client connected: it gets samples read from now on, in buffers of N.
    fn on_accept(&mut self, ctx: &mut Ctx, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        if self.nodelay {
            let _ = ctx.set_nodelay(conn, true);
        }
        self.totals.clients += 1;
        let probed = self.probe.is_some() && self.totals.clients == 1;
        self.clients.insert(
            conn,
            Client {
                peer,
                since: Instant::now(),
                buffer: self.buffer,
                subscribed: self.framing == Framing::Raw,
                inbound: Vec::new(),
                pos: None,
                seq: 0,
                sent: 0,
                skipped: 0,
                lagging: false,
                probed,
            },
        );
        self.order.push(conn);
        if self.verbose {
            say!("  client {peer} connected ({} open)", self.clients.len()).or_stop_later();
        }
    }

    // accept() failed (EMFILE...): the core retries, backing off, and calls this once
    // per attempt, so one line per back-off period. An error, so said even with --quiet.
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: ListenerId, err: &io::Error, n: u64) {
        say!(
            "  {} accept() failed: {err} ({n} in a row; new clients wait in the backlog, retrying within 1 s)",
            warn("note")
        )
        .or_stop_later();
    }

    // The client shut down its sending side (`nc` does when its stdin ends). It may
    // still be reading: keep streaming. When it closes for good, the next send fails
    // and on_closed tells us.
    fn on_eof(&mut self, _ctx: &mut Ctx, _conn: ConnId) {}

    // Raw clients have nothing to say: whatever they send is ignored (the core reads it
    // and we drop it, so it cannot pile up). Stamped clients subscribe and sync clocks.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        if self.framing == Framing::Stamped {
            self.stamped_request(ctx, conn, data);
        }
    }

    // The client left: forget it.
    fn on_closed(&mut self, _ctx: &mut Ctx, conn: ConnId, why: Closed) {
        if let Some(c) = self.clients.remove(&conn) {
            if let Some(i) = self.order.iter().position(|&t| t == conn) {
                self.order.remove(i);
                // The turn that comes next still starts with the same client.
                if i < self.cursor {
                    self.cursor -= 1;
                }
                if self.cursor >= self.order.len() {
                    self.cursor = 0;
                }
            }
            if self.verbose {
                let how = match why {
                    Closed::Error(e) => format!(", {e}"),
                    _ => String::new(),
                };
                say!(
                    "  client {} left ({} bytes sent, {} samples skipped{how}; {} open)",
                    c.peer,
                    c.sent,
                    c.skipped,
                    self.clients.len()
                )
                .or_stop_later();
            }
        }
    }

    // The source thread has news (the demo's stop request comes through the core).
    fn on_wake(&mut self, ctx: &mut Ctx) {
        // Everything the channel holds goes into the staged queue at once (cheap: no
        // client is served there), so samples born after a client connected never wait
        // behind a backlog. Then a bounded turn of sending: the source may produce
        // faster than we can serve hundreds of clients (300 at 50,000 samples/s), and
        // serving "until done" would never poll again: no accept, no Ctrl-C. (Serving
        // the whole channel at once was tried for issue 18: with 1-sample buffers a
        // turn made millions of sends.) What is left waits one turn: we wake ourselves.
        let (gone, more_waiting) = self.stage();
        let more_to_send = self.serve(ctx);
        self.trim();
        if gone {
            say!("  {} the source stopped", warn("serial")).or_stop_later();
            ctx.stop();
        } else if more_waiting || more_to_send {
            // Come back after the next poll.
            let _ = ctx.waker().wake();
        }
    }
}

/// Starts the source and binds the listener; the loop is ready to run.
pub(super) fn start_server(
    args: &Args,
    bind: SocketAddr,
) -> Result<(EventLoop, Streamer, SocketAddr)> {
    let mut ev = EventLoop::new()?;
    let listener = ev
        .ctx()
        .listen(bind, BACKLOG)
        .map_err(|e| bind_error(bind, e, "--bind"))?;
    let local = ev
        .ctx()
        .local_addr(listener)
        .context("listener has no address")?;
    let source = source::start(&source_spec(args), ev.ctx().waker())?;
    Ok((ev, Streamer::new(source, args), local))
}

/// `--role server`.
pub(super) fn serve(args: &Args) -> Result<()> {
    let _ = crate::sys::raise_nofile_limit(65_536);
    let spec = source_spec(args);
    let (ev, mut server, local) = start_server(args, args.bind)?;
    let mut ev = ev.with_signals()?;
    say!(
        "07-serial-stream server listening on {} (buffers of {} samples{}; Ctrl-C stops)",
        bold(local),
        args.buffer,
        if args.nodelay { ", TCP_NODELAY" } else { "" }
    )?;
    say!("  source: {}", spec.describe())?;
    match args.framing {
        Framing::Raw => say!(
            "  try: {}",
            code(format!("lab run 07 --role client --connect {local}"))
        )?,
        Framing::Stamped => say!(
            "  stamped frames (each client picks its buffer size); measure: {}",
            code(format!(
                "lab latency --mode stream --connect {local} --rate {}",
                args.rate.per_second()
            ))
        )?,
    }
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    let limit = duration_limit(args.duration);
    crate::out::run_while_stdout_open(&mut ev, &mut server, limit)?;
    let t = &server.totals;
    let dropped = server.source.dropped.load(Ordering::Relaxed);
    say!(
        "server stopped: {} samples read, {} clients served, {} samples skipped for slow clients, {} read with no client, device lost {} times ({} failed reopens), {} chunks dropped by the reader, {} stale chunks dropped by a loop that fell behind, {} samples skipped for clients it served too late",
        t.samples, t.clients, t.skipped, t.unwatched, t.lost, t.retries, dropped, t.stale, t.late
    )?;
    Ok(())
}
