//! The grader's commands: for students `lab init`, `lab check`, `lab reset`,
//! `lab solution`, `lab watch`; for instructors `lab grade`, `lab classroom init`; for
//! authors `lab dev check`. Each is a small function over the pieces in `grade/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::embedded::{self, ExerciseFiles};
use super::export::{self, Format};
use super::model::{Environment, LabReport, Status};
use super::sandbox::{run_to_end, Spawn};
use super::{checks, fresh_seed, ns, Job};
use crate::catalog::{Catalog, Lab};
use crate::error::LabError;
use crate::out::{bad, bold, code, dim, good};
use crate::progress::{self, Progress, WORKSPACE_FILE};
use crate::say;

/// Which version of an exercise to grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// The one you changed (Python if only the Python file differs from its starter).
    Auto,
    /// The Rust binary of the workspace (built with cargo first).
    Rust,
    /// The Python file, run with python3.
    Python,
}

/// Where the program to grade comes from (shared by check and grade).
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// Grade this command instead of the workspace's exercise; it gets the lab's
    /// arguments (e.g. `--port N`) appended. `{lab}` is replaced by the lab id.
    #[arg(long, value_name = "CMD")]
    pub cmd: Option<String>,
    /// The exercises workspace (default: the one containing the current folder).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Rust or Python version of the exercise.
    #[arg(long, value_enum, default_value_t = Lang::Auto)]
    pub lang: Lang,
    /// Replay a run: every random choice of the checks comes from this seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Show what the grader did in every check, passing ones too (human format).
    #[arg(long, short)]
    pub verbose: bool,
}

// ----- finding and building the program ---------------------------------------------

/// The workspace: `--dir`, else the nearest folder up from here with lab-progress.txt
/// or the exercises' Cargo.toml, else the current folder.
fn workspace(dir: Option<&Path>) -> PathBuf {
    if let Some(d) = dir {
        return d.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| d.join(WORKSPACE_FILE).is_file() || d.join("rust/01-tcp-echo.rs").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(cwd)
}

/// Progress stored in the workspace (falls back to the usual lookup).
fn progress_in(ws: &Path) -> Progress {
    let path = ws.join(WORKSPACE_FILE);
    if path.is_file() {
        Progress::load_from(path)
    } else {
        Progress::load()
    }
}

fn exercise_of(lab: &Lab) -> Result<&'static ExerciseFiles, LabError> {
    embedded::exercise(&lab.id)
        .filter(|_| checks::suite(&lab.id).is_some())
        .ok_or_else(|| {
            let have: Vec<&str> = embedded::exercises().map(|e| e.lab).collect();
            LabError::usage(format!("{} has no gradable exercise yet", lab.id))
                .fix(format!("labs with exercises: {}", have.join(", ")))
        })
}

/// The Python interpreter: `python3` resolved once to the real executable, so version
/// managers' shims (pyenv's is a shell script) do not cost every program start ~0.1 s.
pub fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .stdin(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "python3".to_string())
        })
        .clone()
}

/// Which language `Auto` means here: Python when only the Python file was changed.
fn pick_lang(ws: &Path, ex: &ExerciseFiles, lang: Lang) -> Lang {
    if lang != Lang::Auto {
        return lang;
    }
    let changed = |rel: &str| {
        let now = std::fs::read_to_string(ws.join(rel)).ok();
        now.is_some() && now.as_deref() != embedded::get(&embedded::starters(), rel)
    };
    if changed(ex.python) && !changed(ex.rust) {
        Lang::Python
    } else {
        Lang::Rust
    }
}

