//! `--evidence DIR` and `lab report`: entries are new dated folders every time, and the
//! write-up's links and images all resolve (as GitHub would resolve them: relative to
//! the Markdown file).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `lab ARGS` in a user + network namespace of its own when the machine allows (so the
/// capture works without root and holds only the demo), else as we are.
fn lab(args: &[&str], progress: &Path) -> Output {
    let own = Command::new("unshare")
        .args(["-Urn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let mut c = if own {
        let mut c = Command::new("unshare");
        c.args(["-Urn", "--", env!("CARGO_BIN_EXE_lab")]);
        c
    } else {
        common::skip("no user namespaces: the demos run without a capture of their own");
        common::lab_exe()
    };
    c.args(args);
    common::isolate(&mut c);
    c.env("LAB_PROGRESS", progress);
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        o.status.success(),
        "lab {args:?}: {}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    o
}

/// Every `](target)` of a Markdown file: links and images.
fn link_targets(md: &str) -> Vec<String> {
    md.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_string)
        .collect()
}

/// Asserts every relative link and image of `file` names an existing file, following
/// links into other Markdown files once. Returns how many were checked.
fn check_links(file: &Path, seen: &mut Vec<PathBuf>) -> usize {
    if seen.contains(&file.to_path_buf()) {
        return 0;
    }
    seen.push(file.to_path_buf());
    let md = std::fs::read_to_string(file).unwrap();
    let base = file.parent().unwrap();
    let mut n = 0;
    for target in link_targets(&md) {
        assert!(
            !target.starts_with('/') && !target.contains("://"),
            "{}: only relative links render everywhere: {target}",
            file.display()
        );
        let path = base.join(&target);
        assert!(path.is_file(), "{}: broken link {target}", file.display());
        n += 1;
        if target.ends_with(".md") {
            n += check_links(&path, seen);
        }
    }
    n
}

#[test]
fn evidence_entries_are_new_each_time_and_the_write_up_links_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence");
    let progress = dir.path().join("progress.txt");
    let e = ev.to_str().unwrap();
    lab(&["run", "01", "--evidence", e], &progress);
    lab(&["run", "01", "--evidence", e], &progress);
    lab(&["run", "02", "--evidence", e], &progress);
    lab(&["run", "03", "--count", "300", "--evidence", e], &progress);

    // Two runs of 01: two entries, neither overwritten.
    let entries: Vec<PathBuf> = std::fs::read_dir(ev.join("01-tcp-echo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.join("record.json")).unwrap())
                .unwrap();
        assert_eq!(record["lab"], "01-tcp-echo");
        assert_eq!(record["kind"], "run");
        assert_eq!(record["outcome"], "completed");
        assert!(record["machine"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty()));
        for f in record["files"].as_array().unwrap() {
            assert!(
                entry.join(f.as_str().unwrap()).is_file(),
                "{f} is listed but missing"
            );
        }
        let transcript = std::fs::read_to_string(entry.join("transcript.txt")).unwrap();
        assert!(
            transcript.contains("What you saw"),
            "the narrated demo is kept"
        );
        assert!(
            !transcript.contains('\u{1b}'),
            "no colour codes in the transcript"
        );
    }

    let out = dir.path().join("write-up");
    let o = common::lab()
        .args(["report", "01", "02", "03", "--out"])
        .arg(&out)
        .arg("--evidence")
        .arg(&ev)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let report = out.join("report.md");
    let md = std::fs::read_to_string(&report).unwrap();
    for heading in [
        "## 01-tcp-echo",
        "## 02-udp-echo",
        "## 03-udp-loss",
        "### What was asked",
        "### What was done",
        "### Evidence",
        "### My observations",
        "### Answers to the lesson's questions",
    ] {
        assert!(md.contains(heading), "no {heading}:\n{md}");
    }
    let checked = check_links(&report, &mut Vec::new());
    // Per lab at least a report, a transcript and the raw data.
    assert!(checked >= 9, "only {checked} links");
    if md.contains("capture.pcapng") {
        assert!(md.contains("frames.svg"), "a capture comes with its figure");
    }
}

