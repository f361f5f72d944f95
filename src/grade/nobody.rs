//! A root grader's builds and programs run as nobody (65534), always, never as root
//! (issue 15).
//!
//! nobody must reach what a program runs from: its workspace folder and the files named
//! on its command line (the script, the built binary); a build reads the whole
//! workspace. A root grader's workspace often sits where nobody cannot pass (a
//! `tempfile` folder, /root, a 0700 home), and a student's own files may be 0600. So
//! the grader copies the workspace into a private folder of its own and shows that
//! copy, in each build's and program's own mount namespace, at the workspace's path;
//! the folders above it that nobody cannot pass are covered by an empty tmpfs
//! (`jail::View`, `sys::PrivateMounts`). A Rust grading makes the copy once, before its
//! build: `cargo build` reads it, writes its own target folder (nobody's, bound back
//! over the copy when it lies in the workspace), and the program then runs the binary
//! built from it. Other gradings copy only when nobody cannot reach the files.
//!
//! Why a copy rather than binding the workspace itself:
//! - mode bits still apply through a bind: a student's 0600 file stays unreadable by
//!   nobody, and the build or program would fail for a reason that is not its own; the
//!   copy's files are root's, 0644 (0755 where executable), so nobody reads and never
//!   writes;
//! - the copy leaves out what a program has no business reading: `.git` (the
//!   student's history) and the workspace's `target/` (other builds), except the files
//!   named on the command line (the binary the build made);
//! - the workspace itself is never chowned, chmodded or written (not even Cargo.lock);
//! - shown at the workspace's own path, every path on the command line, in `--cmd`,
//!   in compiler messages and in the program's messages reads as the student's:
//!   nothing is rewritten.
//!
//! A workspace is a few small files; the copy is capped (files and bytes) so a `--cmd`
//! run from a huge folder fails closed with a message instead of copying it. Whatever
//! cannot be made (the copy, the view, a file outside the workspace nobody cannot
//! reach) stops the grading before any build or program runs, with a message naming
//! the fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::build;
use super::jail::{self, View};
use super::sandbox::{run_to_end, run_to_end_under};
use super::scratch::Scratch;

/// Most files (and folders) copied: a `lab init` workspace holds a few dozen.
const MAX_FILES: usize = 10_000;

/// Most bytes copied: far above any workspace without its `target/`.
const MAX_BYTES: u64 = 256 << 20;

/// What a root grader's program sees instead of files nobody cannot reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramView {
    /// The mounts: covers, the copy at the workspace's path, folders bound back.
    pub view: View,
    /// The copy's folder (its Landlock rule: read-only, on the copy's own inodes,
    /// which are what the program opens through the bind).
    pub copy: Option<PathBuf>,
}

/// nobody's copy of one workspace, made once per grading (before a Rust build, which
/// reads it; the program then runs from it). Shared by the build and the grading job
/// (`Job::copied`); the copy goes when the last holder lets it go.
#[derive(Debug)]
pub struct Copied {
    /// The workspace it copies, where it is shown.
    pub of: PathBuf,
    /// The copy itself (bound at `of`; Landlock's read rule is on its inodes).
    pub path: PathBuf,
    /// The private folder (0700, root's) holding it; removed, copy and all, on drop.
    _area: Scratch,
}

/// nobody's copy as a build, its job and its grading hold it (None: no copy).
pub type Shared = Option<Arc<Copied>>;

/// Copies the workspace `dir` for nobody into a fresh private folder in TMPDIR, leaving
/// out `.git`, its `target/` and the folders in `skip` (a build's own target and HOME,
/// should they lie inside the workspace). Err: why, with the fix.
pub fn copy_workspace(dir: &Path, skip: &[&Path]) -> Result<Copied, String> {
    let tmp = std::env::temp_dir();
    let area = make_area().map_err(|e| {
        format!(
            "cannot make a private folder in {} for nobody's copy of the workspace: {e}; set TMPDIR to a writable folder",
            tmp.display()
        )
    })?;
    let copy = area.path().join("workspace");
    let mut skip: Vec<&Path> = skip.to_vec();
    skip.push(area.path());
    copy_tree(dir, &copy, &skip, &mut (MAX_FILES, MAX_BYTES)).map_err(|e| {
        format!(
            "cannot copy {} for nobody (a root grader builds and runs programs as nobody, who cannot read it where it is): {e}; make it readable by others (chmod -R o+rX on it and the folders above it), or grade a smaller folder",
            dir.display()
        )
    })?;
    Ok(Copied {
        of: dir.to_path_buf(),
        path: copy,
        _area: area,
    })
}