/// `cargo build` of one binary, under limits and a deadline. Ok(path to the binary) or
/// Err(message with the compiler's output).
pub fn build_rust(ws: &Path, bin: &str, target_dir: Option<&Path>) -> Result<PathBuf, String> {
    let mut spawn = Spawn::new(vec![
        "cargo".into(),
        "build".into(),
        "--quiet".into(),
        "--bin".into(),
        bin.into(),
    ]);
    spawn.dir = Some(ws.to_path_buf());
    let target = target_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| ws.join("target"));
    spawn
        .env
        .push(("CARGO_TARGET_DIR".into(), target.display().to_string()));
    // Builds need more than a server: rustc's threads, its address space, big files.
    spawn.limits.address_space = None;
    spawn.limits.nofile = None;
    spawn.limits.fsize = Some(4 << 30);
    spawn.limits.cpu_secs = Some(900);
    spawn.pids_max = 512;
    // Ten minutes: a std-only workspace builds in seconds; this stops a runaway build.
    match run_to_end(&spawn, Duration::from_secs(600)) {
        Ok((true, _, _)) => Ok(target.join("debug").join(bin)),
        // cargo's own failures exit 101 too: not a panic, so no status decoding here.
        Ok((false, out, _)) => Err(format!(
            "cargo build --bin {bin} failed:\n{}",
            out.trim_end()
        )),
        Err(e) => Err(format!(
            "cannot run cargo: {e} (is Rust installed? https://rustup.rs)"
        )),
    }
}

/// Resolves the program for a lab: Ok(argv, dir) or Err(build message).
fn program(
    lab: &Lab,
    ws: &Path,
    src: &Source,
    target_dir: Option<&Path>,
) -> Result<Result<(Vec<String>, PathBuf), String>> {
    if let Some(cmd) = &src.cmd {
        // `sh -c 'exec CMD "$@"'` keeps the user's quoting and makes the program itself
        // the process the grader watches (exec replaces the shell).
        let argv = vec![
            "sh".into(),
            "-c".into(),
            format!("exec {} \"$@\"", cmd.replace("{lab}", &lab.id)),
            "sh".into(),
        ];
        // A command's relative paths mean the folder it was typed in (or --dir).
        let dir = match &src.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| ws.to_path_buf()),
        };
        return Ok(Ok((argv, dir)));
    }
    let ex = exercise_of(lab)?;
    match pick_lang(ws, ex, src.lang) {
        Lang::Python => {
            let file = ws.join(ex.python);
            if !file.is_file() {
                return Err(LabError::usage(format!("no {} here", file.display()))
                    .fix("run `lab init` to write the exercises workspace, or pass --dir PATH or --cmd CMD")
                    .into());
            }
            Ok(Ok((
                vec![python(), file.display().to_string()],
                ws.to_path_buf(),
            )))
        }
        _ => {
            if !ws.join(ex.rust).is_file() {
                return Err(LabError::usage(format!("no {} here", ws.join(ex.rust).display()))
                    .fix("run `lab init` to write the exercises workspace, or pass --dir PATH or --cmd CMD")
                    .into());
            }
            Ok(build_rust(ws, ex.bin, target_dir)
                .map(|exe| (vec![exe.display().to_string()], ws.to_path_buf())))
        }
    }
}

/// Prepares the grading job for one lab (building first when needed). A failed build
/// comes back as a report with an error message, so every output format can show it.
pub fn prepare(
    lab: &Lab,
    ws: &Path,
    src: &Source,
    seed: u64,
    target_dir: Option<&Path>,
) -> Result<Result<Job, LabReport>> {
    let args = lab
        .exercise
        .as_ref()
        .map(|e| e.args.clone())
        .unwrap_or_default();
    let (argv, dir) = match program(lab, ws, src, target_dir)? {
        Ok(p) => p,
        Err(msg) => {
            let mut r = LabReport::new(
                &lab.id,
                Vec::new(),
                seed,
                Environment::default(),
                Vec::new(),
            );
            r.message = msg;
            r.total();
            return Ok(Err(r));
        }
    };
    Ok(Ok(Job {
        lab: lab.id.clone(),
        argv,
        args,
        dir: Some(dir),
        env: Vec::new(),
        seed,
        // In namespaces every grading can use the lab's usual port; outside, any free one.
        port: if ns::available() {
            default_port(lab)
        } else {
            0
        },
        only: Vec::new(),
        fail_fast: false,
    }))
}

