//! Report generation, tested deterministically: a scripted probe feeds known latencies
//! (seeded; the seed is printed), and every exporter's output is checked.
//!
//! Two oracles. The figures of the table, the CSV and the JSON are checked against what
//! the test works out from the latencies it fed (sorted by hand, percentiles by rank as
//! HdrHistogram defines them, widened only by its documented 0.1% precision): a wrong
//! figure fails even after the snapshots are regenerated. The snapshots under
//! tests/snapshots/ then pin the format byte for byte (they are the code's own earlier
//! output: regenerate them with `UPDATE_SNAPSHOTS=1 cargo test --test latency_report`
//! after an intended change, and only once the figure tests pass).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use lab::latency::export::{csv, hgrm, intervals, json, report, svg, table, OutDir};
use lab::latency::probe::{measure, scripted_latencies, Label, Plan, Scripted};
use lab::latency::result::{Environment, Floor, Measured, Params, Run};

/// The seed of the scripted latencies.
const SEED: u64 = 0x5eed_0008;

/// Warm-up latencies of the plan (discarded) and measured latencies per series.
const WARMUP: u64 = 10;
const COUNT: u64 = 2000;
/// The stream's sample rate, samples per second, for its floor.
const STREAM_RATE: f64 = 896.0;

/// One scripted series: its name and the latencies its probe replays.
struct Script {
    mode: &'static str,
    size: usize,
    unit: &'static str,
    /// Latencies per probe call (a stream buffer's worth; 1 for ping-pong).
    per_call: usize,
    /// Replayed in a cycle, in ns; `None` is a lost request.
    latencies: Vec<Option<u64>>,
}

/// Known latencies for three ping-pong sizes and two stream buffer sizes.
fn scripts() -> Vec<Script> {
    let mut out = Vec::new();
    for (i, size) in [16usize, 1024, 16384].into_iter().enumerate() {
        let mut latencies = scripted_latencies(500, 8_000 + 700 * i as u64, SEED + i as u64);
        // Every 100th request of the script is lost, like a UDP drop.
        for v in latencies.iter_mut().step_by(100) {
            *v = None;
        }
        out.push(Script {
            mode: "udp",
            size,
            unit: "B",
            per_call: 1,
            latencies,
        });
    }
    for n in [4usize, 64] {
        out.push(Script {
            mode: "stream",
            size: n,
            unit: "samples",
            per_call: n,
            latencies: scripted_latencies(700, 40_000 * n as u64, SEED + n as u64),
        });
    }
    out
}

/// The scripted run and its histograms.
fn scripted_run() -> (Run, Vec<Measured>) {
    println!("scripted latencies seed: {SEED:#x}");
    let plan = Plan {
        warmup: WARMUP,
        count: Some(COUNT),
        duration: None,
        // One interval per series: the interval log then does not depend on timing.
        interval: Duration::from_secs(3600),
    };
    let start = Instant::now();
    let mut measured = Vec::new();
    for s in scripts() {
        let mut p = Scripted::new(s.latencies);
        p.per_call = s.per_call;
        let label = Label {
            mode: s.mode.into(),
            size: s.size,
            unit: s.unit.into(),
            floor: (s.mode == "stream").then(|| Floor::new(s.size, STREAM_RATE)),
        };
        measured.push(measure(&mut p, label, &plan, start, &ProgressBar::hidden()).unwrap());
    }
    for m in &mut measured {
        m.series.elapsed_s = 1.5; // wall-clock time is the one thing a script cannot fix
    }
    let run = Run {
        tool: "lab test".into(),
        started_unix: 1_800_000_000,
        params: Params {
            modes: vec!["udp".into(), "stream".into()],
            sizes: vec![16, 1024, 16384],
            buffer_sizes: vec![4, 64],
            count: Some(COUNT),
            duration_s: None,
            warmup: WARMUP,
            rate: None,
            busy_poll: false,
            split_writes: false,
            target: "127.0.0.1:7008".into(),
            peer: "lab".into(),
            seed: SEED,
        },
        env: Environment {
            kernel: "6.1.0-test".into(),
            cpu: "Test CPU".into(),
            cpus: 2,
            affinity: "0-1".into(),
            loopback: true,
            mtu: Some(65536),
            sndbuf: Some(2_626_560),
            rcvbuf: Some(131_072),
            clock: "shared (both ends on this machine)".into(),
        },
        series: measured.iter().map(|m| m.series.clone()).collect(),
    };
    (run, measured)
}

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

