//! Report generation, tested deterministically: a scripted probe feeds known latencies
//! (seeded; the seed is printed), and every exporter's output is checked. Table, CSV and
//! JSON are compared byte for byte with files under tests/snapshots/ (regenerate them
//! with `UPDATE_SNAPSHOTS=1 cargo test --test latency_report` after an intended change).

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

/// Known latencies for three ping-pong sizes and two stream buffer sizes.
fn scripted_run() -> (Run, Vec<Measured>) {
    println!("scripted latencies seed: {SEED:#x}");
    let plan = Plan {
        warmup: 10,
        count: Some(2000),
        duration: None,
        // One interval per series: the interval log then does not depend on timing.
        interval: Duration::from_secs(3600),
    };
    let start = Instant::now();
    let mut measured = Vec::new();
    for (i, size) in [16usize, 1024, 16384].into_iter().enumerate() {
        let mut script = scripted_latencies(500, 8_000 + 700 * i as u64, SEED + i as u64);
        // Every 100th request of the script is lost, like a UDP drop.
        for v in script.iter_mut().step_by(100) {
            *v = None;
        }
        let mut p = Scripted::new(script);
        let label = Label {
            mode: "udp".into(),
            size,
            unit: "B".into(),
            floor: None,
        };
        measured.push(measure(&mut p, label, &plan, start, &ProgressBar::hidden()).unwrap());
    }
    for n in [4usize, 64] {
        let mut p = Scripted::new(scripted_latencies(700, 40_000 * n as u64, SEED + n as u64));
        p.per_call = n;
        let floor = Some(Floor::new(n, 896.0));
        let label = Label {
            mode: "stream".into(),
            size: n,
            unit: "samples".into(),
            floor,
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
            count: Some(2000),
            duration_s: None,
            warmup: 10,
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
