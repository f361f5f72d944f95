//! The grader: starts a student's program under a sandbox, drives it with black-box,
//! adversarial checks, and reports through one result model.
//!
//! Map of this module:
//! - [`model`]: the result structs every exporter reads;
//! - [`export`]: one tiny file per output format (human, json, junit, gh-classroom,
//!   gradescope, exercism);
//! - [`sandbox`]: process groups, limits, capped output, deadlines, always reaped;
//!   [`scratch`]: the grader's temporary folders, removed on drop;
//! - [`jail`]: what a program may touch; [`nobody`]: a root grader's copy of the
//!   workspace, so its builds and programs always run as nobody;
//! - [`ns`]: re-runs a grading job inside fresh PID + network namespaces when the
//!   machine allows, so two gradings can use the same port and nothing outlives them;
//! - [`harness`]: what a check sees (start, probe readiness, clients, transcript);
//! - [`checks`]: `Check` and `Suite`, which each lab's `checks.rs` fills in;
//! - [`embedded`]: exercises and solutions compiled into the binary;
//! - commands, one file per audience: [`build`] finds and builds the program (shared);
//!   [`student`] `lab init/check/reset/solution`; [`watch`] `lab watch`; [`instructor`]
//!   `lab grade`, `lab classroom init`; [`class`] `lab grade --submissions DIR` (a
//!   whole class, one grading process per student); [`dev_check`] `lab dev check` (authors).
//!
//! Adding a lab's exercise: its `[exercise]` in `labs/<id>/lab.toml`, starters and
//! solutions under `exercises/` and `solutions/` named after the id, its
//! `src/labs/<name>/checks.rs`, and the lab's registry line naming them
//! ([`crate::labs::LABS`]).

pub mod build;
pub mod checks;
pub mod class;
pub mod cli;
pub mod dev_check;
pub mod embedded;
pub mod export;
pub mod harness;
pub mod instructor;
pub mod jail;
pub mod model;
pub mod nobody;
pub mod ns;
pub mod sandbox;
pub mod scratch;
pub mod student;
mod target_dir;
pub mod watch;

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use harness::{Harness, Target, Unmet};
use model::{CheckResult, Environment, LabReport, Status};

/// One grading job: everything needed to grade one lab's program, serializable so it
/// can be handed to a copy of `lab` running inside namespaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// Lab id.
    pub lab: String,
    /// The program's command words (without the contract's arguments).
    pub argv: Vec<String>,
    /// The contract's arguments with `{port}` placeholders.
    pub args: Vec<String>,
    /// Working directory for the program.
    pub dir: Option<PathBuf>,
    /// Extra environment for the program.
    pub env: Vec<(String, String)>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Port to give the program; 0 picks a free one.
    pub port: u16,
    /// Only run checks whose names are listed (empty: all).
    pub only: Vec<String>,
    /// Stop at the first check that does not pass and mark the rest "not run" (author
    /// QA of starters, where only "does it fail" matters).
    #[serde(default)]
    pub fail_fast: bool,
    /// `--pcap`: capture the grading's packets into a file (issue 17, src/capture.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::Request>,
    /// What the build step ran under (`build::build_sandbox`), when there was one.
    #[serde(default)]
    pub built_under: Option<String>,
    /// What the build step lacked (`protection off:` lines), when there was one.
    #[serde(default)]
    pub built_off: Vec<String>,
    /// A root grader's view of the files for its programs (`nobody.rs`), made by
    /// `ns::grade` before any program runs, when nobody cannot reach them where they are.
    #[serde(default)]
    pub view: Option<nobody::ProgramView>,
    /// nobody's copy of the workspace, made by a root grader before the build that read
    /// it: the program runs from the same copy (`ns::grade`). Stays in the outer grader.
    #[serde(skip)]
    pub copied: nobody::Shared,
}

/// A seed from the clock, for runs without `--seed`.
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Keep it short enough to retype: 6 decimal digits.
    (t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(17)) % 1_000_000
}

/// A per-check seed, so one check's randomness does not depend on which ran before.
fn check_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name, mixed with the run's seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed
}

/// A free ephemeral port on 127.0.0.1 (outside namespaces). The kernel may hand it to
/// someone else before the program binds it; rare, and the check then says so.
fn free_port(udp: bool) -> u16 {
    // Should binding port 0 itself fail (no loopback?), a fixed high port lets the
    // check report the real problem when the program tries to bind.
    const FALLBACK: u16 = 47001;
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(FALLBACK)
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or(FALLBACK)
    }
}

/// Runs one step of a check, turning a panic of the grader into an error result.
fn guarded(ctx: &mut Harness, step: fn(&mut Harness) -> harness::Outcome) -> harness::Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(ctx))).unwrap_or_else(|_| {
        Err(Unmet::error(
            "the grader itself panicked in this check (a bug in lab: please report it)",
        ))
    })
}

