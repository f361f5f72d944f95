//! The measuring server: an event-driven peer on [`crate::core`], so it waits in epoll
//! like any real server and adds no busy loop of its own. One listening port serves:
//!
//! - TCP ping-pong: a client opens with a [`hello`] (message size, TCP_NODELAY); every
//!   complete message is echoed back in one write, as a request/response server answers
//!   only whole requests. That is what makes Nagle visible: a client that writes a
//!   message in two halves waits for our ACK, which the kernel delays hoping to
//!   piggyback it on our reply, which we only send when the second half arrives.
//! - TCP stream: a client opens with a stamped `Subscribe` frame (samples per buffer,
//!   period); a producer thread makes samples on that fixed schedule and send each full buffer, stamped
//!   with its first sample's production time (see [`crate::wire::stamped`]). Clock probes
//!   are answered with our clock, so a client on another machine can estimate the offset.
//! - UDP ping-pong on the same port number: every datagram is echoed to its sender.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::core::{
    Closed, ConnId, Ctx, Datagram, EventLoop, Handler, ListenerId, LoopThread, SendError, UdpId,
    Waker,
};
use crate::error::bind_error;
use crate::out::OrStopLater;
use crate::wire::stamped::{self, Kind, Repr, Request};
use crate::wire::{epoch_ns, hello, MAX_DATAGRAM};

use super::pingpong::MAX_TCP_SIZE;

/// Backlog: a latency server has a handful of clients; 64 is plenty.
const BACKLOG: i32 = 64;
/// Most bytes a stream client may send us before we have parsed them (clock probes are
/// 22 bytes each; anything bigger is a confused or hostile peer).
const MAX_STREAM_INBOUND: usize = 64 * 1024;

/// What we know about one TCP peer.
enum Peer {
    /// Protocol not known yet: its first bytes (at most a [`hello`] or one frame header).
    New(Vec<u8>),
    /// A ping-pong client.
    PingPong {
        /// Bytes per message, from its hello.
        size: usize,
        /// The message being received; at most `size` bytes kept between reads.
        buf: Vec<u8>,
    },
    /// A stream subscriber.
    Stream(Box<StreamPeer>),
}

/// A stream subscriber: its producer thread and unparsed input.
struct StreamPeer {
    /// Which subscriber this is, so a frame still in the channel from an earlier
    /// subscriber that had the same token is not sent to this one.
    id: u64,
    /// Tells its producer thread to stop (set when the subscriber leaves).
    stop: Arc<AtomicBool>,
    /// Bytes received and not yet parsed (clock probes); bounded.
    inbound: Vec<u8>,
}

/// The producer of one subscriber's samples, in its own thread, as the serial reader of
/// lab 07 is: it sleeps until the last sample of a buffer is due, stamps the buffer, and
/// hands it to the event loop through a channel and the loop's waker.
///
/// Why a thread and not a core timer: the core waits in `epoll_wait`, whose timeout is in
/// whole milliseconds, so a timer fires up to 1 ms late, as much as a whole sample
/// period at 896 per second. A thread's `sleep` wakes within ~60 us (the kernel's timer
/// slack), so the stamps measure the buffering, not our alarm clock.
fn producer(
    conn: ConnId,
    id: u64,
    n: usize,
    period_ns: u32,
    tx: Sender<(ConnId, u64, Vec<u8>)>,
    waker: Waker,
    stop: Arc<AtomicBool>,
) {
    let start = Instant::now();
    let start_ns = epoch_ns();
    let period = u64::from(period_ns);
    let mut first: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        // The buffer is full when its last sample is produced.
        let due = start + Duration::from_nanos((first + n as u64 - 1) * period);
        let now = Instant::now();
        if due > now {
            // Sleep in slices of at most 100 ms so a departed subscriber is noticed.
            thread::sleep((due - now).min(Duration::from_millis(100)));
            continue;
        }
        // Sample values: a slow triangle wave, like a pot turned back and forth on A0.
        let samples: Vec<u8> = (first..first + n as u64)
            .map(|k| {
                let t = (k % 510) as i64;
                (255 - (t - 255).abs()) as u8
            })
            .collect();
        let frame = Repr {
            kind: Kind::Samples,
            seq: first as u32,
            t0_ns: start_ns + first * period,
            period_ns,
            samples,
        };
        first += n as u64;
        if tx.send((conn, id, frame.to_bytes())).is_err() || waker.wake().is_err() {
            return; // the loop is gone
        }
    }
}

