//! The ping-pong clients: send a message, wait for its echo, record the round trip.
//!
//! These are deliberately plain loops on one socket, not event-loop handlers: a
//! latency probe has exactly one request in flight, and the point is to measure the
//! kernel's path, so the client either blocks in `recv` (the default, what most programs
//! do) or, with `--busy-poll`, spins on a non-blocking socket so the reply is seen the
//! instant it lands, without a sleep and a wake-up (~5-10 us saved on an idle CPU, at
//! the price of one core at 100%). Round trips need no clock sync: both stamps are
//! taken here, by the monotonic clock.
//!
//! Open loop (`--rate R`): request k is *meant* to leave at start + k/R. Its latency is
//! measured from that intended time, so when one reply is late, every request queued
//! behind it is charged the wait, as a user would feel it. Measuring from the actual
//! send time instead is "coordinated omission": the stall is counted once and the
//! requests it delayed look fast.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use socket2::SockRef;

use crate::error::{connect_error, LabError};

/// [`connect_error`] with the fix that fits here: the peer must be a latency server
/// (or, with `--peer sockperf`, a sockperf server).
pub fn unreachable(addr: SocketAddr, e: io::Error, peer: Peer) -> LabError {
    let refused = e.kind() == io::ErrorKind::ConnectionRefused;
    let err = connect_error(addr, e);
    match (refused, peer) {
        (false, _) => err,
        (true, Peer::Lab) => err.fix(format!(
            "start the server first: `lab latency --role server --bind 0.0.0.0:{}` on that machine, or check the host and port",
            addr.port()
        )),
        (true, Peer::Sockperf) => err.fix(format!(
            "start it first: `sockperf server -i {} -p {}`, with --tcp for TCP modes (one sockperf server speaks one protocol)",
            addr.ip(),
            addr.port()
        )),
    }
}

use super::probe::Probe;
use super::Peer;
use crate::rng::Rng;
use crate::wire::{hello, sockperf};

/// Largest TCP message: the server holds one whole message per client, so it is bounded;
/// 1 MiB is far beyond where loopback latency stops being about system calls.
pub const MAX_TCP_SIZE: usize = 1 << 20;
/// How long a reply may take before the server is declared gone (TCP) or the datagram
/// lost (UDP). Loopback answers in microseconds; a LAN in well under a millisecond.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// UDP: after this long without the echo, the request counts as lost.
pub const UDP_TIMEOUT: Duration = Duration::from_millis(250);

/// The send and receive buffer sizes the kernel gave a socket.
pub fn buffer_sizes(s: SockRef<'_>) -> (Option<usize>, Option<usize>) {
    (s.send_buffer_size().ok(), s.recv_buffer_size().ok())
}

/// Paces an open-loop run.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// When request 0 was meant to leave.
    start: Instant,
    /// Time between requests.
    period: Duration,
    /// Index of the next request.
    k: u32,
}

