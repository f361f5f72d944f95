//! The measuring server: an event-driven peer on [`crate::core`], so it waits in epoll
//! like any real server and adds no busy loop of its own. One listening port serves:
//!
//! - TCP ping-pong: a client opens with a [`hello`] (message size, TCP_NODELAY); every
//!   complete message is echoed back in one write, as a request/response server answers
//!   only whole requests. That is what makes Nagle visible: a client that writes a
//!   message in two halves waits for our ACK, which the kernel delays hoping to
//!   piggyback it on our reply, which we only send when the second half arrives.
//! - TCP stream: a client opens with a stamped `Subscribe` frame (samples per buffer,
//!   period); one producer thread makes every subscriber's samples on its fixed schedule
//!   and hands each full buffer, stamped with its first sample's production time (see
//!   [`crate::wire::stamped`]), to the loop. Clock probes are answered with our clock, so
//!   a client on another machine can estimate the offset.
//!
//! What a client may cost us is bounded (issue 18: one 1 ns subscription took 595 MB,
//! 1000 subscribers 1001 threads, 300 half-sent 1 MiB messages 314 MB): a subscription
//! faster than [`MAX_SAMPLE_RATE`] or [`MAX_FRAME_RATE`] is refused; a subscriber whose
//! queue passes [`MAX_SUBSCRIBER_QUEUE`], or whose buffers the loop cannot take, is
//! disconnected; half-received ping-pong messages hold at most [`MAX_HELD`] in total;
//! and each of those says so in the server's log.
//! - UDP ping-pong on the same port number: every datagram is echoed to its sender.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
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

/// Fastest sample rate a subscriber may ask for: a million samples a second (1 MB/s,
/// a thousand Arduinos), far past any rate the lab measures.
pub const MAX_SAMPLE_RATE: f64 = 1e6;
/// Most buffers a second one subscriber may ask for (rate / samples per buffer): one
/// every 50 us, finer than the latencies measured, and cheap enough to serve.
pub const MAX_FRAME_RATE: f64 = 20_000.0;
/// Bytes queued for one subscriber before it counts as not reading: 256 KiB is seconds
/// of any allowed stream, and 1000 subscribers stay within a few hundred MB at worst.
const MAX_SUBSCRIBER_QUEUE: usize = 256 * 1024;
/// Bytes of half-received ping-pong messages held for all clients together: 16 MiB
/// (sixteen 1 MiB messages in flight). A peer that would pass it is closed.
const MAX_HELD: usize = 16 << 20;
/// Buffers the producer may have waiting for the loop; past that the loop is behind
/// and the subscriber whose buffer did not fit is disconnected.
const FRAME_CHANNEL: usize = 4096;
/// Buffers sent per turn of the loop, so a flood of them never keeps it from polling.
const FRAMES_PER_TURN: usize = 256;

/// What we know about one TCP peer.
enum Peer {
    /// Protocol not known yet: its first bytes (at most a [`hello`] or one frame header).
    New(Vec<u8>),
    /// A ping-pong client.
    PingPong {
        /// Bytes per message, from its hello.
        size: usize,
        /// The message being received; at most `size` bytes kept between reads, and
        /// counted in [`Server::held`].
        buf: Vec<u8>,
    },
    /// A stream subscriber.
    Stream(Box<StreamPeer>),
}

/// A stream subscriber: its number and unparsed input.
struct StreamPeer {
    /// Which subscriber this is, so a frame still in the channel from an earlier
    /// subscriber that had the same token is not sent to this one.
    id: u64,
    /// Bytes received and not yet parsed (clock probes); bounded.
    inbound: Vec<u8>,
}

/// Orders for the producer thread.
enum Order {
    /// Start producing for a new subscriber.
    Add {
        conn: ConnId,
        id: u64,
        n: usize,
        period_ns: u32,
    },
    /// Stop producing for subscriber `id` (it left).
    Remove(u64),
}

/// One subscription's schedule, kept by the producer thread.
struct Schedule {
    conn: ConnId,
    id: u64,
    /// Samples per buffer.
    n: usize,
    period_ns: u32,
    /// When sample 0 was due, on both clocks.
    start: Instant,
    start_ns: u64,
    /// Index of the next buffer's first sample.
    first: u64,
}

impl Schedule {
    /// When the next buffer is full: its last sample's production time.
    fn due(&self) -> Instant {
        let last = self.first + self.n as u64 - 1;
        self.start + Duration::from_nanos(last * u64::from(self.period_ns))
    }
}