#[test]
fn table_csv_and_json_match_their_snapshots() {
    let (run, _) = scripted_run();
    snapshot("latency_table.txt", &table::render(&run));
    snapshot("latency_summary.csv", &csv::render(&run));
    snapshot("latency_summary.json", &json::render(&run).unwrap());
    // The JSON is also the input of `compare`: it must read back to the same run.
    assert_eq!(json::parse(&json::render(&run).unwrap()).unwrap(), run);
}

/// What a report must say about one series, worked out from the script alone: the
/// oracle that does not come from the code under test (the snapshots above are the
/// code's own earlier output, so they catch a change, not a wrong figure).
struct Expected {
    label: String,
    mode: &'static str,
    size: usize,
    unit: &'static str,
    /// Requests lost while measuring.
    lost: u64,
    /// The measured latencies in ns, sorted.
    sorted: Vec<u64>,
    /// The stream floor (mean, worst) in us: (N-1)/rate/2 and (N-1)/rate.
    floor: Option<(f64, f64)>,
}

/// Replays the plan by hand: warm-up takes whole probe calls (a stream buffer is not cut)
/// until WARMUP latencies or losses went by; then every `None` is one lost request and
/// every value is recorded, until COUNT are.
fn expected(s: &Script) -> Expected {
    let per_call = s.per_call as u64;
    let mut pos = WARMUP.div_ceil(per_call) * per_call;
    let (mut lost, mut values) = (0, Vec::new());
    while values.len() < COUNT as usize {
        match s.latencies[pos as usize % s.latencies.len()] {
            Some(ns) => values.push(ns),
            None => lost += 1,
        }
        pos += 1;
    }
    values.sort_unstable();
    let floor = (s.mode == "stream").then(|| {
        let worst = (s.size - 1) as f64 / STREAM_RATE * 1e6;
        (worst / 2.0, worst)
    });
    Expected {
        label: format!("{} {} {}", s.mode, s.size, s.unit),
        mode: s.mode,
        size: s.size,
        unit: s.unit,
        lost,
        sorted: values,
        floor,
    }
}

/// HdrHistogram's precision at 3 significant digits: "value quantization no larger
/// than 1/1,000th (0.1%) of any value" (its documentation; `new_histogram` asks for 3).
const PRECISION: f64 = 1e-3;

impl Expected {
    /// The range (in ns) a figure may take: the exact value from the sorted latencies,
    /// widened only by the histogram's documented quantization.
    fn range_ns(&self, name: &str) -> (f64, f64) {
        let v = &self.sorted;
        let n = v.len() as u64;
        // Percentile per `value_at_quantile`: the value that q of all samples are below
        // or equivalent to, i.e. the sample of rank ceil(q * n) (1-based), reported as
        // the highest value equivalent to it. Rank in integers: q is per mille.
        let rank = |per_mille: u64| (per_mille * n).div_ceil(1000).max(1) as usize;
        let up = |x: f64| (x, x * (1.0 + PRECISION));
        let mean = v.iter().sum::<u64>() as f64 / n as f64;
        match name {
            // min is the lowest equivalent value, max the highest.
            "min" => (v[0] as f64 * (1.0 - PRECISION), v[0] as f64),
            "max" => up(v[v.len() - 1] as f64),
            "p50" => up(v[rank(500) - 1] as f64),
            "p90" => up(v[rank(900) - 1] as f64),
            "p99" => up(v[rank(990) - 1] as f64),
            "p99.9" => up(v[rank(999) - 1] as f64),
            // Mean and stdev are taken over bucket midpoints: each sample moves by at
            // most PRECISION of itself, so the mean by PRECISION of the mean, and the
            // stdev by PRECISION of the root mean square (the triangle inequality).
            "mean" => (mean * (1.0 - PRECISION), mean * (1.0 + PRECISION)),
            "stdev" => {
                let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
                let rms = (v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n as f64).sqrt();
                (var.sqrt() - rms * PRECISION, var.sqrt() + rms * PRECISION)
            }
            _ => panic!("no figure {name}"),
        }
    }

