//! The sender: numbered datagrams at a steady rate (paced by timers, batched with
//! sendmmsg), then "I sent N" several times, so one lost end marker loses nothing.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;
use serde::Serialize;

use super::{Args, END_PAUSE, END_SPACING, MAX_BURST};
use crate::core::{Ctx, EventLoop, Handler, Limits, TimerId, UdpId};
use crate::error::LabError;
use crate::impair::{self};
use crate::out::progress;
use crate::sys::MAX_BATCH;
use crate::wire::epoch_ns;
use crate::wire::probe::{Kind, Packet, Repr};

/// What the sender reports.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SenderReport {
    /// Data datagrams the kernel accepted (iperf3: `packets`).
    pub(super) packets: u64,
    /// Their bytes.
    pub(super) bytes: u64,
    /// Seconds from the first to the last data datagram.
    pub(super) seconds: f64,
    /// Datagrams per second achieved.
    pub(super) packets_per_second: f64,
    /// The session id, in hex.
    pub(super) session: String,
    /// End markers sent.
    pub(super) end_markers: u32,
}

/// Where the sender is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sending data datagrams.
    Data,
    /// Sending end markers; this many are left.
    Ending(u32),
}

/// The sender's state: a [`Handler`] driven by its own timers.
pub(super) struct Sender {
    /// Its UDP socket, connected to the destination.
    sock: UdpId,
    /// This run's random id.
    session: u64,
    /// First sequence number.
    first_seq: u64,
    /// Datagram size.
    size: usize,
    /// Stop after this many data datagrams...
    count: Option<u64>,
    /// ...or at this time.
    until: Option<Instant>,
    /// Datagrams per second (`None`: as fast as possible).
    pps: Option<f64>,
    /// When sending started.
    start: Instant,
    /// When the last data datagram went out.
    last: Instant,
    /// Data datagrams the kernel took.
    sent: u64,
    /// One zeroed buffer per batch slot; only the header is rewritten.
    bufs: Vec<Vec<u8>>,
    /// Current phase.
    phase: Phase,
    /// End markers to send.
    end_markers: u32,
    /// Progress on stderr (hidden off a terminal).
    bar: ProgressBar,
    /// A send error that ended the run.
    error: Option<io::Error>,
}

impl Sender {
    fn done_sending(&self, now: Instant) -> bool {
        self.count.is_some_and(|c| self.sent >= c) || self.until.is_some_and(|u| now >= u)
    }

    /// Sends data datagrams up to `target` in sendmmsg batches. Returns false if the
    /// kernel's buffer filled up first.
    fn send_until(&mut self, ctx: &mut Ctx, target: u64) -> io::Result<bool> {
        // After a batch stopped part way, the next batch is a single datagram. Why:
        // sendmmsg stops when one datagram fails, returns the count sent and drops the
        // error. If the error was ECONNREFUSED (nothing listens: the ICMP reply to the
        // previous datagram), one datagram alone provokes it again, and the following
        // batch then fails on its first datagram and reports it. A full buffer instead
        // answers the lone datagram with WouldBlock, and we wait.
        let mut single = false;
        while self.sent < target {
            let k = if single {
                1
            } else {
                ((target - self.sent) as usize).min(MAX_BATCH)
            };
            let t = epoch_ns();
            for (i, buf) in self.bufs.iter_mut().take(k).enumerate() {
                let h = Repr {
                    kind: Kind::Data,
                    session: self.session,
                    seq: self.first_seq + self.sent + i as u64,
                    sent_ns: t,
                };
                h.emit(&mut Packet::new_unchecked(&mut buf[..]));
            }
            let slices: Vec<&[u8]> = self.bufs[..k].iter().map(|b| &b[..]).collect();
            let n = ctx.send_batch(self.sock, &slices, None)?;
            self.sent += n as u64;
            if n == 0 {
                return Ok(false); // the kernel's buffer is full
            }
            single = n < k;
        }
        Ok(true)
    }

    fn send_end_marker(&mut self, ctx: &mut Ctx) -> io::Result<()> {
        let mut buf = vec![0u8; self.size];
        Repr {
            kind: Kind::End,
            session: self.session,
            seq: self.sent,
            sent_ns: epoch_ns(),
        }
        .emit(&mut Packet::new_unchecked(&mut buf[..]));
        ctx.send_batch(self.sock, &[&buf], None)?;
        Ok(())
    }

