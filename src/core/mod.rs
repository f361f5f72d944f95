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
//! 4. **Unsent bytes wait in a bounded [`OutBuf`]** per connection; writable interest is
//!    registered only while it is non-empty (otherwise every turn would wake for nothing).
//!    A send that does not fit fails with [`SendError::Full`]: the lab decides whether to
//!    drop the peer or skip data, and memory never grows without bound.
//! 5. **Back-pressure:** while a connection owes more than [`Limits::high_water`] bytes,
//!    the core stops reading from it (a client that does not read its replies gets no
//!    more served) and resumes once the buffer drains below half of that.
//! 6. **Timers** are a heap of deadlines; the poll timeout is the time to the earliest.
//! 7. **Other threads** (a serial reader, stdin) hand work over through a channel of
//!    their own and [`Ctx::waker`]; the loop calls [`Handler::on_wake`].
//! 8. **Ctrl-C** (SIGINT) and SIGTERM arrive as events when the loop was built with
//!    [`EventLoop::with_signals`]; the default reply is to stop cleanly.
//!
//! Labs never call `read`, `write` or `accept` on a non-blocking socket themselves.

mod outbuf;
mod udp_batch;

/// The handle of a registered socket, re-exported so labs need not name mio.
pub use mio::Token;
pub use outbuf::{Full, OutBuf};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::sys;

/// Token of the waker; sources get small tokens from the slab, so this never collides.
const WAKER: Token = Token(usize::MAX - 1);
/// Token of the signal pipe.
const SIGNALS: Token = Token(usize::MAX - 2);

