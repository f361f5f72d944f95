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
}

impl Progress {
    /// Finds and reads the progress file (missing means no progress yet).
    pub fn load() -> Progress {
        let path = locate();
        let labs = std::fs::read_to_string(&path)
            .map(|t| parse(&t))
            .unwrap_or_default();
        Progress { path, labs }
    }

    /// Progress of one lab (default when never touched).
    pub fn get(&self, id: &str) -> Entry {
        self.labs.get(id).cloned().unwrap_or_default()
    }

    /// Changes one lab's entry and saves.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Entry)) {
        f(self.labs.entry(id.to_string()).or_default());
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
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, render(&self.labs))?;
        // Rename is atomic: a crash mid-write never leaves half a file.
        std::fs::rename(&tmp, &self.path)
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

/// Parses the file; unknown words and malformed lines are ignored, not fatal.
pub fn parse(text: &str) -> BTreeMap<String, Entry> {
    let mut labs = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let Some(id) = words.next() else { continue };
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
    labs
}

/// Writes the file format back.
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
}
