//! The student's progress: which demos ran, how many hints were shown, which exercises
//! passed. A plain-text file a person can read and edit:
//!
//! ```text
//! # lab progress: one line per lab
//! 01-tcp-echo read ran tried hints=2 passed
//! 02-udp-echo read ran
//! ```
//!
//! One record, wherever the student stands. Before `lab init` it is the user's file,
//! `$XDG_STATE_HOME/lab/progress.txt` (default `~/.local/state/lab/progress.txt`).
//! `lab init DIR` copies what that file holds into `DIR/lab-progress.txt` and remembers
//! DIR (`$XDG_STATE_HOME/lab/workspace`), so from then on every command, run inside the
//! workspace or not, reads and writes the workspace's file: a demo run before `lab init`
//! still counts after it, and a demo run from another folder counts too.
//!
//! Where it lives, in order: the `lab-progress.txt` of the current folder or the nearest
//! parent that has one; `$LAB_PROGRESS` if set (an explicit file for tests or a shared
//! machine: `lab init` neither copies it in nor remembers the workspace); the
//! remembered workspace's, if it still exists; the user's file.
//! Failing to save progress never fails a command: it is reported once on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name a workspace keeps its progress in.
pub const WORKSPACE_FILE: &str = "lab-progress.txt";

/// Progress of one lab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The lesson was shown (`lab show`).
    pub read: bool,
    /// The demo was run at least once.
    pub ran: bool,
    /// The exercise was checked at least once (`lab check`), passing or not.
    pub tried: bool,
    /// Hints revealed so far.
    pub hints: usize,
    /// The exercise passed `lab check`.
    pub passed: bool,
}

/// All labs' progress and the file it came from.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Where it is saved.
    pub path: PathBuf,
    /// By lab id.
    pub labs: BTreeMap<String, Entry>,
    /// Lines of the file this version does not understand (a hand edit, a newer `lab`,
    /// bytes that are not UTF-8): written back unchanged, never dropped.
    kept: Vec<Vec<u8>>,
    /// The file exists but could not be read (permissions, a folder in its place):
    /// then it is never written, so a failed read can never erase it.
    unreadable: bool,
}

impl Progress {
    /// Finds and reads the progress file (missing means no progress yet).
    pub fn load() -> Progress {
        Progress::load_from(locate())
    }

