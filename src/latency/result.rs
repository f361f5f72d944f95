//! The result model: plain serializable structs, data first. Every exporter reads these
//! (and the histograms beside them); none of them measures anything.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Nanoseconds per microsecond: histograms record ns, reports speak us.
pub const NS_PER_US: f64 = 1000.0;

/// One whole run: what was asked, where it ran, and one series per (mode, size).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// `lab` version that measured, so old reports can be told apart.
    pub tool: String,
    /// When the run started, seconds since the Unix epoch.
    pub started_unix: u64,
    /// The run's parameters, as given or defaulted.
    pub params: Params,
    /// The machine and sockets the run used.
    pub env: Environment,
    /// One entry per finished (mode, size), in measuring order.
    pub series: Vec<Series>,
}

/// What the user asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// Modes measured: `tcp`, `tcp-nagle`, `udp`, `stream`.
    pub modes: Vec<String>,
    /// Ping-pong message sizes in bytes.
    pub sizes: Vec<usize>,
    /// Stream buffer sizes in samples.
    pub buffer_sizes: Vec<usize>,
    /// Measured samples per size (after warmup), when the run is count-bound.
    pub count: Option<u64>,
    /// Seconds per size, when the run is time-bound.
    pub duration_s: Option<f64>,
    /// Samples discarded before measuring each size (connection setup, cold caches).
    pub warmup: u64,
    /// Open loop: requests (ping-pong) or samples (stream) per second; None = closed loop.
    pub rate: Option<f64>,
    /// The client spins on a non-blocking socket instead of sleeping in the kernel.
    pub busy_poll: bool,
    /// TCP messages are written in two halves (as a header, then a body) to show Nagle.
    pub split_writes: bool,
    /// The server measured against (`host:port`).
    pub target: String,
    /// What it speaks: `lab` (a lab server or an echo server) or `sockperf`.
    #[serde(default = "lab_peer")]
    pub peer: String,
    /// Seed of the payload bytes.
    pub seed: u64,
}

/// Reports written before `peer` existed measured lab servers.
fn lab_peer() -> String {
    "lab".into()
}

/// The machine and sockets, as far as we can read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// The CPUs this process may run on (taskset), e.g. "1" or "0-1".
    pub affinity: String,
    /// The target is a loopback address (both ends on this machine).
    pub loopback: bool,
    /// MTU of the interface used (lo when loopback), when known.
    pub mtu: Option<u32>,
    /// The client socket's SO_SNDBUF in bytes (Linux reports twice what was set).
    pub sndbuf: Option<usize>,
    /// The client socket's SO_RCVBUF in bytes.
    pub rcvbuf: Option<usize>,
    /// How sample ages were timed: a shared clock, or an estimated offset.
    pub clock: String,
}

/// Percentiles of one series, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// Samples recorded.
    pub count: u64,
    /// Smallest sample.
    pub min_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Standard deviation.
    pub stdev_us: f64,
}

/// The percentiles a table shows, with their names, in order.
pub const PERCENTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

/// Rounds to whole nanoseconds expressed in us, so reports are stable text.
fn us(ns: f64) -> f64 {
    (ns.round()) / NS_PER_US
}

impl Stats {
    /// The statistics of a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Stats {
        let q = |q: f64| us(h.value_at_quantile(q) as f64);
        let empty = h.is_empty();
        Stats {
            count: h.len(),
            min_us: if empty { 0.0 } else { us(h.min() as f64) },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if empty { 0.0 } else { us(h.max() as f64) },
            mean_us: if empty { 0.0 } else { us(h.mean()) },
            stdev_us: if empty { 0.0 } else { us(h.stdev()) },
        }
    }

    /// A named value: `min`, `p50`, `p90`, `p99`, `p99.9`, `max`, `mean`, `stdev`.
    pub fn get(&self, name: &str) -> Option<f64> {
        Some(match name {
            "min" => self.min_us,
            "p50" => self.p50_us,
            "p90" => self.p90_us,
            "p99" => self.p99_us,
            "p99.9" => self.p999_us,
            "max" => self.max_us,
            "mean" => self.mean_us,
            "stdev" => self.stdev_us,
            _ => return None,
        })
    }
}

/// The theoretical floor of a stream's sample age: a sample waits in the producer's
/// buffer until the buffer fills. With N samples per buffer at `rate` per second, the
/// first waits (N-1)/rate, the last not at all: (N-1)/rate/2 on average.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Floor {
    /// (N-1)/rate/2 in us: the mean age no transport can beat.
    pub mean_us: f64,
    /// (N-1)/rate in us: the oldest sample's wait.
    pub worst_us: f64,
}

impl Floor {
    /// The floor for `n` samples per buffer at `rate` samples per second.
    pub fn new(n: usize, rate: f64) -> Floor {
        let worst = n.saturating_sub(1) as f64 / rate * 1e6;
        Floor {
            mean_us: (worst / 2.0 * 1000.0).round() / 1000.0,
            worst_us: (worst * 1000.0).round() / 1000.0,
        }
    }
}

/// One measured (mode, size).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// `tcp`, `tcp-nagle`, `udp` or `stream`.
    pub mode: String,
    /// Message bytes (ping-pong) or samples per buffer (stream).
    pub size: usize,
    /// What `size` counts: "B" or "samples".
    pub unit: String,
    /// Round-trip time (ping-pong) or sample age (stream) statistics.
    pub stats: Stats,
    /// Stream only: the floor this buffer size imposes.
    pub floor: Option<Floor>,
    /// Requests that got no reply in time (UDP loss), not in the histogram.
    pub lost: u64,
    /// Wall-clock seconds spent measuring (after warmup).
    pub elapsed_s: f64,
}

impl Series {
    /// A human label such as `tcp 16 B` or `stream 64 samples`.
    pub fn label(&self) -> String {
        format!("{} {} {}", self.mode, self.size, self.unit)
    }

    /// A label without spaces, for file names and interval-log tags: `tcp-16B`.
    pub fn slug(&self) -> String {
        let unit = if self.unit == "B" { "B" } else { "s" };
        format!("{}-{}{}", self.mode, self.size, unit)
    }
}

/// A series with its histograms: what exporters of distributions need.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The summary.
    pub series: Series,
    /// Every sample, in nanoseconds.
    pub hist: Histogram<u64>,
    /// The same samples cut into intervals (about one second each) for the interval log.
    pub intervals: Vec<Interval>,
}

/// One interval of a series.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start, relative to the start of the run.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// Samples of this interval, in nanoseconds.
    pub hist: Histogram<u64>,
}

/// A new histogram for latencies in ns: 1 ns to one hour, 3 significant digits
/// (0.1% resolution, the HdrHistogram default for latency work).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}
