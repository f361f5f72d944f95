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
//! Values are divided by `ratio` (1000: ns recorded, us printed). Byte for byte what
//! Java's `AbstractHistogram.outputPercentileDistribution(out, ratio)` prints (5 ticks
//! per half distance): tests/fixtures/hgrm/ holds files Java itself wrote, and a test
//! compares. The crate's `iter_quantiles` is not used because it differs from Java where
//! a count falls exactly on a percentile level (it moves on to the next bucket: `25.551
//! ... 4008` where Java prints `25.535 ... 4000`), and its mean sums in another order.

use hdrhistogram::Histogram;

/// Renders the distribution of `h` with values divided by `ratio`.
pub fn render(h: &Histogram<u64>, ratio: f64) -> String {
    // Java prints values with as many decimals as the histogram has significant digits.
    let p = h.sigfig() as usize;
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for (value, level, total) in percentile_steps(h) {
        let value = java_f(value as f64 / ratio, p);
        let q = level / 100.0;
        let qs = java_f(q, 12);
        if level != 100.0 {
            let inv = java_f(1.0 / (1.0 - q), 2);
            out.push_str(&format!("{value:>12} {qs:>2} {total:>10} {inv:>14}\n"));
        } else {
            out.push_str(&format!("{value:>12} {qs:>2} {total:>10}\n"));
        }
    }
    let (mean, stdev) = mean_and_stdev(h);
    let (mean, stdev) = (java_f(mean / ratio, p), java_f(stdev / ratio, p));
    let max = java_f(h.max() as f64 / ratio, p);
    // SubBuckets as Java computes it: the power of two that holds 2 * 10^sigfig values.
    let sub_buckets = (2 * 10u64.pow(h.sigfig() as u32)).next_power_of_two();
    out.push_str(&format!(
        "#[Mean    = {mean:>12}, StdDeviation   = {stdev:>12}]\n"
    ));
    out.push_str(&format!(
        "#[Max     = {max:>12}, Total count    = {:>12}]\n",
        h.len()
    ));
    out.push_str(&format!(
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.buckets(),
        sub_buckets
    ));
    out
}

/// `x` with `decimals` digits after the point as Java's `%.Nf` writes it: Java rounds
/// the shortest decimal that reads back as `x` half up (`0.15` -> `0.2`, and the exact
/// binary 0.9997802734375 -> `0.999780273438`), where Rust's `{:.N}` rounds the exact
/// binary value half to even (`0.1`, `0.999780273437`).
fn java_f(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    // Shortest round-trip digits and exponent: "9.997802734375e-1".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    // The digit worth 10^k (digits[0] is worth 10^exp), 0 outside the digits.
    let digit = |k: i64| -> u8 {
        usize::try_from(exp - k)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let d = decimals as i64;
    // Every digit from the highest (units at least) down to 10^-decimals.
    let mut out: Vec<u8> = (-d..=exp.max(0)).rev().map(digit).collect();
    if digit(-d - 1) >= 5 {
        // Half up, carrying leftwards; a carry past the first digit adds one.
        let mut i = out.len();
        loop {
            if i == 0 {
                out.insert(0, 1);
                break;
            }
            i -= 1;
            if out[i] == 9 {
                out[i] = 0;
            } else {
                out[i] += 1;
                break;
            }
        }
    }
    let point = out.len() - decimals;
    let mut text: String = out[..point].iter().map(|d| char::from(b'0' + d)).collect();
    let text_int = text.trim_start_matches('0');
    text = if text_int.is_empty() {
        "0".into()
    } else {
        text_int.to_string()
    };
    if decimals > 0 {
        text.push('.');
        text.extend(out[point..].iter().map(|d| char::from(b'0' + d)));
    }
    let zero = out.iter().all(|&d| d == 0);
    if x.is_sign_negative() && !zero {
        text.insert(0, '-');
    }
    text
}

/// Java's `PercentileIterator` with 5 ticks per half distance, as (value, percentile
/// level in %, total count at or below value) rows. Walking the recorded buckets in
/// order, a bucket yields a row for every level its cumulative count reaches (one bucket
/// can cover several levels), except that once the count reaches the total only one row
/// is yielded; then one last row at 100%, on the same bucket.
fn percentile_steps(h: &Histogram<u64>) -> Vec<(u64, f64, u64)> {
    const TICKS_PER_HALF_DISTANCE: u64 = 5;
    let total = h.len();
    let mut rows = Vec::new();
    if total == 0 {
        return rows;
    }
    let mut level = 0.0f64;
    let mut cumulative = 0u64;
    let mut last = 0;
    'buckets: for v in h.iter_recorded() {
        cumulative += v.count_at_value();
        last = h.highest_equivalent(v.value_iterated_to());
        // Java's reachedIterationLevel, in Java's arithmetic.
        while (100.0 * cumulative as f64) / total as f64 >= level {
            rows.push((last, level, cumulative));
            // Java's incrementIterationLevel: the tick size halves each time the
            // distance to 100% halves (the casts truncate, as Java's `(long)` does).
            let halvings = ((100.0 / (100.0 - level)).ln() / 2f64.ln()) as i64;
            let ticks = TICKS_PER_HALF_DISTANCE as i64 * 2f64.powi((halvings + 1) as i32) as i64;
            level += 100.0 / ticks as f64;
            if cumulative >= total {
                break 'buckets;
            }
        }
    }
    rows.push((last, 100.0, cumulative));
    rows
}

