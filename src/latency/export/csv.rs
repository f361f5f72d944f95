//! `summary.csv`: one row per series, every figure in microseconds. No field can hold a
//! comma or a quote (modes and units are fixed words), so no quoting is needed.

use crate::latency::result::Run;

/// The CSV header.
pub const HEADER: &str = "mode,size,unit,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us,stdev_us,floor_mean_us,floor_worst_us,lost,elapsed_s";

/// Renders the whole file.
pub fn render(run: &Run) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for s in &run.series {
        let t = &s.stats;
        let (fm, fw) = match &s.floor {
            Some(f) => (f.mean_us.to_string(), f.worst_us.to_string()),
            None => (String::new(), String::new()),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            s.mode,
            s.size,
            s.unit,
            t.count,
            t.min_us,
            t.p50_us,
            t.p90_us,
            t.p99_us,
            t.p999_us,
            t.max_us,
            t.mean_us,
            t.stdev_us,
            fm,
            fw,
            s.lost,
            s.elapsed_s
        ));
    }
    out
}
