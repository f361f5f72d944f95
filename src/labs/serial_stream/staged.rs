//! The staged samples: everything the source handed over, kept once for all clients,
//! each client reading it from a position of its own.
//!
//! Why not push each chunk through every client's buffer as it comes off the channel:
//! then one slow turn (300 clients, 1-sample buffers) leaves the rest of the channel
//! waiting, and a client that just connected waits behind that backlog for samples
//! born after it arrived. Taking chunks off the channel is cheap (a move and a copy);
//! what costs is building and sending frames. So the loop takes the whole channel into
//! this queue at every wake-up, and then serves clients from it under a budget
//! ([`super::server`]): a newcomer starts at the first sample born after it connected,
//! wherever the others are.
//!
//! Samples are numbered from 0 (the first ever staged); a client's position is such a
//! number. The queue keeps what some client still needs, bounded by [`STAGED_CAP`]:
//! past that the oldest go, and a client that still needed them skips ahead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes the queue may hold: samples, plus [`RECORD_COST`] per chunk it came in.
/// 4 MiB is four seconds at the simulator's fastest rate (1,000,000 samples/s), and
/// more than two 65,536-sample buffers (the largest `--buffer`) filled one sample per
/// read (167,000 one-byte chunks).
pub(super) const STAGED_CAP: usize = 4 << 20;

/// What one chunk's record costs beside its samples (an index and an instant), so that
/// a device read one byte at a time cannot hold 24 bytes per sample unseen.
const RECORD_COST: usize = 24;

/// The shared queue of samples.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// The samples, oldest first; the first is number `base`.
    samples: VecDeque<u8>,
    /// One record per chunk, oldest first: the number one past its last sample, and
    /// when that last sample was born. Births only grow (one reader, one clock).
    chunks: VecDeque<(u64, Instant)>,
    /// Number of the oldest sample held.
    base: u64,
}

impl Staged {
    /// Number one past the newest sample: where a buffer that is not full yet waits.
    pub(super) fn head(&self) -> u64 {
        self.base + self.samples.len() as u64
    }

    /// Number of the oldest sample still held.
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// Adds a chunk whose last sample was born `at`; past [`STAGED_CAP`] the oldest
    /// chunks go.
    pub(super) fn push(&mut self, data: &[u8], at: Instant) {
        if data.is_empty() {
            return;
        }
        self.samples.extend(data);
        self.chunks.push_back((self.head(), at));
        while self.cost() > STAGED_CAP && self.chunks.len() > 1 {
            let (end, _) = self.chunks[0];
            self.drop_before(end);
        }
    }

    /// Bytes held, as [`STAGED_CAP`] counts them.
    fn cost(&self) -> usize {
        self.samples.len() + self.chunks.len() * RECORD_COST
    }

    /// Forgets every sample numbered below `n` (nobody needs them any more).
    pub(super) fn drop_before(&mut self, n: u64) {
        let n = n.min(self.head());
        if n <= self.base {
            return;
        }
        self.samples.drain(..(n - self.base) as usize);
        self.base = n;
        while self.chunks.front().is_some_and(|&(end, _)| end <= n) {
            self.chunks.pop_front();
        }
    }

    /// Number of the first sample of the first chunk born at or after `since` (the
    /// first sample a client that arrived at `since` gets), or `None` if no such chunk
    /// came yet.
    pub(super) fn first_since(&self, since: Instant) -> Option<u64> {
        let i = self.chunks.partition_point(|&(_, at)| at < since);
        match i {
            _ if i == self.chunks.len() => None,
            0 => Some(self.base),
            _ => Some(self.chunks[i - 1].0),
        }
    }

    /// Number of the first sample of the first chunk born at or after `t`, or the head:
    /// a buffer whose last sample comes before it is made only of samples read before
    /// `t` (used to drop buffers too old to be live).
    pub(super) fn fresh_from(&self, t: Instant) -> u64 {
        self.first_since(t).unwrap_or_else(|| self.head())
    }

