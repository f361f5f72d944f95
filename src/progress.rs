//! The student's progress: which demos ran, how many hints were shown, which exercises
//! passed. A plain-text file a person can read and edit:
//!
//! ```text
//! # lab progress: one line per lab
//! 01-tcp-echo ran hints=2 passed
//! 02-udp-echo ran
//! ```
//!
//! Where it lives: `$LAB_PROGRESS` if set; else `lab-progress.txt` in the current folder
//! or the nearest parent that has one (a workspace made by `lab init`); else
//! `$XDG_STATE_HOME/lab/progress.txt` (default `~/.local/state/lab/progress.txt`).
//! Failing to save progress never fails a command: it is reported once on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name a workspace keeps its progress in.
pub const WORKSPACE_FILE: &str = "lab-progress.txt";

/// Progress of one lab.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The demo was run at least once.
    pub ran: bool,
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

    /// Changes one lab's entry and saves.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Entry)) {
        f(self.labs.entry(id.to_string()).or_default());
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
    if let Some(p) = std::env::var_os("LAB_PROGRESS") {
        return PathBuf::from(p);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(p) = find_up(&cwd) {
            return p;
        }
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("lab").join("progress.txt")
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
                "ran" => e.ran = true,
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
    let mut s = String::from("# lab progress: one line per lab (ran, hints=N, passed)\n");
    for (id, e) in labs {
        s.push_str(id);
        if e.ran {
            s.push_str(" ran");
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
    fn round_trips_and_tolerates_junk() {
        let t = "# c\n01-tcp-echo ran hints=2 passed\n02-udp-echo ran bogus hints=x\n\n";
        let labs = parse(t);
        assert_eq!(
            labs["01-tcp-echo"],
            Entry {
                ran: true,
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
