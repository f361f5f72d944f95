//! `lab grade IDS|--all --submissions DIR`: a whole class in one command.
//!
//! DIR holds one folder per student: a `lab init` workspace, or a clone of the
//! student's repository with a workspace somewhere inside (found by its
//! `lab-progress.txt`). Each student is graded by a copy of `lab grade` of its own (one
//! process per student: a crash, a hang or a runaway build takes down that process, never
//! the class run), which grades every lab isolated exactly as `lab grade` does for one
//! workspace. Several students run at once (`--jobs`, default the CPU count), each under
//! a wall-clock cap (`--student-timeout`).
//!
//! Results land in the output folder as they arrive, one folder per student, and the
//! gradebook is written from them at the end. A student whose `result.json` is there is
//! not graded again unless `--force`: a run stopped by Ctrl-C (or a crash of the machine)
//! resumes where it stopped.
//!
//! Here: the options, finding the students, and the pool of workers; [`worker`] grades
//! one student; [`output`] writes what a run leaves behind.

mod output;
mod worker;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::export::{csv, Format};
use super::instructor::GradeArgs;
use super::model::LabReport;
use crate::catalog::Lab;
use crate::error::LabError;
use crate::progress::WORKSPACE_FILE;
use output::{one_line, student_rows, summary, write_atomic};
use worker::grade_student;

/// `lab grade`'s class options (all but `--submissions` need it).
#[derive(Debug, Clone, clap::Args)]
pub struct ClassArgs {
    /// Grade a whole class: DIR holds one folder per student (a `lab init` workspace, or
    /// a clone of the student's repository with one inside). `--out` is then a folder
    /// (default `grades`) that receives the gradebook and each student's transcripts.
    #[arg(long, value_name = "DIR", conflicts_with = "cmd")]
    pub submissions: Option<PathBuf>,
    /// Students graded at once (default: the number of CPUs).
    #[arg(long, value_name = "N", requires = "submissions", value_parser = jobs)]
    pub jobs: Option<usize>,
    /// Grade again the students whose result is already in the output folder (by
    /// default a result already written is kept, so a stopped run resumes).
    #[arg(long, requires = "submissions")]
    pub force: bool,
    /// Wall-clock cap on one student's grading, builds included, in seconds.
    #[arg(long, value_name = "SECS", requires = "submissions",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub student_timeout: Option<u64>,
}

/// Default `--student-timeout`: a std-only Rust workspace builds in under a minute and
/// a lab grades in seconds; 15 minutes only ever stops a grading that is stuck.
const STUDENT_TIMEOUT: Duration = Duration::from_secs(900);

/// How deep under a student's folder to look for the workspace: a clone holds it at its
/// top or one or two folders down (`repo/lab-exercises/`).
const SEARCH_DEPTH: usize = 3;

/// The bytes of a grading process's stderr kept for its log (it prints a line or two;
/// this bounds a flood).
const LOG_CAP: u64 = 64 * 1024;

/// `--jobs`: at least one.
fn jobs(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of jobs: give a whole number such as 2"))?;
    if n == 0 {
        return Err(format!(
            "0 jobs would grade no one: give 1 or more (without --jobs: {}, the CPU count)",
            cpus()
        ));
    }
    Ok(n)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How one student's grading ended, as stored in `result.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// The grading process wrote its reports (whatever the grade, a failed build too).
    Graded,
    /// Stopped at `--student-timeout`.
    Timeout,
    /// The grading process ended without reports (its log says why).
    Error,
}

/// One student's stored result: what the gradebook is made from, and what a later run
/// finds to skip this student.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StudentResult {
    /// The student's folder name.
    student: String,
    /// The workspace graded.
    workspace: PathBuf,
    /// Lab ids asked for.
    labs: Vec<String>,
    outcome: Outcome,
    /// Why, when not graded.
    message: String,
    /// Wall time of the grading process.
    seconds: f64,
    /// One per lab (for a timeout or an error, reports that carry the message).
    reports: Vec<LabReport>,
}

/// A folder under the submissions folder.
struct Student {
    name: String,
    /// Its workspace, when one was found.
    workspace: Option<PathBuf>,
}

/// Everything a worker needs, shared by all.
struct Plan<'a> {
    exe: PathBuf,
    labs: Vec<String>,
    lang: String,
    seed: u64,
    timeout: Duration,
    students_dir: PathBuf,
    format: Format,
    verbose: bool,
    stop: &'a AtomicBool,
}

