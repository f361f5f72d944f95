//! `lab dev check`, for exercise authors: proves the grader right on known programs.
//! Every reference solution must get full marks, every unmodified starter must fail,
//! every mutant in `tests/mutants/` must fail the check its header names, and every
//! correct variant in `tests/variants/` (written another way than the reference) must
//! get full marks. The jobs
//! run on a small pool of worker threads, since most of the time is spent waiting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::build::{grading_port, prepare, python, Lang, Source};
use super::model::{LabReport, Status};
use super::scratch::Scratch;
use super::{embedded, fresh_seed, ns, Job};
use crate::catalog::{Catalog, Lab};
use crate::error::LabError;
use crate::out::{bad, bold, dim, good};
use crate::say;

/// One mutant: a known-buggy program and the check that must catch it.
#[derive(Debug, Clone)]
pub struct Mutant {
    /// The file: Python (`.py`, run with python3) or Rust (`.rs`, built in place of the
    /// reference solution in a copy of the solutions workspace).
    pub path: PathBuf,
    /// The lab it is an answer to.
    pub lab: String,
    /// The check that must fail for it.
    pub caught_by: String,
}

/// One correct variant: a program written differently from the reference solution (an
/// event loop instead of threads, a bitmap instead of a set), which must get full marks
/// too, so a check never demands one way of doing it.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The file, `.py` or `.rs` as for mutants.
    pub path: PathBuf,
    /// The lab it is an answer to.
    pub lab: String,
}

/// The `.py` and `.rs` files of `dir`, sorted, each with a reader of its header fields
/// (`# key: value` in Python, `// key: value` in Rust, within the first 10 lines).
fn headed_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read programs in {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py" || x == "rs"))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| Ok((p.clone(), std::fs::read_to_string(&p)?)))
        .collect()
}

/// The value of header field `key` in `text`: `# key: value` or `// key: value`.
pub fn header(text: &str, key: &str) -> Option<String> {
    text.lines().take(10).find_map(|l| {
        ["# ", "// "]
            .iter()
            .find_map(|c| l.strip_prefix(&format!("{c}{key}: ")))
            .map(|s| s.trim().to_string())
    })
}

/// Reads `lab: ID` and `caught-by: CHECK` from each mutant's header.
pub fn mutants(dir: &Path) -> Result<Vec<Mutant>> {
    let mut v = Vec::new();
    for (path, text) in headed_files(dir)? {
        let (Some(lab), Some(caught_by)) = (header(&text, "lab"), header(&text, "caught-by"))
        else {
            anyhow::bail!(
                "{}: needs `# lab: ID` and `# caught-by: CHECK` header lines (`//` in Rust)",
                path.display()
            );
        };
        v.push(Mutant {
            path,
            lab,
            caught_by,
        });
    }
    Ok(v)
}

/// Reads `lab: ID` from each correct variant's header; a missing folder has none.
pub fn variants(dir: &Path) -> Result<Vec<Variant>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut v = Vec::new();
    for (path, text) in headed_files(dir)? {
        let Some(lab) = header(&text, "lab") else {
            anyhow::bail!("{}: needs a `# lab: ID` header line", path.display());
        };
        v.push(Variant { path, lab });
    }
    Ok(v)
}

