//! Grading of 06-json-to-file through the real binary: the reference solutions (Python
//! and Rust) get full marks, the starters fail, a failure names the record that went
//! missing, and the grader's scratch folders are gone afterwards. Mutants are covered
//! by `lab dev check` in tests/grade.rs. Needs python3 and cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `lab grade 06 --format json --seed SEED --cmd CMD` with TMPDIR set to `tmp`.
fn grade(cmd: &str, seed: u64, tmp: &Path) -> (Output, serde_json::Value) {
    eprintln!("grading `{cmd}` with seed {seed}");
    let o = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args(["grade", "06", "--format", "json", "--seed"])
        .arg(seed.to_string())
        .args(["--cmd", cmd])
        .env("NO_COLOR", "1")
        .env("TMPDIR", tmp)
        .env_remove("GITHUB_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}): {o:?}"));
    (o, v)
}

fn statuses(r: &serde_json::Value) -> Vec<(String, String)> {
    r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn python(file: &str) -> String {
    format!("python3 {}", repo().join(file).display())
}

#[test]
fn python_solution_gets_full_marks_and_leaves_no_scratch_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, r) = grade(
        &python("solutions/python/06-json-to-file.py"),
        606,
        tmp.path(),
    );
    assert!(o.status.success(), "{r}");
    let s = statuses(&r);
    assert_eq!(s.len(), 11);
    assert!(s.iter().all(|(_, st)| st == "pass"), "{s:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("lab-check-"))
        .collect();
    assert!(left.is_empty(), "scratch folders left behind: {left:?}");
}

#[test]
fn python_starter_fails_and_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, r) = grade(
        &python("exercises/python/06-json-to-file.py"),
        607,
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{r}");
    let s = statuses(&r);
    assert_eq!(s[0], ("starts".to_string(), "pass".to_string()));
    assert!(s[1..].iter().all(|(_, st)| st == "fail"), "{s:?}");
}

#[test]
fn an_ack_before_the_write_reaches_the_file_is_named_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, r) = grade(
        &python("tests/mutants/json_ack_before_flush.py"),
        608,
        tmp.path(),
    );
    let t = r["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "kill_restart")
        .unwrap();
    let m = t["message"].as_str().unwrap();
    assert_eq!(t["status"], "fail", "{t}");
    assert!(m.contains("was acknowledged but is not in the file"), "{m}");
    assert!(
        m.contains("likely mistake: acknowledged before the record was in the file"),
        "{m}"
    );
}

#[test]
fn rust_solution_gets_full_marks_and_the_rust_starter_fails() {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("json-to-file-grading");
    for (which, want_pass) in [("solutions", true), ("exercises", false)] {
        let b = Command::new(env!("CARGO"))
            .args(["build", "--offline", "--quiet", "--bin", "json-to-file"])
            .arg("--manifest-path")
            .arg(repo().join(which).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target.join(which))
            .status()
            .unwrap();
        assert!(b.success(), "cargo build of {which}");
        let exe = target.join(which).join("debug/json-to-file");
        let tmp = tempfile::tempdir().unwrap();
        let (o, r) = grade(&exe.display().to_string(), 609, tmp.path());
        assert_eq!(o.status.success(), want_pass, "{which}: {r}");
    }
}