/// Java's `getMean` and `getStdDeviation`: over each recorded bucket's middle value,
/// summed in Java's order (the crate divides inside the sum, which rounds differently).
fn mean_and_stdev(h: &Histogram<u64>) -> (f64, f64) {
    let total = h.len();
    if total == 0 {
        return (0.0, 0.0);
    }
    let mut sum = 0.0f64;
    for v in h.iter_recorded() {
        sum += h.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64;
    }
    let mean = sum / total as f64;
    let mut deviations = 0.0f64;
    for v in h.iter_recorded() {
        let d = h.median_equivalent(v.value_iterated_to()) as f64 - mean;
        deviations += d * d * v.count_at_value() as f64;
    }
    (mean, (deviations / total as f64).sqrt())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Java's own output for the values beside it (tests/fixtures/hgrm/README.md says
    /// how they were made), matched byte for byte.
    #[test]
    fn matches_java_output_percentile_distribution() {
        for (name, values, java) in [
            (
                "exact",
                include_str!("../../../tests/fixtures/hgrm/exact.values"),
                include_str!("../../../tests/fixtures/hgrm/exact.hgrm"),
            ),
            (
                "spread",
                include_str!("../../../tests/fixtures/hgrm/spread.values"),
                include_str!("../../../tests/fixtures/hgrm/spread.hgrm"),
            ),
            (
                "one",
                include_str!("../../../tests/fixtures/hgrm/one.values"),
                include_str!("../../../tests/fixtures/hgrm/one.hgrm"),
            ),
        ] {
            // The bounds `lab latency` records with (crate::latency::result).
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
            for line in values.lines() {
                h.record(line.trim().parse().unwrap()).unwrap();
            }
            let ours = render(&h, 1000.0);
            if ours != java {
                let first = ours
                    .lines()
                    .zip(java.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(ours.lines().count().min(java.lines().count()));
                panic!(
                    "{name}: line {} differs:\n ours: {:?}\n java: {:?}",
                    first + 1,
                    ours.lines().nth(first),
                    java.lines().nth(first)
                );
            }
        }
    }

    #[test]
    fn numbers_round_as_javas_format_does() {
        // What Java 17's String.format(Locale.US, ...) printed for each.
        for (x, n, java) in [
            (0.15, 1, "0.2"),
            (1.0005, 3, "1.001"),
            (0.125, 2, "0.13"),
            (0.375, 2, "0.38"),
            (0.9997802734375, 12, "0.999780273438"),
            (0.25, 1, "0.3"),
            (2.0345, 3, "2.035"),
            (0.0, 3, "0.000"),
            (9.9996, 3, "10.000"),
            (123456.789, 3, "123456.789"),
            (1e-7, 3, "0.000"),
            (0.0005, 3, "0.001"),
            (-1.25, 1, "-1.3"),
        ] {
            assert_eq!(java_f(x, n), java, "{x} to {n}");
        }
    }

    #[test]
    fn an_empty_histogram_has_only_the_header_and_footer() {
        let h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        let text = render(&h, 1000.0);
        assert!(text.contains("Total count    =            0]"), "{text}");
        assert_eq!(parse(&text).unwrap().len(), 0);
    }
}