    /// Checks one reported figure in us; `shown` is how far the text's rounding may
    /// move it (in us), beyond the whole nanosecond every report rounds to.
    fn check(&self, source: &str, name: &str, got_us: f64, shown: f64) {
        let (lo, hi) = self.range_ns(name);
        let slack = 0.5 + shown * 1000.0 + 1e-6;
        let got_ns = got_us * 1000.0;
        assert!(
            got_ns >= lo - slack && got_ns <= hi + slack,
            "{source}: {} {name} is {got_us} us, but the script's latencies put it in \
             [{:.3}, {:.3}] us",
            self.label,
            lo / 1000.0,
            hi / 1000.0
        );
    }
}

/// The figures each exporter shows, in the order the table shows them.
const FIGURES: [&str; 8] = ["min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev"];

fn expectations() -> Vec<Expected> {
    scripts().iter().map(expected).collect()
}

#[test]
fn the_oracle_sees_the_script_it_was_given() {
    // The hand-made expectations describe the run they are meant for: 5 of each 500
    // udp entries are lost, once every 100 requests over 2020 requests; streams lose none.
    let exp = expectations();
    let lost: Vec<u64> = exp.iter().map(|e| e.lost).collect();
    assert_eq!(lost, [20, 20, 20, 0, 0]);
    assert!(exp.iter().all(|e| e.sorted.len() == COUNT as usize));
}

/// Reads a CSV figure: a number, or empty.
fn csv_number(row: &HashMap<&str, &str>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("CSV {col} = {:?}: {e}", row[col]))
}

#[test]
fn csv_figures_are_what_the_scripted_latencies_say() {
    let (run, _) = scripted_run();
    let text = csv::render(&run);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "mode",
            "size",
            "unit",
            "count",
            "min_us",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us",
            "mean_us",
            "stdev_us",
            "floor_mean_us",
            "floor_worst_us",
            "lost",
            "elapsed_s"
        ]
    );
    let rows: Vec<HashMap<&str, &str>> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{l}");
            header.iter().copied().zip(cells).collect()
        })
        .collect();
    let exp = expectations();
    assert_eq!(rows.len(), exp.len());
    for (row, e) in rows.iter().zip(&exp) {
        assert_eq!(
            (row["mode"], row["size"], row["unit"]),
            (e.mode, e.size.to_string().as_str(), e.unit)
        );
        assert_eq!(row["count"], COUNT.to_string(), "{}", e.label);
        assert_eq!(row["lost"], e.lost.to_string(), "{}", e.label);
        assert_eq!(row["elapsed_s"], "1.5", "{}", e.label);
        for name in FIGURES {
            let col = format!("{}_us", name.replace('.', ""));
            e.check("CSV", name, csv_number(row, &col), 0.0);
        }
        match e.floor {
            Some((mean, worst)) => {
                for (col, want) in [("floor_mean_us", mean), ("floor_worst_us", worst)] {
                    let got = csv_number(row, col);
                    assert!(
                        (got - want).abs() <= 0.0005 + 1e-9,
                        "{}: {col} {got} != {want}",
                        e.label
                    );
                }
            }
            None => assert_eq!((row["floor_mean_us"], row["floor_worst_us"]), ("", "")),
        }
    }
}

