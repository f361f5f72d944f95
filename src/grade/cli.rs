//! The grader's subcommands, flattened into `lab`'s command line by one variant in
//! `src/cli.rs`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use super::build::Source;
use super::instructor::{self, GradeArgs};
use super::{dev_check, student, watch};
use crate::catalog::Catalog;

/// Student, instructor and author commands of the grader.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Write the exercises workspace (Rust and Python starters, progress file) into DIR.
    Init {
        /// Where (created if missing; existing files are kept).
        #[arg(default_value = "lab-exercises")]
        dir: PathBuf,
    },
    /// Build and grade your exercise for a lab, with a transcript of what was tried.
    Check {
        /// Lab id.
        id: String,
        /// Where the program comes from.
        #[command(flatten)]
        source: Source,
        /// Add a dated entry to DIR: report.md, the full transcript, a packet capture
        /// and the raw data (`lab report` turns them into a write-up).
        #[arg(long, value_name = "DIR")]
        evidence: Option<PathBuf>,
    },
    /// Restore a lab's starter files (your version is kept in .lab-backup/).
    Reset {
        /// Lab id.
        id: String,
        /// Only this language's starter (default: both the Rust and the Python file).
        #[arg(long, value_enum)]
        lang: Option<student::StarterLang>,
        /// The exercises workspace.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Show a lab's reference solution (once your exercise has passed).
    Solution {
        /// Lab id.
        id: String,
        /// The exercises workspace.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Re-check whenever you save an exercise file (polls; Enter re-checks at once).
    Watch {
        /// Only this lab.
        id: Option<String>,
        /// Where the program comes from.
        #[command(flatten)]
        source: Source,
        /// Polling interval in milliseconds (50 to 60000: faster only burns CPU, slower
        /// is not watching).
        #[arg(long, default_value_t = 500,
              value_parser = clap::value_parser!(u64).range(50..=60_000))]
        interval_ms: u64,
        /// Stop after this many checks (for scripts and tests).
        #[arg(long, hide = true)]
        max_runs: Option<usize>,
    },
    /// Grade exercises for CI and classrooms, in the format your platform reads.
    Grade(GradeArgs),
    /// GitHub Classroom helpers.
    Classroom {
        #[command(subcommand)]
        command: ClassroomCommand,
    },
    /// Course-author tools.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// (internal) Run one grading job inside namespaces and print its report as JSON.
    #[command(name = "__grade-inner", hide = true)]
    GradeInner {
        /// The job, as JSON.
        job: String,
    },
}

/// `lab classroom ...`.
#[derive(Debug, Subcommand)]
pub enum ClassroomCommand {
    /// Write .github/workflows/classroom.yml that grades every push with `lab grade`.
    Init {
        /// The assignment repository's root.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where CI installs `lab` from (`cargo install --git URL lab`). Default: the
        /// GitHub repository of the current folder's `origin` remote, when the current
        /// folder is a checkout of lab.
        #[arg(long, value_name = "URL")]
        git: Option<String>,
    },
}

/// `lab dev ...`.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Solutions get full marks, starters fail, every mutant fails the check aimed at it.
    Check {
        /// The repository root (holds tests/mutants/).
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Cargo target folder for building solutions and starters.
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
}

/// Runs one of the grader's commands.
pub fn run(catalog: &Catalog, cmd: Commands) -> Result<()> {
    match cmd {
        Commands::Init { dir } => student::init(&dir),
        Commands::Check {
            id,
            source,
            evidence,
        } => {
            let lab = catalog.find(&id)?;
            match evidence {
                // Issue 17: the evidence wraps the usual check (src/evidence/).
                Some(dir) => {
                    crate::evidence::around_check(lab, &source, &dir, |s| student::check(lab, s))
                }
                None => student::check(lab, &source),
            }
        }
        Commands::Reset { id, lang, dir } => {
            student::reset(catalog.find(&id)?, dir.as_deref(), lang)
        }
        Commands::Solution { id, dir } => student::solution(catalog.find(&id)?, dir.as_deref()),
        Commands::Watch {
            id,
            source,
            interval_ms,
            max_runs,
        } => {
            let lab = id.map(|i| catalog.find(&i)).transpose()?;
            watch::watch(
                catalog,
                lab,
                &source,
                Duration::from_millis(interval_ms),
                max_runs,
            )
        }
        Commands::Grade(args) => instructor::grade(catalog, &args),
        Commands::Classroom {
            command: ClassroomCommand::Init { dir, git },
        } => instructor::classroom_init(&dir, git.as_deref()),
        Commands::Dev {
            command: DevCommand::Check { root, target_dir },
        } => dev_check::dev_check(catalog, &root, target_dir.as_deref()),
        Commands::GradeInner { job } => super::ns::inner_main(&job),
    }
}
