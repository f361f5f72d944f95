//! Isolation with namespaces: the grading job runs in a copy of `lab` started by
//! `unshare --user --map-root-user --net --pid --fork`. Inside, only a private loopback
//! exists (so gradings in parallel can all use the lab's usual port, and a student
//! program cannot reach the network), and that copy of `lab` is PID 1: when it exits,
//! the kernel kills every process left in the namespace. No process outlives a grading.
//! A root grader makes the user namespace itself, with nobody (65534) mapped too, and
//! enters it with `nsenter`, so programs run as nobody inside (see [`UserNs`]).
//!
//! Where user namespaces are disabled (some containers and hardened kernels) the job
//! runs in this process instead, with process groups, a pids cgroup when writable, a
//! subreaper that kills daemonized leftovers, and a free ephemeral port. That choice is
//! made once, by a probe, before any program runs: a program that breaks the isolated
//! run (writes to /proc/1/fd/1, kills its grader) fails its grading; it never earns a
//! second run with fewer protections.
//!
//! The inner copy of `lab` gets a clean environment (no CI tokens to find in its
//! /proc/1/environ), makes itself non-dumpable (its /proc entries then need ptrace
//! rights), and reaps the orphans programs leave (it is PID 1).

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::model::{Environment, LabReport};
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

/// Grades a job isolated when possible, else in this process. A root grader's
/// programs run as nobody, always: from the copy of the workspace their build made and
/// read, or, when nobody cannot reach their files where they are, from a copy made now
/// (`nobody.rs`); when that cannot be made, or nobody cannot be mapped into the
/// namespace, nothing runs and the report says why (fail closed).
pub fn grade(job: &Job) -> Result<LabReport> {
    // Holds nobody's copy of the workspace until the grading is over, here in the
    // outer grader, so an inner run that dies cannot leave it behind.
    let mut _copied = None;
    let mut job = job.clone();
    if super::nobody::root_grader() {
        match super::nobody::prepare(&job.argv, job.dir.as_deref(), job.copied.take()) {
            Ok(Some((view, copied))) => {
                job.view = Some(view);
                _copied = copied;
            }
            Ok(None) => {}
            Err(why) => return Ok(refused(&job, &why)),
        }
    }
    let job = &job;
    if !available() {
        return Ok(grade_here(job));
    }
    let exe = std::env::current_exe()
        .context("cannot find the lab executable to re-run inside namespaces")?;
    // A root grader maps nobody (65534) into the namespace too, so programs run as an
    // unprivileged uid inside; otherwise uid 0 of the namespace (no capabilities).
    let holder = (crate::sys::euid() == 0)
        .then(UserNs::with_nobody)
        .flatten();
    if holder.is_none() && super::nobody::root_grader() {
        // Without nobody in the namespace, programs would run as (mapped) root.
        return Ok(refused(
            job,
            "cannot map nobody (65534) into the grading's user namespace (writing /proc/PID/uid_map failed); run the grader as an ordinary user, or with LAB_NO_NAMESPACES=1",
        ));
    }
    let mut cmd = match &holder {
        Some(h) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--user=/proc/{}/ns/user", h.child.id()))
                .arg("--")
                .arg("unshare")
                .args(&UNSHARE[2..]);
            c
        }
        None => {
            let mut c = Command::new("unshare");
            c.args(UNSHARE);
            c
        }
    };
    // The grader's own environment stays outside: only what the inner run needs.
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if KEEP_ENV.contains(&name.as_ref()) || name.starts_with("LAB_") || name.starts_with("LC_")
        {
            cmd.env(k, v);
        }
    }
    crate::sys::die_with_parent(&mut cmd);
    let mut child = cmd
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
    drop(holder);
    match serde_json::from_slice(&out) {
        Ok(report) => {
            // `--pcap`: the inner copy's capture summary (src/capture.rs).
            crate::capture::relay_notes(&err);
            Ok(report)
        }
        Err(_) => {
            // The probe said namespaces work, so the program broke the isolated run
            // (wrote over its report, killed its grader): that is its failure. Grading
            // it again without namespaces would hand it the host.
            let err = String::from_utf8_lossy(&err);
            let err = err.trim();
            let mut r = LabReport::new(
                &job.lab,
                job.argv.clone(),
                job.seed,
                Environment {
                    namespaces: true,
                    ..Environment::default()
                },
                Vec::new(),
            );
            r.message = format!(
                "the isolated grading ended ({status}) without a report{}: the program broke its sandbox (it wrote to the grader's output or ended the grader), which counts as a failure; it is not graded again without isolation",
                if err.is_empty() { String::new() } else { format!(" ({err})") }
            );
            r.total();
            Ok(r)
        }
    }
}

