//! The event-loop core: one small layer over mio that every lab uses.
//!
//! A lab implements [`Handler`] (what to do when bytes arrive, a peer connects, a timer
//! fires) and asks [`Ctx`] to act (listen, connect, send, close, set a timer). The core
//! does the non-blocking I/O, and does it the same way everywhere. Its rules:
//!
//! 1. **Drain until `WouldBlock`.** mio is edge-triggered: a readiness event is reported
//!    once, so accept, read and recv loop until the kernel says `WouldBlock`. One
//!    measured exception: a TCP read shorter than the buffer already emptied the socket,
//!    and Linux reports each later arrival anew, so the extra failing read is skipped
//!    unless the peer's FIN or reset was seen (see `read_stream`). To stay fair,
//!    one connection gets at most [`Limits::reads_per_turn`] reads per turn; if it still
//!    has data it is put on a *rerun* list and served again after everyone else.
//! 2. **`Interrupted` is retried**, never reported.
//! 3. **A 0-byte read is the peer's EOF** ([`Handler::on_eof`]); the default reply is to
//!    flush what we owe and close. Errors such as a reset end the connection with
//!    [`Closed::Error`].
//! 4. **Unsent bytes wait in a bounded `OutBuf`** per connection; writable interest is
//!    registered only while it is non-empty (otherwise every turn would wake for nothing).
//!    A send that does not fit fails with [`SendError::Full`]: the lab decides whether to
//!    drop the peer or skip data, and memory never grows without bound.
//! 5. **Back-pressure:** while a connection owes more than [`Limits::high_water`] bytes,
//!    the core stops reading from it (a client that does not read its replies gets no
//!    more served) and resumes once the buffer drains below half of that. A lab whose
//!    own queue is full (lab 06's receiver, while an fsync is slow) stops reading a
//!    connection with [`Ctx::hold_reading`]: the sender then waits in TCP.
//!    **A write budget per turn** (rule 5b): [`Ctx::send`] writes at once only while the turn's
//!    [`Limits::writes_per_turn`] lasts; past it, bytes wait in the `OutBuf` and go out
//!    on the connection's writable event, one write per connection however many sends
//!    it got. A send that finds the buffer full first writes whatever the budget,
//!    unless the kernel already refused that connection's bytes this turn: only a peer
//!    the kernel will not take bytes for is "full", never one whose bytes merely waited
//!    for the next turn. A handler that sends to 300 peers a thousand times a second would
//!    otherwise spend its whole life in `write` and never poll again (new connections
//!    unaccepted, Ctrl-C unheard). Accepts are budgeted too ([`Limits::reads_per_turn`]
//!    times 4 per turn), so a connect flood cannot hold the loop either.
//! 6. **Timers** are a heap of deadlines; the poll timeout is the time to the earliest.
//! 7. **Other threads** (a serial reader, stdin) hand work over through a channel of
//!    their own and [`Ctx::waker`]; the loop calls [`Handler::on_wake`].
//! 8. **Ctrl-C** (SIGINT) and SIGTERM arrive as events when the loop was built with
//!    [`EventLoop::with_signals`]; the default reply is to stop cleanly.
//! 9. **Stopping is prompt.** A turn can be long (300 connections, each with a read
//!    budget's worth of bytes for the handler), so the loop does not wait for the next
//!    poll to hear a signal or a [`LoopThread::stop`]: it checks two flags before each
//!    read, accept and event, and once stopped ([`Ctx::stop`], whoever called it)
//!    it leaves the rest of the turn undone. Ctrl-C took 26 s with 300 clients flooding
//!    a debug build's server when the turn ran to its end first.
//! 10. **End of turn.** Once every event of a turn is handled (readiness, reruns,
//!     timers), [`Handler::on_turn_end`] runs once before the next poll: the place for
//!     work gathered across the turn's events, such as one send per receiver of what
//!     every sender said, rather than one per read. What it gathers must stay bounded
//!     (a turn can read megabytes): flush early past a cap. A stopped loop skips it.
//!
//! Labs never call `read`, `write` or `accept` on a non-blocking socket themselves, and
//! never see mio: they hold typed handles ([`ListenerId`], [`ConnId`], [`UdpId`]), each a
//! slot plus a generation, so a handle kept after its socket closed can never reach the
//! next socket in that slot (it acts like a closed one); they wake the loop with the
//! core's [`Waker`]; and a loop on a background thread (a demo's server) runs in a
//! [`LoopThread`], which owns the stop request and stops, wakes and joins on drop.
//!
//! Files: `handles` (the ids), `sockets` (Ctx's socket actions and the slot slab),
//! `readiness` (accept, read, receive, flush: rules 1-5), `udp_batch` (recvmmsg),
//! `outbuf` (rule 4's buffer), `loop_thread`; timers and the turn itself are here.

