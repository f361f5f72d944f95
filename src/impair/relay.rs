//! The relay on the event loop: datagrams in from `--listen`, decided by the
//! [`super::Impairer`], queued (bounded) and sent to `--forward` when due; replies go
//! back to the last sender. Its [`RelayStats`] are the ground truth of lab 03.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::{Impairer, Settings, BATCH, HOLD_LIMIT, MAX_HELD, MAX_QUEUED_BYTES, RCVBUF};
use crate::core::{Ctx, Datagram, EventLoop, Handler, TimerId, UdpId, MAX_DATAGRAM};
use crate::error::bind_error;
use crate::wire::probe::{Kind, Repr};

/// What the relay did; every field is an exact count.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RelayStats {
    /// Data datagrams that arrived from senders.
    pub datagrams: u64,
    /// Data datagrams passed on to the forward address (originals, not copies).
    pub forwarded: u64,
    /// Data datagrams dropped on purpose.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams sent after a later one (held back and overtaken).
    pub reordered: u64,
    /// Data datagrams that waited in the delay queue (delay > 0), copies included.
    pub delayed: u64,
    /// Probe end markers seen (counted apart from data).
    pub end_markers: u64,
    /// Of those, dropped on purpose.
    pub end_markers_dropped: u64,
    /// Datagrams the relay had to drop itself: its queue was full or the kernel refused
    /// the send. Not an impairment decision.
    pub overflow: u64,
    /// Datagrams the kernel dropped before the relay could read them (its receive
    /// buffer was full; SO_RXQ_OVFL). Also not a decision.
    pub kernel_drops: u64,
    /// Replies from the forward address sent back to the sender (not impaired).
    pub returned: u64,
}

/// One datagram waiting to leave.
struct Pending {
    /// When it may leave.
    at: Instant,
    /// Its bytes.
    data: Vec<u8>,
    /// A probe end marker (counted apart).
    end: bool,
    /// The second copy of a duplicated datagram.
    copy: bool,
}

/// What one queued datagram really costs, beyond its payload: its [`Pending`] in the
/// queue (whose ring may be up to twice as long as it is full) and the allocator's
/// smallest chunk for its bytes (32 bytes in glibc, even for an empty datagram). Counting
/// payload only let a flood of 0- and 1-byte datagrams take 375 MB under a 64 MiB cap.
const ENTRY_COST: usize = 2 * std::mem::size_of::<Pending>() + 32;

/// Datagrams sent at most when stopping (Ctrl-C, or the demo's stop): a few hundred
/// milliseconds of sending; the rest of a queue full of long delays is counted as
/// overflow, so stopping stays prompt whatever is queued.
const STOP_FLUSH: usize = 100_000;

/// And the longest that sending may take: on a busy machine (a soak at load 30) the
/// 100,000 sends took 7 s of Ctrl-C. What is not sent by then is counted as overflow.
const STOP_FLUSH_TIME: Duration = Duration::from_millis(300);

/// The memory a queued datagram holds, counted against [`MAX_QUEUED_BYTES`].
fn cost(p: &Pending) -> usize {
    p.data.capacity() + ENTRY_COST
}

/// The relay: a [`Handler`] on one UDP socket.
pub struct Relay {
    /// The decision stream.
    imp: Impairer,
    /// Where datagrams go.
    forward: SocketAddr,
    /// The last sender seen; replies from `forward` go back to it.
    client: Option<SocketAddr>,
    /// The relay's socket.
    sock: UdpId,
    /// Datagrams waiting for their delay, in FIFO order of `at`.
    queue: VecDeque<Pending>,
    /// Memory held by `queue` (payload plus [`ENTRY_COST`] each), bounded by
    /// [`MAX_QUEUED_BYTES`].
    queued_bytes: usize,
    /// Datagrams held back for reordering (with their copies), oldest first.
    held: Vec<Pending>,
    /// When the oldest held datagram was held.
    held_since: Option<Instant>,
    /// The release time of the newest queued datagram (FIFO: none leaves before it).
    last_at: Option<Instant>,
    /// The armed timer and its deadline.
    timer: Option<(TimerId, Instant)>,
    /// Exact counts.
    pub stats: RelayStats,
}

