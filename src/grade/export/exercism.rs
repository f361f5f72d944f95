//! `--format exercism`: the Exercism test-runner `results.json`, version 2 (interface
//! spec: docs/building/tooling/test-runners/interface.md in exercism/docs). When
//! nothing could be judged (the program does not build, or crashes before it is ready)
//! the top-level status is `error` with a `message` saying why, as the spec's own
//! syntax-error example does; otherwise tests are listed in order with status
//! pass/fail/error, each with the output the program printed during it.

use serde_json::{json, Value};

use super::qualified;
use crate::grade::model::{CheckResult, LabReport, Status};

/// Exercism caps a test's `output` at 500 characters.
const OUTPUT_MAX: usize = 500;

/// The spec caps the top-level `message` at 65535 characters (fewer bytes' worth with
/// multi-byte characters): keep well inside it.
const MESSAGE_MAX: usize = 60_000;

/// The document.
pub fn render(reports: &[LabReport]) -> String {
    // `error` only when nothing ran properly, in every lab (the spec: "all tests
    // errored"); a lab that broke next to others that ran shows as error tests.
    let doc = if !reports.is_empty() && reports.iter().all(|r| r.status == Status::Error) {
        let message: Vec<String> = reports
            .iter()
            .map(|r| qualified_message(reports, r, &why_nothing_ran(r)))
            .collect();
        json!({"version": 2, "status": "error", "message": cut_message(&message.join("\n\n")), "tests": []})
    } else {
        let mut tests = Vec::new();
        for r in reports {
            if !r.message.is_empty() {
                tests.push(json!({
                    "name": qualified(reports, &r.lab, "build"),
                    "status": "error",
                    "message": r.message,
                    "output": Value::Null,
                    "test_code": "the program is built and ready to grade",
                }));
            }
            for t in &r.tests {
                if t.status != Status::Skipped {
                    tests.push(test_value(reports, r, t));
                }
            }
        }
        let status = if reports.iter().all(|r| r.passed()) {
            "pass"
        } else {
            "fail"
        };
        json!({"version": 2, "status": status, "message": null, "tests": tests})
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

fn test_value(reports: &[LabReport], r: &LabReport, t: &CheckResult) -> Value {
    let message = if t.status == Status::Pass {
        Value::Null
    } else if t.hint.is_empty() {
        json!(t.message)
    } else {
        json!(format!("{}\nhint: {}", t.message, t.hint))
    };
    json!({
        "name": qualified(reports, &r.lab, &t.name),
        "status": t.status.word(),
        "message": message,
        "output": cut_output(&t.program_output),
        "test_code": t.description,
    })
}

/// Why a lab could not be judged: its build message, else its first check's (the
/// program did not start), with what the program printed (a traceback, a panic).
fn why_nothing_ran(r: &LabReport) -> String {
    if !r.message.is_empty() {
        return r.message.clone();
    }
    let Some(t) = r.tests.iter().find(|t| !t.message.is_empty()) else {
        return "nothing could be graded".to_string();
    };
    let mut s = t.message.clone();
    if !t.program_output.trim().is_empty() {
        s.push_str(&format!(
            "\n\nyour program's output:\n{}",
            t.program_output.trim_end()
        ));
    }
    s
}

fn qualified_message(reports: &[LabReport], r: &LabReport, why: &str) -> String {
    if reports.len() > 1 {
        format!("{}: {why}", r.lab)
    } else {
        why.to_string()
    }
}

/// A test's `output`: null when the program printed nothing; at most 500 characters,
/// and when cut, it says so. The start is kept: stderr comes first, where a crash shows.
fn cut_output(output: &str) -> Value {
    if output.is_empty() {
        return Value::Null;
    }
    if output.chars().count() <= OUTPUT_MAX {
        return json!(output);
    }
    let note = "\n[output truncated at 500 characters]";
    let head: String = output
        .chars()
        .take(OUTPUT_MAX - note.chars().count())
        .collect();
    json!(format!("{head}{note}"))
}

fn cut_message(message: &str) -> String {
    if message.chars().count() <= MESSAGE_MAX {
        return message.to_string();
    }
    let head: String = message.chars().take(MESSAGE_MAX).collect();
    format!("{head}\n[message truncated to {MESSAGE_MAX} characters]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_over_500_characters_is_cut_and_says_so() {
        assert_eq!(cut_output(""), Value::Null);
        assert_eq!(cut_output("short\n"), json!("short\n"));
        let exact = "x".repeat(OUTPUT_MAX);
        assert_eq!(cut_output(&exact), json!(exact));
        let long = format!("Traceback{}", "é".repeat(900));
        let cut = cut_output(&long);
        let cut = cut.as_str().unwrap();
        assert_eq!(cut.chars().count(), OUTPUT_MAX);
        assert!(cut.starts_with("Traceback"), "{cut}");
        assert!(
            cut.ends_with("[output truncated at 500 characters]"),
            "{cut}"
        );
    }
}
