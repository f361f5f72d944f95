//! The end of a run: ping's counters and round-trip statistics ([`Stats`]), and the
//! summary printed from them, with ping's definitions (loss over transmitted, mdev as
//! the population standard deviation, ping's precision).

use std::time::Duration;

use super::ping::Config;
use super::wait::Tally;
use crate::say;

/// Counters and round-trip statistics, as ping's summary reports them.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests sent.
    pub transmitted: u32,
    /// Distinct requests answered (duplicates not counted).
    pub received: u32,
    /// Replies to a request already answered (ping's "(DUP!)").
    pub duplicates: u32,
    /// Errors about our requests (unreachable, time exceeded).
    pub errors: u32,
    /// Packets seen and skipped as not ours.
    pub skipped: u32,
    /// Round-trip times in milliseconds, one per distinct reply (bounded by `count`):
    /// send clock to the kernel's receive stamp when there is one.
    pub rtts_ms: Vec<f64>,
    /// The same round trips ending at the program's own clock after recvmsg returned;
    /// empty when the kernel gave no stamps (then `rtts_ms` already are these).
    pub program_rtts_ms: Vec<f64>,
    /// How the loop waited between requests: spins and sleeps.
    pub waits: Tally,
}

impl Stats {
    /// Loss in percent of the transmitted requests.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            0.0
        } else {
            100.0 * f64::from(self.transmitted - self.received.min(self.transmitted))
                / f64::from(self.transmitted)
        }
    }

    /// min, avg, max and mdev in ms. mdev is ping's: sqrt(mean(x^2) - mean(x)^2), the
    /// population standard deviation.
    pub fn rtt_summary(&self) -> Option<(f64, f64, f64, f64)> {
        if self.rtts_ms.is_empty() {
            return None;
        }
        let n = self.rtts_ms.len() as f64;
        let min = self.rtts_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rtts_ms.iter().copied().fold(0.0, f64::max);
        let avg = self.rtts_ms.iter().sum::<f64>() / n;
        let sq = self.rtts_ms.iter().map(|x| x * x).sum::<f64>() / n;
        Some((min, avg, max, (sq - avg * avg).max(0.0).sqrt()))
    }
}

/// min, avg and max of `v`.
fn min_avg_max(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    Some((min, v.iter().sum::<f64>() / v.len() as f64, max))
}

/// Milliseconds with ping's precision: 3 decimals under 10 ms, fewer above. A
/// `Display`, so a reply's line is formatted without a `String` of its own.
pub struct Ms(pub f64);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        if ms < 10.0 {
            write!(f, "{ms:.3}")
        } else if ms < 100.0 {
            write!(f, "{ms:.2}")
        } else {
            write!(f, "{ms:.1}")
        }
    }
}

/// Prints ping's summary.
pub fn summary(cfg: &Config, stats: &Stats, elapsed: Duration) -> std::io::Result<()> {
    say!()?;
    say!("--- {} ping statistics ---", cfg.target)?;
    let mut line = format!(
        "{} transmitted, {} received",
        stats.transmitted, stats.received
    );
    if stats.duplicates > 0 {
        line.push_str(&format!(", +{} duplicates", stats.duplicates));
    }
    if stats.errors > 0 {
        line.push_str(&format!(", +{} errors", stats.errors));
    }
    line.push_str(&format!(
        ", {}% packet loss, time {}ms",
        (stats.loss_percent() * 100.0).round() / 100.0,
        elapsed.as_millis()
    ));
    say!("{line}")?;
    if let Some((min, avg, max, mdev)) = stats.rtt_summary() {
        say!("rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms")?;
    }
    if stats.program_rtts_ms.len() == stats.rtts_ms.len() {
        if let Some((min, avg, max)) = min_avg_max(&stats.program_rtts_ms) {
            say!(
                "as the program saw them: min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms \
                 (its clock after recvmsg; the times above end at the kernel's receive stamp, \
                 as ping's do: the difference is the kernel handing the reply over)"
            )?;
        }
    }
    // Which wait was used, as counts: at -i 0.002 "auto" spins as ping does, at -i 0.02
    // it sleeps; the round trips differ with it (see `wait.rs`).
    say!(
        "waited between requests (--wait {}): {} spins (sched_yield + non-blocking recvmsg), {} sleeps (ppoll)",
        cfg.wait.name(),
        stats.waits.spins,
        stats.waits.sleeps
    )?;
    if stats.skipped > 0 {
        say!(
            "{} packets on the socket were not ours (skipped)",
            stats.skipped
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures_match_pings_definitions() {
        let s = Stats {
            transmitted: 4,
            received: 3,
            rtts_ms: vec![1.0, 2.0, 3.0],
            ..Stats::default()
        };
        assert_eq!(s.loss_percent(), 25.0);
        let (min, avg, max, mdev) = s.rtt_summary().unwrap();
        assert_eq!((min, avg, max), (1.0, 2.0, 3.0));
        // sqrt((1 + 4 + 9) / 3 - 4) = sqrt(2/3)
        assert!((mdev - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Ms(0.04512).to_string(), "0.045");
        assert_eq!(Ms(12.5).to_string(), "12.50");
        assert_eq!(Ms(150.0).to_string(), "150.0");
    }
}
