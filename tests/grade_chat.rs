//! Grading of 05-chat through the real binary: both reference solutions get full
//! marks, both starters fail, and a failure names the unmet expectation and the
//! classic mistake. Every mutant is covered by `lab dev check` in tests/grade.rs.
//! Needs python3 (and cargo for the Rust files, built by `lab check`'s own build).

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Grades `cmd` for lab 05 with `seed`; returns the exit code and the JSON report.
fn grade(cmd: &str, seed: u64) -> (Option<i32>, serde_json::Value) {
    eprintln!("grading `{cmd}` with seed {seed}");
    let o = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["grade", "05", "--format", "json", "--seed"])
        .arg(seed.to_string())
        .args(["--cmd", cmd])
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}): {o:?}"));
    (o.status.code(), v)
}

fn python(rel: &str) -> String {
    format!("python3 {}", repo().join(rel).display())
}

/// Builds a standalone Rust file with rustc into `dir`; the exercises use std only.
fn rustc(src: &str, dir: &std::path::Path) -> String {
    let out = dir.join("chat");
    let o = Command::new("rustc")
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&out)
        .arg(repo().join(src))
        .output()
        .expect("rustc");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.display().to_string()
}

#[test]
fn solutions_get_full_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let rust = rustc("solutions/rust/05-chat.rs", tmp.path());
    for cmd in [python("solutions/python/05-chat.py"), rust] {
        let (code, v) = grade(&cmd, 505);
        assert_eq!(code, Some(0), "{cmd}: {v}");
        assert_eq!(v["lab"], "05-chat");
        assert_eq!(v["score"], v["max_score"], "{cmd}: {v}");
        assert_eq!(v["max_score"], 12.0);
    }
}

#[test]
fn starters_fail_with_the_mistake_named() {
    let tmp = tempfile::tempdir().unwrap();
    let rust = rustc("exercises/rust/05-chat.rs", tmp.path());
    for cmd in [python("exercises/python/05-chat.py"), rust] {
        let (code, v) = grade(&cmd, 506);
        assert_eq!(code, Some(1), "{cmd}: {v}");
        let tests = v["tests"].as_array().unwrap();
        // The starter runs and listens, then fails the first real check.
        assert_eq!(tests[0]["status"], "pass", "{cmd}: {v}");
        assert_eq!(tests[1]["name"], "two_clients");
        assert_eq!(tests[1]["status"], "fail", "{cmd}: {v}");
        let m = tests[1]["message"].as_str().unwrap();
        assert!(m.contains("expected \"* "), "{m}");
        assert!(m.contains("joined\""), "{m}");
    }
}

#[test]
fn a_blocking_broadcast_is_named_for_what_it_is() {
    let (code, v) = grade(&python("tests/mutants/chat_blocking_send.py"), 507);
    assert_eq!(code, Some(1));
    let t = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "slow_reader")
        .unwrap()
        .clone();
    assert_eq!(t["status"], "fail", "{t}");
    let m = t["message"].as_str().unwrap();
    assert!(
        m.contains("stuck sending to the clients that never read"),
        "{m}"
    );
    assert!(
        m.contains("a send to a client that does not read blocks"),
        "{m}"
    );
}

#[test]
fn a_send_timeout_waited_out_under_a_global_lock_is_caught() {
    // Thread per client, settimeout(5), send() under one lock: each client that never
    // reads stalls everyone for 5 s, so five of them outlast the check's wait.
    let (code, v) = grade(&python("tests/mutants/chat_timeout_send.py"), 508);
    assert_eq!(code, Some(1));
    let t = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "slow_reader")
        .unwrap()
        .clone();
    assert_eq!(t["status"], "fail", "{t}");
    let m = t["message"].as_str().unwrap();
    assert!(
        m.contains("for the whole send timeout per stuck client"),
        "{m}"
    );
    assert!(m.contains("worse under a lock every thread needs"), "{m}");
}

#[test]
fn threads_with_a_bounded_queue_per_client_get_full_marks() {
    // A third correct shape (reader + writer thread per client, put_nowait): the
    // grader must not demand one design. Three seeds, since it is about timing.
    for seed in [509, 510, 511] {
        let cmd = python("tests/programs/chat_threads_queue.py");
        let (code, v) = grade(&cmd, seed);
        assert_eq!(code, Some(0), "{cmd}: {v}");
        assert_eq!(v["score"], v["max_score"], "{cmd}: {v}");
    }
}