    /// Reads the progress file at `path` (missing means no progress yet). Lines it does
    /// not understand are kept, and each is named once on stderr.
    pub fn load_from(path: PathBuf) -> Progress {
        let (labs, kept, unreadable) = match std::fs::read(&path) {
            Ok(bytes) => {
                let (labs, kept) = parse_bytes(&bytes);
                for (n, _) in &kept {
                    eprintln!(
                        "lab: note: line {n} of {} is not a progress line; it is kept as it is (edit or delete it to silence this)",
                        path.display()
                    );
                }
                (labs, kept.into_iter().map(|(_, l)| l).collect(), false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => {
                eprintln!(
                    "lab: note: cannot read progress from {} ({e}); it will not be changed",
                    path.display()
                );
                (BTreeMap::new(), Vec::new(), true)
            }
        };
        Progress {
            path,
            labs,
            kept,
            unreadable,
        }
    }

    /// Progress of one lab (default when never touched).
    pub fn get(&self, id: &str) -> Entry {
        self.labs.get(id).cloned().unwrap_or_default()
    }

    /// The progress the workspace in `ws` counts: its own file, else wherever
    /// [`Progress::load`] looks.
    pub fn for_workspace(ws: &Path) -> Progress {
        let own = ws.join(WORKSPACE_FILE);
        if own.is_file() {
            Progress::load_from(own)
        } else {
            Progress::load()
        }
    }

    /// Adds what `other` records (a flag set in either is set; the larger hint count).
    pub fn merge(&mut self, other: &BTreeMap<String, Entry>) {
        for (id, o) in other {
            let e = self.labs.entry(id.clone()).or_default();
            e.read |= o.read;
            e.ran |= o.ran;
            e.tried |= o.tried;
            e.passed |= o.passed;
            e.hints = e.hints.max(o.hints);
        }
    }

    /// Saves now (after [`Progress::merge`]); a failure is reported, not returned.
    pub fn store(&self) {
        if self.unreadable {
            return;
        }
        if let Err(e) = self.save() {
            eprintln!(
                "lab: note: could not save progress to {}: {e}",
                self.path.display()
            );
        }
    }

    /// Changes one lab's entry and saves.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Entry)) {
        f(self.labs.entry(id.to_string()).or_default());
        self.store();
    }

    fn save(&self) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = render(&self.labs).into_bytes();
        for line in &self.kept {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        // A temporary file beside it, then rename, which is atomic: a crash mid-write
        // leaves the old file or the new one, never half of one.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

fn locate() -> PathBuf {
    if let Some(here) = workspace_here() {
        return here.join(WORKSPACE_FILE);
    }
    if let Some(p) = std::env::var_os("LAB_PROGRESS") {
        return PathBuf::from(p);
    }
    match workspace() {
        Some(ws) => ws.join(WORKSPACE_FILE),
        None => user_file(),
    }
}

/// The workspace holding the current folder, if any.
fn workspace_here() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    find_up(&cwd)?.parent().map(Path::to_path_buf)
}

/// The student's exercises workspace: the current folder or the nearest parent holding
/// a progress file, else the one `lab init` wrote last (while its file exists).
pub fn workspace() -> Option<PathBuf> {
    let here = std::env::current_dir().ok().and_then(|cwd| find_up(&cwd));
    let found = here.or_else(|| {
        use std::os::unix::ffi::OsStrExt;
        // Bytes, not text: a path need not be UTF-8.
        let remembered = std::fs::read(state_dir().join("workspace")).ok()?;
        let remembered = remembered.strip_suffix(b"\n").unwrap_or(&remembered);
        let file = Path::new(std::ffi::OsStr::from_bytes(remembered)).join(WORKSPACE_FILE);
        file.is_file().then_some(file)
    })?;
    found.parent().map(Path::to_path_buf)
}

/// `$XDG_STATE_HOME/lab` (default `~/.local/state/lab`).
fn state_dir() -> PathBuf {
    state_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// The XDG base-directory rule: a variable that is empty or relative is invalid and
/// ignored (an empty `XDG_STATE_HOME=` once put the record in `./lab/progress.txt`,
/// a different file in every folder).
fn state_dir_from(xdg: Option<std::ffi::OsString>, home: Option<std::ffi::OsString>) -> PathBuf {
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg)
        .or_else(|| absolute(home).map(|h| h.join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lab")
}

/// The progress kept before any workspace exists.
fn user_file() -> PathBuf {
    state_dir().join("progress.txt")
}

/// `lab init` made `ws`: it becomes the one record. What the user's file holds (demos
/// run before `lab init`) is copied in, and `ws` is remembered so commands run from any
/// folder count in it. Returns the record's path.
pub fn adopt_workspace(ws: &Path) -> std::io::Result<PathBuf> {
    let own = ws.join(WORKSPACE_FILE);
    if !own.exists() {
        std::fs::write(&own, render(&BTreeMap::new()))?;
    }
    if std::env::var_os("LAB_PROGRESS").is_some() {
        // An explicit file (tests, a shared machine) is nobody's history to move in, and
        // commands outside the workspace keep using it: nothing is copied or remembered.
        return Ok(own);
    }
    let mut record = Progress::load_from(own.clone());
    let before = Progress::load_from(user_file());
    record.merge(&before.labs);
    record.store();
    let abs = std::fs::canonicalize(ws).unwrap_or_else(|_| ws.to_path_buf());
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let mut line = std::os::unix::ffi::OsStrExt::as_bytes(abs.as_os_str()).to_vec();
    line.push(b'\n');
    std::fs::write(dir.join("workspace"), line)?;
    Ok(own)
}

fn find_up(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(WORKSPACE_FILE))
        .find(|p| p.is_file())
}

/// Parses the file's text (see [`parse_bytes`]); lines not understood are skipped.
pub fn parse(text: &str) -> BTreeMap<String, Entry> {
    parse_bytes(text.as_bytes()).0
}

/// Lines not understood, each with its 1-based number.
type OddLines = Vec<(usize, Vec<u8>)>;

/// Parses the file: one `ID word...` line per lab, `#` comments. Returns the entries,
/// and every other line (with its 1-based number) to be kept as it is. Unknown words on
/// a lab's line are ignored, so an older `lab` reads a newer file.
fn parse_bytes(bytes: &[u8]) -> (BTreeMap<String, Entry>, OddLines) {
    let mut labs = BTreeMap::new();
    let mut kept = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            kept.push((i + 1, raw.to_vec()));
            continue;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(id) = words.next().filter(|id| is_lab_id(id)) else {
            kept.push((i + 1, raw.to_vec()));
            continue;
        };
        let mut e = Entry::default();
        for w in words {
            match w {
                "read" => e.read = true,
                "ran" => e.ran = true,
                "tried" => e.tried = true,
                "passed" => e.passed = true,
                _ => {
                    if let Some(n) = w.strip_prefix("hints=").and_then(|n| n.parse().ok()) {
                        e.hints = n;
                    }
                }
            }
        }
        labs.insert(id.to_string(), e);
    }
    (labs, kept)
}

/// `03-udp-loss`: two digits, a dash, lowercase words.
fn is_lab_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 3
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b'-'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Writes the file format back (without the kept lines).
pub fn render(labs: &BTreeMap<String, Entry>) -> String {
    let mut s =
        String::from("# lab progress: one line per lab (read, ran, tried, hints=N, passed)\n");
    for (id, e) in labs {
        s.push_str(id);
        if e.read {
            s.push_str(" read");
        }
        if e.ran {
            s.push_str(" ran");
        }
        if e.tried {
            s.push_str(" tried");
        }
        if e.hints > 0 {
            s.push_str(&format!(" hints={}", e.hints));
        }
        if e.passed {
            s.push_str(" passed");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_relative_xdg_state_home_is_ignored() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        let home = os("/home/ada");
        assert_eq!(
            state_dir_from(os("/x/state"), home.clone()),
            PathBuf::from("/x/state/lab")
        );
        let default = PathBuf::from("/home/ada/.local/state/lab");
        assert_eq!(state_dir_from(os(""), home.clone()), default);
        assert_eq!(state_dir_from(os("rel/state"), home.clone()), default);
        assert_eq!(state_dir_from(None, home), default);
        assert!(state_dir_from(os(""), os("")).is_absolute());
    }

    #[test]
    fn round_trips_and_tolerates_junk() {
        let t = "# c\n01-tcp-echo read ran tried hints=2 passed\n02-udp-echo ran bogus hints=x\n\n";
        let labs = parse(t);
        assert_eq!(
            labs["01-tcp-echo"],
            Entry {
                read: true,
                ran: true,
                tried: true,
                hints: 2,
                passed: true
            }
        );
        assert_eq!(labs["02-udp-echo"].hints, 0);
        assert_eq!(parse(&render(&labs)), labs);
    }

    #[test]
    fn a_line_it_does_not_understand_survives_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.txt");
        let mut file = b"# mine\n01-tcp-echo ran hints=1 passed\n".to_vec();
        file.extend_from_slice(b"02-udp-echo ran \xff\xfe\n");
        file.extend_from_slice(b"note to self: ask about 04\n");
        std::fs::write(&path, &file).unwrap();

        let mut p = Progress::load_from(path.clone());
        assert!(p.get("01-tcp-echo").passed, "a valid line is read");
        p.update("03-udp-loss", |e| e.ran = true);

        let after = std::fs::read(&path).unwrap();
        let again = Progress::load_from(path.clone());
        assert!(again.get("01-tcp-echo").passed && again.get("03-udp-loss").ran);
        for kept in [
            &b"02-udp-echo ran \xff\xfe"[..],
            b"note to self: ask about 04",
        ] {
            assert!(
                after.windows(kept.len()).any(|w| w == kept),
                "{:?} was lost: {}",
                String::from_utf8_lossy(kept),
                String::from_utf8_lossy(&after)
            );
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