#[test]
fn json_figures_are_what_the_scripted_latencies_say() {
    let (run, _) = scripted_run();
    let doc: serde_json::Value = serde_json::from_str(&json::render(&run).unwrap()).unwrap();
    let series = doc["series"].as_array().expect("a series array");
    let exp = expectations();
    assert_eq!(series.len(), exp.len());
    let num = |v: &serde_json::Value, path: &str| {
        v.pointer(path)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
    };
    for (s, e) in series.iter().zip(&exp) {
        assert_eq!(s["mode"], e.mode);
        assert_eq!(s["size"], e.size);
        assert_eq!(s["unit"], e.unit);
        assert_eq!(s["stats"]["count"], COUNT, "{}", e.label);
        assert_eq!(s["lost"], e.lost, "{}", e.label);
        assert_eq!(s["elapsed_s"], 1.5, "{}", e.label);
        for name in FIGURES {
            let path = format!("/stats/{}_us", name.replace('.', ""));
            e.check("JSON", name, num(s, &path), 0.0);
        }
        match e.floor {
            Some((mean, worst)) => {
                for (path, want) in [("/floor/mean_us", mean), ("/floor/worst_us", worst)] {
                    let got = num(s, path);
                    assert!(
                        (got - want).abs() <= 0.0005 + 1e-9,
                        "{}: {path} {got} != {want}",
                        e.label
                    );
                }
            }
            None => assert!(s["floor"].is_null(), "{}", e.label),
        }
    }
}

/// A table cell: `9.9 us` or `1.1 ms` in us, with how far its one decimal may round.
fn table_duration(number: &str, unit: &str) -> (f64, f64) {
    let v: f64 = number
        .parse()
        .unwrap_or_else(|e| panic!("cell {number:?}: {e}"));
    match unit {
        "us" => (v, 0.05),
        "ms" => (v * 1000.0, 50.0),
        _ => panic!("cell {number} {unit}: unit is not us or ms"),
    }
}

#[test]
fn table_cells_are_what_the_scripted_latencies_say() {
    let (run, _) = scripted_run();
    let text = table::render(&run);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "series", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "stdev",
            "floor", "avg", "floor", "max", "lost"
        ]
    );
    let exp = expectations();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), exp.len());
    for (row, e) in rows.iter().zip(&exp) {
        let rest = row
            .strip_prefix(e.label.as_str())
            .unwrap_or_else(|| panic!("row {row:?} is not {}", e.label));
        let t: Vec<&str> = rest.split_whitespace().collect();
        // count, eight durations (number and unit), two floor cells, lost.
        let floor_cells = if e.floor.is_some() { 4 } else { 2 };
        assert_eq!(t.len(), 1 + 16 + floor_cells + 1, "{row}");
        assert_eq!(t[0], COUNT.to_string(), "{row}");
        assert_eq!(t[t.len() - 1], e.lost.to_string(), "{row}");
        for (i, name) in FIGURES.iter().enumerate() {
            let (v, shown) = table_duration(t[1 + 2 * i], t[2 + 2 * i]);
            e.check("table", name, v, shown);
        }
        match e.floor {
            Some((mean, worst)) => {
                for (i, want) in [mean, worst].into_iter().enumerate() {
                    let (v, shown) = table_duration(t[17 + 2 * i], t[18 + 2 * i]);
                    assert!(
                        (v - want).abs() <= shown + 1e-9,
                        "{row}: floor {v} != {want}"
                    );
                }
            }
            None => assert_eq!(&t[17..19], ["-", "-"], "{row}"),
        }
    }
}

