//! The stream consumer: subscribe to samples produced at a fixed rate and sent in
//! buffers of N, and record the age of every sample when its buffer arrives.
//!
//! Age = arrival time - production time. The producer stamps each buffer with its
//! first sample's production time by the wall clock (`CLOCK_REALTIME`), the one clock
//! two processes can compare. On one machine both ends read the same clock, so ages are
//! exact. Across machines the clocks differ by an unknown offset: we estimate it NTP-style
//! from a few round trips (offset = server time - midpoint of our send and receive times,
//! from the fastest round trip) and subtract it; the estimate is good to about half that
//! round trip, which the report states.
//!
//! Like the ping-pong client this is a plain blocking (or `--busy-poll` spinning) loop
//! on one socket: it only ever waits for the next buffer.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Result;
use socket2::SockRef;

use crate::error::LabError;
use crate::wire::epoch_ns;
use crate::wire::stamped::{self, Decoded, Frame, Kind, Repr};

use super::pingpong::buffer_sizes;
use super::probe::Probe;

/// Clock probes sent to estimate the offset across machines; the fastest wins.
const CLOCK_PROBES: u32 = 16;

/// A stream subscriber.
pub struct StreamProbe {
    /// The connection.
    stream: TcpStream,
    /// The producer.
    addr: SocketAddr,
    /// Bytes received and not yet parsed; at most one frame plus one read.
    inbound: Vec<u8>,
    /// Producer clock minus ours, in ns (0 on one machine).
    offset_ns: i64,
    /// Longest wait for one buffer before the producer is declared gone.
    timeout: Duration,
    /// Spin instead of blocking.
    busy: bool,
}

/// How the offset was found, for the report.
#[derive(Debug, Clone)]
pub struct ClockNote {
    /// Producer clock minus ours, in ns.
    pub offset_ns: i64,
    /// Half the fastest probe's round trip: the offset's uncertainty, in ns.
    pub uncertainty_ns: u64,
}

impl StreamProbe {
    /// Connects, estimates the clock offset if the producer is on another machine, and
    /// subscribes to `n` samples per buffer at `rate` per second.
    pub fn connect(
        addr: SocketAddr,
        n: usize,
        rate: f64,
        busy: bool,
    ) -> Result<(StreamProbe, Option<ClockNote>)> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| super::pingpong::unreachable(addr, e, super::Peer::Lab))?;
        stream.set_nodelay(true)?;
        // A buffer takes (N-1)/rate to fill; allow that plus two seconds of slack.
        let timeout = Duration::from_secs_f64(n as f64 / rate + 2.0);
        stream.set_read_timeout(Some(timeout))?;
        let mut p = StreamProbe {
            stream,
            addr,
            inbound: Vec::new(),
            offset_ns: 0,
            timeout,
            busy: false,
        };
        let note = if addr.ip().is_loopback() {
            None
        } else {
            Some(p.sync_clock()?)
        };
        if let Some(n) = &note {
            p.offset_ns = n.offset_ns;
        }
        let sub = Repr {
            kind: Kind::Subscribe,
            seq: n as u32,
            t0_ns: 0,
            period_ns: (1e9 / rate).round() as u32,
            samples: Vec::new(),
        };
        p.stream.write_all(&sub.to_bytes())?;
        if busy {
            p.stream.set_nonblocking(true)?;
            p.busy = true;
        }
        Ok((p, note))
    }

    /// The socket's kernel buffer sizes.
    pub fn buffers(&self) -> (Option<usize>, Option<usize>) {
        buffer_sizes(SockRef::from(&self.stream))
    }

    /// NTP's estimate: for a probe sent at t0 and answered at t1, the server's stamp ts
    /// was taken about midway, so offset = ts - (t0 + t1) / 2, within +-(t1 - t0) / 2.
    fn sync_clock(&mut self) -> Result<ClockNote> {
        let mut best: Option<(u64, i64)> = None;
        for i in 0..CLOCK_PROBES {
            let t0 = epoch_ns();
            let req = Repr {
                kind: Kind::ClockRequest,
                seq: i,
                t0_ns: t0,
                period_ns: 0,
                samples: Vec::new(),
            };
            self.stream.write_all(&req.to_bytes())?;
            let reply = self.next_frame()?;
            let t1 = epoch_ns();
            let f = Frame::new_unchecked(&reply[..]);
            if f.kind() != Some(Kind::ClockReply) || f.seq() != i {
                continue;
            }
            let rtt = t1.saturating_sub(t0);
            let offset = f.t0_ns() as i64 - ((t0 as i128 + t1 as i128) / 2) as i64;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset_ns) = best
            .ok_or_else(|| LabError::usage(format!("{} did not answer clock probes", self.addr)))?;
        Ok(ClockNote {
            offset_ns,
            uncertainty_ns: rtt / 2,
        })
    }

    /// Reads until one whole frame is buffered and returns its bytes.
    fn next_frame(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match stamped::decode(&self.inbound) {
                Decoded::Frame(len) => return Ok(self.inbound.drain(..len).collect()),
                Decoded::Invalid(e) => {
                    return Err(LabError::usage(format!(
                        "{} is not a lab latency server: {e}",
                        self.addr
                    ))
                    .fix("point --connect at `lab latency --role server`, or at `lab run 07 --role server --framing stamped` (a raw 07 server sends bare samples)")
                    .into())
                }
                Decoded::Incomplete => {}
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => anyhow::bail!("{} closed the stream", self.addr),
                Ok(n) => self.inbound.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !self.busy || Instant::now() > deadline {
                        return Err(LabError::failed(format!(
                            "no samples from {} for {:.1} s",
                            self.addr,
                            self.timeout.as_secs_f64()
                        ))
                        .into());
                    }
                    std::hint::spin_loop();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Probe for StreamProbe {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        loop {
            let bytes = self.next_frame()?;
            let now = epoch_ns() as i128;
            let f = Frame::new_unchecked(&bytes[..]);
            if f.kind() != Some(Kind::Samples) {
                continue; // a late clock reply
            }
            for i in 0..f.samples().len() {
                // The sample's production time on our clock.
                let produced = f.produced_ns(i) as i128 - self.offset_ns as i128;
                // A negative age can only come from clock error: clamp, never wrap.
                out.push((now - produced).max(0) as u64);
            }
            return Ok(true);
        }
    }
}
