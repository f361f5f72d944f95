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

/// [`connect_error`] with the fix that fits here: the peer must be a latency server.
pub fn unreachable(addr: SocketAddr, e: io::Error) -> LabError {
    let refused = e.kind() == io::ErrorKind::ConnectionRefused;
    let err = connect_error(addr, e);
    if refused {
        err.fix(format!(
            "start the server first: `lab latency --role server --bind 0.0.0.0:{}` on that machine, or check the host and port",
            addr.port()
        ))
    } else {
        err
    }
}

use super::probe::Probe;
use crate::rng::Rng;

/// First bytes of a ping-pong hello.
pub const HELLO_MAGIC: [u8; 2] = *b"LP";
/// Bytes of a hello.
pub const HELLO_LEN: usize = 8;
/// Largest TCP message: the server holds one whole message per client, so it is bounded;
/// 1 MiB is far beyond where loopback latency stops being about system calls.
pub const MAX_TCP_SIZE: usize = 1 << 20;
/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const MAX_UDP_SIZE: usize = 65_507;
/// How long a reply may take before the server is declared gone (TCP) or the datagram
/// lost (UDP). Loopback answers in microseconds; a LAN in well under a millisecond.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// UDP: after this long without the echo, the request counts as lost.
pub const UDP_TIMEOUT: Duration = Duration::from_millis(250);

/// A TCP client's opening: `b"LP"`, version 1, flags (bit 0: TCP_NODELAY), then the
/// message size as a big-endian u32. The server echoes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Bytes per message, both ways.
    pub size: usize,
    /// Whether both ends disable Nagle's algorithm.
    pub nodelay: bool,
}

impl Hello {
    /// The 8 bytes on the wire.
    pub fn to_bytes(self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..2].copy_from_slice(&HELLO_MAGIC);
        b[2] = 1;
        b[3] = u8::from(self.nodelay);
        b[4..].copy_from_slice(&(self.size as u32).to_be_bytes());
        b
    }

    /// Reads a hello; None when the bytes are not one (wrong magic or version).
    pub fn parse(b: &[u8]) -> Option<Hello> {
        if b.len() < HELLO_LEN || b[..2] != HELLO_MAGIC || b[2] != 1 {
            return None;
        }
        Some(Hello {
            nodelay: b[3] & 1 == 1,
            size: u32::from_be_bytes(b[4..8].try_into().ok()?) as usize,
        })
    }
}

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
    /// Write each message in two halves (a header, then a body) to show Nagle.
    split: bool,
    /// Spin instead of blocking.
    busy: bool,
    /// Open loop pacing, if any.
    pacer: Option<Pacer>,
}

impl TcpProbe {
    /// Connects, says hello, and checks the server echoes it.
    pub fn connect(
        addr: SocketAddr,
        size: usize,
        nodelay: bool,
        split: bool,
        busy: bool,
        rate: Option<f64>,
        seed: u64,
    ) -> Result<TcpProbe> {
        let mut stream =
            TcpStream::connect_timeout(&addr, TCP_TIMEOUT).map_err(|e| unreachable(addr, e))?;
        stream.set_nodelay(nodelay)?;
        stream.set_read_timeout(Some(TCP_TIMEOUT))?;
        let hello = Hello { size, nodelay }.to_bytes();
        stream.write_all(&hello)?;
        let mut back = [0u8; HELLO_LEN];
        let deadline = Instant::now() + TCP_TIMEOUT;
        if read_full(&mut stream, &mut back, false, deadline).is_err() || back != hello {
            return Err(LabError::usage(format!(
                "{addr} is not a lab latency server (it did not answer our hello)"
            ))
            .fix("start `lab latency --role server --bind ADDR` there, or check the port")
            .into());
        }
        if busy {
            stream.set_nonblocking(true)?;
        }
        let mut msg = vec![0u8; size];
        Rng::new(seed).fill(&mut msg);
        Ok(TcpProbe {
            stream,
            addr,
            msg,
            reply: vec![0u8; size],
            split,
            busy,
            pacer: rate.map(Pacer::new),
        })
    }

