//! `--format human`: a CS144-style transcript. Passing checks take one line; a failing
//! one shows the numbered actions the grader took, the first unmet expectation with the
//! bytes involved (escaped, cut), the program's output, and the hint.

use crate::grade::model::{LabReport, Status};
use crate::out::{bad, bold, dim, good, warn};

/// Transcript steps shown before the failure (the rest are summarised).
const SHOWN_STEPS: usize = 14;

/// The text.
pub fn render(reports: &[LabReport]) -> String {
    render_with(reports, false)
}

/// The text; `verbose` shows every check's transcript, passing ones included.
pub fn render_with(reports: &[LabReport], verbose: bool) -> String {
    let mut s = String::new();
    for r in reports {
        s.push_str(&format!(
            "{}  {}\n",
            bold(&r.lab),
            dim(format!("seed {}", r.seed))
        ));
        // A build failure has no program and no sandbox to describe.
        if !r.program.is_empty() {
            s.push_str(&dim(format!(
                "program: {}\nsandbox: {}{}, port {}\n",
                r.program.join(" "),
                if r.environment.namespaces {
                    "own PID + network namespace"
                } else {
                    "process group"
                },
                if r.environment.pids_cgroup {
                    ", pids cgroup"
                } else {
                    ""
                },
                r.environment.port
            )));
        }
        if !r.message.is_empty() {
            s.push_str(&format!("{} {}\n", bad("error:"), r.message));
        }
        let n = r.tests.len();
        let mut shown_full = false;
        for (i, t) in r.tests.iter().enumerate() {
            let tag = match t.status {
                Status::Pass => good("ok"),
                Status::Fail => bad("FAIL"),
                Status::Error => bad("ERROR"),
                Status::Skipped => warn("skipped"),
            };
            let label = format!("{:>2}/{n} {} ", i + 1, t.name);
            let dots = ".".repeat(44usize.saturating_sub(label.chars().count()).max(2));
            s.push_str(&format!(
                "  {label}{} {tag} {}\n",
                dim(dots),
                dim(format!("{} ms", t.duration_ms))
            ));
            if verbose && t.status == Status::Pass {
                for (k, step) in t.transcript.iter().enumerate() {
                    s.push_str(&format!(
                        "        {}\n",
                        dim(format!("{:>3}. {step}", k + 1))
                    ));
                }
            }
            if t.status == Status::Pass || t.message.starts_with("not run:") {
                if t.status != Status::Pass {
                    s.push_str(&format!("        {}\n", dim(&t.message)));
                }
                continue;
            }
            // Fix one thing at a time: the first failure in full, later ones in a line.
            if shown_full && !verbose {
                let first = t.message.lines().next().unwrap_or("");
                s.push_str(&format!("        {}\n", dim(first)));
                continue;
            }
            shown_full = true;
            s.push_str(&format!("        {}\n", dim(&t.description)));
            let steps = &t.transcript;
            let skip = steps.len().saturating_sub(SHOWN_STEPS);
            if skip > 0 {
                s.push_str(&format!(
                    "        {}\n",
                    dim(format!("({skip} earlier steps)"))
                ));
            }
            for (k, step) in steps.iter().enumerate().skip(skip) {
                s.push_str(&format!("        {:>3}. {step}\n", k + 1));
            }
            for (k, line) in t.message.lines().enumerate() {
                let prefix = if k == 0 {
                    bad("  unmet: ")
                } else {
                    "         ".to_string()
                };
                s.push_str(&format!("      {prefix}{line}\n"));
            }
            if !t.program_output.trim().is_empty() {
                s.push_str(&format!(
                    "        {}\n",
                    dim("program output (last lines):")
                ));
                let lines: Vec<&str> = t.program_output.lines().collect();
                for l in &lines[lines.len().saturating_sub(8)..] {
                    s.push_str(&format!("          {}\n", dim(l)));
                }
            }
            if !t.hint.is_empty() {
                s.push_str(&format!("        {} {}\n", warn("hint:"), t.hint));
            }
        }
        if r.tests.is_empty() {
            s.push_str(&dim(format!("  replay exactly: --seed {}\n\n", r.seed)));
            continue;
        }
        let verdict = match r.status {
            Status::Pass => good("all checks passed"),
            Status::Fail => bad("some checks failed"),
            _ => bad("could not grade"),
        };
        s.push_str(&format!("  score {}/{}: {verdict}\n", r.score, r.max_score));
        s.push_str(&dim(format!("  replay exactly: --seed {}\n\n", r.seed)));
    }
    s
}