/// Shows `copied` at its workspace's path in `view`: the outermost folder above the
/// workspace that nobody cannot pass is covered (the copy's mount point is then made in
/// the tmpfs), and the program or build starts in it.
fn show(view: &mut View, copied: &Copied) -> Result<(), String> {
    let dir = &copied.of;
    view.cover_above(dir)?;
    view.copy.push((copied.path.clone(), dir.clone()));
    view.chdir = Some(dir.clone());
    Ok(())
}

/// The view of a root grader's build as nobody: nobody's copy at the workspace's path,
/// and `reach` (the toolchain, the build's own target folder and HOME) where nobody
/// reaches them. A folder of `reach` inside the workspace gets its mount point in the
/// copy (0755, root's) and is bound back over it: the target folder stays the build's
/// own, writable, while the sources are the copy's. Err says why nobody cannot.
pub fn build_view(copied: &Copied, reach: &[PathBuf]) -> Result<View, String> {
    let ws = &copied.of;
    let (inside, outside): (Vec<PathBuf>, Vec<PathBuf>) =
        reach.iter().cloned().partition(|p| p.starts_with(ws));
    let mut view = jail::plan_view(&outside, Some(ws))?;
    show(&mut view, copied)?;
    for p in inside {
        let Ok(rel) = p.strip_prefix(ws) else {
            continue;
        };
        let mut at = copied.path.clone();
        for part in rel.components() {
            at.push(part);
            if !at.is_dir() {
                std::fs::create_dir(&at)
                    .and_then(|_| {
                        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755))
                    })
                    .map_err(|e| format!("cannot make {} in nobody's copy: {e}", at.display()))?;
            }
        }
        if !view.bind.contains(&p) {
            view.bind.push(p);
        }
    }
    Ok(view)
}

/// A finished build: (success, output tail, how it ended, what its jail enforced), and
/// the target folder it wrote.
pub type Built = ((bool, String, String, Option<jail::Applied>), PathBuf);

/// Why a root grader's build as nobody did not run.
pub enum NotBuilt {
    /// nobody cannot be given what the build needs: nothing runs (fail closed).
    Refused(String),
    /// This machine cannot make the build's mount namespace (nothing ran).
    NoMountNamespace(String),
}

/// A root grader's build as nobody, from nobody's copy of the workspace shown at the
/// workspace's path: its target folder `TARGET/nobody` (owned by nobody, readable by
/// all: the program's binary is copied from it), its HOME made nobody's, and the view
/// in which nobody reaches the copy, the toolchain and both. A copy without Cargo.lock
/// gets one first (resolution runs no build script): only for that step is the copy's
/// top folder nobody's, and writable through Landlock; then it is root's again.
pub fn build(
    copied: &Copied,
    args: &[&str],
    target: &Path,
    home: &Path,
) -> Result<Built, NotBuilt> {
    use std::os::unix::fs::{chown, PermissionsExt};
    let refused = NotBuilt::Refused;
    let own = target.join("nobody");
    let nobody = Some(jail::NOBODY);
    std::fs::create_dir_all(&own)
        .and_then(|_| chown(&own, nobody, nobody))
        .and_then(|_| std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| refused(format!("cannot make {} nobody's: {e}", own.display())))?;
    let (cargo_bin, rustup_home) = build::toolchain();
    let reach = [rustup_home, cargo_bin, own.clone(), home.to_path_buf()];
    let view = build_view(copied, &reach).map_err(|e| {
        refused(format!(
            "nobody cannot reach what the build needs: {e}; or run the grader as an ordinary user"
        ))
    })?;
    chown(home, nobody, nobody)
        .map_err(|e| refused(format!("cannot give nobody its HOME: {e}")))?;
    let (ws, copy) = (&copied.of, &copied.path);
    let lock = copy.join("Cargo.lock");
    if !lock.exists() {
        chown(copy, nobody, nobody)
            .map_err(|e| refused(format!("cannot lend nobody the copy's folder: {e}")))?;
        let spawn = build::build_spawn(
            ws,
            copy,
            &["generate-lockfile", "--offline"],
            &own,
            home,
            vec![copy.clone()],
            Some(view.clone()),
        );
        let resolved = run_to_end(&spawn, build::LOCK_DEADLINE);
        // Root's again before the build: the build and the program only read the copy.
        let root = Some(0);
        let back = chown(copy, root, root).and_then(|_| {
            if !lock.exists() {
                return Ok(());
            }
            chown(&lock, root, root)?;
            std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644))
        });
        back.map_err(|e| refused(format!("cannot take the copy's folder back: {e}")))?;
        resolved.map_err(|e| NotBuilt::NoMountNamespace(e.to_string()))?;
    }
    let spawn = build::build_spawn(ws, copy, args, &own, home, vec![own.clone()], Some(view));
    run_to_end_under(&spawn, build::BUILD_DEADLINE)
        .map(|r| (r, own))
        .map_err(|e| NotBuilt::NoMountNamespace(e.to_string()))
}

