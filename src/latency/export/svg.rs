//! The two SVG charts, drawn by a small hand-written writer.
//!
//! Why not plotters (svg_backend, default features off, about +3 s of build)? These are
//! two fixed chart shapes of a few polylines each; writing the SVG directly is ~200
//! lines, builds in no time, and gives byte-identical output for a given input, which the
//! snapshot tests rely on. A third chart type would tip the balance towards plotters.
//!
//! - [`percentiles`]: HdrHistogram's percentile plot. The x axis is 1/(1-percentile) on a
//!   log scale, so 90%, 99%, 99.9%, 99.99% are evenly spaced and the tail gets as much
//!   room as the body; y is latency. One `<polyline class="series">` per size.
//! - [`by_size`]: latency against message or buffer size (log2 x axis): p50 and p99 per
//!   mode, and for streams the floor lines (N-1)/rate/2 and (N-1)/rate.

use std::fmt::Write;

use hdrhistogram::Histogram;

use crate::latency::result::{Measured, Run, NS_PER_US};

/// Canvas size and margins, in SVG user units (pixels when shown at 100%).
const W: f64 = 800.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// Eight colours that stay distinguishable for most colour-blind readers (Okabe-Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Escapes text for XML content and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round number at or above `v` (1, 2, 5 times a power of ten), for axis maxima.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// The plot area: maps data to canvas coordinates.
struct Area {
    /// Data x range (already transformed: log scales pass logs).
    x0: f64,
    x1: f64,
    /// Data y range.
    y0: f64,
    y1: f64,
}

impl Area {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v - self.x0) / (self.x1 - self.x0).max(f64::EPSILON) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        H - BOTTOM - (v - self.y0) / (self.y1 - self.y0).max(f64::EPSILON) * (H - TOP - BOTTOM)
    }
}

fn open(title: &str, out: &mut String) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
}

/// Axes with y grid lines every fifth of the range and the given x ticks.
fn axes(a: &Area, xticks: &[(f64, String)], xlabel: &str, ylabel: &str, out: &mut String) {
    for i in 0..=5 {
        let v = a.y0 + (a.y1 - a.y0) * i as f64 / 5.0;
        let y = a.y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    for (v, label) in xticks {
        let x = a.x(*v);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0,
            esc(label)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 12.0,
        esc(xlabel)
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + (H - TOP - BOTTOM) / 2.0,
        esc(ylabel)
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn legend(i: usize, label: &str, colour: &str, dash: &str, out: &mut String) {
    let y = TOP + 10.0 + 18.0 * i as f64;
    let x = W - RIGHT + 12.0;
    let _ = writeln!(
        out,
        r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{}</text>"#,
        x + 24.0,
        x + 30.0,
        y + 4.0,
        esc(label)
    );
}

fn polyline(
    class: &str,
    label: &str,
    colour: &str,
    dash: &str,
    points: &[(f64, f64)],
    out: &mut String,
) {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        out,
        r#"<polyline class="{class}" data-label="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
        esc(label),
        pts.join(" ")
    );
}

/// The percentile points of a histogram: (log10 of 1/(1-q), value in us), q < 1 only,
/// plus the maximum placed at the right edge `xmax`.
fn percentile_points(h: &Histogram<u64>, xmax: f64) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q < 1.0 {
            (1.0 / (1.0 - q)).log10().min(xmax)
        } else {
            xmax
        };
        pts.push((x, v.value_iterated_to() as f64 / NS_PER_US));
    }
    pts
}