    /// Appends samples `from..from + len` to `out`; they must be held.
    pub(super) fn copy(&self, from: u64, len: usize, out: &mut Vec<u8>) {
        let start = (from - self.base) as usize;
        let (a, b) = self.samples.as_slices();
        let end = start + len;
        if start < a.len() {
            out.extend_from_slice(&a[start..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[start.saturating_sub(a.len())..end - a.len()]);
        }
    }

    /// The birth to stamp on a buffer of samples `from..from + len`: a frame dates its
    /// sample i at oldest + i periods, so `oldest` must be early enough for every sample
    /// in it, including ones that came faster than the rate (a device catching up after
    /// a stall). Samples that arrived together were born one period apart, the last at
    /// the chunk's birth; so each chunk the buffer overlaps asks for its birth minus
    /// (its last sample's place after `from`) periods, and the earliest wins.
    pub(super) fn oldest(&self, from: u64, len: usize, period: Duration) -> Instant {
        let end = from + len as u64;
        // The first chunk whose last sample is at or after `from`.
        let mut i = self.chunks.partition_point(|&(e, _)| e <= from);
        let mut oldest: Option<Instant> = None;
        while let Some(&(e, at)) = self.chunks.get(i) {
            let places = u32::try_from(e - 1 - from).unwrap_or(u32::MAX);
            let candidate = at.checked_sub(period * places).unwrap_or(at);
            oldest = Some(oldest.map_or(candidate, |o| o.min(candidate)));
            if e >= end {
                break;
            }
            i += 1;
        }
        oldest.unwrap_or_else(Instant::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_copies_and_births() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut s = Staged::default();
        s.push(&[0, 1, 2], t0);
        s.push(&[3, 4], t0 + 10 * ms);
        s.push(&[5, 6, 7, 8], t0 + 20 * ms);
        assert_eq!((s.base(), s.head()), (0, 9));
        let mut out = Vec::new();
        s.copy(2, 5, &mut out);
        assert_eq!(out, [2, 3, 4, 5, 6]);
        // A client that arrived between the first two chunks starts at sample 3.
        assert_eq!(s.first_since(t0 + ms), Some(3));
        assert_eq!(s.first_since(t0), Some(0));
        assert_eq!(s.first_since(t0 + 21 * ms), None);
        assert_eq!(s.fresh_from(t0 + 21 * ms), 9);
        // Buffer 2..6 at 1 ms a sample: chunk 1 dates sample 2 at t0; chunk 2 (last
        // sample 4, two places later) at t0 + 8 ms; chunk 3 (sample 8) at t0 + 14 ms.
        assert_eq!(s.oldest(2, 4, ms), t0);
        assert_eq!(s.oldest(3, 4, ms), t0 + 9 * ms);
        s.drop_before(4);
        assert_eq!((s.base(), s.head()), (4, 9));
        out.clear();
        s.copy(4, 5, &mut out);
        assert_eq!(out, [4, 5, 6, 7, 8]);
        assert_eq!(
            s.first_since(t0),
            Some(4),
            "a part of a chunk is still that chunk"
        );
    }

    #[test]
    fn the_cap_drops_the_oldest() {
        let t0 = Instant::now();
        let mut s = Staged::default();
        let chunk = vec![7u8; 64 * 1024];
        for i in 0..100u32 {
            s.push(&chunk, t0 + Duration::from_millis(u64::from(i)));
        }
        assert!(s.cost() <= STAGED_CAP, "{}", s.cost());
        assert_eq!(s.head(), 100 * 64 * 1024);
        assert!(s.base() > 0);
        // Byte-sized chunks are counted with their records.
        let mut s = Staged::default();
        for _ in 0..1_000_000 {
            s.push(&[1], t0);
        }
        assert!(s.cost() <= STAGED_CAP, "{}", s.cost());
        assert!(
            s.head() - s.base() >= 2 * 65_536,
            "room for the largest buffer"
        );
    }
}