#[test]
fn losses_are_counted_not_recorded() {
    let (run, measured) = scripted_run();
    for (s, m) in run.series.iter().zip(&measured) {
        assert_eq!(s.stats.count, 2000);
        assert_eq!(m.hist.len(), 2000);
    }
    // 5 of each 500 script entries are lost; 2000 recorded + warmup took over 4 cycles.
    assert!(run.series[0].lost >= 20, "{}", run.series[0].lost);
    assert_eq!(run.series[3].lost, 0);
}

#[test]
fn hgrm_parses_back_to_the_same_percentiles() {
    let (_, measured) = scripted_run();
    for m in &measured {
        let text = hgrm::render(&m.hist, 1000.0);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let rows = hgrm::parse(&text).expect("every line parses");
        assert!(rows.len() > 20, "{} rows", rows.len());
        for &(value, _q, total) in &rows {
            // Each line says: `total` samples are at or below `value`. Check it against
            // the histogram itself (values printed in us, recorded in ns: exact to 3 dp).
            let ns = (value * 1000.0).round() as u64;
            assert_eq!(
                m.hist.count_between(0, ns),
                total,
                "{}: at {value} us",
                m.series.label()
            );
        }
        // Reading a percentile off the file gives the table's figure: the first line
        // whose count reaches q of all samples holds the table's value for q.
        let n = m.hist.len() as f64;
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            let row = rows.iter().find(|r| r.2 as f64 >= (q * n).ceil()).unwrap();
            let table = m.series.stats.get(name).unwrap();
            assert!(
                row.0 >= table - 0.0015,
                "{}: {name} {} < {table}",
                m.series.label(),
                row.0
            );
            // Within one histogram bucket (0.1% at 3 significant digits) or the next line.
            let next = rows.iter().find(|r| r.0 >= table - 0.0015).unwrap();
            assert!(
                row.0 <= next.0.max(table * 1.002),
                "{}: {name} {} vs {table}",
                m.series.label(),
                row.0
            );
        }
        let last = rows.last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, m.hist.len());
        assert!((last.0 - m.hist.max() as f64 / 1000.0).abs() < 0.0015);
        // Counts never go down along the distribution.
        assert!(rows
            .windows(2)
            .all(|w| w[0].2 <= w[1].2 && w[0].1 <= w[1].1));
        // The footer's mean and max agree with the table's.
        let mean_line = text.lines().find(|l| l.starts_with("#[Mean")).unwrap();
        assert!(
            mean_line.contains(&format!("{:.3}", m.hist.mean() / 1000.0)),
            "{mean_line}"
        );
    }
}

#[test]
fn interval_log_decodes_with_the_hdrhistogram_crate() {
    let (run, measured) = scripted_run();
    let log = intervals::render(run.started_unix, &measured).unwrap();
    let mut by_tag: HashMap<String, Histogram<u64>> = HashMap::new();
    let mut saw_base = false;
    for entry in IntervalLogIterator::new(&log) {
        match entry.expect("a valid log line") {
            LogEntry::BaseTime(t) => {
                saw_base = true;
                assert_eq!(t.as_secs(), run.started_unix);
            }
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(i) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                // V2 + deflate: the cookie of a compressed histogram.
                assert_eq!(&bytes[..4], &[0x1c, 0x84, 0x93, 0x14]);
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert!((i.max() - h.max() as f64 / 1000.0).abs() < 0.001);
                by_tag.insert(i.tag().unwrap().to_string(), h);
            }
        }
    }
    assert!(saw_base);
    assert_eq!(by_tag.len(), measured.len());
    for m in &measured {
        let h = &by_tag[&m.series.slug()];
        assert_eq!(h.len(), m.hist.len());
        for q in [0.5, 0.99, 0.999, 1.0] {
            assert_eq!(h.value_at_quantile(q), m.hist.value_at_quantile(q));
        }
    }
}