/// `lab grade ... --submissions DIR`.
pub fn grade_class(args: &GradeArgs, labs: &[&Lab], dir: &Path) -> Result<()> {
    if args.format == Format::GhClassroom {
        return Err(LabError::usage(
            "gh-classroom reports one repository to its own workflow, not a class",
        )
        .fix("grade each repository in its workflow (`lab classroom init`), or use --format csv here")
        .into());
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("grades"));
    if out.is_file() {
        return Err(LabError::usage(format!(
            "--out {} is a file; with --submissions it is a folder",
            out.display()
        ))
        .fix("name a folder for the gradebook and the transcripts, e.g. --out grades")
        .into());
    }
    let students = discover(dir, &out)?;
    let students_dir = out.join("students");
    std::fs::create_dir_all(&students_dir)
        .with_context(|| format!("cannot create {}", students_dir.display()))?;
    let lab_ids: Vec<String> = labs.iter().map(|l| l.id.clone()).collect();

    // Which students to grade now: those with a workspace and no result kept.
    let mut results: Vec<Option<StudentResult>> = students.iter().map(|_| None).collect();
    let mut todo = Vec::new();
    let mut kept = 0;
    for (i, s) in students.iter().enumerate() {
        if s.workspace.is_none() {
            continue;
        }
        match stored(&students_dir.join(&s.name), &lab_ids).filter(|_| !args.class.force) {
            Some(r) => {
                results[i] = Some(r);
                kept += 1;
            }
            None => todo.push(i),
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C and SIGTERM only raise the flag: workers stop their grading processes
    // (which run in process groups of their own, so the terminal's Ctrl-C does not
    // reach them) and finished results stay on disk.
    let hooks = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]
        .map(|sig| signal_hook::flag::register(sig, Arc::clone(&stop)));
    let plan = Plan {
        exe: std::env::current_exe().context("cannot find the lab executable")?,
        labs: lab_ids.clone(),
        lang: args
            .source
            .lang
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_else(|| "auto".into()),
        seed: args.source.seed.unwrap_or_else(super::fresh_seed),
        timeout: args
            .class
            .student_timeout
            .map_or(STUDENT_TIMEOUT, Duration::from_secs),
        students_dir: students_dir.clone(),
        format: args.format,
        verbose: args.source.verbose,
        stop: &stop,
    };
    let jobs = args.class.jobs.unwrap_or_else(cpus).min(todo.len()).max(1);
    let tty = std::io::stderr().is_terminal();
    let bar = crate::out::progress(todo.len() as u64, "grading");
    let line = |text: String| {
        if tty {
            bar.println(text);
        } else {
            // Not eprintln!, which panics when stderr is a closed pipe (`2>&1 | head`):
            // the gradebook must still be written.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{text}");
        }
    };
    for s in students.iter().filter(|s| s.workspace.is_none()) {
        line(format!(
            "{}: no workspace (no {WORKSPACE_FILE} in it or up to {SEARCH_DEPTH} folders down): row `no workspace`",
            s.name
        ));
    }
    if kept > 0 {
        line(format!(
            "{kept} student(s) already graded in {} are kept (--force grades them again)",
            out.display()
        ));
    }
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (plan, next, todo, students) = (&plan, &next, &todo, &students);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= todo.len() || plan.stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = todo[k];
                let s = &students[i];
                let ws = s.workspace.as_deref().unwrap_or(Path::new("."));
                let r = grade_student(plan, &s.name, ws);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (done, (i, r)) in rx.iter().enumerate() {
            if let Some(r) = r {
                line(format!(
                    "[{}/{}] {}",
                    done + 1,
                    todo.len(),
                    one_line(&students[i].name, &r)
                ));
                results[i] = Some(r);
            }
            bar.inc(1);
        }
    });
    bar.finish_and_clear();
    for id in hooks.into_iter().flatten() {
        signal_hook::low_level::unregister(id);
    }
    let interrupted = stop.load(Ordering::SeqCst);

    // The gradebook, from every result on disk (kept or new).
    let mut rows = Vec::new();
    for (s, r) in students.iter().zip(&results) {
        rows.extend(student_rows(
            &s.name,
            s.workspace.is_some(),
            r.as_ref(),
            labs,
        ));
    }
    let gradebook = out.join("gradebook.csv");
    write_atomic(&gradebook, &csv::render(&rows))?;
    summary(&students, &results, kept, &out, args.format)?;
    if interrupted {
        let left = students
            .iter()
            .zip(&results)
            .filter(|(s, r)| s.workspace.is_some() && r.is_none())
            .count();
        return Err(LabError::failed(format!(
            "interrupted: {left} student(s) not graded (`not graded` in the gradebook)"
        ))
        .fix("run the same command again: the students already graded are kept")
        .into());
    }
    Ok(())
}

