//! Finding and building the program to grade, shared by every grader command: where
//! the exercises workspace is, which language `--lang auto` means, `cargo build` of an
//! exercise under limits, and the grading [`Job`] for one lab. Used by the student
//! commands, the watcher, `lab grade` and `lab dev check`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::embedded::{self, ExerciseFiles};
use super::jail::{self, Policy};
use super::model::LabReport;
use super::sandbox::{run_to_end, run_to_end_under, Spawn};
use super::scratch::Scratch;
use super::{checks, nobody, ns, Job};
use crate::catalog::Lab;
use crate::error::LabError;
use crate::progress::WORKSPACE_FILE;

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
    #[arg(long, value_name = "CMD", value_parser = command_line)]
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
    /// Write a packet capture (pcapng) of the grading to FILE, taken inside the
    /// grader's namespace (no root needed). With several labs: one file per lab
    /// (a folder, `{lab}` in the name, or the id added before the extension).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// `--cmd`: a command to run, not an empty or blank string (which `sh -c 'exec '` would
/// turn into a program that exits at once, graded as a failing exercise).
fn command_line(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "an empty command grades nothing: give the program and its arguments, e.g. --cmd 'python3 my_server.py'"
                .into(),
        );
    }
    Ok(s.to_string())
}

/// The workspace: `--dir`, else the nearest folder up from here with lab-progress.txt
/// or the exercises' Cargo.toml, else the current folder. Always absolute: the program
/// runs with the workspace as its current folder, where a relative `--dir` would be
/// joined twice (`ws/ws/python/...`).
pub(super) fn workspace(dir: Option<&Path>) -> PathBuf {
    if let Some(d) = dir {
        return std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| d.join(WORKSPACE_FILE).is_file() || d.join("rust/01-tcp-echo.rs").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(cwd)
}

pub(super) fn exercise_of(lab: &Lab) -> Result<&'static ExerciseFiles, LabError> {
    embedded::exercise(&lab.id)
        .filter(|_| checks::suite(&lab.id).is_some())
        .ok_or_else(|| no_exercise(lab))
}

/// The error for a lab without a graded exercise: it says so plainly and what the lab
/// does offer instead (its demo and lesson), so no one goes looking for a build error.
pub(super) fn no_exercise(lab: &Lab) -> LabError {
    let have: Vec<&str> = embedded::exercises().map(|e| e.lab).collect();
    let offer = if crate::labs::find(&lab.id).is_some() {
        format!(
            "`lab run {id}` runs its demo and `lab show {id}` reads its lesson",
            id = lab.id
        )
    } else {
        format!("`lab show {}` reads its lesson", lab.id)
    };
    LabError::usage(format!(
        "{} has no graded exercise yet: there is nothing to check",
        lab.id
    ))
    .fix(format!(
        "{offer}; labs with a graded exercise: {}",
        have.join(", ")
    ))
}

/// The Python interpreter: `python3` resolved once to the real executable, so version
/// managers' shims (pyenv's is a shell script) do not cost every program start ~0.1 s.
pub fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            // The system's python3 first: a sandboxed program sees the system folders,
            // not a version manager's install under the grader's HOME.
            if let Some(p) = jail::SYSTEM_PATH
                .split(':')
                .map(|d| Path::new(d).join("python3"))
                .find(|p| p.is_file())
            {
                return p.display().to_string();
            }
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

/// What a build ran under, for the transcript: its `confined:` line and its
/// `protection off:` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltUnder {
    /// What was enforced, as one line starting `build:`.
    pub on: String,
    /// What this machine could not give it.
    pub off: Vec<String>,
}

/// Ten minutes: a std-only workspace builds in seconds; this stops a runaway build.
pub(super) const BUILD_DEADLINE: Duration = Duration::from_secs(600);