impl Relay {
    /// Binds `listen` on `ev` and returns the relay and the bound address.
    pub fn bind(
        ev: &mut EventLoop,
        listen: SocketAddr,
        forward: SocketAddr,
        settings: Settings,
    ) -> Result<(Relay, SocketAddr)> {
        let sock = UdpSocket::bind(listen).map_err(|e| bind_error(listen, e, "--listen"))?;
        // A large receive buffer, so a relay descheduled for a moment does not drop
        // datagrams it was not asked to drop (those would show up as kernel_drops).
        crate::sys::set_recv_buffer(&sock, RCVBUF)?;
        let local = sock.local_addr()?;
        let token = ev.ctx().adopt_udp_batched(sock, MAX_DATAGRAM, BATCH)?;
        let relay = Relay {
            imp: Impairer::new(settings),
            forward,
            client: None,
            sock: token,
            queue: VecDeque::new(),
            queued_bytes: 0,
            held: Vec::new(),
            held_since: None,
            last_at: None,
            timer: None,
            stats: RelayStats::default(),
        };
        Ok((relay, local))
    }

    /// Sends one datagram now and counts it.
    fn send(&mut self, ctx: &mut Ctx, p: &Pending) {
        let ok = matches!(ctx.send_to(self.sock, &p.data, self.forward), Ok(true));
        match (ok, p.end, p.copy) {
            (false, _, _) => self.stats.overflow += 1,
            (true, true, _) => {}
            (true, false, false) => self.stats.forwarded += 1,
            (true, false, true) => self.stats.duplicated += 1,
        }
    }

    /// Puts a datagram in the delay queue (or sends it now when nothing waits).
    fn enqueue(&mut self, ctx: &mut Ctx, p: Pending) {
        let now = Instant::now();
        if self.queue.is_empty() && p.at <= now {
            self.send(ctx, &p);
            return;
        }
        if self.queued_bytes + cost(&p) > MAX_QUEUED_BYTES {
            self.stats.overflow += 1;
            return;
        }
        if p.at > now && !p.end {
            self.stats.delayed += 1;
        }
        // FIFO: never before the datagram queued ahead of it.
        let at = self.last_at.map_or(p.at, |last| p.at.max(last));
        self.last_at = Some(at);
        self.queued_bytes += cost(&p);
        self.queue.push_back(Pending { at, ..p });
    }

    /// Sends what is due and lets held datagrams go once nobody overtook them in time.
    pub(super) fn release(&mut self, ctx: &mut Ctx, everything: bool) {
        let now = Instant::now();
        if self
            .held_since
            .is_some_and(|t| everything || now >= t + HOLD_LIMIT)
        {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                self.enqueue(ctx, Pending { at: now, ..p });
            }
        }
        let mut sent = 0;
        while let Some(front) = self.queue.front() {
            if !everything && front.at > now {
                break;
            }
            // The clock is read once per 1024 sends: cheap, and 1024 sends take ~1 ms.
            let late = sent % 1024 == 1023 && now.elapsed() > STOP_FLUSH_TIME;
            if everything && (sent == STOP_FLUSH || late) {
                // Stopping: what is left would take too long to send; count it.
                self.stats.overflow += self.queue.len() as u64;
                self.queue.clear();
                self.queued_bytes = 0;
                break;
            }
            let p = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= cost(&p);
            self.send(ctx, &p);
            sent += 1;
        }
        self.arm(ctx);
    }

    /// Keeps one timer armed for the earliest thing to do.
    fn arm(&mut self, ctx: &mut Ctx) {
        let next = [
            self.queue.front().map(|p| p.at),
            self.held_since.map(|t| t + HOLD_LIMIT),
        ]
        .into_iter()
        .flatten()
        .min();
        match (next, self.timer) {
            (Some(at), Some((_, armed))) if armed <= at => {}
            (Some(at), old) => {
                if let Some((id, _)) = old {
                    ctx.cancel_timer(id);
                }
                self.timer = Some((ctx.timer_at(at), at));
            }
            (None, _) => {}
        }
    }

    /// The impairment path for a datagram from a sender.
    fn impair(&mut self, ctx: &mut Ctx, data: &[u8]) {
        let end = matches!(
            Repr::parse_bytes(data),
            Ok(Repr {
                kind: Kind::End,
                ..
            })
        );
        if end {
            self.stats.end_markers += 1;
        } else {
            self.stats.datagrams += 1;
        }
        let d = self.imp.decide();
        if d.drop {
            if end {
                self.stats.end_markers_dropped += 1;
            } else {
                self.stats.dropped += 1;
            }
            return;
        }
        let at = Instant::now() + d.delay;
        let mut copies = vec![Pending {
            at,
            data: data.to_vec(),
            end,
            copy: false,
        }];
        if d.duplicate {
            copies.push(Pending {
                at,
                data: data.to_vec(),
                end,
                copy: true,
            });
        }
        // An end marker is never held back and never overtakes data: data still held
        // leaves first, in order. So a receiver that stops at the first end marker has
        // seen every datagram that was going to arrive.
        if end && !self.held.is_empty() {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                self.enqueue(ctx, Pending { at, ..p });
            }
        }
        if d.reorder && !end && self.held.len() + copies.len() <= MAX_HELD {
            self.held_since.get_or_insert_with(Instant::now);
            self.held.extend(copies);
            self.arm(ctx);
            return;
        }
        for p in copies {
            self.enqueue(ctx, p);
        }
        // Whatever is still held leaves right behind this data datagram: it has been
        // overtaken, and a receiver will see a sequence number lower than one it has.
        if !self.held.is_empty() {
            self.held_since = None;
            for p in std::mem::take(&mut self.held) {
                if !p.end && !p.copy {
                    self.stats.reordered += 1;
                }
                self.enqueue(ctx, Pending { at, ..p });
            }
        }
        self.arm(ctx);
    }
}

