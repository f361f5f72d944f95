//! The server: samples in from the source thread, buffers of N out to every client.
//!
//! Each client collects the samples that arrived after it connected into its own
//! buffer of N, and gets it sent when full; a client whose socket is backed up skips
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
use super::{duration_limit, source_spec, Args, Framing, BACKLOG, MAX_CLIENT_INBOUND, MAX_QUEUED};
use crate::core::{Closed, ConnId, Ctx, EventLoop, Handler, ListenerId, SendError};
use crate::error::bind_error;
use crate::out::OrStopLater;
use crate::out::{bold, code, dim, warn};
use crate::say;
use crate::wire::stamped::{self, BufferTime, Request};
use crate::wire::{epoch_ns, WallClock};

/// Source chunks forwarded per turn of the loop. The simulator sends one a millisecond,
/// so a healthy loop sees one or two per turn (and turns thousands of times a second);
/// 8 keeps each turn short even when a chunk goes to hundreds of clients, so the loop
/// keeps accepting and hearing Ctrl-C.
const CHUNKS_PER_TURN: usize = 8;

/// A chunk that waited this long in the channel is not live any more (a plot would lag
/// by that much): a loop this far behind drops it, counted, to catch up with the present.
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
    /// Samples collected for its next buffer; sent when it holds `buffer` of them.
    pending: Vec<u8>,
    /// When the first sample in `pending` was born; earlier if a later one came
    /// sooner than the rate says, so that no sample i is dated after `oldest` + i
    /// periods (see [`Streamer::forward`]).
    oldest: Instant,
    /// Index of the first sample in `pending`, counted from when it connected.
    seq: u64,
    /// Bytes handed to the socket so far.
    sent: u64,
    /// Samples skipped because the client was not keeping up.
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
    /// Chunks that waited over `STALE_AFTER` for a loop that was behind, and were
    /// dropped to catch up (apart from the reader's drops: a full channel means the
    /// serial side had to wait, a stale chunk means the loop did).
    pub(super) stale: u64,
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
    /// Counters for the closing summary.
    pub(super) totals: Totals,
    /// Log every client (false with --quiet).
    pub(super) verbose: bool,
    /// The demo's latency probe: stamps for the first client.
    pub(super) probe: Option<SyncSender<Stamp>>,
    /// Scratch for encoding one buffer, reused.
    frame: Vec<u8>,
    /// Scratch for the chunks one wake-up takes from the channel, reused.
    chunks: Vec<(Vec<u8>, Instant)>,
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
            totals: Totals::default(),
            verbose: !args.quiet,
            probe: None,
            frame: Vec::with_capacity(buffer),
            chunks: Vec::new(),
        }
    }

    /// The chunks of samples one wake-up took from the source, each with the birth of
    /// its last sample: add them to every client's buffer.
    fn forward(&mut self, ctx: &mut Ctx, chunks: &[(Vec<u8>, Instant)]) {
        let count: u64 = chunks.iter().map(|(d, _)| d.len() as u64).sum();
        self.totals.samples += count;
        if self.clients.is_empty() {
            // Nobody is watching: drop them now rather than hand them to a client
            // that connects later as if they were fresh.
            self.totals.unwatched += count;
            return;
        }
        let now = WallClock::now();
        let period = Duration::from_nanos(u64::from(self.period_ns));
        for (&token, c) in self.clients.iter_mut() {
            if !c.subscribed {
                // A stamped client that has not subscribed yet: nothing wanted.
                continue;
            }
            // A frame of this client's buffer, and how much of them we queue for it.
            // At least two buffers, so a large buffer can still be queued at all.
            let frame_len = self.framing.frame_len(c.buffer);
            let max_queued = MAX_QUEUED.max(2 * frame_len);
            for (data, at) in chunks {
                if *at < c.since {
                    // Born before this client connected (it waited in the channel).
                    continue;
                }
                let mut rest = &data[..];
                while !rest.is_empty() {
                    if c.pending.is_empty()
                        && rest.len() >= c.buffer
                        && ctx.queued(token) + frame_len > max_queued
                    {
                        // Behind (it does not read): every whole buffer here would be
                        // skipped like the last one, since nothing drains its queue
                        // while we forward. Skip them without building them, so 300
                        // such clients cost the loop next to nothing and it keeps up
                        // with the source for the ones that do read.
                        let whole = rest.len() / c.buffer * c.buffer;
                        c.seq += whole as u64;
                        c.skipped += whole as u64;
                        self.totals.skipped += whole as u64;
                        lagging(ctx, token, c, self.verbose);
                        rest = &rest[whole..];
                        continue;
                    }
                    // Samples that arrived together were born one period apart, the
                    // last at `at`. A frame dates sample i of a buffer at oldest + i
                    // periods, so `oldest` must be early enough for every sample in
                    // it, including ones that came faster than the rate (a device
                    // catching up after a stall): the earliest of "birth minus place
                    // in the buffer".
                    let places = (rest.len() - 1 + c.pending.len()) as u32;
                    let candidate = at.checked_sub(period * places).unwrap_or(*at);
                    if c.pending.is_empty() || candidate < c.oldest {
                        c.oldest = candidate;
                    }
                    let take = (c.buffer - c.pending.len()).min(rest.len());
                    c.pending.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if c.pending.len() == c.buffer {
                        let time = BufferTime {
                            oldest: c.oldest,
                            seq: c.seq,
                            period_ns: self.period_ns,
                        };
                        self.frame.clear();
                        self.framing.encode(&c.pending, time, now, &mut self.frame);
                        c.pending.clear();
                        c.seq += c.buffer as u64;
                        let skipped =
                            send_or_skip(ctx, token, c, &self.frame, max_queued, self.verbose);
                        if skipped {
                            c.skipped += c.buffer as u64;
                            self.totals.skipped += c.buffer as u64;
                        } else if c.probed {
                            if let Some(p) = &self.probe {
                                // A full probe channel only loses a latency reading.
                                let _ = p.try_send(Stamp {
                                    end: c.sent,
                                    oldest: c.oldest,
                                });
                            }
                        }
                    }
                }
            }
        }
    }

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
                    c.pending.clear();
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

