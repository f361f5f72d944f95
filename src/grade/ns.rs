//! Isolation with namespaces: the grading job runs in a copy of `lab` started by
//! `unshare --user --map-root-user --net --pid --fork`. Inside, only a private loopback
//! exists (so gradings in parallel can all use the lab's usual port, and a student
//! program cannot reach the network), and that copy of `lab` is PID 1: when it exits,
//! the kernel kills every process left in the namespace. No process outlives a grading.
//!
//! Where user namespaces are disabled (some containers and hardened kernels) the job
//! runs in this process instead, with process groups, a pids cgroup when writable, and
//! a free ephemeral port. Detected once per run.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::model::LabReport;
use super::Job;

/// The hidden subcommand that runs a job inside the namespaces.
pub const INNER_COMMAND: &str = "__grade-inner";

/// Flags for unshare(1): new user namespace mapped to our uid (no real privilege), new
/// network and PID namespaces, fork so the child is PID 1, a /proc of the new PID
/// namespace (so /proc/PID means the pids the grader sees), kill it if unshare dies.
const UNSHARE: &[&str] = &[
    "--user",
    "--map-root-user",
    "--net",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
];

/// A whole job's wall-clock limit: 12 checks with 2 s timeouts each finish far sooner;
/// this only stops a grader bug from hanging CI.
const JOB_DEADLINE: Duration = Duration::from_secs(300);

/// True when namespaces work here (probed once; `LAB_NO_NAMESPACES=1` turns them off).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("LAB_NO_NAMESPACES").is_some_and(|v| v != "0") {
            return false;
        }
        Command::new("unshare")
            .args(UNSHARE)
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Grades a job isolated when possible, else in this process.
pub fn grade(job: &Job) -> Result<LabReport> {
    if !available() {
        return Ok(super::run_job(job, false));
    }
    let exe = std::env::current_exe()
        .context("cannot find the lab executable to re-run inside namespaces")?;
    let mut child = Command::new("unshare")
        .args(UNSHARE)
        .arg("--")
        .arg(exe)
        .arg(INNER_COMMAND)
        .arg(serde_json::to_string(job)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run unshare")?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        // The report is JSON of bounded size (transcripts and output tails are capped).
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut s);
        s
    });
    let began = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if began.elapsed() > JOB_DEADLINE {
            // unshare --kill-child takes the namespace down with it.
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    match serde_json::from_slice(&out) {
        Ok(report) => {
            // `--pcap`: the inner copy's capture summary (src/capture.rs).
            crate::capture::relay_notes(&err);
            Ok(report)
        }
        Err(_) => {
            // Namespaces were there but the isolated run broke (a kernel that refuses
            // some step): grade without them rather than not at all, and say why.
            eprintln!(
                "lab: note: the isolated grader ended ({status}) without a report ({}); grading without namespaces",
                String::from_utf8_lossy(&err).trim()
            );
            let mut job = job.clone();
            job.port = 0;
            Ok(super::run_job(&job, false))
        }
    }
}

/// Body of the hidden inner command: bring loopback up, run the job, print the report
/// as JSON on stdout (the only thing written there).
pub fn inner_main(job_json: &str) -> Result<()> {
    let job: Job = serde_json::from_str(job_json).context("invalid job")?;
    crate::sys::loopback_up().context("cannot bring up loopback in the new network namespace")?;
    let report = super::run_job(&job, true);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