/// Runs a job's checks in this process and network namespace.
pub fn run_job(job: &Job, namespaces: bool) -> LabReport {
    let began = Instant::now();
    let Some(suite) = checks::suite(&job.lab) else {
        return LabReport::not_run(
            &job.lab,
            job.argv.clone(),
            job.seed,
            format!("{} has no graded exercise yet", job.lab),
        );
    };
    let udp = suite.transport == harness::Transport::Udp;
    let port = if job.port == 0 {
        free_port(udp)
    } else {
        job.port
    };
    let target = Target {
        argv: job.argv.clone(),
        args: job.args.clone(),
        dir: job.dir.clone(),
        env: job.env.clone(),
        view: job.view.clone(),
    };
    // `--pcap` (src/capture.rs): in namespaces, `lo` carries only this grading.
    let capture = job
        .capture
        .as_ref()
        .and_then(crate::capture::start_or_explain);
    // One point per check: equal weights (see model::CheckResult::max_score).
    let max = 1.0;
    let mut results = Vec::new();
    let mut blocked: Option<String> = None;
    let mut cgroup = false;
    let mut confinement = std::collections::BTreeSet::new();
    let mut confinement_off = std::collections::BTreeSet::new();
    // Checks whose prologue ran (their programs stay up meanwhile), by index.
    let mut opened: std::collections::BTreeMap<usize, (Harness, harness::Outcome)> =
        Default::default();
    let port_of = |index: usize| {
        if job.port == 0 {
            free_port(udp)
        } else {
            port.saturating_add(index as u16)
        }
    };
    // A check's own harness on `port`, and the outcome of its first step (`run`, or the
    // prologue that keeps its program up while other checks run).
    let begin = |port: u16, name: &str, step: fn(&mut Harness) -> harness::Outcome| {
        let mut ctx = Harness::new(
            target.clone(),
            port,
            check_seed(job.seed, name),
            suite.transport,
        );
        ctx.isolated = namespaces;
        let outcome = guarded(&mut ctx, step);
        (ctx, outcome)
    };
    for (index, check) in suite.checks.iter().enumerate() {
        // Each check gets its own port: connections a previous check left in TIME_WAIT
        // must not decide whether this one can bind (only `restart_same_port` tests that).
        let port = port_of(index);
        if !job.only.is_empty()
            && !job.only.iter().any(|n| n == check.name)
            && check.name != "starts"
        {
            continue;
        }
        let t0 = Instant::now();
        let mut res = CheckResult {
            name: check.name.to_string(),
            description: check.description.to_string(),
            status: Status::Pass,
            score: max,
            max_score: max,
            message: String::new(),
            hint: String::new(),
            transcript: Vec::new(),
            program_output: String::new(),
            duration_ms: 0,
        };
        if let Some(why) = &blocked {
            res.status = Status::Error;
            res.score = 0.0;
            res.message = format!("not run: {why}");
            results.push(res);
            continue;
        }
        // A check with a prologue began long ago and kept its program up: continue it.
        let (mut ctx, outcome) = match opened.remove(&index) {
            Some((ctx, Err(u))) => (ctx, Err(u)),
            Some((mut ctx, Ok(()))) => {
                let outcome = guarded(&mut ctx, check.run);
                (ctx, outcome)
            }
            None => begin(port, check.name, check.run),
        };
        let (died, output) = ctx.finish();
        cgroup |= ctx.cgroup_used;
        confinement.append(&mut ctx.confinement);
        confinement_off.append(&mut ctx.confinement_off);
        res.transcript = std::mem::take(&mut ctx.transcript);
        // Kept on a pass too: Exercism shows each test's output (debug prints).
        res.program_output = output;
        if let Err(u) = outcome {
            res.status = if u.error { Status::Error } else { Status::Fail };
            res.score = 0.0;
            let mut msg = u.message;
            // A program that runs to completion (04) exiting is no news.
            let exits = suite.transport == harness::Transport::Exits;
            if !died.is_empty() && !msg.contains("the program") && !exits {
                msg.push_str(&format!("; {died}"));
            }
            if !u.error {
                msg.push_str(&format!("\nlikely mistake: {}", check.mistake));
            }
            res.message = msg;
            res.hint = check.hint.to_string();
            if check.name == "starts" {
                blocked = Some("the program did not start (see `starts`)".to_string());
            } else if job.fail_fast {
                blocked = Some(format!("stopped at the first failure (`{}`)", check.name));
            }
            if blocked.is_some() {
                // Their programs are not needed any more.
                opened.clear();
            }
        }
        res.duration_ms = t0.elapsed().as_millis() as u64;
        results.push(res);
        if check.name == "starts" && blocked.is_none() {
            // The program starts: begin the checks that need time to pass (an idle
            // connection), each on its own program, while the others run.
            for (later, c) in suite.checks.iter().enumerate().skip(index + 1) {
                let Some(prologue) = c.prologue else { continue };
                if !job.only.is_empty() && !job.only.iter().any(|n| n == c.name) {
                    continue;
                }
                opened.insert(later, begin(port_of(later), c.name, prologue));
            }
        }
    }
    if let Some(c) = capture {
        c.stop_and_say();
    }
    let env = Environment {
        lab_version: env!("CARGO_PKG_VERSION").to_string(),
        namespaces,
        pids_cgroup: cgroup,
        port,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        sandbox: job
            .built_under
            .iter()
            .cloned()
            .chain((!confinement.is_empty()).then(|| {
                format!(
                    "program: {}",
                    confinement.into_iter().collect::<Vec<_>>().join("; ")
                )
            }))
            .collect(),
        sandbox_off: ns::why_off()
            .into_iter()
            .chain(job.built_off.iter().cloned())
            .chain(confinement_off)
            .collect(),
    };
    let mut r = LabReport::new(&job.lab, target.shown(port), job.seed, env, results);
    r.duration_ms = began.elapsed().as_millis() as u64;
    r
}