/// A small XML well-formedness check: tags nest and close, attributes are quoted,
/// entities are the five XML ones. Returns the start tags with their attributes.
fn parse_xml(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut stack: Vec<String> = Vec::new();
    let mut tags = Vec::new();
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        let content = &rest[..lt];
        for (i, _) in content.match_indices('&') {
            let ent = &content[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e)),
                "bad entity in {content:?}"
            );
        }
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = tag[..name_end].to_string();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "bad tag name {name:?}"
        );
        let mut attrs = HashMap::new();
        let mut a = tag[name_end..].trim();
        while !a.is_empty() {
            let eq = a.find('=').expect("attribute without value");
            let key = a[..eq].trim().to_string();
            assert!(a[eq + 1..].starts_with('"'), "unquoted attribute {key}");
            let close = a[eq + 2..].find('"').expect("unterminated attribute") + eq + 2;
            let value = &a[eq + 2..close];
            assert!(!value.contains('<'), "raw < in attribute");
            attrs.insert(key, value.to_string());
            a = a[close + 1..].trim_start();
        }
        if !self_closing {
            stack.push(name.clone());
        }
        tags.push((name, attrs));
    }
    assert!(rest.trim().is_empty(), "text after the root element");
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    tags
}

#[test]
fn svgs_are_xml_with_one_series_per_size() {
    let (run, measured) = scripted_run();
    let plot = svg::percentiles(&run, &measured);
    let tags = parse_xml(&plot);
    assert_eq!(tags[0].0, "svg");
    let series: Vec<&String> = tags
        .iter()
        .filter(|(n, a)| n == "polyline" && a.get("class").is_some_and(|c| c == "series"))
        .map(|(_, a)| &a["data-label"])
        .collect();
    let labels: Vec<String> = run.series.iter().map(|s| s.label()).collect();
    assert_eq!(series, labels.iter().collect::<Vec<_>>());
    // Each curve rises (latency grows with the percentile) from left to right.
    for (_, a) in tags.iter().filter(|(n, _)| n == "polyline") {
        let pts: Vec<(f64, f64)> = a["points"]
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert!(
            pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 >= w[1].1),
            "{pts:?}"
        );
    }

    let chart = svg::by_size(&run);
    let tags = parse_xml(&chart);
    let count = |class: &str| {
        tags.iter()
            .filter(|(n, a)| n == "polyline" && a["class"] == class)
            .count()
    };
    // Two modes: a p50 and a p99 line each; the stream mode adds its two floor lines.
    assert_eq!((count("p50"), count("p99"), count("floor")), (2, 2, 2));
}

#[test]
fn report_embeds_both_plots_and_out_dir_writes_every_file() {
    let (run, measured) = scripted_run();
    let md = report::render(&run);
    assert!(md.contains("![latency by percentile](percentiles.svg)"));
    assert!(md.contains("![latency by size](by_size.svg)"));
    assert!(md.contains(&table::render(&run)));
    assert!(md.contains("(N-1)/rate/2"));
    // Each mode described as it measures: the run has ping-pong (udp) and stream.
    assert!(
        md.contains("- udp: ping-pong, closed loop: the client sends a message"),
        "{md}"
    );
    assert!(
        md.contains("- stream: one way, server to client. The server produces 896 samples"),
        "{md}"
    );
    assert!(
        !md.contains("stream: ping-pong") && !md.contains("udp, stream: ping-pong"),
        "{md}"
    );
    assert!(
        md.contains("Modes: udp, stream. For each size: 10 warm-up samples, not counted, then 2000 measured samples."),
        "{md}"
    );
    assert!(!md.contains("until stopped after"), "{md}");

    let dir = tempfile::tempdir().unwrap();
    let out = OutDir::prepare(&dir.path().join("new/sub")).unwrap();
    out.write(&run, &measured).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "by_size.svg",
            "intervals.hlog",
            "percentiles.svg",
            "report.md",
            "stream-4s.hgrm",
            "stream-64s.hgrm",
            "summary.csv",
            "summary.json",
            "udp-1024B.hgrm",
            "udp-16384B.hgrm",
            "udp-16B.hgrm"
        ]
    );
}
