//! The result model: plain serializable data, written once by the grader and read by
//! every exporter (`export/`). Nothing here knows about terminals or file formats.

use serde::{Deserialize, Serialize};

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every expectation was met.
    Pass,
    /// The program ran and an expectation was not met.
    Fail,
    /// The check could not judge behaviour: build failed, the program crashed before
    /// it could be driven, or it never became ready.
    Error,
    /// Not run: a capability is missing on this machine.
    Skipped,
}

impl Status {
    /// The lower-case word used by GitHub Classroom and Exercism.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// The result of one check against one program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable name, e.g. `byte_at_a_time`; CI dashboards key on it.
    pub name: String,
    /// What the check does, in one line.
    pub description: String,
    /// Outcome.
    pub status: Status,
    /// Points earned: `max_score` on pass, 0 otherwise (checks are all-or-nothing).
    pub score: f64,
    /// Points available. Equal within a lab (GitHub Classroom prints pass fraction x
    /// max, but sums scores: equal weights keep the two in agreement).
    pub max_score: f64,
    /// Empty on pass; otherwise the first unmet expectation with the bytes involved
    /// (escaped, truncated) and the classic mistake it usually means.
    pub message: String,
    /// The hint to read next, on failure.
    pub hint: String,
    /// Numbered actions the grader took and what it expected (CS144-style).
    pub transcript: Vec<String>,
    /// What the program wrote to stderr and stdout during the check (capped), for the
    /// student; kept on a pass too.
    pub program_output: String,
    /// Wall time of the check in milliseconds.
    pub duration_ms: u64,
}

/// Everything about grading one lab's exercise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    /// Lab id such as `01-tcp-echo`.
    pub lab: String,
    /// Sum of the checks' scores.
    pub score: f64,
    /// Sum of the checks' max scores.
    pub max_score: f64,
    /// Pass when every check passed, fail when any failed or errored, error when
    /// nothing could be judged (see [`LabReport::total`]).
    pub status: Status,
    /// The program as run (command words, with the contract's arguments).
    pub program: Vec<String>,
    /// The seed of every random choice; `--seed` replays it.
    pub seed: u64,
    /// Where it ran: namespaces, limits, versions.
    pub environment: Environment,
    /// A problem before any check ran (for example a failed build), else empty.
    pub message: String,
    /// Checks in the order they ran.
    pub tests: Vec<CheckResult>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

impl LabReport {
    /// Builds the report and its totals from the checks.
    pub fn new(
        lab: &str,
        program: Vec<String>,
        seed: u64,
        environment: Environment,
        tests: Vec<CheckResult>,
    ) -> LabReport {
        let mut r = LabReport {
            lab: lab.to_string(),
            score: 0.0,
            max_score: 0.0,
            status: Status::Pass,
            program,
            seed,
            environment,
            message: String::new(),
            tests,
            duration_ms: 0,
        };
        r.total();
        r
    }

    /// The report of a grading whose checks never ran (no exercise, refused before the
    /// program ran, not built): no checks, status error, and `message` says why.
    pub fn not_run(lab: &str, program: Vec<String>, seed: u64, message: String) -> LabReport {
        let mut r = LabReport::new(lab, program, seed, Environment::default(), Vec::new());
        r.message = message;
        r.total();
        r
    }

    /// Recomputes score, max score and status: error if nothing could be judged (no
    /// checks, or all errored), fail if any check failed or errored, pass otherwise.
    pub fn total(&mut self) {
        // fold from +0.0: an empty f64 sum is -0.0, which would print as "-0".
        self.score = self.tests.iter().map(|t| t.score).fold(0.0, |a, b| a + b);
        self.max_score = self
            .tests
            .iter()
            .map(|t| t.max_score)
            .fold(0.0, |a, b| a + b);
        let judged = self
            .tests
            .iter()
            .filter(|t| matches!(t.status, Status::Pass | Status::Fail))
            .count();
        self.status = if !self.message.is_empty() || judged == 0 {
            Status::Error
        } else if self
            .tests
            .iter()
            .any(|t| matches!(t.status, Status::Fail | Status::Error))
        {
            Status::Fail
        } else {
            Status::Pass
        };
    }

    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }
}

/// Where and how the grading ran, so a surprising result can be explained.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    /// `lab` version.
    pub lab_version: String,
    /// True when the program ran in its own PID and network namespaces.
    pub namespaces: bool,
    /// True when a pids cgroup capped the number of processes.
    pub pids_cgroup: bool,
    /// The port the program was told to use.
    pub port: u16,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// What the program ran under (`jail::Applied::on`): capabilities, uid, Landlock.
    #[serde(default)]
    pub sandbox: Vec<String>,
    /// Protections this machine could not give, each with why (said once).
    #[serde(default)]
    pub sandbox_off: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Status) -> CheckResult {
        CheckResult {
            name: "c".into(),
            description: String::new(),
            status,
            score: if status == Status::Pass { 1.0 } else { 0.0 },
            max_score: 1.0,
            message: String::new(),
            hint: String::new(),
            transcript: Vec::new(),
            program_output: String::new(),
            duration_ms: 0,
        }
    }

    #[test]
    fn totals_and_status_follow_the_checks() {
        let r = |v: Vec<Status>| {
            LabReport::new(
                "x",
                vec![],
                1,
                Environment::default(),
                v.into_iter().map(check).collect(),
            )
        };
        let all = r(vec![Status::Pass, Status::Pass]);
        assert_eq!(
            (all.score, all.max_score, all.status),
            (2.0, 2.0, Status::Pass)
        );
        assert_eq!(r(vec![Status::Pass, Status::Fail]).status, Status::Fail);
        assert_eq!(r(vec![Status::Pass, Status::Error]).status, Status::Fail);
        assert_eq!(r(vec![Status::Error, Status::Error]).status, Status::Error);
        assert_eq!(r(vec![]).status, Status::Error);
        let mut built = r(vec![Status::Pass]);
        built.message = "build failed".into();
        built.total();
        assert_eq!(built.status, Status::Error);
    }
}