impl Pacer {
    /// A pacer for `rate` requests per second starting now.
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            period: Duration::from_secs_f64(1.0 / rate),
            k: 0,
        }
    }

    /// Waits until the next request's intended time (sleeping, then spinning the last
    /// 100 us, since a sleep overshoots by tens of microseconds) and returns that time.
    /// A late caller does not wait: it is behind schedule and sends at once.
    pub fn wait(&mut self, spin: bool) -> Instant {
        let at = self.start + self.period * self.k;
        self.k = self.k.wrapping_add(1);
        loop {
            let now = Instant::now();
            if now >= at {
                return at;
            }
            let left = at - now;
            if !spin && left > Duration::from_micros(100) {
                std::thread::sleep(left - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes, spinning on a non-blocking socket when `busy`.
fn read_full(s: &mut TcpStream, buf: &mut [u8], busy: bool, deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if busy && e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf`, spinning when the non-blocking socket's buffer is full.
fn write_full(s: &mut TcpStream, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut sent = 0;
    while sent < buf.len() {
        match s.write(&buf[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn lost_server(addr: SocketAddr, e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => LabError::failed(format!(
            "no reply from {addr} within {} s",
            TCP_TIMEOUT.as_secs()
        ))
        .fix("is the server still running? `lab latency --role server` serves ping-pong")
        .into(),
        _ => anyhow::Error::new(e).context(format!("ping-pong with {addr}")),
    }
}

/// What every ping-pong probe is told.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Bytes per message, both ways (with `Peer::Sockperf`, sockperf's header included).
    pub size: usize,
    /// Spin on a non-blocking socket instead of blocking.
    pub busy: bool,
    /// Open loop at this many requests per second; None = closed loop.
    pub rate: Option<f64>,
    /// Seed of the payload bytes.
    pub seed: u64,
    /// What the server speaks.
    pub peer: Peer,
}

impl Setup {
    /// The first message: seeded random bytes, under sockperf's header for sockperf.
    fn message(&self) -> Vec<u8> {
        let mut msg = vec![0u8; self.size];
        Rng::new(self.seed).fill(&mut msg);
        if self.peer == Peer::Sockperf {
            sockperf::emit_ping(&mut msg, 0);
        }
        msg
    }
}

/// TCP ping-pong.
pub struct TcpProbe {
    /// The connection.
    stream: TcpStream,
    /// The server.
    addr: SocketAddr,
    /// The message sent each time (seeded random bytes).
    msg: Vec<u8>,
    /// Where the echo lands.
    reply: Vec<u8>,
    /// Request number (sockperf's header carries it).
    seq: u64,
    /// Write each message in two halves (a header, then a body) to show Nagle.
    split: bool,
    /// Spin instead of blocking.
    busy: bool,
    /// What the server speaks.
    peer: Peer,
    /// Open loop pacing, if any.
    pacer: Option<Pacer>,
}

impl TcpProbe {
    /// Connects and checks the server answers as `setup.peer` should: a lab server
    /// echoes our hello, a sockperf server answers one ping with its pong.
    pub fn connect(addr: SocketAddr, setup: Setup, nodelay: bool, split: bool) -> Result<TcpProbe> {
        let mut stream = TcpStream::connect_timeout(&addr, TCP_TIMEOUT)
            .map_err(|e| unreachable(addr, e, setup.peer))?;
        stream.set_nodelay(nodelay)?;
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        if setup.peer == Peer::Lab {
            // The opening of wire::hello; the server echoes it back.
            let hello = hello::Repr {
                size: setup.size,
                nodelay,
            }
            .to_bytes();
            stream.write_all(&hello)?;
            let mut back = [0u8; hello::LEN];
            let deadline = Instant::now() + TCP_TIMEOUT;
            if read_full(&mut stream, &mut back, false, deadline).is_err() || back != hello {
                return Err(LabError::usage(format!(
                    "{addr} is not a lab latency server (it did not answer our hello)"
                ))
                .fix("start `lab latency --role server --bind ADDR` there, or check the port; for a `sockperf server --tcp`, add --peer sockperf")
                .into());
            }
        }
        let mut p = TcpProbe {
            stream,
            addr,
            msg: setup.message(),
            reply: vec![0u8; setup.size],
            seq: 0,
            split,
            busy: false,
            peer: setup.peer,
            pacer: None,
        };
        if setup.peer == Peer::Sockperf && p.sample(&mut Vec::new()).is_err() {
            return Err(LabError::usage(format!(
                "{addr} did not answer like a `sockperf server --tcp`"
            ))
            .fix(
                "start `sockperf server --tcp -i IP -p PORT` there; for a lab server, drop --peer sockperf",
            )
            .into());
        }
        if setup.busy {
            p.stream.set_nonblocking(true)?;
        }
        p.busy = setup.busy;
        p.pacer = setup.rate.map(Pacer::new);
        Ok(p)
    }

    /// The socket's kernel buffer sizes.
    pub fn buffers(&self) -> (Option<usize>, Option<usize>) {
        buffer_sizes(SockRef::from(&self.stream))
    }
}

impl Probe for TcpProbe {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        self.seq += 1;
        if self.peer == Peer::Sockperf {
            sockperf::emit_ping(&mut self.msg, self.seq);
        }
        let t0 = match &mut self.pacer {
            Some(p) => p.wait(self.busy),
            None => Instant::now(),
        };
        let deadline = Instant::now() + TCP_TIMEOUT;
        let half = if self.split && self.msg.len() > 1 {
            self.msg.len() / 2
        } else {
            self.msg.len()
        };
        let (a, b) = self.msg.split_at(half);
        let r = write_full(&mut self.stream, a, deadline)
            .and_then(|_| {
                if b.is_empty() {
                    Ok(())
                } else {
                    write_full(&mut self.stream, b, deadline)
                }
            })
            .and_then(|_| read_full(&mut self.stream, &mut self.reply, self.busy, deadline));
        let t1 = Instant::now();
        r.map_err(|e| lost_server(self.addr, e))?;
        // A lab server echoes on a stream that cannot reorder, so the bytes are not
        // compared; sockperf's header is, as it says which request this answers.
        if self.peer == Peer::Sockperf && !sockperf::is_pong_to(&self.reply, &self.msg) {
            return Err(LabError::failed(format!(
                "{} answered request {} with something other than its pong",
                self.addr, self.seq
            ))
            .fix("is it a `sockperf server --tcp`? For a lab server, drop --peer sockperf")
            .into());
        }
        out.push(t1.duration_since(t0).as_nanos() as u64);
        Ok(true)
    }
}

/// UDP requests lost in a row after which the server is declared gone: as long as a TCP
/// reply may take ([`TCP_TIMEOUT`]), so a stopped server ends the run instead of
/// counting losses forever.
const MAX_LOST_IN_A_ROW: u32 = (TCP_TIMEOUT.as_millis() / UDP_TIMEOUT.as_millis()) as u32;

/// UDP ping-pong.
pub struct UdpProbe {
    /// A socket connected to the server (so the kernel filters other senders and
    /// reports ICMP port-unreachable as ECONNREFUSED).
    sock: UdpSocket,
    /// The server.
    addr: SocketAddr,
    /// The message. A lab server gets the request number in its first 8 bytes (or
    /// fewer); sockperf's header has a field for it. Either way a late echo of an
    /// earlier request is not taken for this one.
    msg: Vec<u8>,
    /// Where the echo lands (one byte larger, to notice a longer datagram).
    reply: Vec<u8>,
    /// Request number.
    seq: u64,
    /// Requests lost since the last answer.
    lost_in_a_row: u32,
    /// A reply was `msg` unchanged (an echo server) while sockperf's pong was expected.
    plain_echo: bool,
    /// Spin instead of blocking.
    busy: bool,
    /// What the server speaks.
    peer: Peer,
    /// Open loop pacing, if any.
    pacer: Option<Pacer>,
}

impl UdpProbe {
    /// Opens the socket and checks the server answers (three tries, as a datagram may be
    /// lost; a refusal means nothing listens there).
    pub fn connect(addr: SocketAddr, setup: Setup) -> Result<UdpProbe> {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()?;
        let sock = UdpSocket::bind(local)?;
        sock.connect(addr)
            .map_err(|e| unreachable(addr, e, setup.peer))?;
        // Set once: a blocking recv wakes up after this long and the request counts as
        // lost (a timeout costs nothing per message: measured against none, same run).
        sock.set_read_timeout(Some(UDP_TIMEOUT))?;
        let mut p = UdpProbe {
            sock,
            addr,
            msg: setup.message(),
            reply: vec![0u8; setup.size + 1],
            seq: 0,
            lost_in_a_row: 0,
            plain_echo: false,
            busy: false,
            peer: setup.peer,
            pacer: None,
        };
        let mut ok = false;
        for _ in 0..3 {
            if p.sample(&mut Vec::new())? {
                ok = true;
                break;
            }
        }
        if !ok {
            let err = match setup.peer {
                Peer::Lab => LabError::usage(format!("no UDP echo from {addr} in 3 tries"))
                    .fix("start `lab latency --role server --bind ADDR` there (it serves UDP on the same port), and check no firewall drops UDP; a `sockperf server` answers only with --peer sockperf"),
                Peer::Sockperf if p.plain_echo => LabError::usage(format!(
                    "{addr} echoes datagrams unchanged: it is an echo server, not a `sockperf server`"
                ))
                .fix("drop --peer sockperf to measure an echo server (a lab server is one)"),
                Peer::Sockperf => LabError::usage(format!("no sockperf pong from {addr} in 3 tries"))
                    .fix(format!("start `sockperf server -i {} -p {}` there (UDP: without --tcp), and check no firewall drops UDP", addr.ip(), addr.port())),
            };
            return Err(err.into());
        }
        if setup.busy {
            p.sock.set_nonblocking(true)?;
        }
        p.busy = setup.busy;
        p.pacer = setup.rate.map(Pacer::new);
        Ok(p)
    }

    /// The socket's kernel buffer sizes.
    pub fn buffers(&self) -> (Option<usize>, Option<usize>) {
        buffer_sizes(SockRef::from(&self.sock))
    }

    /// Whether the first `n` bytes of `reply` answer the current request.
    fn answers(&mut self, n: usize) -> bool {
        let reply = &self.reply[..n];
        match self.peer {
            Peer::Lab => reply == &self.msg[..],
            Peer::Sockperf => {
                let pong = sockperf::is_pong_to(reply, &self.msg);
                // Only a reply that is not the pong is looked at twice (for the error
                // that names an echo server), so the hot path compares once.
                if !pong && reply == &self.msg[..] {
                    self.plain_echo = true;
                }
                pong
            }
        }
    }

    /// A request got no answer in time: lost, or the end of the run when too many were.
    fn lost(&mut self) -> Result<bool> {
        self.lost_in_a_row += 1;
        if self.lost_in_a_row >= MAX_LOST_IN_A_ROW {
            return Err(LabError::failed(format!(
                "no UDP answer from {} for {} s ({} requests in a row)",
                self.addr,
                TCP_TIMEOUT.as_secs(),
                self.lost_in_a_row
            ))
            .fix("is the server still running? The report keeps the sizes measured so far")
            .into());
        }
        Ok(false)
    }
}

impl Probe for UdpProbe {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        self.seq += 1;
        match self.peer {
            Peer::Lab => {
                let tag = self.seq.to_be_bytes();
                let n = self.msg.len().min(8);
                self.msg[..n].copy_from_slice(&tag[8 - n..]);
            }
            Peer::Sockperf => sockperf::emit_ping(&mut self.msg, self.seq),
        }
        let t0 = match &mut self.pacer {
            Some(p) => p.wait(self.busy),
            None => Instant::now(),
        };
        let deadline = Instant::now() + UDP_TIMEOUT;
        loop {
            match self.sock.send(&self.msg) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The kernel's send buffer is full (busy mode): try again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {}
                Err(e) => return Err(unreachable(self.addr, e, self.peer).into()),
            }
        }
        loop {
            match self.sock.recv(&mut self.reply) {
                Ok(n) => {
                    let t1 = Instant::now();
                    if self.answers(n) {
                        self.lost_in_a_row = 0;
                        out.push(t1.duration_since(t0).as_nanos() as u64);
                        return Ok(true);
                    }
                    // An echo of an earlier, timed-out request: not ours, keep waiting.
                    if Instant::now() >= deadline {
                        return self.lost();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return self.lost();
                    }
                    if self.busy {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => {
                    return Err(unreachable(self.addr, e, self.peer))
                        .context("waiting for a UDP echo")
                }
            }
        }
    }
}