/// True for a grader that is root with nobody in its user namespace (real root, or
/// root of a namespace that maps 65534): its programs run as nobody. A user's `unshare
/// -r` maps only its own uid: that is a user grader, whose programs run as its uid.
pub fn root_grader() -> bool {
    crate::sys::euid() == 0 && jail::nobody_mapped()
}

/// Files named by absolute path on a command line (`--cmd` puts them in one `sh -c`
/// script), outside `dir`: the program may read them too.
pub fn named_files(argv: &[String], dir: Option<&Path>) -> Vec<PathBuf> {
    named(argv)
        .into_iter()
        .filter(|p| !dir.is_some_and(|d| p.starts_with(d)))
        .collect()
}

/// Every existing file the command line's words name by absolute path (quotes
/// trimmed), each once, in the order named.
fn named(argv: &[String]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    for word in argv.iter().flat_map(|a| a.split_whitespace()) {
        let p = Path::new(word.trim_matches(|c| c == '\'' || c == '"'));
        if p.is_absolute() && p.is_file() && !files.iter().any(|f| f == p) {
            files.push(p.to_path_buf());
        }
    }
    files
}

/// For a root grader: None when nobody reaches everything the program runs from (no
/// view needed); else the view and nobody's copy of the workspace (keep it until the
/// grading ends). `made`: the copy the grading's build made and read, reused as it is
/// (the program runs the binary built from it). Err: why nobody cannot be given the
/// files, with the fix; the grading must then not run (fail closed).
pub fn prepare(
    argv: &[String],
    dir: Option<&Path>,
    made: Shared,
) -> Result<Option<(ProgramView, Shared)>, String> {
    // Named files inside the workspace go into the copy; those outside stay where they
    // are (their folders shown to nobody where it cannot reach them).
    let (inside, outside): (Vec<PathBuf>, Vec<PathBuf>) = named(argv)
        .into_iter()
        .partition(|p| dir.is_some_and(|d| p.starts_with(d)));
    // Each check's HOME is made under the temporary folder and given to nobody.
    let tmp = std::env::temp_dir();
    let made = made.filter(|c| dir == Some(c.of.as_path()));
    let copy_needed = made.is_some()
        || dir.is_some_and(|d| {
            !jail::nobody_reaches(d) || inside.iter().any(|f| !jail::nobody_reaches(f))
        });
    let mut need: Vec<PathBuf> = outside
        .iter()
        .filter(|f| !jail::nobody_reaches(f))
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect();
    if !jail::nobody_reaches(&tmp) {
        need.push(tmp.clone());
    }
    if !copy_needed && need.is_empty() {
        return Ok(None);
    }
    // Folders outside the workspace nobody needs: bound back at their own place.
    let mut view = jail::plan_view(&need, dir).map_err(|e| {
        format!(
            "nobody cannot reach a folder this grading needs outside the workspace (a file named on the command line, or TMPDIR, where each check's HOME is made): {e}; move the file into the workspace, or set TMPDIR to a folder others may pass (such as /tmp)"
        )
    })?;
    let Some(dir) = dir.filter(|_| copy_needed) else {
        return Ok(Some((ProgramView { view, copy: None }, None)));
    };
    let copied = match made {
        Some(c) => c,
        None => Arc::new(copy_workspace(dir, &[])?),
    };
    // The binary the build made (in target/, left out of the copy), and any other
    // named file, copied in: root's, so the program cannot change what it runs.
    let mut budget = (MAX_FILES, MAX_BYTES);
    for f in &inside {
        let Ok(rel) = f.strip_prefix(dir) else {
            continue;
        };
        let to = copied.path.join(rel);
        if !to.exists() {
            copy_file(f, &to, &mut budget)
                .map_err(|e| format!("cannot copy {}: {e}", f.display()))?;
        }
    }
    show(&mut view, &copied)?;
    Ok(Some((
        ProgramView {
            view,
            copy: Some(copied.path.clone()),
        },
        Some(copied),
    )))
}