/// The one producer of every subscriber's samples, in a thread of its own as the serial
/// reader of lab 07 is: it sleeps until the next buffer is due, stamps it, and hands it
/// to the event loop through a bounded channel and the loop's waker. One thread for all
/// subscribers: a thread each made 1000 subscribers cost 1001 threads.
///
/// Why a thread and not a core timer: the core waits in `epoll_wait`, whose timeout is in
/// whole milliseconds, so a timer fires up to 1 ms late, as much as a whole sample
/// period at 896 per second. A thread's timed wait wakes within ~60 us (the kernel's
/// timer slack), so the stamps measure the buffering, not our alarm clock.
fn producer(
    orders: Receiver<Order>,
    tx: SyncSender<(ConnId, u64, Vec<u8>)>,
    overrun: Arc<Mutex<Vec<u64>>>,
    waker: Waker,
) {
    let mut subs: Vec<Schedule> = Vec::new();
    loop {
        let now = Instant::now();
        // Wait for the next buffer or an order; at most 100 ms, out of habit.
        let next = subs.iter().map(Schedule::due).min();
        let wait = next.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(now)
                .min(Duration::from_millis(100))
        });
        match orders.recv_timeout(wait) {
            Ok(Order::Add {
                conn,
                id,
                n,
                period_ns,
            }) => subs.push(Schedule {
                conn,
                id,
                n,
                period_ns,
                start: Instant::now(),
                start_ns: epoch_ns(),
                first: 0,
            }),
            Ok(Order::Remove(id)) => subs.retain(|s| s.id != id),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return, // the server is gone
        }
        // Every buffer that is due, one per subscriber per pass (a late one catches up
        // on the next passes, which do not wait).
        let now = Instant::now();
        let mut fell_behind = Vec::new();
        let mut news = false;
        for s in subs.iter_mut().filter(|s| s.due() <= now) {
            news = true;
            // Sample values: a slow triangle wave, like a pot turned back and forth on A0.
            let samples: Vec<u8> = (s.first..s.first + s.n as u64)
                .map(|k| {
                    let t = (k % 510) as i64;
                    (255 - (t - 255).abs()) as u8
                })
                .collect();
            let frame = Repr {
                kind: Kind::Samples,
                seq: s.first as u32,
                t0_ns: s.start_ns + s.first * u64::from(s.period_ns),
                period_ns: s.period_ns,
                samples,
            };
            s.first += s.n as u64;
            match tx.try_send((s.conn, s.id, frame.to_bytes())) {
                Ok(()) => {}
                // The loop is behind: this subscriber's stream has a hole now, so it
                // is stopped and the loop told to disconnect it.
                Err(TrySendError::Full(_)) => fell_behind.push(s.id),
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if !fell_behind.is_empty() {
            subs.retain(|s| !fell_behind.contains(&s.id));
            overrun
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(fell_behind);
        }
        if news && waker.wake().is_err() {
            return; // the loop is gone
        }
    }
}

/// The producer thread as the server sees it; started at the first subscription.
struct Producer {
    /// Orders to the thread; dropping it ends the thread.
    orders: Sender<Order>,
    /// The thread, joined when the server goes.
    thread: Option<thread::JoinHandle<()>>,
}