/// The largest UDP payload over IPv4 (65535 - 20 IP header - 8 UDP header), plus one so
/// that a buffer of this size can never truncate.
pub const MAX_DATAGRAM: usize = 65_507;

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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            outbound_cap: 4 << 20,
            high_water: 1 << 20,
            read_chunk: 64 * 1024,
            reads_per_turn: 16,
            udp_queue: 1024,
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
    /// There is no open connection with that token.
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
    fn on_accept(&mut self, ctx: &mut Ctx, listener: Token, conn: Token, peer: SocketAddr) {}
    /// Accepting failed (for example the open-file limit, `EMFILE`). The core retries in
    /// 100 ms; the pending connection waits in the kernel's backlog meanwhile.
    fn on_accept_error(&mut self, ctx: &mut Ctx, listener: Token, err: &io::Error) {}
    /// An outgoing [`Ctx::connect`] completed.
    fn on_connected(&mut self, ctx: &mut Ctx, conn: Token) {}
    /// Bytes arrived on a stream. They are only a piece of the stream: message
    /// boundaries are the lab's job (see [`crate::wire::lines`]).
    fn on_data(&mut self, ctx: &mut Ctx, conn: Token, data: &[u8]) {}
    /// The peer shut down its sending side. We may still send; the default flushes what
    /// is queued and closes.
    fn on_eof(&mut self, ctx: &mut Ctx, conn: Token) {
        ctx.close(conn);
    }
    /// A connection is gone; its token may be reused after this returns.
    fn on_closed(&mut self, ctx: &mut Ctx, conn: Token, why: Closed) {}
    /// A connection's outbound buffer became empty after having been non-empty.
    fn on_drained(&mut self, ctx: &mut Ctx, conn: Token) {}
    /// A datagram arrived on a UDP socket.
    fn on_datagram(&mut self, ctx: &mut Ctx, sock: Token, dgram: Datagram<'_>) {}
    /// Receiving or sending on a UDP socket failed (e.g. `ECONNREFUSED` from an ICMP
    /// port-unreachable on a connected socket).
    fn on_udp_error(&mut self, ctx: &mut Ctx, sock: Token, err: &io::Error) {}
    /// The kernel dropped datagrams because the socket's receive buffer was full;
    /// `total` is its running count since the socket opened (batched sockets only).
    fn on_kernel_drops(&mut self, ctx: &mut Ctx, sock: Token, total: u64) {}
    /// A timer set with [`Ctx::timer_after`] fired.
    fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {}
    /// Another thread called `wake()` on [`Ctx::waker`].
    fn on_wake(&mut self, ctx: &mut Ctx) {}
    /// SIGINT or SIGTERM arrived. The default stops the loop.
    fn on_signal(&mut self, ctx: &mut Ctx, signal: i32) {
        ctx.stop();
    }
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
    /// An event said the peer closed or reset: drain until EOF or an error, since no
    /// further event will come (see the short-read rule in `read_stream`).
    read_closed: bool,
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

enum TimerKind {
    User,
    RetryAccept(Token),
}

/// The lab's handle on the loop: sockets, timers, and stopping.
pub struct Ctx {
    registry: Registry,
    slots: Vec<Option<Source>>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_kinds: HashMap<u64, TimerKind>,
    next_timer: u64,
    waker: Arc<Waker>,
    limits: Limits,
    stopped: bool,
    /// Connections with data left after their read budget, or resumed after a pause.
    rerun: Vec<Token>,
    /// Closures decided inside `Ctx` methods, reported to the handler after it returns.
    closed: Vec<(Token, Closed)>,
    /// Connections whose buffer just drained, reported likewise.
    drained: Vec<Token>,
    /// Outgoing connects that just completed, reported likewise.
    connected_pending: Vec<Token>,
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
}

impl EventLoop {
    /// A loop with the default [`Limits`].
    pub fn new() -> io::Result<EventLoop> {
        EventLoop::with_limits(Limits::default())
    }

    /// A loop with the given limits.
    pub fn with_limits(limits: Limits) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            ctx: Ctx {
                registry,
                slots: Vec::new(),
                free: Vec::new(),
                timers: BinaryHeap::new(),
                timer_kinds: HashMap::new(),
                next_timer: 0,
                waker,
                limits,
                stopped: false,
                rerun: Vec::new(),
                closed: Vec::new(),
                drained: Vec::new(),
                connected_pending: Vec::new(),
            },
            signals: None,
            scratch: vec![0; limits.read_chunk.max(MAX_DATAGRAM + 1)],
            ready: Vec::new(),
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
            match token {
                // Another thread has work for us.
                WAKER => handler.on_wake(&mut self.ctx),
                // Ctrl-C or SIGTERM: let the lab decide (default: stop).
                SIGNALS => {
                    let sigs: Vec<i32> = self
                        .signals
                        .as_mut()
                        .map(|s| s.pending().collect())
                        .unwrap_or_default();
                    for sig in sigs {
                        handler.on_signal(&mut self.ctx, sig);
                    }
                }
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
            self.on_readable(handler, token);
            self.ctx.report(handler);
        }
        self.fire_timers(handler);
        Ok(())
    }

    fn fire_timers<H: Handler>(&mut self, handler: &mut H) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.ctx.timers.peek().copied() {
            if at > now {
                break;
            }
            self.ctx.timers.pop();
            match self.ctx.timer_kinds.remove(&id) {
                Some(TimerKind::User) => handler.on_timer(&mut self.ctx, TimerId(id)),
                Some(TimerKind::RetryAccept(token)) => self.on_readable(handler, token),
                None => {} // cancelled
            }
            self.ctx.report(handler);
        }
    }

    fn on_readable<H: Handler>(&mut self, handler: &mut H, token: Token) {
        match self.ctx.slots.get(token.0) {
            Some(Some(Source::Listener(_))) => self.accept_all(handler, token),
            Some(Some(Source::Stream(_))) => self.read_stream(handler, token),
            Some(Some(Source::Udp(_))) => self.recv_all(handler, token),
            _ => {} // closed meanwhile
        }
    }

    fn accept_all<H: Handler>(&mut self, handler: &mut H, token: Token) {
        loop {
            let Some(Some(Source::Listener(l))) = self.ctx.slots.get(token.0) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => match self.ctx.add_stream(stream, false) {
                    Ok(conn) => handler.on_accept(&mut self.ctx, token, conn, peer),
                    Err(e) => handler.on_accept_error(&mut self.ctx, token, &e),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection that was reset while it waited in the backlog: skip it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE and friends: the connection stays queued in the kernel. We
                    // would never hear of it again (edge-triggered), so retry soon.
                    handler.on_accept_error(&mut self.ctx, token, &e);
                    let id = self
                        .ctx
                        .new_timer(Duration::from_millis(100), TimerKind::RetryAccept(token));
                    let _ = id;
                    return;
                }
            }
        }
    }

    fn read_stream<H: Handler>(&mut self, handler: &mut H, token: Token) {
        for _ in 0..self.ctx.limits.reads_per_turn {
            let Some(Some(Source::Stream(c))) = self.ctx.slots.get_mut(token.0) else {
                return;
            };
            if c.eof || c.paused || c.connecting {
                return;
            }
            let chunk = self.ctx.limits.read_chunk.min(self.scratch.len());
            match c.stream.read(&mut self.scratch[..chunk]) {
                Ok(0) => {
                    c.eof = true;
                    handler.on_eof(&mut self.ctx, token);
                    self.ctx.maybe_finish(token);
                    return;
                }
                Ok(n) => {
                    // A read shorter than asked emptied the socket (TCP hands over
                    // everything queued, up to the buffer's size). Linux's epoll reports
                    // every later arrival again, even edge-triggered, so unless the peer
                    // already closed (its FIN gives no further event) there is no need
                    // to pay for a read that returns WouldBlock: sockperf and tokio stop
                    // here too. It saves a system call per message, about 1 us of a
                    // 13 us loopback round trip (BENCHMARKS.md, Latency).
                    let drained = n < chunk && !c.read_closed;
                    handler.on_data(&mut self.ctx, token, &self.scratch[..n]);
                    self.ctx.apply_backpressure(token);
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.ctx.drop_source(token, Closed::Error(e));
                    return;
                }
            }
        }
        // Budget used up and maybe more to read: come back after the others.
        self.ctx.rerun.push(token);
    }

    fn recv_all<H: Handler>(&mut self, handler: &mut H, token: Token) {
        if matches!(self.ctx.slots.get(token.0), Some(Some(Source::Udp(u))) if u.batch.is_some()) {
            return self.recv_batched(handler, token);
        }
        for _ in 0..self.ctx.limits.reads_per_turn * 4 {
            let Some(Some(Source::Udp(u))) = self.ctx.slots.get(token.0) else {
                return;
            };
            let len = u.recv_len.min(self.scratch.len());
            match sys::recv_from_trunc(&u.sock, &mut self.scratch[..len]) {
                Ok(r) => handler.on_datagram(
                    &mut self.ctx,
                    token,
                    Datagram {
                        data: &self.scratch[..r.len],
                        from: r.from,
                        wire_len: r.wire_len,
                        arrival_ns: None,
                    },
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => handler.on_udp_error(&mut self.ctx, token, &e),
            }
        }
        self.ctx.rerun.push(token);
    }
}