/// `cargo build` of one binary, under limits and a deadline, in the same kind of jail
/// as the program (a `build.rs` is untrusted code too): no capabilities, a clean
/// environment, no network (its own network namespace, or Landlock's TCP rules where
/// namespaces are off, plus `--offline`), read-only on the workspace and the toolchain,
/// writable only on the target folder and a private HOME/CARGO_HOME. A root grader
/// runs it as nobody, always, from nobody's copy of the workspace (made here, once per
/// grading, and returned: the program runs from it too), in a target folder of
/// nobody's own (`TARGET/nobody`): see `nobody::build`; or not at all, with why and the
/// fix. Ok(path to the binary) or Err(message with the compiler's output), and what
/// the build ran under.
pub fn build_rust(
    ws: &Path,
    bin: &str,
    target_dir: Option<&Path>,
) -> (Result<PathBuf, String>, BuiltUnder, nobody::Shared) {
    let target = target_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| ws.join("target"));
    // cargo runs in the workspace: a relative target folder (`lab dev check --root .`)
    // would land inside it, outside the one folder the build may write.
    let target = std::path::absolute(&target).unwrap_or(target);
    // Never a folder another workspace (or other sources) built into: see `target_dir`.
    let target = super::target_dir::own(&target, ws);
    // Landlock rules name existing folders.
    let _ = std::fs::create_dir_all(&target);
    let mut under = BuiltUnder::default();
    // The build's private HOME (also its TMPDIR and CARGO_HOME), removed on drop.
    let home = match Scratch::new(&format!("build-{}", std::process::id())) {
        Ok(h) => h,
        Err(e) => {
            return (
                Err(format!("cannot make a temporary folder: {e}")),
                under,
                None,
            )
        }
    };
    let args = ["build", "--quiet", "--offline", "--bin", bin];
    let mut off = Vec::new();
    let mut ran = None;
    let mut copied = None;
    if nobody::root_grader() {
        // Made before anything runs; the build reads it, the program runs from it.
        let made = match nobody::copy_workspace(ws, &[&target, home.path()]) {
            Ok(c) => Arc::new(c),
            Err(why) => return (Err(not_built(&why)), under, None),
        };
        match nobody::build(&made, &args, &target, home.path()) {
            Ok(r) => ran = Some(r),
            Err(nobody::NotBuilt::Refused(why)) => return (Err(not_built(&why)), under, None),
            Err(nobody::NotBuilt::NoMountNamespace(e)) => {
                // Nothing ran (the namespace could not be made: a container without
                // CAP_SYS_ADMIN), so a second try gives nothing away.
                off.push(format!(
                    "build: uid drop: cannot make its own mount namespace here ({e}), so the build ran as uid 0 of its own user namespace (root outside), without capabilities"
                ));
                let _ = std::os::unix::fs::chown(home.path(), Some(0), Some(0));
            }
        }
        copied = Some(made);
    }
    let ((ok, out, how, applied), target) = match ran {
        Some(r) => r,
        None => {
            let lock = ws.join("Cargo.lock");
            if !lock.exists() {
                // cargo writes Cargo.lock next to Cargo.toml; resolving runs no build
                // script, so that one step may write the workspace folder.
                let spawn = build_spawn(
                    ws,
                    ws,
                    &["generate-lockfile", "--offline"],
                    &target,
                    home.path(),
                    vec![ws.to_path_buf()],
                    None,
                );
                let _ = run_to_end(&spawn, LOCK_DEADLINE);
            }
            let mut write = vec![target.clone()];
            if lock.exists() {
                write.push(lock);
            }
            let spawn = build_spawn(ws, ws, &args, &target, home.path(), write, None);
            match run_to_end_under(&spawn, BUILD_DEADLINE) {
                Ok(r) => (r, target),
                Err(e) => {
                    return (
                        Err(format!(
                            "cannot run cargo: {e} (is Rust installed? https://rustup.rs)"
                        )),
                        under,
                        copied,
                    )
                }
            }
        }
    };
    under = described(applied.unwrap_or_default(), off);
    if ok {
        return (Ok(target.join("debug").join(bin)), under, copied);
    }
    // cargo's own failures exit 101 too: not a panic, so no status decoding here.
    let fetch = if out.contains("offline") || out.contains("no matching package") {
        "\nnote: the build tried to fetch dependencies; builds run without network, and the exercises use the standard library only"
    } else {
        ""
    };
    // Silent failures (a signal, a sandbox refusal) still say how cargo ended.
    let out = if out.trim().is_empty() {
        format!("(no output; cargo {how})")
    } else {
        out.trim_end().to_string()
    };
    (
        Err(format!("cargo build --bin {bin} failed:\n{out}{fetch}")),
        under,
        copied,
    )
}

