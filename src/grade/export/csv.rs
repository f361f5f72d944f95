//! The class gradebook as CSV: `student,lab,score,max_score,status`, one row per
//! student and lab, sorted, quoted as RFC 4180 says (a field holding a comma, a quote
//! or a line break goes between double quotes, with quotes doubled; lines end in CRLF).
//! Spreadsheets and LMS imports read it as is.

use crate::grade::model::{LabReport, Status};

/// The header line's columns.
pub const COLUMNS: [&str; 5] = ["student", "lab", "score", "max_score", "status"];

/// One gradebook row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The student's folder name under the submissions folder.
    pub student: String,
    /// Lab id, e.g. `01-tcp-echo`.
    pub lab: String,
    /// Points earned (0 when the lab could not be graded).
    pub score: f64,
    /// Points available: the lab's number of checks, whatever happened.
    pub max_score: f64,
    /// `pass`, `fail`, `error`, `build failed`, `timeout`, `no workspace` or
    /// `not graded` (interrupted before this student's turn).
    pub status: String,
}

/// The status word of a graded lab: the report's own, except that a report with a
/// message and no checks is a program that never got to run, which in `lab grade` only
/// happens when its build failed (a missing file is an error before any report).
pub fn status_of(report: &LabReport) -> &'static str {
    if report.tests.is_empty() && !report.message.is_empty() {
        "build failed"
    } else {
        match report.status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// The rows of one student's reports.
pub fn rows(student: &str, reports: &[LabReport]) -> Vec<Row> {
    reports
        .iter()
        .map(|r| Row {
            student: student.to_string(),
            lab: r.lab.clone(),
            score: r.score,
            // A lab whose program never ran (failed build) is still out of its checks.
            max_score: if r.tests.is_empty() {
                crate::grade::checks::suite(&r.lab).map_or(0.0, |s| s.checks.len() as f64)
            } else {
                r.max_score
            },
            status: status_of(r).to_string(),
        })
        .collect()
}

/// The gradebook: header, then the rows sorted by student and lab.
pub fn render(rows: &[Row]) -> String {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.student, &a.lab).cmp(&(&b.student, &b.lab)));
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in sorted {
        let fields = [
            field(&r.student),
            field(&r.lab),
            r.score.to_string(),
            r.max_score.to_string(),
            field(&r.status),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One field, quoted when RFC 4180 requires it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(student: &str, lab: &str) -> Row {
        Row {
            student: student.into(),
            lab: lab.into(),
            score: 11.5,
            max_score: 12.0,
            status: "fail".into(),
        }
    }

    #[test]
    fn rows_are_sorted_and_quoted_as_rfc_4180_says() {
        let text = render(&[
            row("zoe", "01-tcp-echo"),
            row("ada, \"the\" first", "02-udp-echo"),
            row("ada, \"the\" first", "01-tcp-echo"),
            row("line\nbreak", "01-tcp-echo"),
        ]);
        assert_eq!(
            text,
            "student,lab,score,max_score,status\r\n\
             \"ada, \"\"the\"\" first\",01-tcp-echo,11.5,12,fail\r\n\
             \"ada, \"\"the\"\" first\",02-udp-echo,11.5,12,fail\r\n\
             \"line\nbreak\",01-tcp-echo,11.5,12,fail\r\n\
             zoe,01-tcp-echo,11.5,12,fail\r\n"
        );
    }
}