    fn report(&self) -> SenderReport {
        let seconds = self.last.duration_since(self.start).as_secs_f64();
        SenderReport {
            packets: self.sent,
            bytes: self.sent * self.size as u64,
            seconds,
            packets_per_second: if seconds > 0.0 {
                self.sent as f64 / seconds
            } else {
                0.0
            },
            session: format!("{:016x}", self.session),
            end_markers: self.end_markers,
        }
    }
}

impl Handler for Sender {
    // Ctrl-C while sending: stop sending data but still send the end markers, so the
    // receiver learns the count. A second Ctrl-C stops at once.
    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        match self.phase {
            Phase::Data if self.count != Some(self.sent) => self.count = Some(self.sent),
            _ => ctx.stop(),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx, _t: TimerId) {
        let now = Instant::now();
        let result = match self.phase {
            Phase::Data => {
                // Paced: as many as are due by now (so a late timer catches up). Max: a
                // burst, then yield to the loop.
                let mut target = match self.pps {
                    Some(pps) => (now.duration_since(self.start).as_secs_f64() * pps) as u64,
                    None => self.sent + MAX_BURST,
                };
                if let Some(c) = self.count {
                    target = target.min(c);
                }
                // Sequence numbers never wrap: stop at the last one there is.
                target = target.min(u64::MAX - self.first_seq);
                if self.until.is_some_and(|u| now >= u) {
                    target = self.sent;
                }
                match self.send_until(ctx, target) {
                    Ok(all) => {
                        self.last = Instant::now();
                        self.bar.set_position(self.sent);
                        if self.done_sending(Instant::now()) {
                            self.phase = Phase::Ending(self.end_markers);
                            ctx.timer_after(END_PAUSE);
                        } else if !all {
                            // The kernel's send buffer is full: try again very soon.
                            ctx.timer_after(Duration::from_micros(100));
                        } else if let Some(pps) = self.pps {
                            // Next tick when the next datagram is due, at least 1 ms on.
                            let next = Duration::from_secs_f64((1.0 / pps).max(0.001));
                            ctx.timer_after(next);
                        } else {
                            ctx.timer_after(Duration::ZERO);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Phase::Ending(0) => {
                ctx.stop();
                Ok(())
            }
            Phase::Ending(left) => {
                self.phase = Phase::Ending(left - 1);
                let r = match self.send_end_marker(ctx) {
                    // A receiver that had everything leaves at the first end marker;
                    // its host then refuses the rest. That is the normal end.
                    Err(e)
                        if e.kind() == io::ErrorKind::ConnectionRefused
                            && left < self.end_markers =>
                    {
                        ctx.stop();
                        Ok(())
                    }
                    r => r,
                };
                ctx.timer_after(if left > 1 {
                    END_SPACING
                } else {
                    Duration::ZERO
                });
                r
            }
        };
        if let Err(e) = result {
            self.error = Some(e);
            ctx.stop();
        }
    }
}

/// Runs a sender to completion on its own loop.
pub(super) fn send(
    to: SocketAddr,
    args: &Args,
    pps: Option<f64>,
    count: Option<u64>,
    show_bar: bool,
) -> Result<SenderReport> {
    let local: SocketAddr = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse()?;
    let mut ev = EventLoop::with_limits(Limits::default())?.with_signals()?;
    let udp = UdpSocket::bind(local)?;
    // Connected: the kernel looks the route up once instead of per datagram, and a
    // "port unreachable" from the receiver's host comes back as ECONNREFUSED.
    udp.connect(to)?;
    let sock = ev.ctx().adopt_udp(udp, 1)?;
    let mut session = impair::Rng::new(epoch_ns() ^ u64::from(std::process::id()));
    let total = count.unwrap_or(0);
    let bar = if show_bar && total > 0 {
        progress(total, "sending")
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut s = Sender {
        sock,
        session: session.next_u64(),
        first_seq: args.first_seq,
        size: args.size,
        count,
        until: args.duration.map(|d| start + d),
        pps,
        start,
        last: start,
        sent: 0,
        bufs: vec![vec![0u8; args.size]; MAX_BATCH],
        phase: Phase::Data,
        end_markers: args.end_markers,
        bar,
        error: None,
    };
    ev.ctx().timer_after(Duration::ZERO);
    ev.run(&mut s)?;
    s.bar.finish_and_clear();
    if let Some(e) = s.error {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            return Err(LabError::usage(format!(
                "{to} refused the datagrams after {} were sent: nothing listens there",
                s.sent
            ))
            .fix("start the receiver first (`lab run 03 --role receiver`), or check --connect")
            .into());
        }
        return Err(anyhow::Error::new(e).context(format!("sending to {to}")));
    }
    Ok(s.report())
}
