//! `.hgrm`: HdrHistogram's percentile-distribution text, the format of Java's
//! `outputPercentileDistribution` and the input of the online plotter
//! (hdrhistogram.github.io/HdrHistogram/plotFiles.html). The Rust crate has no printer;
//! this is it, line for line:
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!        8.191 0.000000000000          1           1.00
//!        ...
//! #[Mean    =        8.934, StdDeviation   =        1.002]
//! #[Max     =       57.343, Total count    =        10000]
//! #[Buckets =           22, SubBuckets     =         2048]
//! ```
//!
//! Values are divided by `ratio` (1000: ns recorded, us printed). The percentile steps are
//! the Java default, 5 ticks per half distance; the last line (100%) has no 1/(1-p).

use hdrhistogram::Histogram;

/// Renders the distribution of `h` with values divided by `ratio`.
pub fn render(h: &Histogram<u64>, ratio: f64) -> String {
    // Java prints values with as many decimals as the histogram has significant digits.
    let p = h.sigfig() as usize;
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / ratio;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            out.push_str(&format!(
                "{value:>12.p$} {q:>2.12} {total:>10} {:>14.2}\n",
                1.0 / (1.0 - q)
            ));
        } else {
            out.push_str(&format!("{value:>12.p$} {q:>2.12} {total:>10}\n"));
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / ratio, h.stdev() / ratio, h.max() as f64 / ratio)
    };
    // SubBuckets as Java computes it: the power of two that holds 2 * 10^sigfig values.
    let sub_buckets = (2 * 10u64.pow(h.sigfig() as u32)).next_power_of_two();
    out.push_str(&format!(
        "#[Mean    = {mean:>12.p$}, StdDeviation   = {stdev:>12.p$}]\n"
    ));
    out.push_str(&format!(
        "#[Max     = {max:>12.p$}, Total count    = {:>12}]\n",
        h.len()
    ));
    out.push_str(&format!(
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.buckets(),
        sub_buckets
    ));
    out
}

/// One data line of a `.hgrm` file read back: (value, quantile, total count).
pub type Row = (f64, f64, u64);

/// Parses the data lines of a `.hgrm` file (header and footer skipped); None for a line
/// that is neither.
pub fn parse(text: &str) -> Option<Vec<Row>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
            continue;
        }
        let mut f = t.split_whitespace();
        let value = f.next()?.parse().ok()?;
        let q = f.next()?.parse().ok()?;
        let total = f.next()?.parse().ok()?;
        rows.push((value, q, total));
    }
    Some(rows)
}
