//! The student's commands: `lab init` writes the exercises workspace, `lab check`
//! grades one exercise and records a pass, `lab reset` restores a starter (keeping a
//! backup), `lab solution` shows the reference once the exercise passed.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::build::{exercise_of, grade_one, workspace, Source};
use super::embedded;
use super::export;
use super::fresh_seed;
use crate::catalog::Lab;
use crate::error::LabError;
use crate::out::{bold, code, dim, good};
use crate::progress::{self, Progress, WORKSPACE_FILE};
use crate::say;

/// The progress record the workspace `ws` counts in (see `crate::progress`).
fn progress_in(ws: &Path) -> Progress {
    Progress::for_workspace(ws)
}

/// A folder `lab init` wrote: it holds the workspace's progress file (older ones only
/// their Rust starters, which is how [`workspace`] finds them too).
fn is_workspace(ws: &Path) -> bool {
    ws.join(WORKSPACE_FILE).is_file() || ws.join("rust/01-tcp-echo.rs").is_file()
}

/// `lab init [DIR]`.
pub fn init(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = embedded::write_all(&embedded::starters(), dir, false)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    // The workspace's file becomes the one record, holding the demos run before.
    let record = progress::adopt_workspace(dir)
        .with_context(|| format!("cannot write the progress file into {}", dir.display()))?;
    std::fs::write(dir.join(".gitignore"), "target/\n.lab-backup/\n").ok();
    say!(
        "{} {}",
        good("Wrote the exercises workspace in"),
        bold(dir.display())
    )?;
    for p in &written {
        say!("  {}", p.strip_prefix(dir).unwrap_or(p).display())?;
    }
    say!("  {} {}", WORKSPACE_FILE, dim("your progress"))?;
    if written.len() < embedded::starters().len() {
        say!(
            "{}",
            dim("(files that already existed were kept; `lab reset ID` restores a starter)")
        )?;
    }
    say!(
        "{}",
        dim(format!(
            "Progress is kept in {} (what you did before is in it).",
            record.display()
        ))
    )?;
    say!()?;
    // The step left, from the record just made (demos run before count).
    let catalog = crate::catalog::Catalog::load(None)?;
    let progress = progress_in(dir);
    match crate::next::next_step(&catalog, &progress, Some(dir)) {
        Some(step) => {
            say!(
                "Next: {}, then for {}:",
                code(format!("cd {}", dir.display())),
                step.lab.id
            )?;
            step.say_commands()?;
        }
        None => say!("Every lab that is built so far is done.")?,
    }
    Ok(())
}

/// `lab check ID`.
pub fn check(lab: &Lab, src: &Source) -> Result<()> {
    let ws = workspace(src.dir.as_deref());
    let seed = src.seed.unwrap_or_else(fresh_seed);
    let report = grade_one(lab, &ws, src, seed)?;
    // Checked at least once: the exercise is started, whatever the outcome.
    let passed = report.passed();
    progress_in(&ws).update(&lab.id, |e| {
        e.tried = true;
        e.passed |= passed;
    });
    crate::evidence::note_check(&report);
    say!(
        "{}",
        export::human::render_with(std::slice::from_ref(&report), src.verbose).trim_end()
    )?;
    if passed {
        say!()?;
        say!(
            "{} {}",
            good("Passed."),
            dim(format!(
                "`lab solution {}` now shows the reference solution.",
                lab.id
            ))
        )?;
        Ok(())
    } else {
        if !report.message.is_empty() {
            return Err(LabError::failed(format!("{} could not be graded", lab.id))
                .fix("fix the error shown above (a build error names the file and line), then check again")
                .into());
        }
        Err(LabError::failed(format!("{} did not pass: {}/{}", lab.id, report.score, report.max_score))
            .fix(format!("read the first failure above; `lab hint {}` gives the next hint; rerun with --seed {seed} to replay", lab.id))
            .into())
    }
}

/// Which starter `lab reset` restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StarterLang {
    /// Only the Rust file (`rust/ID.rs`).
    Rust,
    /// Only the Python file (`python/ID.py`).
    Python,
}

/// `lab reset ID [--lang rust|python]`: backs the current files up in
/// `.lab-backup/ID-TIME/`, then writes the starters again (both, or the one asked for),
/// and names each file it reset and where the backup is.
pub fn reset(lab: &Lab, dir: Option<&Path>, lang: Option<StarterLang>) -> Result<()> {
    let ws = workspace(dir);
    let ex = exercise_of(lab)?;
    // Only into a workspace `lab init` wrote: anywhere else reset would create folders
    // (a typo in --dir) and say "restored" about files that never existed.
    if !is_workspace(&ws) {
        return Err(LabError::usage(format!(
            "{} is not an exercises workspace (no {WORKSPACE_FILE} there)",
            ws.display()
        ))
        .fix(format!(
            "create one with `lab init {}` first, or pass --dir the folder `lab init` wrote",
            ws.display()
        ))
        .into());
    }
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let backup = ws.join(".lab-backup").join(format!("{}-{stamp}", lab.id));
    let files: &[&str] = match lang {
        None => &[ex.rust, ex.python],
        Some(StarterLang::Rust) => &[ex.rust],
        Some(StarterLang::Python) => &[ex.python],
    };
    let (mut reset, mut kept) = (Vec::new(), Vec::new());
    for &rel in files {
        let p = ws.join(rel);
        let starter = embedded::get(&embedded::starters(), rel).unwrap_or_default();
        match std::fs::read(&p) {
            // Already the starter: nothing to reset, nothing worth a backup.
            Ok(now) if now == starter.as_bytes() => continue,
            Ok(_) => {
                let to = backup.join(rel);
                std::fs::create_dir_all(to.parent().unwrap_or(&backup))?;
                std::fs::copy(&p, &to)
                    .with_context(|| format!("cannot back up {}", p.display()))?;
                kept.push(rel);
            }
            Err(_) => {}
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, starter)?;
        reset.push(rel);
    }
    if reset.is_empty() {
        say!(
            "{} already the starter in {}: nothing to reset.",
            files.join(" and "),
            ws.display()
        )?;
        return Ok(());
    }
    say!("Reset to the starter, in {}:", ws.display())?;
    for rel in &reset {
        say!("  {rel}")?;
    }
    if !kept.is_empty() {
        say!("Your previous version is kept in {}/:", backup.display())?;
        for rel in &kept {
            say!("  {rel}")?;
        }
    }
    Ok(())
}

/// `lab solution ID`: the reference solutions, once the exercise has passed.
pub fn solution(lab: &Lab, dir: Option<&Path>) -> Result<()> {
    let ws = workspace(dir);
    let ex = exercise_of(lab)?;
    if !progress_in(&ws).get(&lab.id).passed {
        return Err(LabError::failed(format!(
            "the solution of {} opens once your exercise passes",
            lab.id
        ))
        .fix(format!(
            "run `lab check {}` until it passes; `lab hint {}` helps",
            lab.id, lab.id
        ))
        .into());
    }
    for rel in [ex.rust, ex.python] {
        say!("{}", bold(format!("==> solutions/{rel}")))?;
        say!(
            "{}",
            embedded::get(&embedded::solutions(), rel)
                .unwrap_or_default()
                .trim_end()
        )?;
        say!()?;
    }
    Ok(())
}