/// The student folders under DIR, sorted by name, each with its workspace if any.
fn discover(dir: &Path, out: &Path) -> Result<Vec<Student>> {
    let fix = "pass the folder that holds one folder per student (each a `lab init` workspace or a clone of the student's repository)";
    let entries = std::fs::read_dir(dir).map_err(|e| {
        LabError::usage(format!(
            "cannot read the submissions folder {} ({e})",
            dir.display()
        ))
        .fix(fix)
    })?;
    // The output folder may sit inside DIR: it is not a student.
    let out = out.canonicalize().ok();
    let mut students = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !path.is_dir() || path.canonicalize().ok() == out {
            continue;
        }
        let workspace = find_workspace(&path).map(|w| w.canonicalize().unwrap_or(w));
        students.push(Student { name, workspace });
    }
    if students.is_empty() {
        return Err(
            LabError::usage(format!("{} holds no student folders", dir.display()))
                .fix(fix)
                .into(),
        );
    }
    students.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(students)
}

/// A `lab init` workspace: its progress file (committed with the exercises), or the
/// first exercise where an older workspace has no progress file.
fn is_workspace(d: &Path) -> bool {
    d.join(WORKSPACE_FILE).is_file() || d.join("rust/01-tcp-echo.rs").is_file()
}

/// The shallowest workspace under `root` (breadth first, names sorted), skipping hidden
/// folders, build output and symbolic links (a clone must not send us elsewhere).
fn find_workspace(root: &Path) -> Option<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..=SEARCH_DEPTH {
        if let Some(w) = level.iter().find(|d| is_workspace(d)) {
            return Some(w.clone());
        }
        let mut next = Vec::new();
        for d in &level {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let skip = name.starts_with('.') || name == "target" || name == "node_modules";
                if !skip && e.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(e.path());
                }
            }
        }
        next.sort();
        level = next;
    }
    None
}

/// The result kept from an earlier run, if it covers every lab asked for.
fn stored(folder: &Path, labs: &[String]) -> Option<StudentResult> {
    let text = std::fs::read_to_string(folder.join("result.json")).ok()?;
    let r: StudentResult = serde_json::from_str(&text).ok()?;
    labs.iter().all(|l| r.labs.contains(l)).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        std::fs::write(at.join(WORKSPACE_FILE), "").unwrap();
    }

    #[test]
    fn the_shallowest_workspace_is_found_and_hidden_build_and_linked_folders_are_not_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A workspace at the top wins.
        workspace(&root.join("top"));
        workspace(&root.join("top/nested"));
        assert_eq!(find_workspace(&root.join("top")), Some(root.join("top")));
        // One inside a clone, two levels down; a deeper one loses to it.
        workspace(&root.join("clone/repo/ws"));
        workspace(&root.join("clone/a/b/c"));
        assert_eq!(
            find_workspace(&root.join("clone")),
            Some(root.join("clone/repo/ws"))
        );
        // Hidden folders, target/ and symbolic links are not searched; too deep is not found.
        workspace(&root.join("none/.git/ws"));
        workspace(&root.join("none/target/ws"));
        workspace(&root.join("none/a/b/c/d"));
        std::os::unix::fs::symlink(root.join("top"), root.join("none/link")).unwrap();
        assert_eq!(find_workspace(&root.join("none")), None);
    }

    #[test]
    fn students_are_the_visible_folders_sorted_and_not_the_output_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        workspace(&dir.join("zoe"));
        std::fs::create_dir_all(dir.join("ada")).unwrap();
        std::fs::create_dir_all(dir.join(".hidden")).unwrap();
        std::fs::create_dir_all(dir.join("grades")).unwrap();
        std::fs::write(dir.join("notes.txt"), "").unwrap();
        let found = discover(dir, &dir.join("grades")).unwrap();
        let names: Vec<(&str, bool)> = found
            .iter()
            .map(|s| (s.name.as_str(), s.workspace.is_some()))
            .collect();
        assert_eq!(names, [("ada", false), ("zoe", true)]);
    }
}