/// Sends one buffer to a client, or skips it when the client is too far behind. A
/// skipped buffer is lost for that client only: the others and the serial reading go
/// on. Returns true if skipped.
fn send_or_skip(
    ctx: &mut Ctx,
    token: ConnId,
    c: &mut Client,
    frame: &[u8],
    max_queued: usize,
    verbose: bool,
) -> bool {
    let behind = ctx.queued(token) + frame.len() > max_queued;
    let result = if behind {
        Err(())
    } else {
        match ctx.send(token, frame) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => Err(()),
            // Closing: on_closed will tell us; nothing to count.
            Err(SendError::Gone) => return false,
        }
    };
    match result {
        Ok(()) => {
            c.sent += frame.len() as u64;
            if c.lagging {
                c.lagging = false;
                if verbose {
                    say!(
                        "  client {} caught up ({} samples skipped so far)",
                        c.peer,
                        c.skipped
                    )
                    .or_stop_later();
                }
            }
            false
        }
        Err(()) => {
            lagging(ctx, token, c, verbose);
            true
        }
    }
}

/// A client is skipping buffers: say so once, when it starts.
fn lagging(ctx: &Ctx, token: ConnId, c: &mut Client, verbose: bool) {
    if !c.lagging {
        c.lagging = true;
        if verbose {
            say!(
                "  {} client {} is not keeping up ({} bytes queued): skipping buffers",
                warn("slow"),
                c.peer,
                ctx.queued(token)
            )
            .or_stop_later();
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
                pending: Vec::with_capacity(self.buffer),
                oldest: Instant::now(),
                seq: 0,
                sent: 0,
                skipped: 0,
                lagging: false,
                probed,
            },
        );
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
        // A bounded share per turn: the source refills the channel while we forward, so
        // "until empty" could last forever when forwarding to many clients is slower
        // than the source (300 clients at 50,000 samples/s), and the loop would never
        // poll again: no accept, no Ctrl-C. (Taking everything the channel holds at once
        // was tried for issue 18: with 1-sample buffers a turn then made millions of
        // sends, and after a stall a client that reads was called slow.) What is left
        // waits one turn (we wake ourselves). A loop that far behind also meets chunks
        // that waited too long to be live: those are dropped and counted (apart from
        // the ones the channel refused).
        let mut chunks = std::mem::take(&mut self.chunks);
        let mut more = true;
        let mut gone = false;
        for _ in 0..source::CHANNEL_CHUNKS {
            match self.source.rx.try_recv() {
                Ok(SourceEvent::Samples { at, .. }) if at.elapsed() > STALE_AFTER => {
                    self.totals.stale += 1;
                }
                Ok(SourceEvent::Samples { data, at }) => {
                    chunks.push((data, at));
                    if chunks.len() == CHUNKS_PER_TURN {
                        break;
                    }
                }
                Ok(ev) => self.status(ev),
                Err(TryRecvError::Empty) => {
                    more = false;
                    break;
                }
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        self.forward(ctx, &chunks);
        chunks.clear();
        self.chunks = chunks;
        if gone {
            say!("  {} the source stopped", warn("serial")).or_stop_later();
            ctx.stop();
        } else if more {
            // Share used up and maybe more waiting: come back after the next poll.
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
        "server stopped: {} samples read, {} clients served, {} samples skipped for slow clients, {} read with no client, device lost {} times ({} failed reopens), {} chunks dropped by the reader, {} stale chunks dropped by a loop that fell behind",
        t.samples, t.clients, t.skipped, t.unwatched, t.lost, t.retries, dropped, t.stale
    )?;
    Ok(())
}