/// The job grading one extra program (a mutant or a variant): Python runs as it is; Rust
/// is built in place of the reference solution, in a fresh copy of the solutions
/// workspace under `scratch` (a failed build comes back as a report, as for students).
fn extra_job(
    lab: &Lab,
    path: &Path,
    scratch: &Path,
    seed: u64,
    target: &Path,
) -> Result<Result<Job, LabReport>> {
    if path.extension().is_some_and(|x| x == "rs") {
        let ex = embedded::exercise(&lab.id)
            .with_context(|| format!("{}: lab {} has no exercise", path.display(), lab.id))?;
        // Its own workspace and target folder: extra programs of one lab build binaries
        // of the same name, and every job runs after all the builds.
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let ws = scratch.join(name.as_ref());
        let target = target.join(name.as_ref());
        embedded::write_all(&embedded::solutions(), &ws, true)?;
        std::fs::copy(path, ws.join(ex.rust))
            .with_context(|| format!("cannot copy {}", path.display()))?;
        let src = Source {
            cmd: None,
            dir: None,
            lang: Lang::Rust,
            seed: Some(seed),
            verbose: false,
            pcap: None,
        };
        return prepare(lab, &ws, &src, seed, Some(&target));
    }
    Ok(Ok(Job {
        lab: lab.id.clone(),
        argv: vec![python(), path.display().to_string()],
        args: lab
            .exercise
            .as_ref()
            .map(|e| e.args.clone())
            .unwrap_or_default(),
        dir: None,
        env: Vec::new(),
        seed,
        port: grading_port(lab),
        only: Vec::new(),
        fail_fast: false,
        capture: None,
        built_under: None,
        built_off: Vec::new(),
        view: None,
        copied: None,
    }))
}

/// What `dev check` requires of one graded program.
#[derive(Debug, Clone)]
enum Expect {
    /// A reference solution: every check passes.
    FullMarks,
    /// An unmodified starter: it must not pass.
    NotPass,
    /// A mutant: this check must fail (or error).
    Caught(String),
}

/// `lab dev check`: every solution gets full marks, every unmodified starter fails, every
/// mutant fails the check aimed at its bug, and every correct variant gets full marks.
/// `root` holds `tests/mutants/` and `tests/variants/`.
pub fn dev_check(catalog: &Catalog, root: &Path, target_dir: Option<&Path>) -> Result<()> {
    // Programs run from their own folders, so a relative root (`--root .`) would name the
    // wrong file once they start: every Python mutant would then "fail" by not starting.
    let root = &std::path::absolute(root)
        .with_context(|| format!("cannot resolve --root {}", root.display()))?;
    // The exercises written out, removed on drop (also when stdout closes mid-way).
    let tmp = Scratch::new(&format!("dev-{}", std::process::id()))
        .context("cannot make a temporary folder; set TMPDIR to a writable folder")?;
    let (sol, start) = (tmp.path().join("solutions"), tmp.path().join("starters"));
    embedded::write_all(&embedded::solutions(), &sol, true)?;
    embedded::write_all(&embedded::starters(), &start, true)?;
    let target = match target_dir {
        Some(t) => std::path::absolute(t)
            .with_context(|| format!("cannot resolve --target-dir {}", t.display()))?,
        None => root.join("target").join("lab-exercises"),
    };
    let seed = fresh_seed();
    say!("{} {}", bold("lab dev check"), dim(format!("seed {seed}")))?;
    // Build everything first (sequentially: cargo locks the target folder anyway).
    let mut jobs: Vec<(String, Result<Job, LabReport>, Expect)> = Vec::new();
    for ex in embedded::exercises() {
        let Ok(lab) = catalog.find(ex.lab) else {
            continue;
        };
        for (which, ws, expect) in [
            ("solution", &sol, Expect::FullMarks),
            ("starter", &start, Expect::NotPass),
        ] {
            for lang in [Lang::Rust, Lang::Python] {
                let src = Source {
                    cmd: None,
                    dir: None,
                    lang,
                    seed: Some(seed),
                    verbose: false,
                    pcap: None,
                };
                // Separate target folders: both workspaces build binaries of the same
                // names, and the jobs run them later, side by side.
                let mut job = prepare(lab, ws, &src, seed, Some(&target.join(which)))?;
                if let (Ok(j), Expect::NotPass) = (&mut job, &expect) {
                    // Only "does it fail" matters: stop at the first failure.
                    j.fail_fast = true;
                }
                jobs.push((
                    format!("{} {which} ({lang:?})", lab.id),
                    job,
                    expect.clone(),
                ));
            }
        }
    }
    // Mutants and variants in Rust are built, each in its own copy of the solutions.
    let scratch = tmp.path().join("extra");
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    for m in mutants(&root.join("tests/mutants"))? {
        let lab = catalog.find(&m.lab)?;
        let mut job = extra_job(lab, &m.path, &scratch, seed, &target.join("extra"))?;
        if let Ok(j) = &mut job {
            j.only = vec![m.caught_by.clone()];
        }
        jobs.push((
            format!("mutant {}", file_name(&m.path)),
            job,
            Expect::Caught(m.caught_by),
        ));
    }
    for v in variants(&root.join("tests/variants"))? {
        let lab = catalog.find(&v.lab)?;
        let job = extra_job(lab, &v.path, &scratch, seed, &target.join("extra"))?;
        jobs.push((
            format!("variant {}", file_name(&v.path)),
            job,
            Expect::FullMarks,
        ));
    }
    // Most of the time is spent waiting on reply timeouts: four workers take the next
    // job as they finish (each job in its own namespaces, or on its own free ports).
    const WORKERS: usize = 4;
    let total = jobs.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; total]);
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((_, job, expect)) = jobs.get(i) else {
                    return;
                };
                let report = match job {
                    Ok(j) => ns::grade(j),
                    Err(r) => Ok(r.clone()),
                };
                let verdict = match report {
                    Ok(r) => judge(&r, expect),
                    Err(e) => (false, e.to_string()),
                };
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(verdict);
            });
        }
    });
    let mut bad_items = 0;
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    for ((what, _, _), verdict) in jobs.iter().zip(results) {
        let (ok, detail) = verdict.unwrap_or((false, "the grader thread panicked".into()));
        if !ok {
            bad_items += 1;
        }
        say!(
            "{} {what:<34} {}",
            if ok { good("ok  ") } else { bad("BAD ") },
            dim(detail)
        )?;
    }
    if bad_items == 0 {
        say!("{}", good(format!("all {total} items behave as required")))?;
        Ok(())
    } else {
        Err(LabError::failed(format!(
            "{bad_items} of {total} items misbehave (seed {seed})"
        ))
        .into())
    }
}

