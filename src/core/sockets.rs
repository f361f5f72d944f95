//! [`Ctx`]'s socket actions: opening listeners, connections and UDP sockets, sending,
//! closing, and the slab of slots (with generations, see `handles`) they live in.

use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Token};
use socket2::{Domain, Protocol, Socket, Type};

use super::{
    Closed, Conn, ConnId, Ctx, Full, Handle, Key, ListenerId, OutBuf, SendError, Source, Udp, UdpId,
};

impl Ctx {
    // ----- sockets -------------------------------------------------------------

    /// Listens for TCP connections on `addr` with `SO_REUSEADDR` set, so a restarted
    /// server can bind the port while old connections sit in TIME_WAIT.
    pub fn listen(&mut self, addr: SocketAddr, backlog: i32) -> io::Result<ListenerId> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(backlog)?;
        sock.set_nonblocking(true)?;
        let mut l = TcpListener::from_std(sock.into());
        let token = self.register(&mut l, Interest::READABLE)?;
        self.slots[token.0] = Some(Source::Listener(l));
        Ok(ListenerId(self.key(token)))
    }

    /// Starts a non-blocking connect; [`Handler::on_connected`] or
    /// [`Handler::on_closed`] tells how it went.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        let stream = TcpStream::connect(addr)?;
        self.add_stream(stream, true)
    }

    /// Adopts an already-connected stream (for example one a blocking client made, or
    /// stdin's partner in a chat client).
    pub fn adopt(&mut self, stream: std::net::TcpStream) -> io::Result<ConnId> {
        stream.set_nonblocking(true)?;
        self.add_stream(TcpStream::from_std(stream), false)
    }

    /// Shuts down our sending side (the peer reads EOF) but keeps reading.
    pub fn shutdown_write(&mut self, conn: ConnId) -> io::Result<()> {
        match self.live(conn.0).and_then(|t| self.slots.get(t.0)) {
            Some(Some(Source::Stream(c))) => c.stream.shutdown(std::net::Shutdown::Write),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Binds a UDP socket. Datagrams longer than `recv_len` bytes are truncated (and
    /// reported as such); pass [`MAX_DATAGRAM`] to receive anything.
    pub fn bind_udp(&mut self, addr: SocketAddr, recv_len: usize) -> io::Result<UdpId> {
        let sock = UdpSocket::bind(addr)?;
        self.add_udp(sock, recv_len)
    }

    /// Adopts a UDP socket configured elsewhere (buffer sizes, options).
    pub fn adopt_udp(&mut self, sock: std::net::UdpSocket, recv_len: usize) -> io::Result<UdpId> {
        sock.set_nonblocking(true)?;
        self.add_udp(UdpSocket::from_std(sock), recv_len)
    }

    pub(super) fn add_udp(&mut self, mut sock: UdpSocket, recv_len: usize) -> io::Result<UdpId> {
        let token = self.register(&mut sock, Interest::READABLE)?;
        self.slots[token.0] = Some(Source::Udp(Udp {
            sock,
            queue: Default::default(),
            writable: false,
            recv_len: recv_len.max(1),
            batch: None,
        }));
        Ok(UdpId(self.key(token)))
    }

    pub(super) fn add_stream(
        &mut self,
        mut stream: TcpStream,
        connecting: bool,
    ) -> io::Result<ConnId> {
        let interest = if connecting {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let token = self.register(&mut stream, interest)?;
        self.slots[token.0] = Some(Source::Stream(Conn {
            stream,
            out: OutBuf::new(self.limits.outbound_cap),
            writable: connecting,
            connecting,
            closing: false,
            eof: false,
            paused: false,
            held: false,
            read_closed: false,
            blocked_turn: u64::MAX,
        }));
        Ok(ConnId(self.key(token)))
    }

    /// Registers a new source under a free slot, which the caller then fills. On failure
    /// the slot goes back to the free list: every way in (`listen`, `add_udp`,
    /// `add_stream`, `adopt_udp_batched`) shares this, so none can leak one.
    pub(super) fn register(
        &mut self,
        source: &mut impl mio::event::Source,
        interest: Interest,
    ) -> io::Result<Token> {
        let token = self.slot();
        if let Err(e) = self.registry.register(source, token, interest) {
            self.free_slot(token);
            return Err(e);
        }
        Ok(token)
    }

    /// A free slot for a new source (its token is the slot's index).
    pub(super) fn slot(&mut self) -> Token {
        match self.free.pop() {
            Some(i) => Token(i),
            None => {
                self.slots.push(None);
                self.gens.push(0);
                Token(self.slots.len() - 1)
            }
        }
    }

    /// Returns a slot for reuse under a new generation, so old handles go stale.
    pub(super) fn free_slot(&mut self, token: Token) {
        self.gens[token.0] = self.gens[token.0].wrapping_add(1);
        self.free.push(token.0);
    }

    /// The handle key of a live slot.
    pub(super) fn key(&self, token: Token) -> Key {
        Key {
            index: token.0 as u32,
            gen: self.gens[token.0],
        }
    }

    /// The slot a handle names, unless it is stale.
    pub(super) fn live(&self, key: Key) -> Option<Token> {
        let index = key.index as usize;
        (self.gens.get(index) == Some(&key.gen)).then_some(Token(index))
    }

    /// The local address of any registered socket; `None` once it is closed.
    pub fn local_addr(&self, handle: impl Handle) -> Option<SocketAddr> {
        let token = self.live(handle.key())?;
        match self.slots.get(token.0)? {
            Some(Source::Listener(l)) => l.local_addr().ok(),
            Some(Source::Stream(c)) => c.stream.local_addr().ok(),
            Some(Source::Udp(u)) => u.sock.local_addr().ok(),
            None => None,
        }
    }

    /// Sets `TCP_NODELAY` on a connection (send small writes at once; no Nagle).
    pub fn set_nodelay(&self, conn: ConnId, on: bool) -> io::Result<()> {
        match self.live(conn.0).and_then(|t| self.slots.get(t.0)) {
            Some(Some(Source::Stream(c))) => c.stream.set_nodelay(on),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Turns on TCP keepalive for a connection: after `idle` without traffic the kernel
    /// probes the peer (every `idle / 3`, 3 times) and resets the connection if it is
    /// gone, so a peer whose machine died or lost its network is noticed at all.
    pub fn set_keepalive(&self, conn: ConnId, idle: Duration) -> io::Result<()> {
        match self.live(conn.0).and_then(|t| self.slots.get(t.0)) {
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
    pub fn set_send_buffer(&self, conn: ConnId, bytes: usize) -> io::Result<()> {
        match self.live(conn.0).and_then(|t| self.slots.get(t.0)) {
            Some(Some(Source::Stream(c))) => {
                socket2::SockRef::from(&c.stream).set_send_buffer_size(bytes)
            }
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Bytes queued and not yet taken by the kernel for a connection.
    pub fn queued(&self, conn: ConnId) -> usize {
        match self.live(conn.0).and_then(|t| self.slots.get(t.0)) {
            Some(Some(Source::Stream(c))) => c.out.len(),
            _ => 0,
        }
    }

    /// Sends bytes on a connection: as many as the kernel takes now, the rest queued
    /// (and all of it queued once this turn's [`Limits::writes_per_turn`] is spent).
    /// All or nothing: when the rest would not fit, nothing is sent and `Full` returned.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.send_parts(conn, &[data])
    }

    /// [`Ctx::send`] for bytes in pieces, sent as one stream of bytes (`writev`): a lab
    /// that sends each peer its own selection of one buffer (a chat leaving out the
    /// receiver's own lines) need not copy the selection together first. When nothing
    /// is queued for the connection, the bytes go from the caller's buffers straight to
    /// the kernel and only what it does not take is copied into the queue.
    pub fn send_parts(&mut self, conn: ConnId, parts: &[&[u8]]) -> Result<(), SendError> {
        let token = self.live(conn.0).ok_or(SendError::Gone)?;
        let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) else {
            return Err(SendError::Gone);
        };
        if c.closing {
            return Err(SendError::Gone);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > c.out.room() {
            // Past the budget, bytes may be waiting that the kernel would take now: try
            // them before calling the peer full, so the budget never turns a reader that
            // keeps up into a "too slow" one (a chat once dropped readers that read as
            // fast as they could). Once the kernel has refused this connection's bytes
            // in this turn, it is full: no more writes for it until the next turn.
            let full = Full {
                queued: c.out.len(),
                offered: total,
            };
            if c.connecting || c.blocked_turn == self.turn {
                return Err(SendError::Full(full));
            }
            if let Err(e) = c.out.flush_to(&mut c.stream) {
                self.drop_source(token, Closed::Error(e));
                return Ok(()); // reported through on_closed
            }
            if !c.out.is_empty() {
                c.blocked_turn = self.turn;
            }
            if total > c.out.room() {
                let queued = c.out.len();
                self.update_interest(token);
                return Err(SendError::Full(Full {
                    queued,
                    offered: total,
                }));
            }
        }
        // Rule 5b: past the turn's write budget the bytes wait for the writable event.
        // `push_parts` cannot fail below: the room was checked above, and the queue
        // has only shrunk since.
        if !c.connecting && self.writes_left > 0 {
            self.writes_left -= 1;
            let wrote = if c.out.is_empty() {
                // Nothing older waits: straight from the caller's buffers.
                write_parts(&mut c.stream, parts, total).map(|n| {
                    if n < total {
                        let _ = c.out.push_parts(parts, n);
                    }
                })
            } else {
                // Older bytes go first: queue behind them, then write the queue.
                let _ = c.out.push_parts(parts, 0);
                c.out.flush_to(&mut c.stream).map(|_| ())
            };
            if let Err(e) = wrote {
                self.drop_source(token, Closed::Error(e));
                return Ok(()); // reported through on_closed
            }
        } else {
            let _ = c.out.push_parts(parts, 0);
        }
        self.update_interest(token);
        Ok(())
    }

    /// Sends one datagram. If the kernel's buffer is full it is queued (bounded by
    /// [`Limits::udp_queue`]); returns false when it had to be dropped.
    pub fn send_to(&mut self, sock: UdpId, data: &[u8], to: SocketAddr) -> io::Result<bool> {
        let cap = self.limits.udp_queue;
        let token = self.live(sock.0).ok_or(io::ErrorKind::NotConnected)?;
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

    /// Stops (`true`) or resumes (`false`) reading from a connection, for a lab whose
    /// own queue is full: bytes wait in the kernel's receive buffer, the peer's window
    /// closes and the sender waits in TCP, so nothing piles up in this process.
    /// Resuming reads again at the next turn (no new readiness event would say the
    /// bytes that waited are there). No-op on a closed connection.
    pub fn hold_reading(&mut self, conn: ConnId, hold: bool) {
        let Some(token) = self.live(conn.0) else {
            return;
        };
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            let resumed = c.held && !hold;
            c.held = hold;
            if resumed {
                self.rerun.push(token);
            }
        }
    }

    /// Closes a connection once everything queued has been sent (no-op if closed).
    pub fn close(&mut self, conn: ConnId) {
        let Some(token) = self.live(conn.0) else {
            return;
        };
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            c.closing = true;
            self.maybe_finish(token);
        }
    }

    /// Closes at once, discarding queued bytes (for a peer we give up on).
    pub fn abort(&mut self, conn: ConnId) {
        let Some(token) = self.live(conn.0) else {
            return;
        };
        if matches!(self.slots.get(token.0), Some(Some(Source::Stream(_)))) {
            self.drop_source(token, Closed::ByUs);
        }
    }
}

/// Writes `parts` (`total` bytes in all) until done or the kernel would block; returns
/// the bytes written. At most 64 pieces per `writev`, far below Linux's `IOV_MAX` (1024).
fn write_parts(w: &mut impl Write, parts: &[&[u8]], total: usize) -> io::Result<usize> {
    let mut done = 0;
    while done < total {
        // The pieces from the first unwritten byte on.
        // On the stack: this runs for every send to a connection with an empty queue.
        let mut skip = done;
        let mut slices = [IoSlice::new(&[]); 64];
        let mut n = 0;
        for p in parts {
            if n == slices.len() {
                break;
            }
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            slices[n] = IoSlice::new(&p[skip..]);
            n += 1;
            skip = 0;
        }
        let r = if let [one] = &slices[..n] {
            w.write(one)
        } else {
            w.write_vectored(&slices[..n])
        };
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