impl Handler for Relay {
    // From a sender: impair and forward. From the forward address: a reply, pass it back.
    fn on_datagram(&mut self, ctx: &mut Ctx, _sock: UdpId, d: Datagram<'_>) {
        if d.from == self.forward {
            if let Some(client) = self.client {
                if matches!(ctx.send_to(self.sock, d.data, client), Ok(true)) {
                    self.stats.returned += 1;
                }
            }
            return;
        }
        self.client = Some(d.from);
        self.impair(ctx, d.data);
    }

    // ECONNREFUSED for an earlier send (nothing listens at the forward address yet):
    // that datagram is gone, like on a real network. Keep relaying.
    fn on_udp_error(&mut self, _ctx: &mut Ctx, _sock: UdpId, _err: &io::Error) {}

    fn on_kernel_drops(&mut self, _ctx: &mut Ctx, _sock: UdpId, total: u64) {
        self.stats.kernel_drops = total;
    }

    fn on_timer(&mut self, ctx: &mut Ctx, _timer: TimerId) {
        self.timer = None;
        self.release(ctx, false);
    }

    // LoopThread::stop (lab 03's demo): send what is still queued, so counts are final.
    fn on_stop(&mut self, ctx: &mut Ctx) {
        self.release(ctx, true);
    }

    // Ctrl-C: send what is still queued, so the counts are final, then stop.
    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        self.release(ctx, true);
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn relay(delay: Duration) -> (EventLoop, Relay) {
        let mut ev = EventLoop::new().unwrap();
        // Forward to a port nobody listens on: these tests never get that far.
        let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let forward = nobody.local_addr().unwrap();
        let settings = Settings {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay,
            jitter: Duration::ZERO,
            seed: 1,
        };
        let (r, _) =
            Relay::bind(&mut ev, "127.0.0.1:0".parse().unwrap(), forward, settings).unwrap();
        (ev, r)
    }

    /// Issue 18: empty datagrams cost memory too. The queue takes at most its cap
    /// divided by the per-entry cost, not millions.
    #[test]
    fn the_delay_queue_counts_what_each_empty_datagram_really_costs() {
        let (mut ev, mut r) = relay(Duration::from_secs(3600));
        let room = MAX_QUEUED_BYTES / ENTRY_COST;
        for _ in 0..room + 1000 {
            r.impair(ev.ctx(), &[]);
        }
        assert!(
            r.queue.len() <= room,
            "{} empty datagrams queued under a {} MiB cap",
            r.queue.len(),
            MAX_QUEUED_BYTES >> 20
        );
        assert_eq!(r.stats.overflow, 1000, "the rest counted as overflow");
    }

    /// Stopping sends a bounded number of what is queued and counts the rest, so
    /// Ctrl-C is prompt however full the queue is (70 s before).
    #[test]
    fn stopping_flushes_a_bounded_number_and_counts_the_rest() {
        let (mut ev, mut r) = relay(Duration::from_secs(3600));
        let n = STOP_FLUSH + 5000;
        for _ in 0..n {
            r.impair(ev.ctx(), b"x");
        }
        assert_eq!(r.queue.len(), n);
        r.release(ev.ctx(), true);
        assert!(r.queue.is_empty());
        assert_eq!(r.queued_bytes, 0);
        let accounted = r.stats.forwarded + r.stats.overflow;
        assert_eq!(accounted, n as u64, "every datagram forwarded or counted");
        assert!(r.stats.overflow >= 5000, "{:?}", r.stats);
    }
}
