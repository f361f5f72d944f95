//! One turn's sending for the server ([`super`]): each client's share of the turn's
//! budget, from its position in the staged queue, with the skips that keep a client
//! that is behind (or a loop that was) from costing anyone else.

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use super::super::staged::Staged;
use super::super::{Framing, MAX_QUEUED};
use super::{Client, Stamp, Totals, FRAME_COST};
use crate::core::{ConnId, Ctx, SendError};
use crate::out::warn;
use crate::out::OrStopLater;
use crate::say;
use crate::wire::stamped::BufferTime;
use crate::wire::WallClock;

/// One turn's sending: what every client's share is served with.
pub(super) struct Turn<'a> {
    /// The samples.
    pub(super) staged: &'a Staged,
    /// Counts skips.
    pub(super) totals: &'a mut Totals,
    /// The demo's latency probe.
    pub(super) probe: Option<&'a SyncSender<Stamp>>,
    /// Scratch for one buffer's samples.
    pub(super) samples: &'a mut Vec<u8>,
    /// Scratch for one frame.
    pub(super) frame: &'a mut Vec<u8>,
    /// Wire format.
    pub(super) framing: Framing,
    /// The source's nominal time between samples, ns.
    pub(super) period_ns: u32,
    /// Log lagging clients.
    pub(super) verbose: bool,
    /// Our wall clock now, for the stamped frames.
    pub(super) wall: WallClock,
    /// Buffers whose last sample is numbered below this were complete over
    /// `STALE_AFTER` ago: not live any more.
    pub(super) fresh_from: u64,
    /// Bytes of frames one client may have this turn (it always gets one frame).
    pub(super) share: usize,
}

impl Turn<'_> {
    /// Serves one client its share of the turn. Returns what it cost the budget, and
    /// whether it still has a whole buffer ready.
    pub(super) fn serve(&mut self, ctx: &mut Ctx, token: ConnId, c: &mut Client) -> (usize, bool) {
        if !c.subscribed {
            // A stamped client that has not subscribed yet: nothing wanted.
            return (0, false);
        }
        let Some(mut pos) = c.pos.or_else(|| self.staged.first_since(c.since)) else {
            // Nothing born since it arrived yet.
            return (0, false);
        };
        let k = c.buffer as u64;
        let head = self.staged.head();
        if pos + k > head {
            // Waiting for the source to fill its buffer: costs nothing.
            c.pos = Some(pos);
            return (0, false);
        }
        let mut spent = 0;
        // Skips, whole buffers at a time so that `seq` stays a multiple of the buffer:
        // samples the queue's cap dropped under it, then buffers too old to be live.
        // Both mean the loop did not come round in time, not that the client is slow.
        let base = self.staged.base();
        let mut late = 0;
        if pos < base {
            late += (base - pos).div_ceil(k) * k;
        }
        if pos + late < self.fresh_from {
            late += (self.fresh_from - pos - late) / k * k;
        }
        if late > 0 {
            pos += late;
            c.seq += late;
            c.skipped += late;
            self.totals.late += late;
            spent += FRAME_COST;
        }
        // A frame of this client's buffer, and how much of them we queue for it.
        // At least two buffers, so a large buffer can still be queued at all.
        let frame_len = self.framing.frame_len(c.buffer);
        let max_queued = MAX_QUEUED.max(2 * frame_len);
        if pos + k <= head && ctx.queued(token) + frame_len > max_queued {
            // Behind (it does not read): every whole buffer ready would be skipped like
            // the last one, since nothing drains its queue while we serve. Skip them
            // without building them, so 300 such clients cost the loop next to nothing.
            let whole = (head - pos) / k * k;
            pos += whole;
            c.seq += whole;
            c.skipped += whole;
            self.totals.skipped += whole;
            lagging(ctx, token, c, self.verbose);
            spent += FRAME_COST;
        }
        let period = Duration::from_nanos(u64::from(self.period_ns));
        while pos + k <= head && (spent == 0 || spent + frame_len + FRAME_COST <= self.share) {
            let time = BufferTime {
                oldest: self.staged.oldest(pos, c.buffer, period),
                seq: c.seq,
                period_ns: self.period_ns,
            };
            self.samples.clear();
            self.staged.copy(pos, c.buffer, self.samples);
            self.frame.clear();
            self.framing
                .encode(self.samples, time, self.wall, self.frame);
            pos += k;
            c.seq += k;
            spent += frame_len + FRAME_COST;
            if send_or_skip(ctx, token, c, self.frame, max_queued, self.verbose) {
                c.skipped += k;
                self.totals.skipped += k;
            } else if c.probed {
                if let Some(p) = self.probe {
                    // A full probe channel only loses a latency reading.
                    let _ = p.try_send(Stamp {
                        end: c.sent,
                        oldest: time.oldest,
                    });
                }
            }
        }
        c.pos = Some(pos);
        (spent, pos + k <= head)
    }
}

/// Sends one buffer to a client, or skips it when the client is too far behind. A
/// skipped buffer is lost for that client only: the others and the serial reading go
/// on. Returns true if skipped.
fn send_or_skip(
    ctx: &mut Ctx,
    token: ConnId,
    c: &mut Client,
    frame: &[u8],
    max_queued: usize,
    verbose: bool,
) -> bool {
    let behind = ctx.queued(token) + frame.len() > max_queued;
    let result = if behind {
        Err(())
    } else {
        match ctx.send(token, frame) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => Err(()),
            // Closing: on_closed will tell us; nothing to count.
            Err(SendError::Gone) => return false,
        }
    };
    match result {
        Ok(()) => {
            c.sent += frame.len() as u64;
            if c.lagging {
                c.lagging = false;
                if verbose {
                    say!(
                        "  client {} caught up ({} samples skipped so far)",
                        c.peer,
                        c.skipped
                    )
                    .or_stop_later();
                }
            }
            false
        }
        Err(()) => {
            lagging(ctx, token, c, verbose);
            true
        }
    }
}

/// A client is skipping buffers: say so once, when it starts.
fn lagging(ctx: &Ctx, token: ConnId, c: &mut Client, verbose: bool) {
    if !c.lagging {
        c.lagging = true;
        if verbose {
            say!(
                "  {} client {} is not keeping up ({} bytes queued): skipping buffers",
                warn("slow"),
                c.peer,
                ctx.queued(token)
            )
            .or_stop_later();
        }
    }
}
