//! The measuring loop, shared by every mode: warm up, then take samples from a [`Probe`]
//! until the count or the time is reached, recording into an HdrHistogram and closing
//! an interval histogram about every second.
//!
//! A probe is whatever produces latencies: a ping-pong client, a stream consumer, or a
//! [`Scripted`] list of known values (so reports can be tested without a network).

use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;

use super::result::{new_histogram, Floor, Interval, Measured, Series, Stats};

/// Something that yields latencies.
pub trait Probe {
    /// Takes the next measurement(s), appending latencies in nanoseconds to `out`: one
    /// per round trip, or one per sample of a stream buffer. A request that got no answer
    /// in time is reported by returning `Ok(false)` (counted as lost, not recorded).
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool>;
}

/// How long to measure one size.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Latencies to discard first.
    pub warmup: u64,
    /// Stop after this many latencies...
    pub count: Option<u64>,
    /// ...or after this long, whichever comes first.
    pub duration: Option<Duration>,
    /// Length of one interval of the interval log.
    pub interval: Duration,
}

/// What the measured series is called.
#[derive(Debug, Clone)]
pub struct Label {
    /// Mode name.
    pub mode: String,
    /// Size in `unit`.
    pub size: usize,
    /// "B" or "samples".
    pub unit: String,
    /// Stream floor, if any.
    pub floor: Option<Floor>,
}

/// Measures one size. `run_start` anchors interval timestamps.
pub fn measure(
    probe: &mut dyn Probe,
    label: Label,
    plan: &Plan,
    run_start: Instant,
    bar: &ProgressBar,
) -> Result<Measured> {
    let mut buf = Vec::new();
    // Warmup: connection setup, cold caches, TCP slow start; never recorded.
    let mut warmed = 0;
    let mut lost = 0;
    while warmed < plan.warmup {
        buf.clear();
        probe.sample(&mut buf)?;
        warmed += buf.len().max(1) as u64;
    }
    let mut hist = new_histogram();
    let mut intervals = Vec::new();
    let mut current = new_histogram();
    let start = Instant::now();
    let mut interval_start = start;
    let deadline = plan.duration.map(|d| start + d);
    loop {
        if plan.count.is_some_and(|c| hist.len() >= c) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if now.duration_since(interval_start) >= plan.interval {
            intervals.push(Interval {
                start: interval_start.duration_since(run_start),
                length: now.duration_since(interval_start),
                hist: std::mem::replace(&mut current, new_histogram()),
            });
            interval_start = now;
        }
        buf.clear();
        if !probe.sample(&mut buf)? {
            lost += 1;
        }
        let room = plan.count.map_or(u64::MAX, |c| c - hist.len());
        for &ns in buf.iter().take(room.min(usize::MAX as u64) as usize) {
            // saturating: a value beyond the hour bound is clamped, never an error.
            hist.saturating_record(ns.max(1));
            current.saturating_record(ns.max(1));
        }
        match (plan.count, deadline) {
            (Some(_), _) => bar.set_position(hist.len()),
            (None, Some(_)) => bar.set_position(start.elapsed().as_millis() as u64),
            _ => {}
        }
    }
    let end = Instant::now();
    if !current.is_empty() || intervals.is_empty() {
        intervals.push(Interval {
            start: interval_start.duration_since(run_start),
            length: end.duration_since(interval_start),
            hist: current,
        });
    }
    let series = Series {
        mode: label.mode,
        size: label.size,
        unit: label.unit,
        stats: Stats::from_histogram(&hist),
        floor: label.floor,
        lost,
        elapsed_s: (end.duration_since(start).as_secs_f64() * 1000.0).round() / 1000.0,
    };
    Ok(Measured {
        series,
        hist,
        intervals,
    })
}

/// A probe that replays known latencies: the test double of a network.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// Latencies in ns, replayed in a cycle; `None` entries are lost requests.
    pub script: Vec<Option<u64>>,
    /// Latencies per call (1 for ping-pong; N to mimic a stream buffer).
    pub per_call: usize,
    /// Position in the script.
    pub pos: usize,
}

impl Scripted {
    /// Replays `script` one value per call.
    pub fn new(script: Vec<Option<u64>>) -> Scripted {
        Scripted {
            script,
            per_call: 1,
            pos: 0,
        }
    }
}

impl Probe for Scripted {
    fn sample(&mut self, out: &mut Vec<u64>) -> Result<bool> {
        for _ in 0..self.per_call {
            let v = self.script[self.pos % self.script.len()];
            self.pos += 1;
            match v {
                Some(ns) => out.push(ns),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// The latencies a report test feeds: `n` values spread like a real loopback run, a
/// body around `base_ns` with a tail, deterministic from `seed`.
pub fn scripted_latencies(n: usize, base_ns: u64, seed: u64) -> Vec<Option<u64>> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            let r = rng.next_u64() % 1000;
            // 99% of values within 50% above the base, 1% a tail of 5x to 14x.
            let tail = if r >= 990 {
                base_ns * (r - 985)
            } else {
                base_ns * r / 2000
            };
            Some(base_ns + tail + (i as u64 % 7))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_count_after_warmup_and_counts_losses() {
        let mut p = Scripted::new(vec![Some(500), Some(1000), None, Some(1500)]);
        let plan = Plan {
            warmup: 2,
            count: Some(6),
            duration: None,
            interval: Duration::from_secs(3600),
        };
        let label = Label {
            mode: "udp".into(),
            size: 16,
            unit: "B".into(),
            floor: None,
        };
        let m = measure(&mut p, label, &plan, Instant::now(), &ProgressBar::hidden()).unwrap();
        // Warmup took 500 and 1000; then None (lost), 1500, 500, 1000, None, 1500, 500, 1000.
        // (Values under 2048 ns are exact at 3 significant digits.)
        assert_eq!(m.hist.len(), 6);
        assert_eq!(m.series.lost, 2);
        assert_eq!(m.series.stats.min_us, 0.5);
        assert_eq!(m.series.stats.max_us, 1.5);
        assert_eq!(m.intervals.len(), 1);
        assert_eq!(m.intervals[0].hist.len(), 6);
    }
}