#[test]
fn lab_report_without_evidence_says_how_to_collect_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::lab()
        .args(["report", "--out"])
        .arg(dir.path().join("w"))
        .arg("--evidence")
        .arg(dir.path().join("none"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(err.contains("--evidence"), "{err}");
}

#[test]
fn lab_check_evidence_keeps_the_full_transcript_and_report() {
    if !common::have("python3") {
        return common::skip("needs python3");
    }
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence");
    let solution = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python/02-udp-echo.py");
    let o = common::lab()
        .args(["check", "02", "--seed", "9", "--evidence"])
        .arg(&ev)
        .arg("--cmd")
        .arg(format!("python3 {}", solution.display()))
        .env("LAB_PROGRESS", dir.path().join("progress.txt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    let entry = std::fs::read_dir(ev.join("02-udp-echo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        entry.to_string_lossy().ends_with("-check"),
        "{}",
        entry.display()
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(entry.join("record.json")).unwrap()).unwrap();
    assert_eq!(
        record["check"]["seed"], 9,
        "the grader's report is the raw data"
    );
    assert_eq!(record["check"]["status"], "pass");
    // Passing checks' transcripts too: that is what shows the program works.
    let transcript = std::fs::read_to_string(entry.join("transcript.txt")).unwrap();
    assert!(transcript.contains("1. start `"), "{transcript}");
    assert!(check_links(&entry.join("report.md"), &mut Vec::new()) >= 3);
}

/// 08's sweep draws its own figures: `--evidence` asks for them inside the entry, and
/// both the entry's report.md and the write-up show them, every link resolving.
#[test]
fn lab_08_evidence_has_the_sweeps_figures() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence");
    let progress = dir.path().join("progress.txt");
    let e = ev.to_str().unwrap();
    lab(
        &[
            "run",
            "08",
            "--count",
            "50",
            "--stream-seconds",
            "100ms",
            "--evidence",
            e,
        ],
        &progress,
    );
    let entry = std::fs::read_dir(ev.join("08-latency"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let report = std::fs::read_to_string(entry.join("report.md")).unwrap();
    let figures: Vec<String> = link_targets(&report)
        .into_iter()
        .filter(|t| t.starts_with("figures-") && t.ends_with(".svg"))
        .collect();
    assert!(
        figures
            .iter()
            .any(|f| f.contains("sizes") && f.ends_with("percentiles.svg")),
        "no percentile plot of the size sweep in:\n{report}"
    );
    for f in &figures {
        let svg = std::fs::read_to_string(entry.join(f)).unwrap();
        assert!(svg.contains("<svg"), "{f} is not an SVG");
    }
    assert!(
        !entry.join("figures").exists(),
        "the demo's own folder is flattened into the entry"
    );
    check_links(&entry.join("report.md"), &mut Vec::new());

    let out = dir.path().join("write-up");
    let o = common::lab()
        .args(["report", "08", "--out"])
        .arg(&out)
        .arg("--evidence")
        .arg(&ev)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("percentiles.svg"), "{md}");
    check_links(&out.join("report.md"), &mut Vec::new());
}

/// `lab report --run-missing` runs the demo of a named lab with no evidence yet, once:
/// the write-up then holds it, and a second call finds it and runs nothing.
#[test]
fn lab_report_runs_what_is_missing_once() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence");
    let out = dir.path().join("write-up");
    let progress = dir.path().join("progress.txt");
    let args = [
        "report",
        "02",
        "--run-missing",
        "--out",
        out.to_str().unwrap(),
        "--evidence",
        ev.to_str().unwrap(),
    ];
    let first = lab(&args, &progress);
    assert!(
        common::stdout(&first).contains("running `lab run 02-udp-echo --evidence"),
        "{}",
        common::stdout(&first)
    );
    let runs = || std::fs::read_dir(ev.join("02-udp-echo")).unwrap().count();
    assert_eq!(runs(), 1);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("The demo ("), "{md}");
    check_links(&out.join("report.md"), &mut Vec::new());
    let second = lab(&args, &progress);
    assert!(!common::stdout(&second).contains("running `lab run"));
    assert_eq!(runs(), 1, "a lab with evidence is not run again");
}
