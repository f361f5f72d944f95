//! The checks, one module per lab. A check is a name, what it does, the classic mistake
//! its failure usually means, a hint, and a function that drives the program.
//!
//! Adding a lab's checks: write `<lab>.rs` with `pub const SUITE: Suite`, and add one
//! line to [`SUITES`].

use super::harness::{Ctx, Outcome, Transport};

pub mod tcp_echo;
pub mod udp_echo;
pub mod udp_loss;

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Stable name (snake_case); reports and mutants refer to it.
    pub name: &'static str,
    /// What the check does, in one line.
    pub description: &'static str,
    /// The classic mistake a failure usually means, shown after the unmet expectation.
    pub mistake: &'static str,
    /// What to try, shown on failure.
    pub hint: &'static str,
    /// Drives the program; the first `Err` is the first unmet expectation.
    pub run: fn(&mut Ctx) -> Outcome,
}

/// A lab's checks and how its program is reached.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// Lab id.
    pub lab: &'static str,
    /// What the program serves, for readiness probing.
    pub transport: Transport,
    /// The checks, in order; the first must be the one that only starts the program
    /// (if it fails, the rest are not run).
    pub checks: &'static [Check],
}

/// Every lab with checks.
pub const SUITES: &[Suite] = &[
    tcp_echo::SUITE,
    udp_echo::SUITE,
    udp_loss::SUITE,
    crate::labs::json_to_file::checks::SUITE,
];

/// The checks of a lab, if it has an exercise the grader knows.
pub fn suite(lab: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.lab == lab)
}

/// The first check of every suite: the program starts and becomes ready.
pub fn starts(ctx: &mut Ctx) -> Outcome {
    ctx.start().map(|_| ())
}
