//! `--format json`: `{"lab", "score", "max_score", "tests": [{"name", "status", "score",
//! "max_score", "message"}]}` per lab, plus the seed and status; a list with `--all`.

use serde_json::{json, Value};

use crate::grade::model::LabReport;

/// One lab's object.
pub fn lab_value(r: &LabReport) -> Value {
    json!({
        "lab": r.lab,
        "status": r.status.word(),
        "score": r.score,
        "max_score": r.max_score,
        "seed": r.seed,
        "message": r.message,
        "tests": r.tests.iter().map(|t| json!({
            "name": t.name,
            "status": t.status.word(),
            "score": t.score,
            "max_score": t.max_score,
            "message": t.message,
        })).collect::<Vec<_>>(),
    })
}

/// The document.
pub fn render(reports: &[LabReport], list: bool) -> String {
    let v = if list || reports.len() != 1 {
        Value::Array(reports.iter().map(lab_value).collect())
    } else {
        lab_value(&reports[0])
    };
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
