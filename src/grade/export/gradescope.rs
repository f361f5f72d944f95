//! `--format gradescope`: `/autograder/results/results.json` (spec: docs/specs.md in
//! gradescope/autograder_samples). Each failed test's `output` holds the unmet
//! expectation, then only the sections that have something in them.

use serde_json::json;

use super::qualified;
use crate::grade::model::{LabReport, Status};

/// The document.
pub fn render(reports: &[LabReport]) -> String {
    let mut tests = Vec::new();
    for r in reports {
        for t in &r.tests {
            let mut output = t.message.clone();
            // A check that never ran has no transcript, hint or output: an empty
            // heading would only make the student look for something missing.
            if t.status != Status::Pass {
                if !t.transcript.is_empty() {
                    output.push_str(&format!(
                        "\n\nwhat the grader did:\n{}",
                        t.transcript.join("\n")
                    ));
                }
                if !t.hint.is_empty() {
                    output.push_str(&format!("\n\nhint: {}", t.hint));
                }
                if !t.program_output.is_empty() {
                    output.push_str(&format!("\n\nyour program's output:\n{}", t.program_output));
                }
            }
            tests.push(json!({
                "name": qualified(reports, &r.lab, &t.name),
                "number": format!("{}.{}", r.lab.get(..2).unwrap_or("0"), tests.len() + 1),
                "score": t.score,
                "max_score": t.max_score,
                "status": if t.status == Status::Pass { "passed" } else { "failed" },
                "output": output,
                "tags": [r.lab, t.status.word()],
                "visibility": "visible",
            }));
        }
    }
    let score: f64 = reports.iter().map(|r| r.score).fold(0.0, |a, b| a + b);
    let time: u64 = reports.iter().map(|r| r.duration_ms).sum();
    let output: Vec<String> = reports
        .iter()
        .map(|r| {
            let mut s = format!("{}: {}/{} (seed {})", r.lab, r.score, r.max_score, r.seed);
            if !r.message.is_empty() {
                s.push_str(&format!("\n{}", r.message));
            }
            s
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "score": score,
        "execution_time": (time as f64 / 1000.0).ceil() as u64,
        "output": output.join("\n"),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }))
    .unwrap_or_default()
}