    /// The socket's kernel buffer sizes.
    pub fn buffers(&self) -> (Option<usize>, Option<usize>) {
        buffer_sizes(SockRef::from(&self.stream))
    }
}

impl Probe for TcpProbe {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
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
        out.push(t1.duration_since(t0).as_nanos() as u64);
        Ok(true)
    }
}

/// UDP ping-pong.
pub struct UdpProbe {
    /// A socket connected to the server (so the kernel filters other senders and
    /// reports ICMP port-unreachable as ECONNREFUSED).
    sock: UdpSocket,
    /// The server.
    addr: SocketAddr,
    /// The message; its first 8 bytes (or fewer) carry the request number, so a late
    /// echo of an earlier request is not taken for this one.
    msg: Vec<u8>,
    /// Where the echo lands (one byte larger, to notice a longer datagram).
    reply: Vec<u8>,
    /// Request number.
    seq: u64,
    /// Spin instead of blocking.
    busy: bool,
    /// Open loop pacing, if any.
    pacer: Option<Pacer>,
}

impl UdpProbe {
    /// Opens the socket and checks the server echoes (three tries, as a datagram may be
    /// lost; a refusal means nothing listens there).
    pub fn connect(
        addr: SocketAddr,
        size: usize,
        busy: bool,
        rate: Option<f64>,
        seed: u64,
    ) -> Result<UdpProbe> {
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()?;
        let sock = UdpSocket::bind(local)?;
        sock.connect(addr).map_err(|e| unreachable(addr, e))?;
        let mut msg = vec![0u8; size];
        Rng::new(seed).fill(&mut msg);
        let mut p = UdpProbe {
            sock,
            addr,
            msg,
            reply: vec![0u8; size + 1],
            seq: 0,
            busy: false,
            pacer: None,
        };
        let mut ok = false;
        for _ in 0..3 {
            let mut v = Vec::new();
            if p.sample(&mut v)? {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(LabError::usage(format!("no UDP echo from {addr} in 3 tries"))
                .fix("start `lab latency --role server --bind ADDR` there (it serves UDP on the same port), and check no firewall drops UDP")
                .into());
        }
        if busy {
            p.sock.set_nonblocking(true)?;
        }
        p.busy = busy;
        p.pacer = rate.map(Pacer::new);
        Ok(p)
    }

    /// The socket's kernel buffer sizes.
    pub fn buffers(&self) -> (Option<usize>, Option<usize>) {
        buffer_sizes(SockRef::from(&self.sock))
    }
}

impl Probe for UdpProbe {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        self.seq += 1;
        let tag = self.seq.to_be_bytes();
        let n = self.msg.len().min(8);
        self.msg[..n].copy_from_slice(&tag[8 - n..]);
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
                Err(e) => return Err(unreachable(self.addr, e).into()),
            }
        }
        loop {
            match self.sock.recv(&mut self.reply) {
                Ok(n) => {
                    let t1 = Instant::now();
                    if n == self.msg.len() && self.reply[..n] == self.msg[..] {
                        out.push(t1.duration_since(t0).as_nanos() as u64);
                        return Ok(true);
                    }
                    // An echo of an earlier, timed-out request: not ours, keep waiting.
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                    if self.busy {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => return Err(unreachable(self.addr, e)).context("waiting for a UDP echo"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let h = Hello {
            size: 1024,
            nodelay: true,
        };
        let b = h.to_bytes();
        assert_eq!(&b, b"LP\x01\x01\x00\x00\x04\x00");
        assert_eq!(Hello::parse(&b), Some(h));
        assert_eq!(Hello::parse(b"LS\x01\x01\x00\x00\x04\x00"), None);
        assert_eq!(Hello::parse(b"LP\x01"), None);
    }
}
