//! The terminal table: one row per series, each latency with its unit
//! ([`duration_us`]: microseconds below 1000 us, milliseconds from there on).

use crate::latency::result::Run;
use crate::out::duration_us;

/// Renders the table as plain text (the caller adds colour if it wants).
pub fn render(run: &Run) -> String {
    let stream = run.series.iter().any(|s| s.floor.is_some());
    let mut out = format!(
        "{:<20} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "series", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev"
    );
    if stream {
        out.push_str(&format!(" {:>10} {:>10}", "floor avg", "floor max"));
    }
    out.push_str(&format!(" {:>6}\n", "lost"));
    for s in &run.series {
        let t = &s.stats;
        out.push_str(&format!("{:<20} {:>8}", s.label(), t.count));
        for v in [
            t.min_us, t.p50_us, t.p90_us, t.p99_us, t.p999_us, t.max_us, t.mean_us, t.stdev_us,
        ] {
            out.push_str(&format!(" {:>10}", duration_us(v)));
        }
        if stream {
            match &s.floor {
                Some(f) => out.push_str(&format!(
                    " {:>10} {:>10}",
                    duration_us(f.mean_us),
                    duration_us(f.worst_us)
                )),
                None => out.push_str(&format!(" {:>10} {:>10}", "-", "-")),
            }
        }
        out.push_str(&format!(" {:>6}\n", s.lost));
    }
    out
}