/// Whether a report meets the expectation, and a one-line detail.
fn judge(r: &LabReport, expect: &Expect) -> (bool, String) {
    let not_passed: Vec<&str> = r
        .tests
        .iter()
        .filter(|t| t.status != Status::Pass)
        .map(|t| t.name.as_str())
        .collect();
    match expect {
        Expect::FullMarks => (
            r.passed() && r.score == r.max_score,
            format!(
                "{}/{}{}{}",
                r.score,
                r.max_score,
                if not_passed.is_empty() {
                    String::new()
                } else {
                    format!(", not passed: {}", not_passed.join(" "))
                },
                match r.tests.iter().find(|t| t.status != Status::Pass) {
                    // The first failure's message: a flaky check is diagnosed from the
                    // dev check's output alone.
                    Some(t) if !t.message.is_empty() =>
                        format!("; {}: {}", t.name, t.message.lines().next().unwrap_or("")),
                    _ if r.message.is_empty() => String::new(),
                    _ => format!("; {}", r.message.lines().next().unwrap_or("")),
                }
            ),
        ),
        Expect::NotPass => (
            !r.passed(),
            format!(
                "{}/{}, first not passed: {}",
                r.score,
                r.max_score,
                not_passed.first().unwrap_or(&"none")
            ),
        ),
        Expect::Caught(name) => match r.tests.iter().find(|t| &t.name == name) {
            Some(t) => (
                matches!(t.status, Status::Fail | Status::Error),
                format!(
                    "{name} {}: {}",
                    t.status.word(),
                    t.message.lines().next().unwrap_or("")
                ),
            ),
            // A grading that ended without running any check says why in its message.
            None if r.tests.is_empty() && !r.message.is_empty() => {
                (false, format!("{name} never ran: {}", r.message))
            }
            None => (false, format!("no check named {name}")),
        },
    }
}
