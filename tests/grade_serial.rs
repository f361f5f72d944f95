//! Grading of 07-serial-stream through the real binary: the grader opens a
//! pseudo-terminal, writes a seeded waveform into it at the Arduino's rate and plays the
//! clients. The reference solutions (Rust and Python) get full marks, the starters fail,
//! and every mutant in tests/mutants/fwd_*.py fails the check its header names. Also: a
//! lab without a graded exercise says so plainly (exit 2), whatever the command.
//!
//! Needs python3 (Python programs and mutants) and cargo (the Rust solution). Each test
//! prints its seed; `--seed` replays it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab() -> Command {
    let mut c = common::lab();
    c.stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// True when python3 runs; skips loudly otherwise (fails under CI).
fn have_python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is missing in CI (.ci/apt-packages)"
        );
        eprintln!("SKIPPED: python3 is not installed (apt-get install python3)");
    }
    ok
}

/// Grades lab 07 with extra arguments; returns the process output and the JSON report.
/// Rust builds go to a target folder of `target`'s own: the starters and the solutions
/// build binaries of the same name, and tests run side by side.
fn grade(seed: u64, target: &str, extra: &[&str]) -> (Output, serde_json::Value) {
    eprintln!("grading 07 with seed {seed}: {extra:?}");
    let o = lab()
        .args(["grade", "07", "--format", "json", "--seed"])
        .arg(seed.to_string())
        .args(extra)
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("serial-exercises")
                .join(target),
        )
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", text(&o)));
    (o, v)
}

fn tests(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["tests"].as_array().expect("a tests array")
}

#[test]
fn the_python_and_rust_solutions_get_full_marks() {
    if !have_python() {
        return;
    }
    let py = format!(
        "python3 {}",
        repo()
            .join("solutions/python/07-serial-stream.py")
            .display()
    );
    let sol = repo().join("solutions");
    for extra in [
        vec!["--cmd", py.as_str()],
        vec!["--dir", sol.to_str().unwrap(), "--lang", "rust"],
    ] {
        let (o, r) = grade(707, "solutions", &extra);
        assert!(o.status.success(), "{extra:?}: {r:#}");
        assert_eq!(r["score"], r["max_score"], "{r:#}");
        assert_eq!(tests(&r).len(), 9, "{r:#}");
    }
}

#[test]
fn the_starters_fail() {
    if !have_python() {
        return;
    }
    let ex = repo().join("exercises");
    for lang in ["python", "rust"] {
        let (o, r) = grade(
            708,
            "starters",
            &["--dir", ex.to_str().unwrap(), "--lang", lang],
        );
        assert_eq!(o.status.code(), Some(1), "{lang}: {r:#}");
        let first = tests(&r).iter().find(|t| t["status"] != "pass").unwrap();
        // The starters serve one client with text: the very first stream check says so.
        assert_eq!(first["name"], "every_byte_in_order", "{lang}: {r:#}");
        let m = first["message"].as_str().unwrap();
        assert!(m.contains("are not samples the grader wrote"), "{m}");
    }
}

#[test]
fn every_mutant_fails_the_check_it_targets() {
    if !have_python() {
        return;
    }
    let mut mutants: Vec<(PathBuf, String)> = std::fs::read_dir(repo().join("tests/mutants"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fwd_"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            assert!(t.contains("# lab: 07-serial-stream"), "{}", p.display());
            let check = t
                .lines()
                .find_map(|l| l.strip_prefix("# caught-by: "))
                .expect("caught-by header")
                .to_string();
            (p, check)
        })
        .collect();
    mutants.sort();
    assert!(mutants.len() >= 8, "{mutants:?}");
    // Two at a time: each grading waits on the pace of the serial line, not the CPU,
    // yet the checks time CPU use and ages, so the machine is not loaded further.
    for pair in mutants.chunks(2) {
        let runs: Vec<_> = pair
            .iter()
            .map(|(path, check)| {
                let cmd = format!("python3 {}", path.display());
                let check = check.clone();
                std::thread::spawn(move || {
                    let (o, r) = grade(709, "mutants", &["--cmd", &cmd]);
                    (cmd, check, o, r)
                })
            })
            .collect();
        for run in runs {
            let (cmd, check, o, r) = run.join().unwrap();
            assert_eq!(o.status.code(), Some(1), "{cmd}: {r:#}");
            let t = tests(&r)
                .iter()
                .find(|t| t["name"] == check.as_str())
                .unwrap_or_else(|| panic!("{cmd}: no check {check}"));
            assert_eq!(t["status"], "fail", "{cmd} must fail {check}: {r:#}");
            assert!(
                t["message"].as_str().unwrap().contains("likely mistake:"),
                "{t}"
            );
        }
    }
}

#[test]
fn a_lab_without_an_exercise_says_so_and_what_to_do_instead() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let o = lab().arg("init").arg(&ws).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // 08 has a demo and no exercise. Every grader command says the same.
    for (id, args, offer) in [
        ("08-latency", vec!["check", "08"], "`lab run 08-latency`"),
        (
            "08-latency",
            vec!["grade", "08", "--cmd", "true"],
            "`lab run 08-latency`",
        ),
        ("08-latency", vec!["watch", "08"], "`lab run 08-latency`"),
    ] {
        let o = lab().args(&args).current_dir(&ws).output().unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(
            t.contains(&format!("{id} has no graded exercise yet")),
            "{args:?}: {t}"
        );
        assert!(t.contains(offer), "{args:?}: {t}");
        assert!(t.contains(&format!("`lab show {id}`")), "{args:?}: {t}");
        assert!(t.contains("07-serial-stream"), "lists the graded labs: {t}");
        assert!(!t.contains("build error"), "no misleading fix: {t}");
    }
}