/// Resolution (`cargo generate-lockfile`) runs no build script; two minutes is plenty.
pub(super) const LOCK_DEADLINE: Duration = Duration::from_secs(120);

/// The message of a root grader's build that did not run (fail closed).
fn not_built(why: &str) -> String {
    format!("not built: a root grader builds as nobody (65534), never as root, and {why}")
}

/// The transcript's account of a build from what its jail enforced.
fn described(applied: jail::Applied, mut off: Vec<String>) -> BuiltUnder {
    let mut on = applied.on;
    let uid = crate::sys::euid();
    if uid != 0 {
        on.push(format!("uid {uid} (the grader's own)"));
    }
    // A root grader's build without a mount namespace has its own uid line, above; the
    // jail's (a uid 0 grader whose namespace maps only its own uid) stays otherwise.
    let said = off.iter().any(|l| l.starts_with("build: uid drop"));
    off.extend(
        applied
            .off
            .into_iter()
            .filter(|l| !(said && l.starts_with("uid drop")))
            .map(|l| format!("build: {l}")),
    );
    BuiltUnder {
        on: format!(
            "build: {}, clean environment, writes only to its target folder and a private HOME",
            on.join("; ")
        ),
        off,
    }
}

/// Where the toolchain is: (the folder of `cargo`, RUSTUP_HOME).
pub(super) fn toolchain() -> (PathBuf, PathBuf) {
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home.join(".rustup"));
    (cargo_home.join("bin"), rustup_home)
}

/// A jailed `cargo ARGS` in `ws`, reading `sources` (the workspace itself, or nobody's
/// copy shown at its path); with `view`, as nobody (a root grader's build).
pub(super) fn build_spawn(
    ws: &Path,
    sources: &Path,
    args: &[&str],
    target: &Path,
    home: &Path,
    write: Vec<PathBuf>,
    view: Option<jail::View>,
) -> Spawn {
    let (cargo_bin, rustup_home) = toolchain();
    let mut spawn = Spawn::new(
        std::iter::once("cargo")
            .chain(args.iter().copied())
            .map(String::from)
            .collect(),
    );
    spawn.dir = Some(ws.to_path_buf());
    let path = format!("{}:{}", cargo_bin.display(), jail::SYSTEM_PATH);
    let mut extra = vec![
        ("CARGO_TARGET_DIR".to_string(), target.display().to_string()),
        ("CARGO_HOME".to_string(), home.display().to_string()),
        ("RUSTUP_HOME".to_string(), rustup_home.display().to_string()),
    ];
    if let Ok(t) = std::env::var("RUSTUP_TOOLCHAIN") {
        extra.push(("RUSTUP_TOOLCHAIN".to_string(), t));
    }
    spawn.env = jail::clean_env(home, &path, &extra);
    let mut write = write;
    write.push(home.to_path_buf());
    let netns = ns::available();
    spawn.jail = Some(Policy {
        // Only cargo's own folder of CARGO_HOME (its registry credentials stay out).
        read: vec![sources.to_path_buf(), cargo_bin, rustup_home],
        write,
        devices: Vec::new(),
        // No namespace: Landlock refuses every TCP bind and connect.
        bind: (!netns).then(Vec::new),
        connect: (!netns).then(Vec::new),
        keep_net_raw: false,
        drop_uid: view.is_some(),
        // As nobody, its own mount and network namespaces (no user namespace).
        own_netns: netns || view.is_some(),
        view,
    });
    // Builds need more than a server: rustc's threads, its address space, big files.
    spawn.limits.address_space = None;
    spawn.limits.nofile = None;
    spawn.limits.fsize = Some(4 << 30);
    spawn.limits.cpu_secs = Some(900);
    spawn.pids_max = 512;
    spawn
}