/// A fresh folder of root's alone (0700) in TMPDIR.
fn make_area() -> std::io::Result<Scratch> {
    let area = Scratch::new(&format!("view-{}", std::process::id()))?;
    std::fs::set_permissions(area.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(area)
}

/// Copies the tree at `from` into `to` (made here): folders 0755, files 0644 or 0755,
/// symbolic links as links (never followed), other kinds (sockets, fifos, devices) left
/// out, and so are `.git` anywhere, `target` at the top and the folders in `skip` (the
/// copy's own, should the workspace hold TMPDIR; a build's target and HOME). Files keep
/// their modification times, so cargo finds an earlier build of the same sources fresh.
/// Stops at the budget.
fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &[&Path],
    budget: &mut (usize, u64),
) -> std::io::Result<()> {
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    let mut top = true;
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir(&dst)?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
        for e in std::fs::read_dir(&src)? {
            let e = e?;
            let name = e.file_name();
            if name == ".git" || (top && name == "target") || skip.contains(&e.path().as_path()) {
                continue;
            }
            spend(budget, 0)?;
            let kind = e.file_type()?;
            let (s, d) = (e.path(), dst.join(&name));
            if kind.is_dir() {
                stack.push((s, d));
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
            } else if kind.is_file() {
                copy_file(&s, &d, budget)?;
            }
        }
        top = false;
    }
    Ok(())
}

/// Copies one file with readable modes and its modification time, making the folders
/// above it (0755).
fn copy_file(from: &Path, to: &Path, budget: &mut (usize, u64)) -> std::io::Result<()> {
    let meta = std::fs::metadata(from)?;
    spend(budget, meta.len())?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)?;
    if let Ok(t) = meta.modified() {
        std::fs::File::options()
            .write(true)
            .open(to)?
            .set_modified(t)?;
    }
    let mode = if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
}

/// Takes one entry and `bytes` from the budget, or says it is spent.
fn spend(budget: &mut (usize, u64), bytes: u64) -> std::io::Result<()> {
    if budget.0 == 0 || budget.1 < bytes {
        return Err(std::io::Error::other(format!(
            "more than {MAX_FILES} files or {} MiB",
            MAX_BYTES >> 20
        )));
    }
    budget.0 -= 1;
    budget.1 -= bytes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_files_are_existing_absolute_paths_each_once() {
        let d = tempfile::tempdir().unwrap();
        let (ws, other) = (d.path().join("ws"), d.path().join("other"));
        for f in [ws.join("prog.py"), other.join("data")] {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, "x").unwrap();
        }
        let script = format!(
            "python3 '{}' {} < \"{}\" {} prog.py",
            ws.join("prog.py").display(),
            other.join("data").display(),
            ws.join("prog.py").display(),
            d.path().join("missing").display(),
        );
        let argv = vec!["sh".to_string(), "-c".to_string(), script];
        assert_eq!(named(&argv), [ws.join("prog.py"), other.join("data")]);
        assert_eq!(named_files(&argv, Some(&ws)), [other.join("data")]);
        assert_eq!(named_files(&argv, None), named(&argv));
    }

    #[test]
    fn the_copy_is_readable_and_leaves_out_git_and_target() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join("ws");
        for f in [
            "python/a.py",
            ".git/config",
            "target/debug/x",
            "sub/target/kept",
        ] {
            let p = ws.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
        std::fs::set_permissions(
            ws.join("python/a.py"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", ws.join("link")).unwrap();
        let to = d.path().join("copy");
        copy_tree(&ws, &to, &[&to], &mut (MAX_FILES, MAX_BYTES)).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(to.join(p))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode("python/a.py") & 0o777, 0o644);
        assert_eq!(mode("python") & 0o777, 0o755);
        assert!(to.join("sub/target/kept").is_file());
        assert!(!to.join(".git").exists() && !to.join("target").exists());
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("/etc/hostname")
        );
        // The budget stops a big folder.
        let small = d.path().join("small");
        let err = copy_tree(&ws, &small, &[&small], &mut (2, MAX_BYTES)).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
