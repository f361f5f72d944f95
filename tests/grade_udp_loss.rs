//! Grading of 03-udp-loss through the real binary: the seed replays the same datagrams
//! (so the same expected counts), and a failure names the exact figures and the
//! classic mistake. Solutions, starters and mutants are covered by `lab dev check` in
//! tests/grade.rs. Needs python3.

mod common;
use std::path::PathBuf;
use std::process::Stdio;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Grades a mutant with `seed` and returns the JSON report.
fn grade(mutant: &str, seed: u64) -> serde_json::Value {
    let cmd = format!(
        "python3 {}",
        repo().join("tests/mutants").join(mutant).display()
    );
    let o = common::lab()
        .args(["grade", "03", "--format", "json", "--seed"])
        .arg(seed.to_string())
        .args(["--cmd", &cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // A failing check: exit status 1, the report still on stdout.
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}): {o:?}"))
}

fn message(report: &serde_json::Value, check: &str) -> String {
    report["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == check)
        .unwrap_or_else(|| panic!("no check {check}: {report}"))["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_seed_replays_the_same_datagrams_and_counts() {
    // Fixed seeds, printed for the record.
    let (a, b) = (3141, 2718);
    eprintln!("seeds {a} and {b}");
    let first = grade("loss_gaps_once.py", a);
    let again = grade("loss_gaps_once.py", a);
    let other = grade("loss_gaps_once.py", b);
    let m = message(&first, "loss");
    assert_eq!(first["seed"], a);
    // Counting each gap once undercounts the burst of 3 by 2 at least.
    assert!(m.contains("lost is"), "{m}");
    assert!(m.contains("likely mistake: counting gaps"), "{m}");
    // Whether the program had already exited when the check ended is a race with the
    // scheduler, not part of the plan: that note is left out of the comparison.
    let plan = |m: String| m.replace("; the program exited with status 0 during the check", "");
    let m = plan(m);
    assert_eq!(m, plan(message(&again, "loss")), "same seed, same plan");
    assert_ne!(
        m,
        plan(message(&other, "loss")),
        "another seed, another plan"
    );
}

#[test]
fn a_failure_names_the_figures_and_the_mistake() {
    let r = grade("loss_max_seq.py", 42);
    assert_eq!(r["lab"], "03-udp-loss");
    let m = message(&r, "tail_loss");
    // Expected and got, as JSON, and the one wrong field.
    assert!(m.starts_with("expected {\"received\": "), "{m}");
    assert!(m.contains("but got {\"received\": "), "{m}");
    assert!(m.contains(": lost is "), "{m}");
    assert!(!m.contains("received is"), "only `lost` is wrong: {m}");
    assert!(m.contains("instead of from the sender's count"), "{m}");
    // Everything else passes: the mutant differs from the solution in that one line.
    // The long run's sequence numbers start far from 0, so there "highest + 1 -
    // received" is wrong too.
    for t in r["tests"].as_array().unwrap() {
        if t["name"] != "tail_loss" && t["name"] != "bounded_memory" {
            assert_eq!(t["status"], "pass", "{t}");
        }
    }
}