/// The program for a lab, or why there is none; what its build ran under when there
/// was one, and the copy of the workspace a root grader's build read.
type Resolved = (
    Result<(Vec<String>, PathBuf), String>,
    Option<BuiltUnder>,
    nobody::Shared,
);

/// Resolves the program for a lab: Ok(argv, dir) or Err(build message), and what its
/// build ran under when there was one.
fn program(lab: &Lab, ws: &Path, src: &Source, target_dir: Option<&Path>) -> Result<Resolved> {
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
        return Ok((Ok((argv, dir)), None, None));
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
            Ok((
                Ok((vec![python(), file.display().to_string()], ws.to_path_buf())),
                None,
                None,
            ))
        }
        _ => {
            if !ws.join(ex.rust).is_file() {
                return Err(LabError::usage(format!("no {} here", ws.join(ex.rust).display()))
                    .fix("run `lab init` to write the exercises workspace, or pass --dir PATH or --cmd CMD")
                    .into());
            }
            let (built, under, copied) = build_rust(ws, ex.bin, target_dir);
            Ok((
                built.map(|exe| (vec![exe.display().to_string()], ws.to_path_buf())),
                Some(under),
                copied,
            ))
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
    // Before building anything, and with --cmd too: a lab without checks cannot grade.
    exercise_of(lab)?;
    let args = lab
        .exercise
        .as_ref()
        .map(|e| e.args.clone())
        .unwrap_or_default();
    let (resolved, under, copied) = program(lab, ws, src, target_dir)?;
    let (argv, dir) = match resolved {
        Ok(p) => p,
        Err(msg) => {
            let mut r = LabReport::not_run(&lab.id, Vec::new(), seed, msg);
            let under = under.unwrap_or_default();
            // A build that never started (fail closed) ran under nothing.
            r.environment.sandbox = vec![under.on]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect();
            r.environment.sandbox_off = under.off;
            r.total();
            return Ok(Err(r));
        }
    };
    // A program from the workspace's Rust file was built by cargo just now.
    let under = under.unwrap_or_default();
    let built = !under.on.is_empty();
    Ok(Ok(Job {
        lab: lab.id.clone(),
        argv,
        args,
        dir: Some(dir),
        env: Vec::new(),
        seed,
        port: grading_port(lab),
        only: Vec::new(),
        fail_fast: false,
        capture: src
            .pcap
            .as_ref()
            .map(|p| crate::capture::path_for_lab(p, &lab.id, false))
            .map(|p| crate::capture::Request::new(&p, &lab.id, Some(seed))),
        built_under: built.then(|| under.on.clone()),
        built_off: if built { under.off } else { Vec::new() },
        view: None,
        copied,
    }))
}

/// Grades one lab: prepare, then run isolated where possible.
pub fn grade_one(lab: &Lab, ws: &Path, src: &Source, seed: u64) -> Result<LabReport> {
    match prepare(lab, ws, src, seed, None)? {
        Ok(job) => ns::grade(&job),
        Err(report) => Ok(report),
    }
}

/// The port a grading gives the program: in namespaces every grading can use the lab's
/// usual port; outside, any free one (0: chosen when the grading starts).
pub(super) fn grading_port(lab: &Lab) -> u16 {
    if ns::available() {
        default_port(lab)
    } else {
        0
    }
}

/// The port of the lab's demo (`defaults.bind`), the one the lesson talks about.
pub(super) fn default_port(lab: &Lab) -> u16 {
    lab.defaults
        .get("bind")
        .and_then(|v| v.as_str())
        .and_then(|s| s.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(7000 + lab.number() as u16)
}
