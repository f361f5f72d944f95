//! One student's grading: a copy of `lab grade` in a process group of its own, watched
//! against the student's wall-clock cap and Ctrl-C, and killed with its whole process
//! tree when either comes; its reports read back, or the reason there are none.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::output::write_student;
use super::{Outcome, Plan, StudentResult, LOG_CAP};
use crate::grade::model::LabReport;
use crate::grade::scratch::Scratch;

/// Grades one student in a grading process of its own; None when stopped by Ctrl-C
/// (nothing is written then, so the next run grades this student).
pub(super) fn grade_student(plan: &Plan, name: &str, ws: &Path) -> Option<StudentResult> {
    let folder = plan.students_dir.join(name);
    let part = folder.join(".report.part.json");
    let began = Instant::now();
    let mut result = StudentResult {
        student: name.to_string(),
        workspace: ws.to_path_buf(),
        labs: plan.labs.clone(),
        outcome: Outcome::Error,
        message: String::new(),
        seconds: 0.0,
        reports: Vec::new(),
    };
    let _ = std::fs::remove_file(&part);
    // The grading's own temporary folder (its TMPDIR): a grading killed at the cap runs
    // no cleanup of its own, so what it left there (build homes, check folders) goes
    // with this folder, whatever way it ended.
    let tmp = student_tmp(name);
    let mut cmd = Command::new(&plan.exe);
    if let Some(t) = &tmp {
        cmd.env("TMPDIR", t.path());
    }
    cmd.arg("grade")
        .args(&plan.labs)
        .arg("--dir")
        .arg(ws)
        .args(["--lang", &plan.lang, "--seed", &plan.seed.to_string()])
        .args(["--format", "report", "--out"])
        .arg(&part)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: the terminal's Ctrl-C reaches only us, and a stop
        // kills the grader with everything it started (see `kill_tree`).
        .process_group(0);
    // A class grader that is killed (not stopped) takes this grading with it.
    crate::sys::die_with_parent(&mut cmd);
    let log = match cmd.spawn() {
        Err(e) => format!("cannot start {}: {e}", plan.exe.display()),
        Ok(mut child) => {
            let stderr = child.stderr.take();
            let (log_tx, log_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                if let Some(mut s) = stderr {
                    let _ = (&mut s).take(LOG_CAP).read_to_end(&mut kept);
                    // Drain the rest so the grader never blocks on a full pipe.
                    let _ = std::io::copy(&mut s, &mut std::io::sink());
                }
                let _ = log_tx.send(String::from_utf8_lossy(&kept).into_owned());
            });
            let ended = loop {
                match child.try_wait() {
                    Ok(Some(_)) => break true,
                    Ok(None) => {}
                    Err(_) => break false,
                }
                if plan.stop.load(Ordering::SeqCst) || began.elapsed() > plan.timeout {
                    kill_tree(child.id());
                    let _ = child.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            // The pipe ends when every holder has exited; should something the grader
            // started outlive it still holding it, do not wait for that.
            let log = log_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            if plan.stop.load(Ordering::SeqCst) {
                let _ = std::fs::remove_file(&part);
                return None;
            }
            if !ended {
                result.outcome = Outcome::Timeout;
                result.message = format!(
                    "grading took longer than {} s and was stopped (--student-timeout)",
                    plan.timeout.as_secs()
                );
            } else {
                match read_reports(&part) {
                    Some(reports) => {
                        result.outcome = Outcome::Graded;
                        result.reports = reports;
                    }
                    None => {
                        result.message =
                            format!("the grader ended without a report: {}", last_lines(&log, 5))
                    }
                }
            }
            log
        }
    };
    let _ = std::fs::remove_file(&part);
    result.seconds = began.elapsed().as_secs_f64();
    if result.outcome != Outcome::Graded {
        if result.message.is_empty() {
            result.message = log.trim().to_string();
        }
        // Reports that carry the reason, so every format shows it.
        result.reports = plan
            .labs
            .iter()
            .map(|lab| LabReport::not_run(lab, Vec::new(), plan.seed, result.message.clone()))
            .collect();
    }
    if let Err(e) = write_student(plan, &folder, &result, &log) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "lab: cannot write {}'s results in {}: {e:#}",
            name,
            folder.display()
        );
    }
    Some(result)
}

/// A student's temporary folder under the grader's own, removed on drop; None when it
/// cannot be made: the grading then uses the grader's TMPDIR as before.
fn student_tmp(student: &str) -> Option<Scratch> {
    let safe: String = student
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    Scratch::new(&format!("class-{safe}")).ok()
}

/// Kills a grading process and everything it started. Its own process group holds
/// `unshare` (whose `--kill-child` then takes the namespace and the programs in it
/// down), but the sandbox starts `cargo build` and programs outside namespaces in
/// process groups of their own, which would outlive it as orphans: so the tree is read
/// from /proc first and every group in it is killed.
fn kill_tree(root: u32) {
    let mut groups = vec![root];
    for (_, pgid) in descendants(root) {
        if !groups.contains(&pgid) {
            groups.push(pgid);
        }
    }
    for g in groups {
        // A group gone meanwhile is not an error; there is nothing else to do on one.
        let _ = crate::sys::kill_group(g, libc::SIGKILL);
    }
}

/// `(pid, process group)` of every descendant of `root`, from /proc/PID/stat.
fn descendants(root: u32) -> Vec<(u32, u32)> {
    // pid -> (parent, group) of every process we can read.
    let mut table = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so
        // the fields are counted after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(pgrp)) = (
            f.get(1).and_then(|v| v.parse::<u32>().ok()),
            f.get(2).and_then(|v| v.parse::<u32>().ok()),
        ) {
            table.push((pid, ppid, pgrp));
        }
    }
    let mut found: Vec<(u32, u32)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, pgrp) in &table {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, pgrp));
                frontier.push(pid);
            }
        }
    }
    found
}

/// The grading process's `--format report` output.
fn read_reports(path: &Path) -> Option<Vec<LabReport>> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim().lines().collect();
    let text = lines[lines.len().saturating_sub(n)..].join("\n");
    if text.is_empty() {
        "(it printed nothing)".into()
    } else {
        text
    }
}
