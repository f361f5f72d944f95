//! The terminal table: one row per series, latencies in microseconds.

use crate::latency::result::Run;

/// Renders the table as plain text (the caller adds colour if it wants).
pub fn render(run: &Run) -> String {
    let stream = run.series.iter().any(|s| s.floor.is_some());
    let mut out = format!(
        "{:<20} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "series (us)", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev"
    );
    if stream {
        out.push_str(&format!(" {:>10} {:>10}", "floor avg", "floor max"));
    }
    out.push_str(&format!(" {:>6}\n", "lost"));
    for s in &run.series {
        let t = &s.stats;
        out.push_str(&format!(
            "{:<20} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            s.label(),
            t.count,
            t.min_us,
            t.p50_us,
            t.p90_us,
            t.p99_us,
            t.p999_us,
            t.max_us,
            t.mean_us,
            t.stdev_us
        ));
        if stream {
            match &s.floor {
                Some(f) => out.push_str(&format!(" {:>10.1} {:>10.1}", f.mean_us, f.worst_us)),
                None => out.push_str(&format!(" {:>10} {:>10}", "-", "-")),
            }
        }
        out.push_str(&format!(" {:>6}\n", s.lost));
    }
    out
}