mod handles;
mod loop_thread;
mod outbuf;
mod readiness;
mod sockets;
#[cfg(test)]
mod tests;
mod udp_batch;

pub use handles::{ConnId, Handle, ListenerId, UdpId};
pub use loop_thread::LoopThread;
pub use outbuf::Full;
use outbuf::OutBuf;

use handles::Key;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Token};

/// Token of the waker; sources get small tokens from the slab, so this never collides.
const WAKER: Token = Token(usize::MAX - 1);
/// Token of the signal pipe.
const SIGNALS: Token = Token(usize::MAX - 2);

/// The largest UDP payload over IPv4 (65,507), defined with the byte formats.
pub use crate::wire::MAX_DATAGRAM;

/// Size limits of the core; the defaults suit a teaching server on a small machine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes queued for one connection before [`Ctx::send`] refuses more.
    /// 4 MiB: several seconds of any lab's traffic, small enough for 1000 peers.
    pub outbound_cap: usize,
    /// Stop reading from a connection that owes more than this many bytes.
    pub high_water: usize,
    /// Bytes asked of the kernel per read. 64 KiB matches the loopback MTU.
    pub read_chunk: usize,
    /// Reads of one connection per turn before others get a go.
    pub reads_per_turn: usize,
    /// Most datagrams queued per UDP socket while the kernel's send buffer is full.
    pub udp_queue: usize,
    /// Writes [`Ctx::send`] makes at once per turn (rule 5b); later sends in the same
    /// turn are queued and flushed on the writable event. 128: a broadcast to a
    /// classroom goes out in one turn, a flood to hundreds waits one poll.
    pub writes_per_turn: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            outbound_cap: 4 << 20,
            high_water: 1 << 20,
            read_chunk: 64 * 1024,
            reads_per_turn: 16,
            udp_queue: 1024,
            writes_per_turn: 128,
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Closed {
    /// We closed it ([`Ctx::close`] after flushing, or [`Ctx::abort`]).
    ByUs,
    /// The peer closed its side and we had nothing more to say.
    PeerClosed,
    /// A socket error: reset by peer, refused connect, broken pipe...
    Error(io::Error),
}

/// Why [`Ctx::send`] refused bytes.
#[derive(Debug)]
pub enum SendError {
    /// The connection's outbound buffer is full (a slow reader). Nothing was queued.
    Full(Full),
    /// There is no open connection with that handle (closed, or a stale handle).
    Gone,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full(full) => write!(
                f,
                "outbound buffer full ({} bytes queued, {} offered)",
                full.queued, full.offered
            ),
            SendError::Gone => write!(f, "connection is closed"),
        }
    }
}

/// A timer set with [`Ctx::timer_after`]; pass it to [`Ctx::cancel_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// Wakes the loop from another thread: [`Handler::on_wake`] runs on the loop's thread.
/// Cheap to clone; get one from [`Ctx::waker`].
#[derive(Debug, Clone)]
pub struct Waker(Arc<mio::Waker>);