/// The percentile plot: one curve per series.
pub fn percentiles(run: &Run, measured: &[Measured]) -> String {
    let total = measured
        .iter()
        .map(|m| m.hist.len())
        .max()
        .unwrap_or(1)
        .max(10);
    // The rightmost tick is the last percentile the data can resolve: 1/(1-q) = count.
    let xmax = (total as f64).log10().ceil().max(1.0);
    let ymax = nice_ceil(
        measured
            .iter()
            .map(|m| m.hist.max() as f64 / NS_PER_US)
            .fold(0.0, f64::max),
    );
    let a = Area {
        x0: 0.0,
        x1: xmax,
        y0: 0.0,
        y1: ymax,
    };
    let mut ticks = vec![(0.0, "0%".to_string())];
    let names = [
        "90%",
        "99%",
        "99.9%",
        "99.99%",
        "99.999%",
        "99.9999%",
        "99.99999%",
    ];
    for k in 1..=(xmax as usize) {
        ticks.push((
            k as f64,
            names.get(k - 1).copied().unwrap_or("...").to_string(),
        ));
    }
    let mut out = String::new();
    let what = if run.series.iter().any(|s| s.floor.is_some()) {
        "sample age"
    } else {
        "round-trip time"
    };
    open(&format!("Latency by percentile ({what})"), &mut out);
    axes(&a, &ticks, "percentile", "latency (us)", &mut out);
    for (i, m) in measured.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64)> = percentile_points(&m.hist, xmax)
            .into_iter()
            .map(|(x, y)| (a.x(x), a.y(y)))
            .collect();
        polyline("series", &m.series.label(), colour, "none", &pts, &mut out);
        legend(i, &m.series.label(), colour, "none", &mut out);
    }
    out.push_str("</svg>\n");
    out
}

/// Latency against size: p50 (solid) and p99 (dashed) per mode, floors in grey.
pub fn by_size(run: &Run) -> String {
    let mut modes: Vec<&str> = Vec::new();
    for s in &run.series {
        if !modes.contains(&s.mode.as_str()) {
            modes.push(&s.mode);
        }
    }
    let mut sizes: Vec<usize> = run.series.iter().map(|s| s.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let lx = |n: usize| (n.max(1) as f64).log2();
    let (x0, x1) = match (sizes.first(), sizes.last()) {
        (Some(&a), Some(&b)) if b > a => (lx(a), lx(b)),
        (Some(&a), _) => (lx(a) - 1.0, lx(a) + 1.0),
        _ => (0.0, 1.0),
    };
    let ymax = nice_ceil(
        run.series
            .iter()
            .map(|s| {
                s.stats
                    .p99_us
                    .max(s.floor.as_ref().map_or(0.0, |f| f.worst_us))
            })
            .fold(0.0, f64::max),
    );
    let a = Area {
        x0,
        x1,
        y0: 0.0,
        y1: ymax,
    };
    let ticks: Vec<(f64, String)> = sizes.iter().map(|&n| (lx(n), n.to_string())).collect();
    let stream = run.series.iter().any(|s| s.floor.is_some());
    let xlabel = if stream {
        "buffer size (samples, log scale)"
    } else {
        "message size (bytes, log scale)"
    };
    let mut out = String::new();
    open(
        if stream {
            "Sample age against buffer size"
        } else {
            "Round-trip time against message size"
        },
        &mut out,
    );
    axes(&a, &ticks, xlabel, "latency (us)", &mut out);
    let mut row = 0;
    for (i, mode) in modes.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let of_mode: Vec<_> = run.series.iter().filter(|s| s.mode == *mode).collect();
        for (name, dash, pick) in [
            (
                "p50",
                "none",
                (|s: &crate::latency::result::Stats| s.p50_us) as fn(&_) -> f64,
            ),
            ("p99", "6 4", |s| s.p99_us),
        ] {
            let pts: Vec<(f64, f64)> = of_mode
                .iter()
                .map(|s| (a.x(lx(s.size)), a.y(pick(&s.stats))))
                .collect();
            let label = format!("{mode} {name}");
            polyline(name, &label, colour, dash, &pts, &mut out);
            legend(row, &label, colour, dash, &mut out);
            row += 1;
        }
        if of_mode.iter().any(|s| s.floor.is_some()) {
            for (name, dash, pick) in [
                (
                    "floor (N-1)/rate/2",
                    "2 3",
                    (|f: &crate::latency::result::Floor| f.mean_us) as fn(&_) -> f64,
                ),
                ("floor (N-1)/rate", "8 3 2 3", |f| f.worst_us),
            ] {
                let pts: Vec<(f64, f64)> = of_mode
                    .iter()
                    .filter_map(|s| s.floor.as_ref().map(|f| (a.x(lx(s.size)), a.y(pick(f)))))
                    .collect();
                polyline("floor", name, "#888888", dash, &pts, &mut out);
                legend(row, name, "#888888", dash, &mut out);
                row += 1;
            }
        }
    }
    out.push_str("</svg>\n");
    out
}
