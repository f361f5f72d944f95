//! `--format exercism`: the Exercism test-runner `results.json`, version 2. A build
//! failure (or a program that could not be graded at all) is a top-level `error` with
//! a message; otherwise tests are listed in order with status pass/fail/error.

use serde_json::json;

use super::qualified;
use crate::grade::model::{LabReport, Status};

/// Exercism caps a test's `output` at 500 characters.
const OUTPUT_MAX: usize = 500;

/// The document.
pub fn render(reports: &[LabReport]) -> String {
    let broken: Vec<&LabReport> = reports.iter().filter(|r| !r.message.is_empty()).collect();
    if !broken.is_empty() {
        let message: Vec<String> = broken
            .iter()
            .map(|r| format!("{}: {}", r.lab, r.message))
            .collect();
        return serde_json::to_string_pretty(
            &json!({"version": 2, "status": "error", "message": message.join("\n"), "tests": []}),
        )
        .unwrap_or_default();
    }
    let mut tests = Vec::new();
    for r in reports {
        for t in &r.tests {
            if t.status == Status::Skipped {
                continue;
            }
            let output: String = t.program_output.chars().take(OUTPUT_MAX).collect();
            tests.push(json!({
                "name": qualified(reports, &r.lab, &t.name),
                "status": t.status.word(),
                "message": if t.status == Status::Pass { serde_json::Value::Null } else { json!(format!("{}\nhint: {}", t.message, t.hint)) },
                "output": if output.is_empty() { serde_json::Value::Null } else { json!(output) },
                "test_code": t.description,
            }));
        }
    }
    let status = if reports.iter().all(|r| r.passed()) {
        "pass"
    } else {
        "fail"
    };
    serde_json::to_string_pretty(
        &json!({"version": 2, "status": status, "message": null, "tests": tests}),
    )
    .unwrap_or_default()
}