/// The report of a grading that did not run because its program would not have run as
/// nobody: score 0, with why and the fix.
fn refused(job: &Job, why: &str) -> LabReport {
    LabReport::not_run(
        &job.lab,
        job.argv.clone(),
        job.seed,
        format!(
            "not graded: a root grader runs programs as nobody (65534), never as root, and {why}"
        ),
    )
}

/// A user namespace made by a root grader, held open by a `cat` waiting on a pipe,
/// whose maps this grader wrote: uid and gid 0 are the grader's own, 65534 is nobody.
/// unshare(1) of util-linux 2.38 needs newuidmap for a map of two lines; a root
/// parent may write one itself. The grading run enters it with nsenter(1).
struct UserNs {
    /// The holder; ends at EOF on its stdin (when we drop it, or if we die).
    child: std::process::Child,
}

impl UserNs {
    /// Makes the namespace, or None (then `--map-root-user` alone, as for a user).
    fn with_nobody() -> Option<UserNs> {
        let child = Command::new("unshare")
            .args(["--user", "--", "cat"])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let h = UserNs { child };
        let pid = h.child.id();
        let mine = std::fs::read_link("/proc/self/ns/user").ok()?;
        // unshare(1) execs cat once the namespace exists: wait for that (bounded).
        let began = Instant::now();
        while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()? == mine {
            if began.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (uid, gid) = (crate::sys::euid(), crate::sys::egid());
        let nobody = super::jail::NOBODY;
        std::fs::write(
            format!("/proc/{pid}/uid_map"),
            format!("0 {uid} 1\n{nobody} {nobody} 1\n"),
        )
        .ok()?;
        std::fs::write(
            format!("/proc/{pid}/gid_map"),
            format!("0 {gid} 1\n{nobody} {nobody} 1\n"),
        )
        .ok()?;
        Some(h)
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Variables the inner grader keeps from the grader's environment (besides `LAB_*`
/// and `LC_*`): none of them a secret.
const KEEP_ENV: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR", "NO_COLOR", "TERM"];

/// Why namespaces are off, for the transcript and `lab doctor`; None when they work.
pub fn why_off() -> Option<String> {
    if available() {
        return None;
    }
    Some(
        if std::env::var_os("LAB_NO_NAMESPACES").is_some_and(|v| v != "0") {
            "namespaces: off (LAB_NO_NAMESPACES=1): programs share the host network and PID space"
        } else {
            "namespaces: user namespaces are not available here: programs share the host network and PID space"
        }
        .to_string(),
    )
}

/// Grades without namespaces, in this process: the grader becomes a subreaper so that
/// a program that daemonizes stays its descendant and is killed with the rest, and
/// non-dumpable so a program running as the same user cannot read its environment.
fn grade_here(job: &Job) -> LabReport {
    crate::sys::set_not_dumpable();
    let _ = crate::sys::set_child_subreaper();
    let r = super::run_job(job, false);
    super::sandbox::reap_orphans(true);
    r
}

/// Body of the hidden inner command: bring loopback up, run the job, print the report
/// as JSON on stdout (the only thing written there).
pub fn inner_main(job_json: &str) -> Result<()> {
    let job: Job = serde_json::from_str(job_json).context("invalid job")?;
    crate::sys::loopback_up().context("cannot bring up loopback in the new network namespace")?;
    crate::sys::set_not_dumpable();
    // PID 1 inherits every orphan: reap the zombies a fork bomb leaves, as they come.
    std::thread::spawn(|| loop {
        super::sandbox::reap_orphans(false);
        std::thread::sleep(Duration::from_millis(50));
    });
    let report = super::run_job(&job, true);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
