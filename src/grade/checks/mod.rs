//! The checks, one module per lab. A check is a name, what it does, the classic mistake
//! its failure usually means, a hint, and a function that drives the program.
//!
//! A lab's checks live in its folder (`src/labs/<lab>/checks.rs`, `pub const SUITE`)
//! and reach the grader through the registry line of the lab ([`crate::labs::LABS`]).

use super::harness::{Harness, Outcome, Transport};

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
    pub run: fn(&mut Harness) -> Outcome,
    /// Runs right after `starts` passes, on this check's own program, which then stays
    /// up while the other checks run; `run` continues it at the end. For what only time
    /// shows (a connection left idle for seconds) without making the suite that long.
    pub prologue: Option<fn(&mut Harness) -> Outcome>,
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

/// The checks of a lab, if it has an exercise the grader knows (see
/// [`crate::labs::LABS`]).
pub fn suite(lab: &str) -> Option<&'static Suite> {
    crate::labs::exercise(lab).map(|e| e.suite)
}

/// The first check of every suite: the program starts and becomes ready.
pub fn starts(ctx: &mut Harness) -> Outcome {
    ctx.start().map(|_| ())
}
