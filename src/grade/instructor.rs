//! The instructor's commands: `lab grade` grades many labs at once into any export
//! format (human, JSON, JUnit, GitHub Classroom, Gradescope, Exercism), and
//! `lab classroom init` writes the GitHub Classroom workflow (`classroom.yml`). A whole
//! class (`--submissions DIR`) is graded by [`super::class`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::build::{grade_one, workspace, Source};
use super::class::{self, ClassArgs};
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
    /// Write the output to this file instead of stdout (with --submissions: a folder).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A whole class at once.
    #[command(flatten)]
    pub class: ClassArgs,
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
    if let Some(dir) = &args.class.submissions {
        return class::grade_class(args, &labs, dir);
    }
    let ws = workspace(args.source.dir.as_deref());
    let seed = args.source.seed.unwrap_or_else(fresh_seed);
    let mut reports = Vec::new();
    for lab in &labs {
        // `--pcap` with several labs: one file per lab (src/capture.rs).
        let mut source = args.source.clone();
        source.pcap = (source.pcap.as_deref())
            .map(|p| crate::capture::path_for_lab(p, &lab.id, labs.len() > 1));
        reports.push(grade_one(lab, &ws, &source, seed)?);
    }
    let github_output = std::env::var_os("GITHUB_OUTPUT");
    let text = if args.format == Format::GhClassroom {
        let actions = std::env::var("GITHUB_ACTIONS").ok();
        let reporter =
            export::classroom::under_reporter(actions.as_deref(), github_output.is_some());
        export::classroom::render_with(&reports, !reporter)
    } else if args.format == Format::Csv {
        // One workspace's rows: its folder name stands for the student.
        let name = ws.canonicalize().unwrap_or_else(|_| ws.clone());
        let name = name.file_name().map(|n| n.to_string_lossy().to_string());
        export::csv::render(&export::csv::rows(&name.unwrap_or_default(), &reports))
    } else {
        export::render(args.format, &reports, args.all, args.source.verbose)
    };
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
        if let Some(out) = github_output {
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

/// `lab classroom init [DIR]`. `git` is where CI installs lab from; without it, the
/// current folder's `origin` remote when that folder is a lab checkout on GitHub.
pub fn classroom_init(dir: &Path, git: Option<&str>) -> Result<()> {
    let path = dir.join(".github/workflows/classroom.yml");
    if path.exists() {
        return Err(LabError::usage(format!("{} exists", path.display()))
            .fix("remove it first, or edit it by hand")
            .into());
    }
    let (git, from) = match git {
        Some(g) => (g.to_string(), "--git"),
        None => (
            lab_repository_here()?,
            "the origin remote of this lab checkout",
        ),
    };
    std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
    std::fs::write(&path, WORKFLOW.replace("{LAB_GIT}", &git))?;
    say!("wrote {}", path.display())?;
    say!(
        "  on every push, it installs lab:  cargo install --locked --git {git} lab  (from {from})"
    )?;
    say!("  grades:                          lab grade --all --format gh-classroom")?;
    say!("  and reports the points with:     classroom-resources/autograding-grading-reporter@v1")?;
    say!(
        "{}",
        dim("Push it to the assignment's template repository.")
    )?;
    Ok(())
}

/// The GitHub repository lab can be installed from, read from the current folder: its
/// git top level must hold lab's own Cargo.toml (else the remote is some other project,
/// such as the assignment itself), and `origin` must be on GitHub.
fn lab_repository_here() -> Result<String> {
    let refuse = |why: String| -> anyhow::Error {
        LabError::usage(format!(
            "cannot tell where CI should install lab from: {why}"
        ))
        .fix("pass the repository: lab classroom init --git https://github.com/OWNER/lab")
        .into()
    };
    let git = |args: &[&str]| -> Result<String, String> {
        let o = std::process::Command::new("git")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run git ({e})"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"])
        .map_err(|e| refuse(format!("the current folder is not a git checkout ({e})")))?;
    let manifest = std::fs::read_to_string(Path::new(&top).join("Cargo.toml")).unwrap_or_default();
    let name = manifest
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_string));
    if name.as_deref() != Some("lab") {
        return Err(refuse(format!("{top} is not a checkout of lab")));
    }
    let url = git(&["remote", "get-url", "origin"])
        .map_err(|e| refuse(format!("{top} has no origin remote ({e})")))?;
    github_repository(&url)
        .ok_or_else(|| refuse(format!("origin ({url}) is not a GitHub repository")))
}

/// `https://github.com/OWNER/NAME` from a GitHub remote URL in any of git's forms:
/// `https://github.com/O/N(.git)`, `git@github.com:O/N(.git)`,
/// `ssh://git@github.com(:22)/O/N(.git)`, `git://github.com/O/N`.
pub fn github_repository(url: &str) -> Option<String> {
    let url = url.trim();
    let path = if let Some(rest) = url.strip_prefix("git@github.com:") {
        rest
    } else {
        let rest = ["https://", "http://", "ssh://", "git://"]
            .iter()
            .find_map(|p| url.strip_prefix(p))?;
        // Drop credentials (user@, token@) and a port.
        let (host, path) = rest.split_once('/')?;
        let host = host.rsplit('@').next()?;
        if host.split(':').next()? != "github.com" {
            return None;
        }
        path
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then(|| format!("https://github.com/{owner}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::github_repository as repo;

    #[test]
    fn github_remotes_in_every_form_give_the_https_repository() {
        let want = Some("https://github.com/ada/lab".to_string());
        for url in [
            "https://github.com/ada/lab",
            "https://github.com/ada/lab.git",
            "https://github.com/ada/lab/",
            "https://x-access-token:abc@github.com/ada/lab.git",
            "git@github.com:ada/lab.git",
            "git@github.com:ada/lab",
            "ssh://git@github.com/ada/lab.git",
            "ssh://git@github.com:22/ada/lab",
            "git://github.com/ada/lab.git",
        ] {
            assert_eq!(repo(url), want, "{url}");
        }
        for url in [
            "https://gitlab.com/ada/lab",
            "git@gitlab.com:ada/lab.git",
            "https://github.com/ada",
            "https://github.com/ada/lab/tree/main",
            "/home/ada/lab",
            "",
        ] {
            assert_eq!(repo(url), None, "{url}");
        }
    }
}
