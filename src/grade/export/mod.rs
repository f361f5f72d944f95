//! Exporters: one tiny file per format, each a pure function from reports to text.
//! Side effects (GitHub's `$GITHUB_OUTPUT`) live in the caller.

pub mod classroom;
pub mod csv;
pub mod exercism;
pub mod gradescope;
pub mod human;
pub mod json;
pub mod junit;

use super::model::LabReport;

/// Output formats of `lab grade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A CS144-style transcript for people.
    Human,
    /// `{"lab", "score", "max_score", "tests": [...]}` (a list of those with several labs).
    Json,
    /// JUnit XML for CI test tabs.
    Junit,
    /// GitHub Classroom autograding (`result` output, base64 JSON, ::notice lines).
    GhClassroom,
    /// Gradescope `results.json`.
    Gradescope,
    /// Exercism test-runner `results.json` (version 2).
    Exercism,
    /// A gradebook: `student,lab,score,max_score,status` (with `--submissions`, plus a
    /// folder of per-student transcripts).
    Csv,
    /// (internal) The whole result model as JSON, transcripts included: how a class
    /// run's per-student grading process hands its reports back.
    #[value(hide = true)]
    Report,
}

/// Renders reports in a format. `list` asks for a list even with one lab (`--all`).
/// `verbose` shows every check's transcript in the human format.
pub fn render(format: Format, reports: &[LabReport], list: bool, verbose: bool) -> String {
    match format {
        Format::Human => human::render_with(reports, verbose),
        Format::Json => json::render(reports, list),
        Format::Junit => junit::render(reports),
        Format::GhClassroom => classroom::render(reports),
        Format::Gradescope => gradescope::render(reports),
        Format::Exercism => exercism::render(reports),
        // One workspace: its rows, without a student name (`lab grade` fills it in).
        Format::Csv => csv::render(&csv::rows("", reports)),
        Format::Report => serde_json::to_string(reports).unwrap_or_default(),
    }
}

/// A test's name across several labs: `01-tcp-echo/one_line`; just the check name when
/// one lab is graded.
pub fn qualified(reports: &[LabReport], lab: &str, name: &str) -> String {
    if reports.len() > 1 {
        format!("{lab}/{name}")
    } else {
        name.to_string()
    }
}