/// The server's handler.
pub struct Server {
    /// TCP peers by token.
    peers: HashMap<ConnId, Peer>,
    /// Each TCP peer's address, for the log; removed with the peer.
    addrs: HashMap<ConnId, SocketAddr>,
    /// Buffers from the producer thread, with the subscriber they are for.
    frames: Receiver<(ConnId, u64, Vec<u8>)>,
    /// Handed to the producer thread when it starts.
    frames_tx: SyncSender<(ConnId, u64, Vec<u8>)>,
    /// Subscribers the producer gave up on because the loop was behind.
    overrun: Arc<Mutex<Vec<u64>>>,
    /// The producer thread, once someone subscribed.
    producer: Option<Producer>,
    /// Number of the next stream subscriber.
    next_id: u64,
    /// Bytes of half-received ping-pong messages, all peers together (<= [`MAX_HELD`]).
    held: usize,
    /// Print connections as they come and go (`--role server`).
    verbose: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut p) = self.producer.take() {
            drop(p.orders); // the thread sees Disconnected within 100 ms
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Server {
    fn new(verbose: bool) -> Server {
        let (frames_tx, frames) = mpsc::sync_channel(FRAME_CHANNEL);
        Server {
            peers: HashMap::new(),
            addrs: HashMap::new(),
            frames,
            frames_tx,
            overrun: Arc::default(),
            producer: None,
            next_id: 0,
            held: 0,
            verbose,
        }
    }

    /// Says why a peer is being dropped (with `--role server`), and drops it.
    fn refuse(&mut self, ctx: &mut Ctx, conn: ConnId, why: &str) {
        if self.verbose {
            let peer = self.addrs.get(&conn).map_or("?".into(), |a| a.to_string());
            crate::say!("  client {peer} {why}: closed").or_stop_later();
        }
        ctx.abort(conn);
    }

    /// Hands a new subscription to the producer thread, starting it if need be.
    fn subscribe(&mut self, ctx: &mut Ctx, order: Order) -> std::io::Result<()> {
        if self.producer.is_none() {
            let (orders, rx) = mpsc::channel();
            let (tx, overrun, waker) = (
                self.frames_tx.clone(),
                Arc::clone(&self.overrun),
                ctx.waker(),
            );
            let thread = thread::Builder::new()
                .name("latency-producer".into())
                .spawn(move || producer(rx, tx, overrun, waker))?;
            self.producer = Some(Producer {
                orders,
                thread: Some(thread),
            });
        }
        let p = self.producer.as_ref().expect("started above");
        p.orders
            .send(order)
            .map_err(|_| std::io::Error::other("the producer thread ended"))
    }

    /// Handles bytes of a peer whose protocol is known.
    fn feed(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        match self.peers.get_mut(&conn) {
            Some(Peer::PingPong { size, buf }) => {
                let mut data = data;
                let before = buf.len();
                // Echo every complete message as one write; keep the partial rest.
                while !data.is_empty() {
                    let take = (*size - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == *size {
                        if let Err(SendError::Full(_)) = ctx.send(conn, buf) {
                            // The client sends but never reads its echoes: drop it.
                            self.held -= before;
                            buf.clear();
                            return self.refuse(ctx, conn, "does not read its echoes");
                        }
                        buf.clear();
                    }
                }
                // What stays is a message half received: count it against the total.
                self.held = self.held - before + buf.len();
                if self.held > MAX_HELD {
                    self.held -= buf.len();
                    buf.clear();
                    let why = format!(
                        "left a message half sent while others hold {} MiB of theirs (at most {} MiB in all)",
                        self.held >> 20,
                        MAX_HELD >> 20
                    );
                    self.refuse(ctx, conn, &why);
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
                    return self.refuse(ctx, conn, "sent a subscription with no rate or size");
                }
                let rate = 1e9 / f64::from(period_ns);
                if rate > MAX_SAMPLE_RATE || rate / n as f64 > MAX_FRAME_RATE {
                    let why = format!(
                        "asked for {rate:.0} samples/s in buffers of {n} (at most {MAX_SAMPLE_RATE:.0} samples/s and {MAX_FRAME_RATE:.0} buffers/s)"
                    );
                    return self.refuse(ctx, conn, &why);
                }
                let _ = ctx.set_nodelay(conn, true);
                let id = self.next_id;
                self.next_id += 1;
                let order = Order::Add {
                    conn,
                    id,
                    n,
                    period_ns,
                };
                if self.subscribe(ctx, order).is_err() {
                    return self.refuse(ctx, conn, "could not be given a producer");
                }
                self.peers.insert(
                    conn,
                    Peer::Stream(Box::new(StreamPeer {
                        id,
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
        self.addrs.insert(conn, peer);
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
        self.addrs.remove(&conn);
        match self.peers.remove(&conn) {
            Some(Peer::Stream(s)) => {
                if let Some(p) = &self.producer {
                    let _ = p.orders.send(Order::Remove(s.id));
                }
            }
            Some(Peer::PingPong { buf, .. }) => self.held -= buf.len(),
            _ => {}
        }
        if self.verbose {
            crate::say!("  a client left ({} connected)", self.peers.len()).or_stop_later();
        }
    }

    // UDP ping-pong: echo the datagram to whoever sent it.
    fn on_datagram(&mut self, ctx: &mut Ctx, sock: UdpId, d: Datagram<'_>) {
        let _ = ctx.send_to(sock, d.data, d.from);
    }

    // The producer has full buffers (or the measuring thread is done with us).
    fn on_wake(&mut self, ctx: &mut Ctx) {
        // Subscribers the producer dropped because we were behind: tell them so.
        let overrun = std::mem::take(&mut *self.overrun.lock().unwrap_or_else(|e| e.into_inner()));
        for id in overrun {
            let conn = self.peers.iter().find_map(|(&c, p)| match p {
                Peer::Stream(s) if s.id == id => Some(c),
                _ => None,
            });
            if let Some(conn) = conn {
                self.refuse(
                    ctx,
                    conn,
                    "fell behind: the server could not keep its stream",
                );
            }
        }
        // A bounded share per turn, so buffers never keep the loop from polling.
        for _ in 0..FRAMES_PER_TURN {
            let Ok((conn, id, frame)) = self.frames.try_recv() else {
                return;
            };
            // A frame for a subscriber that left meanwhile is dropped (its token may
            // have been reused by a newer peer).
            if !matches!(self.peers.get(&conn), Some(Peer::Stream(s)) if s.id == id) {
                continue;
            }
            if ctx.queued(conn) + frame.len() > MAX_SUBSCRIBER_QUEUE {
                let why = format!(
                    "is not reading its stream ({} KiB queued)",
                    ctx.queued(conn) >> 10
                );
                self.refuse(ctx, conn, &why);
                continue;
            }
            if let Err(SendError::Full(_)) = ctx.send(conn, &frame) {
                self.refuse(ctx, conn, "is not reading its stream");
            }
        }
        // Share used up: come back after the next poll for the rest.
        let _ = ctx.waker().wake();
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