impl Ctx {
    // ----- sockets -------------------------------------------------------------

    /// Listens for TCP connections on `addr` with `SO_REUSEADDR` set, so a restarted
    /// server can bind the port while old connections sit in TIME_WAIT.
    pub fn listen(&mut self, addr: SocketAddr, backlog: i32) -> io::Result<Token> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(backlog)?;
        sock.set_nonblocking(true)?;
        let mut l = TcpListener::from_std(sock.into());
        let token = self.slot();
        self.registry.register(&mut l, token, Interest::READABLE)?;
        self.slots[token.0] = Some(Source::Listener(l));
        Ok(token)
    }

    /// Starts a non-blocking connect; [`Handler::on_connected`] or
    /// [`Handler::on_closed`] tells how it went.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<Token> {
        let stream = TcpStream::connect(addr)?;
        self.add_stream(stream, true)
    }

    /// Adopts an already-connected stream (for example one a blocking client made).
    pub fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<Token> {
        stream.set_nonblocking(true)?;
        self.add_stream(TcpStream::from_std(stream), false)
    }

    /// Binds a UDP socket. Datagrams longer than `recv_len` bytes are truncated (and
    /// reported as such); pass [`MAX_DATAGRAM`] to receive anything.
    pub fn bind_udp(&mut self, addr: SocketAddr, recv_len: usize) -> io::Result<Token> {
        let sock = UdpSocket::bind(addr)?;
        self.add_udp(sock, recv_len)
    }

    /// Adopts a UDP socket configured elsewhere (buffer sizes, options).
    pub fn adopt_udp(&mut self, sock: std::net::UdpSocket, recv_len: usize) -> io::Result<Token> {
        sock.set_nonblocking(true)?;
        self.add_udp(UdpSocket::from_std(sock), recv_len)
    }

    fn add_udp(&mut self, mut sock: UdpSocket, recv_len: usize) -> io::Result<Token> {
        let token = self.slot();
        self.registry
            .register(&mut sock, token, Interest::READABLE)?;
        self.slots[token.0] = Some(Source::Udp(Udp {
            sock,
            queue: Default::default(),
            writable: false,
            recv_len: recv_len.max(1),
            batch: None,
        }));
        Ok(token)
    }

    fn add_stream(&mut self, mut stream: TcpStream, connecting: bool) -> io::Result<Token> {
        let token = self.slot();
        let interest = if connecting {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Err(e) = self.registry.register(&mut stream, token, interest) {
            self.free.push(token.0);
            return Err(e);
        }
        self.slots[token.0] = Some(Source::Stream(Conn {
            stream,
            out: OutBuf::new(self.limits.outbound_cap),
            writable: connecting,
            connecting,
            closing: false,
            eof: false,
            paused: false,
            read_closed: false,
        }));
        Ok(token)
    }

    fn slot(&mut self) -> Token {
        match self.free.pop() {
            Some(i) => Token(i),
            None => {
                self.slots.push(None);
                Token(self.slots.len() - 1)
            }
        }
    }

    /// The local address of any registered socket.
    pub fn local_addr(&self, token: Token) -> Option<SocketAddr> {
        match self.slots.get(token.0)? {
            Some(Source::Listener(l)) => l.local_addr().ok(),
            Some(Source::Stream(c)) => c.stream.local_addr().ok(),
            Some(Source::Udp(u)) => u.sock.local_addr().ok(),
            None => None,
        }
    }

    /// The peer of a connection.
    pub fn peer_addr(&self, token: Token) -> Option<SocketAddr> {
        match self.slots.get(token.0)? {
            Some(Source::Stream(c)) => c.stream.peer_addr().ok(),
            _ => None,
        }
    }

    /// Sets `TCP_NODELAY` on a connection (send small writes at once; no Nagle).
    pub fn set_nodelay(&self, token: Token, on: bool) -> io::Result<()> {
        match self.slots.get(token.0) {
            Some(Some(Source::Stream(c))) => c.stream.set_nodelay(on),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Turns on TCP keepalive for a connection: after `idle` without traffic the kernel
    /// probes the peer (every `idle / 3`, 3 times) and resets the connection if it is
    /// gone, so a peer whose machine died or lost its network is noticed at all.
    pub fn set_keepalive(&self, token: Token, idle: Duration) -> io::Result<()> {
        match self.slots.get(token.0) {
            Some(Some(Source::Stream(c))) => {
                let every = (idle / 3).max(Duration::from_secs(1));
                let ka = socket2::TcpKeepalive::new()
                    .with_time(idle)
                    .with_interval(every)
                    .with_retries(3);
                socket2::SockRef::from(&c.stream).set_tcp_keepalive(&ka)
            }
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Sets a connection's kernel send buffer (`SO_SNDBUF`; Linux doubles the figure
    /// for its bookkeeping). Fixing it turns off the kernel's autotuning, which would
    /// otherwise let one peer that does not read hold up to `tcp_wmem`'s maximum
    /// (4 MiB by default) of kernel memory before our own queue even starts.
    pub fn set_send_buffer(&self, token: Token, bytes: usize) -> io::Result<()> {
        match self.slots.get(token.0) {
            Some(Some(Source::Stream(c))) => {
                socket2::SockRef::from(&c.stream).set_send_buffer_size(bytes)
            }
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Bytes queued and not yet taken by the kernel for a connection.
    pub fn queued(&self, token: Token) -> usize {
        match self.slots.get(token.0) {
            Some(Some(Source::Stream(c))) => c.out.len(),
            _ => 0,
        }
    }

    /// Number of open connections (accepted or connected).
    pub fn connections(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Some(Source::Stream(_))))
            .count()
    }

    /// Sends bytes on a connection: as many as the kernel takes now, the rest queued.
    /// All or nothing: when the rest would not fit, nothing is sent and `Full` returned.
    pub fn send(&mut self, token: Token, data: &[u8]) -> Result<(), SendError> {
        let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) else {
            return Err(SendError::Gone);
        };
        if c.closing {
            return Err(SendError::Gone);
        }
        c.out.push(data).map_err(SendError::Full)?;
        if !c.connecting {
            if let Err(e) = c.out.flush_to(&mut c.stream) {
                self.drop_source(token, Closed::Error(e));
                return Ok(()); // reported through on_closed
            }
        }
        self.update_interest(token);
        Ok(())
    }

    /// Sends one datagram. If the kernel's buffer is full it is queued (bounded by
    /// [`Limits::udp_queue`]); returns false when it had to be dropped.
    pub fn send_to(&mut self, token: Token, data: &[u8], to: SocketAddr) -> io::Result<bool> {
        let cap = self.limits.udp_queue;
        let Some(Some(Source::Udp(u))) = self.slots.get_mut(token.0) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if u.queue.is_empty() {
            loop {
                match u.sock.send_to(data, to) {
                    Ok(_) => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if u.queue.len() >= cap {
            return Ok(false);
        }
        u.queue.push_back((data.to_vec(), to));
        self.update_interest(token);
        Ok(true)
    }

    /// Closes a connection once everything queued has been sent.
    pub fn close(&mut self, token: Token) {
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            c.closing = true;
            self.maybe_finish(token);
        } else if matches!(self.slots.get(token.0), Some(Some(_))) {
            self.drop_source(token, Closed::ByUs);
        }
    }

    /// Closes at once, discarding queued bytes (for a peer we give up on).
    pub fn abort(&mut self, token: Token) {
        if matches!(self.slots.get(token.0), Some(Some(_))) {
            self.drop_source(token, Closed::ByUs);
        }
    }

    /// Shuts down our sending side (the peer reads EOF) but keeps reading.
    pub fn shutdown_write(&mut self, token: Token) -> io::Result<()> {
        match self.slots.get(token.0) {
            Some(Some(Source::Stream(c))) => c.stream.shutdown(Shutdown::Write),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

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
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Ends [`EventLoop::run`] after the current turn.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// True once [`Ctx::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    // ----- internals ------------------------------------------------------------

    fn on_writable<H: Handler>(&mut self, _handler: &mut H, token: Token) {
        match self.slots.get_mut(token.0) {
            Some(Some(Source::Stream(c))) => {
                if c.connecting {
                    // The outcome of a non-blocking connect: an error, or a peer address.
                    let outcome = match c.stream.take_error() {
                        Ok(Some(e)) | Err(e) => Err(e),
                        Ok(None) => c.stream.peer_addr().map(|_| ()),
                    };
                    match outcome {
                        Ok(()) => {
                            c.connecting = false;
                            self.connected_pending.push(token);
                        }
                        // Not finished yet (a spurious wake-up): wait for the next event.
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                        Err(e) => {
                            self.drop_source(token, Closed::Error(e));
                            return;
                        }
                    }
                }
                let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) else {
                    return;
                };
                let had = !c.out.is_empty();
                if let Err(e) = c.out.flush_to(&mut c.stream) {
                    self.drop_source(token, Closed::Error(e));
                    return;
                }
                if had && c.out.is_empty() {
                    self.drained.push(token);
                }
                self.resume_if_drained(token);
                self.update_interest(token);
                self.maybe_finish(token);
            }
            Some(Some(Source::Udp(u))) => {
                while let Some((data, to)) = u.queue.front() {
                    match u.sock.send_to(data, *to) {
                        Ok(_) => {
                            u.queue.pop_front();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // A datagram the kernel refuses (too big, no route) is dropped.
                        Err(_) => {
                            u.queue.pop_front();
                        }
                    }
                }
                self.update_interest(token);
            }
            _ => {}
        }
    }

    /// Rule 4: writable interest exactly while there is something to write.
    fn update_interest(&mut self, token: Token) {
        let registry = &self.registry;
        let result = match self.slots.get_mut(token.0) {
            Some(Some(Source::Stream(c))) => {
                let want = c.connecting || !c.out.is_empty();
                if want == c.writable {
                    return;
                }
                c.writable = want;
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                registry.reregister(&mut c.stream, token, interest)
            }
            Some(Some(Source::Udp(u))) => {
                let want = !u.queue.is_empty();
                if want == u.writable {
                    return;
                }
                u.writable = want;
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                registry.reregister(&mut u.sock, token, interest)
            }
            _ => return,
        };
        if let Err(e) = result {
            self.drop_source(token, Closed::Error(e));
        }
    }

    /// Rule 5: stop reading from a connection that owes too much.
    fn apply_backpressure(&mut self, token: Token) {
        let high = self.limits.high_water;
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            if c.out.len() > high {
                c.paused = true;
            }
        }
    }

    fn resume_if_drained(&mut self, token: Token) {
        let low = self.limits.high_water / 2;
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            if c.paused && c.out.len() <= low {
                c.paused = false;
                // Data may have arrived while paused; no new edge will tell us.
                self.rerun.push(token);
            }
        }
    }

    /// Closes a connection that is closing and fully flushed, or that reached EOF with
    /// nothing left to say and the lab asked to close.
    fn maybe_finish(&mut self, token: Token) {
        if let Some(Some(Source::Stream(c))) = self.slots.get(token.0) {
            if c.closing && c.out.is_empty() {
                let why = if c.eof {
                    Closed::PeerClosed
                } else {
                    Closed::ByUs
                };
                self.drop_source(token, why);
            }
        }
    }

    fn drop_source(&mut self, token: Token, why: Closed) {
        if let Some(slot) = self.slots.get_mut(token.0) {
            if let Some(source) = slot.take() {
                match source {
                    Source::Listener(mut l) => {
                        let _ = self.registry.deregister(&mut l);
                    }
                    Source::Stream(mut c) => {
                        let _ = self.registry.deregister(&mut c.stream);
                        self.closed.push((token, why));
                        return; // the slot is freed after on_closed
                    }
                    Source::Udp(mut u) => {
                        let _ = self.registry.deregister(&mut u.sock);
                    }
                }
                self.free.push(token.0);
            }
        }
    }

    /// Tells the handler about closures and drained buffers decided since last time.
    fn report<H: Handler>(&mut self, handler: &mut H) {
        loop {
            if let Some(token) = self.connected_pending.pop() {
                handler.on_connected(self, token);
            } else if let Some((token, why)) = self.closed.pop() {
                handler.on_closed(self, token, why);
                self.free.push(token.0);
            } else if let Some(token) = self.drained.pop() {
                if matches!(self.slots.get(token.0), Some(Some(_))) {
                    handler.on_drained(self, token);
                }
            } else {
                break;
            }
        }
    }
}