impl Waker {
    /// Makes the loop call [`Handler::on_wake`] soon (several wakes may become one call).
    pub fn wake(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// A datagram handed to [`Handler::on_datagram`].
#[derive(Debug)]
pub struct Datagram<'a> {
    /// The bytes received (at most the socket's receive buffer size).
    pub data: &'a [u8],
    /// The sender.
    pub from: SocketAddr,
    /// The length the datagram had on the wire; more than `data.len()` if truncated.
    pub wire_len: usize,
    /// When the kernel received it, ns since the UNIX epoch (batched sockets only,
    /// see [`Ctx::adopt_udp_batched`]); `None` otherwise.
    pub arrival_ns: Option<u64>,
}

/// What a lab does when things happen. Every method has a default so a lab writes only
/// the ones it needs.
#[allow(unused_variables)]
pub trait Handler {
    /// A listener accepted `conn` from `peer`.
    fn on_accept(&mut self, ctx: &mut Ctx, listener: ListenerId, conn: ConnId, peer: SocketAddr) {}
    /// Accepting failed (for example the open-file limit, `EMFILE`); the pending
    /// connection waits in the kernel's backlog. The core backs off: one timer per
    /// listener, 100 ms doubling to 1 s while accepting keeps failing, and the listener's
    /// readiness ignored meanwhile, so neither a busy loop nor a timer per arrival. This
    /// is called once per failed attempt, so at most once per back-off period (one log
    /// line each); `failures` counts the attempts that failed in a row so far.
    fn on_accept_error(
        &mut self,
        ctx: &mut Ctx,
        listener: ListenerId,
        err: &io::Error,
        failures: u64,
    ) {
    }
    /// An outgoing [`Ctx::connect`] completed.
    fn on_connected(&mut self, ctx: &mut Ctx, conn: ConnId) {}
    /// Bytes arrived on a stream. They are only a piece of the stream: message
    /// boundaries are the lab's job (see [`crate::wire::lines`]).
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {}
    /// The peer shut down its sending side. We may still send; the default flushes what
    /// is queued and closes.
    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        ctx.close(conn);
    }
    /// A connection is gone; after this returns its handle is stale (its slot may be
    /// reused, under a new generation).
    fn on_closed(&mut self, ctx: &mut Ctx, conn: ConnId, why: Closed) {}
    /// A connection's outbound buffer became empty after having been non-empty (a
    /// server that paces a client by what it has taken, such as a chat's backlog).
    fn on_drained(&mut self, ctx: &mut Ctx, conn: ConnId) {}
    /// A datagram arrived on a UDP socket.
    fn on_datagram(&mut self, ctx: &mut Ctx, sock: UdpId, dgram: Datagram<'_>) {}
    /// Receiving or sending on a UDP socket failed (e.g. `ECONNREFUSED` from an ICMP
    /// port-unreachable on a connected socket).
    fn on_udp_error(&mut self, ctx: &mut Ctx, sock: UdpId, err: &io::Error) {}
    /// The kernel dropped datagrams because the socket's receive buffer was full;
    /// `total` is its running count since the socket opened (batched sockets only).
    fn on_kernel_drops(&mut self, ctx: &mut Ctx, sock: UdpId, total: u64) {}
    /// A timer set with [`Ctx::timer_after`] fired.
    fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {}
    /// Another thread called `wake()` on [`Ctx::waker`].
    fn on_wake(&mut self, ctx: &mut Ctx) {}
    /// SIGINT or SIGTERM arrived. The default stops the loop.
    fn on_signal(&mut self, ctx: &mut Ctx, signal: i32) {
        ctx.stop();
    }
    /// [`LoopThread::stop`] asked the loop to end: last words (flush, count). The loop
    /// stops right after, whatever the handler does (rule 9).
    fn on_stop(&mut self, ctx: &mut Ctx) {}
    /// Every event of this turn has been handled (rule 10); the loop polls next. Called
    /// once per turn, also after a turn with no events (a timeout), so it must be cheap
    /// when there is nothing to do. Closures its sends cause are reported right after.
    fn on_turn_end(&mut self, ctx: &mut Ctx) {}
}

/// One registered socket.
enum Source {
    Listener(TcpListener),
    Stream(Conn),
    Udp(Udp),
}

/// A TCP connection and what the core tracks for it.
struct Conn {
    stream: TcpStream,
    /// Bytes we owe the peer.
    out: OutBuf,
    /// Writable interest is registered (exactly while `out` is non-empty or connecting).
    writable: bool,
    /// An outgoing connect has not completed yet.
    connecting: bool,
    /// Close once `out` is flushed.
    closing: bool,
    /// The peer sent EOF; do not read again.
    eof: bool,
    /// Reading stopped by back-pressure (see rule 5).
    paused: bool,
    /// Reading stopped by the lab ([`Ctx::hold_reading`]): its own back-pressure.
    held: bool,
    /// An event said the peer closed or reset: drain until EOF or an error, since no
    /// further event will come (see the short-read rule in `read_stream`).
    read_closed: bool,
    /// The turn in which the kernel last refused this connection's bytes when a full
    /// buffer made [`Ctx::send`] write past the budget (see rule 5b).
    blocked_turn: u64,
}

/// A UDP socket and its queue of datagrams the kernel could not take yet.
struct Udp {
    sock: UdpSocket,
    queue: std::collections::VecDeque<(Vec<u8>, SocketAddr)>,
    writable: bool,
    /// Receive buffer size: datagrams longer than this are truncated and reported.
    recv_len: usize,
    /// Set for sockets read with recvmmsg (see `udp_batch`).
    batch: Option<Box<udp_batch::RxBatch>>,
}

/// A listener's back-off while `accept` fails (see [`Handler::on_accept_error`]).
struct AcceptBackoff {
    /// Failed attempts in a row.
    failures: u64,
    /// Wait before the next attempt: 100 ms, doubled per failure up to 1 s (a second's
    /// delay for a client is acceptable when the server is out of descriptors anyway).
    delay: Duration,
    /// The retry timer is pending: readiness of the listener is ignored until it fires.
    waiting: bool,
}

enum TimerKind {
    User,
    RetryAccept(Key),
}

/// The lab's handle on the loop: sockets, timers, and stopping.
pub struct Ctx {
    registry: Registry,
    slots: Vec<Option<Source>>,
    /// Generation of each slot, bumped when it is freed (see `handles`).
    gens: Vec<u32>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_kinds: HashMap<u64, TimerKind>,
    next_timer: u64,
    waker: Waker,
    limits: Limits,
    stopped: bool,
    /// Set by [`LoopThread::stop`] before it wakes the loop.
    stop_request: Arc<AtomicBool>,
    /// Connections with data left after their read budget, or resumed after a pause.
    rerun: Vec<Token>,
    /// Closures decided inside `Ctx` methods, reported to the handler after it returns.
    closed: Vec<(Token, Closed)>,
    /// Outgoing connects that just completed, reported likewise.
    connected_pending: Vec<Token>,
    /// Connections whose outbound buffer just became empty, reported likewise.
    drained: Vec<Token>,
    /// Listeners whose `accept` is failing (`EMFILE`...), with their back-off; an
    /// entry lives from the first failure to the next successful accept.
    accept_backoff: HashMap<Key, AcceptBackoff>,
    /// Immediate writes [`Ctx::send`] may still make this turn (rule 5b); refilled to
    /// [`Limits::writes_per_turn`] after each poll.
    writes_left: usize,
    /// Counts polls, so per-connection "once per turn" rules can tell turns apart.
    turn: u64,
}

/// The event loop: a mio `Poll` plus a [`Ctx`].
pub struct EventLoop {
    poll: Poll,
    events: Events,
    ctx: Ctx,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    scratch: Vec<u8>,
    /// This turn's events as (token, readable, writable, peer closed); reused.
    ready: Vec<(Token, bool, bool, bool)>,
    /// Set by the signal handler beside the signal pipe, so a signal is heard between
    /// two events of a long turn, not only at the next poll (rule 9).
    interrupt: Arc<AtomicBool>,
    /// The flag's registrations, undone on drop.
    interrupt_ids: Vec<signal_hook::SigId>,
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        for id in self.interrupt_ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

impl EventLoop {
    /// A loop with the default [`Limits`].
    pub fn new() -> io::Result<EventLoop> {
        EventLoop::with_limits(Limits::default())
    }

