//! `--format human`: a CS144-style transcript. Passing checks take one line; a failing
//! one shows the numbered actions the grader took, the first unmet expectation with the
//! bytes involved (escaped, cut), the program's output, and the hint.

use crate::grade::model::{LabReport, Status};
use crate::out::{bad, bold, dim, good, warn};

/// Transcript steps shown before the failure (the rest are summarised).
const SHOWN_STEPS: usize = 14;

/// The program's command with its port shown as `PORT`: each check gets its own
/// port (see [`ports_line`]), so no single number is the truth for all of them.
fn program_line(r: &LabReport) -> String {
    let port = r.environment.port.to_string();
    r.program
        .iter()
        .map(|w| if *w == port { "PORT" } else { w.as_str() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which ports the checks used. One per check, so connections one check leaves in
/// TIME_WAIT cannot decide whether the next can bind: in a namespace they count up from
/// the lab's usual port; outside one, each is a free port the kernel picked.
fn ports_line(r: &LabReport) -> String {
    let first = r.environment.port;
    let n = r.tests.len().max(1) as u16;
    if !r.environment.namespaces {
        "PORT: a free port for each check".to_string()
    } else if n == 1 {
        format!("PORT {first}")
    } else {
        format!(
            "PORT {first} for the first check, one more for each next ({first}-{})",
            first.saturating_add(n - 1)
        )
    }
}

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
        // A build failure has no program and no sandbox of its own to describe, but the
        // build's confinement is said all the same.
        if !r.program.is_empty() {
            s.push_str(&dim(format!(
                "program: {}\nsandbox: {}{}, {}\n",
                program_line(r),
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
                ports_line(r)
            )));
        }
        for c in &r.environment.sandbox {
            s.push_str(&dim(format!("confined: {c}\n")));
        }
        for off in &r.environment.sandbox_off {
            s.push_str(&format!("{} {off}\n", bad("protection off:")));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::model::{CheckResult, Environment};

    fn report(namespaces: bool, checks: usize) -> LabReport {
        let result = |i: usize| CheckResult {
            name: format!("check{i}"),
            description: String::new(),
            status: Status::Pass,
            score: 1.0,
            max_score: 1.0,
            message: String::new(),
            hint: String::new(),
            transcript: Vec::new(),
            program_output: String::new(),
            duration_ms: 1,
        };
        let env = Environment {
            namespaces,
            port: 7001,
            ..Environment::default()
        };
        LabReport::new(
            "01-tcp-echo",
            vec!["./srv".into(), "--port".into(), "7001".into()],
            1,
            env,
            (0..checks).map(result).collect(),
        )
    }

    /// The header names the port every check really used, not the first one only.
    #[test]
    fn the_header_says_each_check_has_its_own_port() {
        console::set_colors_enabled(false);
        let text = render(&[report(true, 8)]);
        assert!(text.contains("program: ./srv --port PORT\n"), "{text}");
        assert!(
            text.contains("PORT 7001 for the first check, one more for each next (7001-7008)"),
            "{text}"
        );
        assert!(!text.contains("--port 7001"), "{text}");
        let text = render(&[report(false, 8)]);
        assert!(text.contains("PORT: a free port for each check"), "{text}");
    }
}
