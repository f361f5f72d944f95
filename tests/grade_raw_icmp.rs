//! Grading of 04-raw-icmp through the real binary: the grader runs the program inside
//! its own user + network namespace (CAP_NET_RAW there only), so these tests need no
//! root. The reference solution gets full marks, the starter fails, and a mutant's
//! failure names the bytes involved and the classic mistake. (Rust solution and starter,
//! and every mutant, are covered by `lab dev check` in tests/grade.rs.) Needs python3
//! and user namespaces: skips loudly without them outside CI.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the grader can isolate here; explains a skip.
fn namespaces() -> bool {
    let ok = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--pid",
            "--fork",
            "true",
        ])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "user namespaces are off in CI"
        );
        eprintln!("SKIP: user namespaces are disabled here; 04's checks need them");
    }
    ok
}

/// Grades `python3 FILE` for lab 04 with a fixed seed; returns the exit code and report.
fn grade(file: &str) -> (Option<i32>, serde_json::Value) {
    let seed = 404;
    eprintln!("seed {seed}");
    let o = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "grade",
            "04",
            "--format",
            "json",
            "--seed",
            &seed.to_string(),
        ])
        .args(["--cmd", &format!("python3 {}", repo().join(file).display())])
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_OUTPUT")
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join(format!("lab-icmp-{}", std::process::id())),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}): {o:?}"));
    (o.status.code(), report)
}

fn check<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {r}"))
}

#[test]
fn the_solution_gets_full_marks_and_the_starter_fails() {
    if !namespaces() {
        return;
    }
    let (code, r) = grade("solutions/python/04-raw-icmp.py");
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["score"], r["max_score"], "{r}");
    assert_eq!(r["tests"].as_array().unwrap().len(), 8, "{r}");
    let (code, r) = grade("exercises/python/04-raw-icmp.py");
    assert_eq!(code, Some(1), "{r}");
    // The starter runs (its socket opens inside the grader's namespace) but its
    // checksum is 0: the wire check says what the kernel does with such a request.
    assert_eq!(check(&r, "starts")["status"], "pass", "{r}");
    let m = check(&r, "replies")["message"].as_str().unwrap();
    assert!(
        m.contains("carries ICMP checksum 0x0000 but its bytes need 0x"),
        "{m}"
    );
    assert!(
        m.contains("drops a request with a wrong checksum silently"),
        "{m}"
    );
}

#[test]
fn a_fixed_20_byte_header_is_caught_by_the_reply_with_ip_options() {
    if !namespaces() {
        return;
    }
    let (_, r) = grade("tests/mutants/icmp_fixed_header.py");
    let t = check(&r, "ip_options");
    assert_eq!(t["status"], "fail", "{r}");
    let m = t["message"].as_str().unwrap();
    assert!(m.contains("expected `2 transmitted, 2 received`"), "{m}");
    assert!(m.contains("IHL 7"), "{m}");
    assert!(
        m.contains("likely mistake: the ICMP message read at a fixed offset of 20 bytes"),
        "{m}"
    );
    // Everything else passes: the kernel's own replies have no options.
    for t in r["tests"].as_array().unwrap() {
        if t["name"] != "ip_options" {
            assert_eq!(t["status"], "pass", "{t}");
        }
    }
}

#[test]
fn a_checksum_wrong_on_odd_lengths_fails_only_the_odd_size_check() {
    if !namespaces() {
        return;
    }
    let (_, r) = grade("tests/mutants/icmp_odd_checksum.py");
    let t = check(&r, "odd_size");
    assert_eq!(t["status"], "fail", "{r}");
    let m = t["message"].as_str().unwrap();
    assert!(m.contains("41 bytes of ICMP, an odd length"), "{m}");
    for t in r["tests"].as_array().unwrap() {
        if t["name"] != "odd_size" {
            assert_eq!(t["status"], "pass", "{t}");
        }
    }
}

#[test]
fn a_program_that_waits_forever_is_stopped_and_named() {
    if !namespaces() {
        return;
    }
    let (_, r) = grade("tests/mutants/icmp_hangs.py");
    let m = check(&r, "silent_target")["message"].as_str().unwrap();
    assert!(m.contains("was still running after"), "{m}");
    assert!(m.contains("recv without a timeout"), "{m}");
}