/// The server's handler.
pub struct Server {
    /// TCP peers by token.
    peers: HashMap<ConnId, Peer>,
    /// Buffers from producer threads, with the subscriber they are for.
    frames: Receiver<(ConnId, u64, Vec<u8>)>,
    /// Number of the next stream subscriber.
    next_id: u64,
    /// Handed to each new producer thread.
    frames_tx: Sender<(ConnId, u64, Vec<u8>)>,
    /// Print connections as they come and go (`--role server`).
    verbose: bool,
}

impl Server {
    fn new(verbose: bool) -> Server {
        let (frames_tx, frames) = mpsc::channel();
        Server {
            peers: HashMap::new(),
            frames,
            next_id: 0,
            frames_tx,
            verbose,
        }
    }

    /// Handles bytes of a peer whose protocol is known.
    fn feed(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        match self.peers.get_mut(&conn) {
            Some(Peer::PingPong { size, buf }) => {
                let mut data = data;
                // Echo every complete message as one write; keep the partial rest.
                while !data.is_empty() {
                    let take = (*size - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == *size {
                        if let Err(SendError::Full(_)) = ctx.send(conn, buf) {
                            // The client sends but never reads its echoes: drop it.
                            ctx.abort(conn);
                            return;
                        }
                        buf.clear();
                    }
                }
            }
            Some(Peer::Stream(s)) => {
                if s.inbound.len() + data.len() > MAX_STREAM_INBOUND {
                    ctx.abort(conn);
                    return;
                }
                s.inbound.extend_from_slice(data);
                loop {
                    match stamped::next_request(&mut s.inbound) {
                        Ok(None) => break,
                        Err(_) => {
                            ctx.abort(conn);
                            return;
                        }
                        Ok(Some(Request::ClockProbe { seq })) => {
                            let _ = ctx.send(conn, &stamped::clock_reply(seq, epoch_ns()));
                        }
                        // A second subscription, samples, clock replies: ignored.
                        Ok(Some(_)) => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Decides a new peer's protocol from its first bytes.
    fn classify(&mut self, ctx: &mut Ctx, conn: ConnId, first: Vec<u8>) {
        if first.starts_with(&hello::MAGIC) {
            if first.len() < hello::LEN {
                self.peers.insert(conn, Peer::New(first));
                return;
            }
            let Ok(hello) = hello::Repr::parse_bytes(&first[..hello::LEN]) else {
                ctx.abort(conn);
                return;
            };
            if hello.size == 0 || hello.size > MAX_TCP_SIZE {
                ctx.abort(conn);
                return;
            }
            let _ = ctx.set_nodelay(conn, hello.nodelay);
            // Echo the hello: the client knows it reached a latency server.
            let _ = ctx.send(conn, &first[..hello::LEN]);
            self.peers.insert(
                conn,
                Peer::PingPong {
                    size: hello.size,
                    buf: Vec::with_capacity(hello.size),
                },
            );
            let rest = first[hello::LEN..].to_vec();
            self.feed(ctx, conn, &rest);
            return;
        }
        let mut rest = first;
        // A client on another machine first probes our clock (to know the offset
        // between the two clocks), then subscribes: answer the probes as they come.
        let mut request = stamped::next_request(&mut rest);
        while let Ok(Some(Request::ClockProbe { seq })) = request {
            let _ = ctx.send(conn, &stamped::clock_reply(seq, epoch_ns()));
            request = stamped::next_request(&mut rest);
        }
        match request {
            Ok(None) => {
                self.peers.insert(conn, Peer::New(rest));
            }
            Ok(Some(Request::Subscribe { samples, period_ns })) => {
                let n = samples as usize;
                if n == 0 || n > stamped::MAX_SAMPLES || period_ns == 0 {
                    ctx.abort(conn);
                    return;
                }
                let _ = ctx.set_nodelay(conn, true);
                let stop = Arc::new(AtomicBool::new(false));
                let (tx, waker, flag) = (self.frames_tx.clone(), ctx.waker(), Arc::clone(&stop));
                let id = self.next_id;
                self.next_id += 1;
                let spawned = thread::Builder::new()
                    .name("latency-producer".into())
                    .spawn(move || producer(conn, id, n, period_ns, tx, waker, flag));
                if spawned.is_err() {
                    ctx.abort(conn);
                    return;
                }
                self.peers.insert(
                    conn,
                    Peer::Stream(Box::new(StreamPeer {
                        id,
                        stop,
                        inbound: Vec::new(),
                    })),
                );
                self.feed(ctx, conn, &rest);
            }
            Ok(Some(_)) => ctx.abort(conn),
            // Neither protocol: not one of our clients (a port scanner, a typo).
            Err(_) => ctx.abort(conn),
        }
    }
}

impl Handler for Server {
    // A client connected; its first bytes will say what it wants.
    fn on_accept(&mut self, _ctx: &mut Ctx, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        if self.verbose {
            crate::say!("  client {peer} connected").or_stop_later();
        }
        self.peers.insert(conn, Peer::New(Vec::new()));
    }

    // Bytes: either the opening of a new peer, or messages of a known one.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        // The hot path (every echoed message) is one map lookup, in `feed`; only a peer
        // whose protocol is not known yet is taken out of the map to be classified.
        if !matches!(self.peers.get(&conn), Some(Peer::New(_))) {
            return self.feed(ctx, conn, data);
        }
        if let Some(Peer::New(mut first)) = self.peers.remove(&conn) {
            // A hello or a frame header is at most 22 bytes; more is never needed.
            first.extend_from_slice(data);
            self.classify(ctx, conn, first);
        }
    }

    // A client left: forget it and stop its producer.
    fn on_closed(&mut self, _ctx: &mut Ctx, conn: ConnId, _why: Closed) {
        if let Some(Peer::Stream(s)) = self.peers.remove(&conn) {
            s.stop.store(true, Ordering::Relaxed);
        }
        if self.verbose {
            crate::say!("  a client left ({} connected)", self.peers.len()).or_stop_later();
        }
    }

    // UDP ping-pong: echo the datagram to whoever sent it.
    fn on_datagram(&mut self, ctx: &mut Ctx, sock: UdpId, d: Datagram<'_>) {
        let _ = ctx.send_to(sock, d.data, d.from);
    }

    // Producer threads have full buffers (or the measuring thread is done with us).
    fn on_wake(&mut self, ctx: &mut Ctx) {
        while let Ok((conn, id, frame)) = self.frames.try_recv() {
            // A frame for a subscriber that left meanwhile is dropped (its token may
            // have been reused by a newer peer).
            if !matches!(self.peers.get(&conn), Some(Peer::Stream(s)) if s.id == id) {
                continue;
            }
            if let Err(SendError::Full(_)) = ctx.send(conn, &frame) {
                // A subscriber that stopped reading: 4 MiB of samples queued. Drop it.
                ctx.abort(conn);
            }
        }
    }
}

/// Binds TCP and UDP on the same port (port 0: the kernel picks a TCP port, and UDP
/// takes the same number; retried if that UDP port happens to be taken).
fn bind(addr: SocketAddr) -> Result<(EventLoop, SocketAddr)> {
    for _ in 0..10 {
        let mut ev = EventLoop::new()?;
        let l = ev
            .ctx()
            .listen(addr, BACKLOG)
            .map_err(|e| bind_error(addr, e, "--bind"))?;
        let local = ev.ctx().local_addr(l).context("listener has no address")?;
        match ev.ctx().bind_udp(local, MAX_DATAGRAM) {
            Ok(_) => return Ok((ev, local)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bind_error(local, e, "--bind").into()),
        }
    }
    anyhow::bail!("no port free for both TCP and UDP after 10 tries")
}

/// A server in a background thread, for loopback runs.
pub struct Local {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The loop's thread; dropping it stops and joins the loop.
    _thread: LoopThread<Server>,
}

impl Local {
    /// Starts a server on `addr` (usually 127.0.0.1:0).
    pub fn start(addr: SocketAddr) -> Result<Local> {
        let (ev, addr) = bind(addr)?;
        let thread = LoopThread::spawn("latency-server", ev, Server::new(false))?;
        Ok(Local {
            addr,
            _thread: thread,
        })
    }
}

/// `--role server`: serve until Ctrl-C or `duration`.
pub fn serve(addr: SocketAddr, duration: Option<Duration>) -> Result<()> {
    let (ev, local) = bind(addr)?;
    let mut ev = ev.with_signals()?;
    crate::say!("lab latency server on {local} (TCP and UDP; Ctrl-C stops)")?;
    crate::say!(
        "  on the other machine: lab latency --connect HOST:{}",
        local.port()
    )?;
    let mut server = Server::new(true);
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    crate::out::run_while_stdout_open(&mut ev, &mut server, duration)?;
    Ok(())
}