/// Grades one lab: prepare, then run isolated where possible.
pub fn grade_one(lab: &Lab, ws: &Path, src: &Source, seed: u64) -> Result<LabReport> {
    match prepare(lab, ws, src, seed, None)? {
        Ok(job) => ns::grade(&job),
        Err(report) => Ok(report),
    }
}

/// The port of the lab's demo (`defaults.bind`), the one the lesson talks about.
fn default_port(lab: &Lab) -> u16 {
    lab.defaults
        .get("bind")
        .and_then(|v| v.as_str())
        .and_then(|s| s.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(7000 + lab.number() as u16)
}

// ----- student commands -------------------------------------------------------------

/// `lab init [DIR]`.
pub fn init(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = embedded::write_all(&embedded::starters(), dir, false)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    let progress = dir.join(WORKSPACE_FILE);
    if !progress.exists() {
        std::fs::write(&progress, progress::render(&Default::default()))?;
    }
    std::fs::write(dir.join(".gitignore"), "target/\n.lab-backup/\n").ok();
    say!(
        "{} {}",
        good("Wrote the exercises workspace in"),
        bold(dir.display())
    )?;
    for p in &written {
        say!("  {}", p.strip_prefix(dir).unwrap_or(p).display())?;
    }
    if written.len() < embedded::starters().len() {
        say!(
            "{}",
            dim("(files that already existed were kept; `lab reset ID` restores a starter)")
        )?;
    }
    say!()?;
    say!(
        "Next: {}, read the lesson with {}, then edit {} and run {}.",
        code(format!("cd {}", dir.display())),
        code("lab show 01"),
        code("rust/01-tcp-echo.rs"),
        code("lab check 01")
    )?;
    Ok(())
}

/// `lab check ID`.
pub fn check(lab: &Lab, src: &Source) -> Result<()> {
    let ws = workspace(src.dir.as_deref());
    let seed = src.seed.unwrap_or_else(fresh_seed);
    let report = grade_one(lab, &ws, src, seed)?;
    say!(
        "{}",
        export::human::render_with(std::slice::from_ref(&report), src.verbose).trim_end()
    )?;
    if report.passed() {
        progress_in(&ws).update(&lab.id, |e| e.passed = true);
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

/// `lab reset ID`: backs the current files up in `.lab-backup/ID-TIME/`, then writes the
/// starters again.
pub fn reset(lab: &Lab, dir: Option<&Path>) -> Result<()> {
    let ws = workspace(dir);
    let ex = exercise_of(lab)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let backup = ws.join(".lab-backup").join(format!("{}-{stamp}", lab.id));
    for rel in [ex.rust, ex.python] {
        let p = ws.join(rel);
        if p.is_file() {
            let to = backup.join(rel);
            std::fs::create_dir_all(to.parent().unwrap_or(&backup))?;
            std::fs::copy(&p, &to).with_context(|| format!("cannot back up {}", p.display()))?;
        }
        let text = embedded::get(&embedded::starters(), rel).unwrap_or_default();
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        say!("restored {}", rel)?;
    }
    if backup.exists() {
        say!(
            "{} {}",
            dim("your previous version is in"),
            backup.display()
        )?;
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

/// `lab watch`: re-checks whenever an exercise file is saved. File-change events are
/// not portable (network file systems, containers), so this polls modification times
/// every `interval`, which works everywhere; pressing Enter re-checks at once.
pub fn watch(
    catalog: &Catalog,
    only: Option<&Lab>,
    src: &Source,
    interval: Duration,
    max_runs: Option<usize>,
) -> Result<()> {
    let ws = workspace(src.dir.as_deref());
    let exercises: Vec<&ExerciseFiles> = embedded::exercises()
        .filter(|e| only.is_none_or(|l| l.id == e.lab))
        .collect();
    let mtime = |rel: &str| {
        std::fs::metadata(ws.join(rel))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen: Vec<(Option<SystemTime>, Option<SystemTime>)> = exercises
        .iter()
        .map(|e| (mtime(e.rust), mtime(e.python)))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(()).is_err() {
                return;
            }
            line.clear();
        }
    });
    say!(
        "{} {} {}",
        bold("Watching"),
        ws.display(),
        dim("(polling every save; press Enter to re-check, Ctrl-C to stop)")
    )?;
    let mut last: Option<(&ExerciseFiles, Lang)> = only
        .and_then(|l| embedded::exercise(&l.id))
        .map(|e| (e, src.lang));
    let mut runs = 0;
    loop {
        let mut due = rx.try_recv().is_ok() && last.is_some();
        for (i, e) in exercises.iter().enumerate() {
            let now = (mtime(e.rust), mtime(e.python));
            if now != seen[i] {
                let lang = if now.1 != seen[i].1 {
                    Lang::Python
                } else {
                    Lang::Rust
                };
                seen[i] = now;
                last = Some((
                    e,
                    if src.lang == Lang::Auto {
                        lang
                    } else {
                        src.lang
                    },
                ));
                due = true;
            }
        }
        if due {
            if let Some((e, lang)) = last {
                let lab = catalog.find(e.lab)?;
                let src = Source {
                    lang,
                    ..src.clone()
                };
                say!("{}", dim(format!("--- {} ({lang:?}) ---", e.lab)))?;
                if let Err(err) = check(lab, &src) {
                    say!("{}", bad(err))?;
                }
                runs += 1;
                if max_runs.is_some_and(|m| runs >= m) {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(interval);
    }
}

// ----- instructor commands ----------------------------------------------------------

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

// ----- author QA --------------------------------------------------------------------

/// One mutant: a known-buggy program and the check that must catch it.
#[derive(Debug, Clone)]
pub struct Mutant {
    /// The file.
    pub path: PathBuf,
    /// The lab it is an answer to.
    pub lab: String,
    /// The check that must fail for it.
    pub caught_by: String,
}

/// Reads `# lab: ID` and `# caught-by: CHECK` from each mutant's header.
pub fn mutants(dir: &Path) -> Result<Vec<Mutant>> {
    let mut v = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read mutants in {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let field = |k: &str| {
            text.lines().take(10).find_map(|l| {
                l.strip_prefix(&format!("# {k}: "))
                    .map(|s| s.trim().to_string())
            })
        };
        let (Some(lab), Some(caught_by)) = (field("lab"), field("caught-by")) else {
            anyhow::bail!(
                "{}: needs `# lab: ID` and `# caught-by: CHECK` header lines",
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

/// `lab dev check`: every solution gets full marks, every unmodified starter fails, and
/// every mutant fails the check aimed at its bug. `root` holds `tests/mutants/`.
pub fn dev_check(catalog: &Catalog, root: &Path, target_dir: Option<&Path>) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("lab-dev-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(tmp.clone());
    let (sol, start) = (tmp.join("solutions"), tmp.join("starters"));
    embedded::write_all(&embedded::solutions(), &sol, true)?;
    embedded::write_all(&embedded::starters(), &start, true)?;
    let target = target_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target").join("lab-exercises"));
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
    for m in mutants(&root.join("tests/mutants"))? {
        let name = m
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let lab = catalog.find(&m.lab)?;
        let job = Job {
            lab: lab.id.clone(),
            argv: vec![python(), m.path.display().to_string()],
            args: lab
                .exercise
                .as_ref()
                .map(|e| e.args.clone())
                .unwrap_or_default(),
            dir: None,
            env: Vec::new(),
            seed,
            port: if ns::available() {
                default_port(lab)
            } else {
                0
            },
            only: vec![m.caught_by.clone()],
            fail_fast: false,
        };
        jobs.push((
            format!("mutant {name}"),
            Ok(job),
            Expect::Caught(m.caught_by),
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
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.message.lines().next().unwrap_or(""))
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
            None => (false, format!("no check named {name}")),
        },
    }
}

/// Removes a temporary folder when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
