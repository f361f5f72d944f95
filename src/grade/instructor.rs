//! The instructor's commands: `lab grade` grades many labs at once into any export
//! format (human, JSON, JUnit, GitHub Classroom, Gradescope, Exercism), and
//! `lab classroom init` writes the GitHub Classroom workflow (`classroom.yml`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::build::{grade_one, workspace, Source};
use super::export::{self, Format};
use super::model::LabReport;
use super::{checks, embedded, fresh_seed};
use crate::catalog::{Catalog, Lab};
use crate::error::LabError;
use crate::out::dim;
use crate::say;

/// `lab grade`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct GradeArgs {
    /// Lab ids to grade (e.g. `01 02`).
    pub ids: Vec<String>,
    /// Grade every lab that has an exercise.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Where the program comes from.
    #[command(flatten)]
    pub source: Source,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `lab grade`.
pub fn grade(catalog: &Catalog, args: &GradeArgs) -> Result<()> {
    let labs: Vec<&Lab> = if args.all || args.ids.is_empty() {
        catalog
            .labs
            .iter()
            .filter(|l| embedded::exercise(&l.id).is_some() && checks::suite(&l.id).is_some())
            .collect()
    } else {
        args.ids
            .iter()
            .map(|i| catalog.find(i))
            .collect::<Result<_, _>>()?
    };
    let ws = workspace(args.source.dir.as_deref());
    let seed = args.source.seed.unwrap_or_else(fresh_seed);
    let mut reports = Vec::new();
    for lab in &labs {
        reports.push(grade_one(lab, &ws, &args.source, seed)?);
    }
    let text = export::render(args.format, &reports, args.all, args.source.verbose);
    match &args.out {
        Some(path) => {
            if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?
        }
        None => say!("{}", text.trim_end())?,
    }
    if args.format == Format::GhClassroom {
        if let Some(out) = std::env::var_os("GITHUB_OUTPUT") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .with_context(|| "cannot open $GITHUB_OUTPUT")?;
            writeln!(f, "result={}", export::classroom::result_value(&reports))?;
        }
    }
    let passed = reports.iter().all(LabReport::passed);
    // Exercism's and Gradescope's runners must exit 0 whatever the grade.
    if passed || matches!(args.format, Format::Exercism | Format::Gradescope) {
        Ok(())
    } else {
        let score: f64 = reports.iter().map(|r| r.score).fold(0.0, |a, b| a + b);
        let max: f64 = reports.iter().map(|r| r.max_score).fold(0.0, |a, b| a + b);
        Err(LabError::failed(format!("graded {score}/{max} (seed {seed})")).into())
    }
}

/// The GitHub Classroom workflow `lab classroom init` writes.
const WORKFLOW: &str = include_str!("classroom.yml");

/// `lab classroom init [DIR]`.
pub fn classroom_init(dir: &Path, git: &str) -> Result<()> {
    let path = dir.join(".github/workflows/classroom.yml");
    if path.exists() {
        return Err(LabError::usage(format!("{} exists", path.display()))
            .fix("remove it first, or edit it by hand")
            .into());
    }
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    std::fs::write(&path, WORKFLOW.replace("{LAB_GIT}", git))?;
    say!("wrote {}", path.display())?;
    say!("{}", dim("Push it to the assignment's template repository; each student push is graded by `lab grade --all --format gh-classroom`."))?;
    Ok(())
}
