//! What a class run leaves behind: each student's folder (transcripts, the `--format`
//! file, `result.json`), the gradebook rows, the line per student and the summary.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Outcome, Plan, Student, StudentResult};
use crate::catalog::Lab;
use crate::grade::export::{self, csv, Format};
use crate::say;

/// A student's folder: transcripts (human, JSON), the `--format` file where one per
/// student makes sense, the grader's log, and `result.json` last (its presence means
/// "done").
pub(super) fn write_student(
    plan: &Plan,
    folder: &Path,
    r: &StudentResult,
    log: &str,
) -> Result<()> {
    std::fs::create_dir_all(folder)?;
    let mut human = export::human::render_with(&r.reports, plan.verbose);
    if r.outcome != Outcome::Graded {
        human = format!("{}\n\n{human}", r.message);
    }
    write_atomic(&folder.join("report.txt"), &human)?;
    write_atomic(
        &folder.join("report.json"),
        &export::json::render(&r.reports, true),
    )?;
    if let Some(file) = per_student_file(plan.format) {
        write_atomic(
            &folder.join(file),
            &export::render(plan.format, &r.reports, true, plan.verbose),
        )?;
    }
    let log_path = folder.join("grader.log");
    // `lab: graded 3/12 (seed 1)` is how a grading process says "not full marks": no news.
    let log: String = log
        .lines()
        .filter(|l| !l.starts_with("lab: graded "))
        .map(|l| format!("{l}\n"))
        .collect();
    if log.trim().is_empty() {
        let _ = std::fs::remove_file(&log_path);
    } else {
        write_atomic(&log_path, &log)?;
    }
    write_atomic(
        &folder.join("result.json"),
        &serde_json::to_string_pretty(r)?,
    )
}

/// The extra file each student gets for `--format`: JUnit for a CI test tab, Gradescope's
/// and Exercism's results files; human, JSON and CSV are already there.
fn per_student_file(format: Format) -> Option<&'static str> {
    match format {
        Format::Junit => Some("junit.xml"),
        Format::Gradescope => Some("gradescope.json"),
        Format::Exercism => Some("exercism.json"),
        Format::Human | Format::Json | Format::Csv | Format::GhClassroom | Format::Report => None,
    }
}

/// Writes through a temporary file and a rename, so a reader (or a resumed run after a
/// crash) never sees half a file.
pub(super) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The points of a lab no report judged: its number of checks.
fn lab_max(lab: &str) -> f64 {
    crate::grade::checks::suite(lab).map_or(0.0, |s| s.checks.len() as f64)
}

/// A student's gradebook rows, one per lab asked for.
pub(super) fn student_rows(
    name: &str,
    has_workspace: bool,
    r: Option<&StudentResult>,
    labs: &[&Lab],
) -> Vec<csv::Row> {
    let graded = r
        .filter(|r| r.outcome == Outcome::Graded)
        .map(|r| csv::rows(name, &r.reports))
        .unwrap_or_default();
    let status = match (has_workspace, r.map(|r| r.outcome)) {
        (false, _) => "no workspace",
        (true, None) => "not graded",
        (true, Some(Outcome::Timeout)) => "timeout",
        (true, Some(_)) => "error",
    };
    labs.iter()
        .map(|lab| {
            let mut row = graded
                .iter()
                .find(|row| row.lab == lab.id)
                .cloned()
                .unwrap_or_else(|| csv::Row {
                    student: name.to_string(),
                    lab: lab.id.clone(),
                    score: 0.0,
                    max_score: 0.0,
                    status: status.to_string(),
                });
            // A lab that never ran (build failed, timeout) is still out of its checks.
            if row.max_score == 0.0 {
                row.max_score = lab_max(&lab.id);
            }
            row
        })
        .collect()
}

/// `alice: 01-tcp-echo 12/12 pass, 02-udp-echo build failed (3.1 s)`.
pub(super) fn one_line(name: &str, r: &StudentResult) -> String {
    let labs: Vec<String> = match r.outcome {
        Outcome::Graded => r
            .reports
            .iter()
            .map(|l| {
                let max = if l.tests.is_empty() {
                    lab_max(&l.lab)
                } else {
                    l.max_score
                };
                format!("{} {}/{max} {}", l.lab, l.score, csv::status_of(l))
            })
            .collect(),
        Outcome::Timeout => vec![format!("timeout ({})", r.message)],
        Outcome::Error => vec![format!("error ({})", r.message.replace('\n', " / "))],
    };
    format!("{name}: {} ({:.1} s)", labs.join(", "), r.seconds)
}

/// Where everything went, and one line that counts the class.
pub(super) fn summary(
    students: &[Student],
    results: &[Option<StudentResult>],
    kept: usize,
    out: &Path,
    format: Format,
) -> Result<()> {
    let (mut graded, mut build, mut timeout, mut error, mut none, mut left) = (0, 0, 0, 0, 0, 0);
    for (s, r) in students.iter().zip(results) {
        match (&s.workspace, r) {
            (None, _) => none += 1,
            (Some(_), None) => left += 1,
            (Some(_), Some(r)) => match r.outcome {
                Outcome::Timeout => timeout += 1,
                Outcome::Error => error += 1,
                Outcome::Graded
                    if r.reports
                        .iter()
                        .any(|l| csv::status_of(l) == "build failed") =>
                {
                    build += 1
                }
                Outcome::Graded => graded += 1,
            },
        }
    }
    let students_dir = out.join("students");
    say!("gradebook:   {}", out.join("gradebook.csv").display())?;
    say!(
        "transcripts: {}/<student>/report.txt (human), report.json (JSON), result.json",
        students_dir.display()
    )?;
    if let Some(file) = per_student_file(format) {
        say!(
            "{:<12} {}/<student>/{file}",
            format!("{format:?}:").to_lowercase(),
            students_dir.display()
        )?;
    }
    let mut parts = vec![
        format!("{} students", students.len()),
        format!("{graded} graded"),
    ];
    for (n, what) in [
        (build, "failed to build"),
        (timeout, "timed out"),
        (error, "grader errors (see grader.log)"),
        (none, "with no workspace"),
        (left, "not graded (interrupted)"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let fresh = results.iter().flatten().count() - kept;
    say!(
        "{}; {fresh} graded now, {kept} kept from an earlier run",
        parts.join(", ")
    )?;
    Ok(())
}
