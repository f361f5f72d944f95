//! The wall clock that probes and frames carry: nanoseconds since the Unix epoch
//! (`CLOCK_REALTIME`), the only clock two processes or two machines can compare.
//!
//! `Instant` is monotonic, and so right for measuring a duration inside one process,
//! but its zero means nothing to anyone else. A time that goes on the wire is read
//! here; a monotonic time that must go on the wire is converted with [`WallClock`].

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch by the wall clock; 0 if the clock is set before
/// 1970 (a board without a real-time clock that has not synced yet).
pub fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The two clocks read at one moment, so a monotonic time can be put on the wall
/// clock as "that long before this reading".
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// The monotonic clock now.
    pub at: Instant,
    /// The wall clock now, ns since the Unix epoch (CLOCK_REALTIME).
    pub ns: u64,
}

impl WallClock {
    /// Both clocks now.
    pub fn now() -> WallClock {
        WallClock {
            at: Instant::now(),
            ns: epoch_ns(),
        }
    }

    /// `t` on the wall clock (a time after this reading counts as now).
    pub fn epoch_ns(&self, t: Instant) -> u64 {
        let ago = self.at.saturating_duration_since(t).as_nanos() as u64;
        self.ns.saturating_sub(ago)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_time_after_the_reading_counts_as_now() {
        let now = WallClock {
            at: Instant::now(),
            ns: 7,
        };
        assert_eq!(now.epoch_ns(now.at + Duration::from_secs(1)), 7);
        assert_eq!(now.epoch_ns(now.at), 7);
    }

    #[test]
    fn a_time_before_the_reading_is_that_much_earlier() {
        let now = WallClock {
            at: Instant::now(),
            ns: 1_000_000_000,
        };
        assert_eq!(now.epoch_ns(now.at - Duration::from_millis(5)), 995_000_000);
    }
}