    /// A loop with the given limits.
    pub fn with_limits(limits: Limits) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = Waker(Arc::new(mio::Waker::new(poll.registry(), WAKER)?));
        let registry = poll.registry().try_clone()?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            ctx: Ctx {
                registry,
                slots: Vec::new(),
                gens: Vec::new(),
                free: Vec::new(),
                timers: BinaryHeap::new(),
                timer_kinds: HashMap::new(),
                next_timer: 0,
                waker,
                limits,
                stopped: false,
                stop_request: Arc::default(),
                rerun: Vec::new(),
                closed: Vec::new(),
                connected_pending: Vec::new(),
                drained: Vec::new(),
                writes_left: limits.writes_per_turn,
                turn: 0,
                accept_backoff: HashMap::new(),
            },
            signals: None,
            scratch: vec![0; limits.read_chunk.max(MAX_DATAGRAM + 1)],
            ready: Vec::new(),
            interrupt: Arc::default(),
            interrupt_ids: Vec::new(),
        })
    }

    /// Delivers SIGINT (Ctrl-C) and SIGTERM to [`Handler::on_signal`] instead of
    /// killing the process, so a lab can print its totals before it exits.
    pub fn with_signals(mut self) -> io::Result<EventLoop> {
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let id = signal_hook::flag::register(sig, Arc::clone(&self.interrupt))?;
            self.interrupt_ids.push(id);
        }
        Ok(self)
    }

    /// The context, to set up listeners and timers before [`EventLoop::run`].
    pub fn ctx(&mut self) -> &mut Ctx {
        &mut self.ctx
    }

    /// Runs until the handler calls [`Ctx::stop`].
    pub fn run<H: Handler>(&mut self, handler: &mut H) -> io::Result<()> {
        while !self.ctx.stopped {
            self.turn(handler, None)?;
        }
        Ok(())
    }

    /// Runs until stopped or until `limit` has passed, whichever is first.
    pub fn run_for<H: Handler>(&mut self, handler: &mut H, limit: Duration) -> io::Result<()> {
        let end = Instant::now() + limit;
        while !self.ctx.stopped && Instant::now() < end {
            self.turn(handler, Some(end))?;
        }
        Ok(())
    }

    /// One turn: wait for readiness or the next timer, then dispatch everything ready.
    fn turn<H: Handler>(&mut self, handler: &mut H, end: Option<Instant>) -> io::Result<()> {
        let now = Instant::now();
        let mut timeout = self
            .ctx
            .timers
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now));
        if let Some(end) = end {
            let left = end.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        if !self.ctx.rerun.is_empty() {
            // Someone still has data waiting: just collect new events, do not sleep.
            timeout = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            // A signal interrupted the wait: that is not an error, go round again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.ctx.writes_left = self.ctx.limits.writes_per_turn;
        self.ctx.turn = self.ctx.turn.wrapping_add(1);

        // Copied out of `events` (handlers need `&mut self`), into a vector kept across
        // turns so the hot path allocates nothing.
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| {
            (
                e.token(),
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable() || e.is_write_closed() || e.is_error(),
                e.is_read_closed() || e.is_error(),
            )
        }));
        let rerun = std::mem::take(&mut self.ctx.rerun);
        for &(token, readable, writable, closing) in &ready {
            // Rule 9: a signal or a stop request that came during this turn is heard
            // now, and a stopped loop leaves the rest of the turn undone.
            if self.stopping(handler) {
                break;
            }
            match token {
                // LoopThread::stop (seen by `stopping`), or another thread with work for us.
                WAKER => handler.on_wake(&mut self.ctx),
                // Ctrl-C or SIGTERM: let the lab decide (default: stop).
                SIGNALS => self.dispatch_signals(handler),
                // A socket: writes first, so replies flushed free room before we read.
                token => {
                    if writable {
                        self.ctx.on_writable(handler, token);
                    }
                    if closing {
                        if let Some(Some(Source::Stream(c))) = self.ctx.slots.get_mut(token.0) {
                            c.read_closed = true;
                        }
                    }
                    if readable {
                        self.on_readable(handler, token);
                    }
                }
            }
            self.ctx.report(handler);
        }
        self.ready = ready;
        for token in rerun {
            if self.stopping(handler) {
                break;
            }
            self.on_readable(handler, token);
            self.ctx.report(handler);
        }
        if !self.stopping(handler) {
            self.fire_timers(handler);
            // Rule 10: work gathered across the turn, done once (not by a stopped loop).
            handler.on_turn_end(&mut self.ctx);
            self.ctx.report(handler);
        }
        Ok(())
    }

    /// Rule 9: hears a signal or a [`LoopThread::stop`] that arrived during this turn
    /// (two atomic loads when nothing did), and says whether the loop is stopped.
    pub(super) fn stopping<H: Handler>(&mut self, handler: &mut H) -> bool {
        // A plain load first: the swap (a read-modify-write) only when a signal came.
        if self.interrupt.load(Ordering::Relaxed) && self.interrupt.swap(false, Ordering::SeqCst) {
            self.dispatch_signals(handler);
        }
        if !self.ctx.stopped && self.ctx.stop_request.load(Ordering::SeqCst) {
            handler.on_stop(&mut self.ctx);
            self.ctx.stopped = true;
        }
        self.ctx.stopped
    }

    /// Hands the signals that arrived to the handler. The flag may be seen before the
    /// signal reaches the pipe (another thread may be running the signal handler): then
    /// nothing is pending yet, and the pipe's event brings it at the next poll.
    fn dispatch_signals<H: Handler>(&mut self, handler: &mut H) {
        let sigs: Vec<i32> = self
            .signals
            .as_mut()
            .map(|s| s.pending().collect())
            .unwrap_or_default();
        for sig in sigs {
            handler.on_signal(&mut self.ctx, sig);
        }
        self.ctx.report(handler);
    }
}

impl Ctx {
    // ----- timers, waking, stopping ---------------------------------------------

    /// Calls [`Handler::on_timer`] once, `after` from now.
    pub fn timer_after(&mut self, after: Duration) -> TimerId {
        self.new_timer(after, TimerKind::User)
    }

    /// Calls [`Handler::on_timer`] once at `at`.
    pub fn timer_at(&mut self, at: Instant) -> TimerId {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((at, id)));
        self.timer_kinds.insert(id, TimerKind::User);
        TimerId(id)
    }

    fn new_timer(&mut self, after: Duration, kind: TimerKind) -> TimerId {
        let id = self.timer_at(Instant::now() + after);
        self.timer_kinds.insert(id.0, kind);
        id
    }

    /// Cancels a timer that has not fired yet (no effect otherwise).
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.timer_kinds.remove(&timer.0);
    }

    /// A handle other threads use to wake the loop ([`Handler::on_wake`]).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Ends [`EventLoop::run`] now: the rest of this turn's events are left undone
    /// (rule 9), so a handler says its last words before calling it.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// True once [`Ctx::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}
