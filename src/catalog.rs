//! The lab catalog: metadata and lessons from `labs/`, embedded in the binary.
//!
//! Each lab has a folder `labs/<id>/` with `lab.toml` (metadata) and `lesson.md` (the
//! lesson). They are compiled in with `include_str!`, so an installed `lab` needs no
//! source tree. A course can override any of them: `--labs DIR` (or `LAB_LABS=DIR`)
//! points at a folder laid out the same way; files found there win.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// Whether a lab's demo exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Demo, lesson and tests are in.
    Ready,
    /// Listed so the course can refer to it; not built yet.
    Planned,
}

/// How the grader starts and talks to a student's program for this lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exercise {
    /// What the student's program must do, in one paragraph.
    pub contract: String,
    /// Arguments the grader passes, with `{port}` and `{connect}` filled in.
    #[serde(default)]
    pub args: Vec<String>,
}

/// One lab's `lab.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lab {
    /// Stable id such as `03-udp-loss`; course material refers to it.
    pub id: String,
    /// Short title.
    pub title: String,
    /// What the lab teaches, in one line.
    pub teaches: String,
    /// A short paragraph for `lab list` and `lab` (no arguments).
    pub summary: String,
    /// Ready or planned.
    pub status: Status,
    /// What the demo needs beyond loopback: `root` (raw sockets), `serial` (a device).
    #[serde(default)]
    pub needs: Vec<String>,
    /// Hints, revealed one at a time by `lab hint`.
    #[serde(default)]
    pub hints: Vec<String>,
    /// Default parameters of the demo (ports, sizes, rates), as shown in the lesson.
    #[serde(default)]
    pub defaults: toml::Table,
    /// The exercise contract, when the lab has one.
    #[serde(default)]
    pub exercise: Option<Exercise>,
    /// The lesson text (Markdown), from `lesson.md`.
    #[serde(skip)]
    pub lesson: String,
}

impl Lab {
    /// The two-digit number of the lab.
    pub fn number(&self) -> u32 {
        self.id[..2].parse().unwrap_or(0)
    }

    /// The id without its number: `udp-loss`.
    pub fn slug(&self) -> &str {
        self.id.get(3..).unwrap_or(&self.id)
    }
}

/// All labs, in order.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The labs, ordered by number.
    pub labs: Vec<Lab>,
}

impl Catalog {
    /// The embedded catalog, with files from `override_dir` replacing embedded ones.
    pub fn load(override_dir: Option<&Path>) -> Result<Catalog> {
        let mut labs = Vec::new();
        for def in crate::labs::LABS {
            let (id, toml_text, lesson) = (&def.id, def.toml, def.lesson);
            let (toml_text, lesson, origin) = match override_dir {
                Some(dir) => {
                    let folder = dir.join(id);
                    let t = read_or(&folder.join("lab.toml"), toml_text)?;
                    let l = read_or(&folder.join("lesson.md"), lesson)?;
                    (t, l, folder)
                }
                None => (
                    toml_text.to_string(),
                    lesson.to_string(),
                    PathBuf::from("embedded"),
                ),
            };
            let mut lab: Lab = toml::from_str(&toml_text)
                .with_context(|| format!("invalid lab.toml for {id} ({})", origin.display()))?;
            anyhow::ensure!(
                lab.id == *id,
                "{}: id is {:?}, expected {id:?}",
                origin.display(),
                lab.id
            );
            lab.lesson = lesson;
            labs.push(lab);
        }
        Ok(Catalog { labs })
    }

    /// Finds a lab by `03-udp-loss`, `03`, `3` or `udp-loss`; an unknown id is a usage
    /// error that suggests the closest id (a typo) and lists the valid ones.
    pub fn find(&self, query: &str) -> Result<&Lab, LabError> {
        let q = query.trim().to_ascii_lowercase();
        let by_number = q.parse::<u32>().ok();
        self.labs
            .iter()
            .find(|l| l.id == q || l.slug() == q || Some(l.number()) == by_number)
            .ok_or_else(|| {
                let list: Vec<String> = self
                    .labs
                    .iter()
                    .map(|l| format!("  {:<18}{}", l.id, l.title))
                    .collect();
                let what = match self.closest(&q) {
                    Some(lab) => format!("no lab called {query:?}; did you mean {}?", lab.id),
                    None => format!("no lab called {query:?}"),
                };
                LabError::usage(what).fix(format!(
                    "use one of these ids (or just the number):\n{}",
                    list.join("\n")
                ))
            })
    }

    /// The lab `q` most likely meant: the only one whose slug starts with `q` (3 letters
    /// or more: `serial`), else the one within a typo or two (edit distance at most a
    /// third of its length, and at least 1), the closest first.
    fn closest(&self, q: &str) -> Option<&Lab> {
        let prefixed: Vec<&Lab> = self
            .labs
            .iter()
            .filter(|l| q.len() >= 3 && l.slug().starts_with(q))
            .collect();
        if let [only] = prefixed[..] {
            return Some(only);
        }
        self.labs
            .iter()
            .map(|l| (edit_distance(q, &l.id).min(edit_distance(q, l.slug())), l))
            .filter(|(d, l)| *d <= (l.slug().len() / 3).max(1))
            .min_by_key(|(d, _)| *d)
            .map(|(_, l)| l)
    }
}

/// Levenshtein distance (insertions, deletions, substitutions), over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn read_or(path: &Path, embedded: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(embedded.to_string()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_ordered() {
        let c = Catalog::load(None).unwrap();
        assert_eq!(c.labs.len(), 8);
        for (i, lab) in c.labs.iter().enumerate() {
            assert_eq!(lab.number() as usize, i + 1, "{}", lab.id);
            assert!(!lab.lesson.trim().is_empty(), "{} has no lesson", lab.id);
            assert!(!lab.summary.trim().is_empty(), "{} has no summary", lab.id);
        }
    }

    #[test]
    fn ids_resolve_in_every_form() {
        let c = Catalog::load(None).unwrap();
        for q in ["03-udp-loss", "03", "3", "udp-loss", "UDP-LOSS"] {
            assert_eq!(c.find(q).unwrap().id, "03-udp-loss", "{q}");
        }
        let err = c.find("99").unwrap_err();
        assert!(err.fix.unwrap().contains("01-tcp-echo"));
        assert!(!err.what.contains("did you mean"), "{}", err.what);
    }

    #[test]
    fn a_typo_gets_the_closest_id_suggested() {
        let c = Catalog::load(None).unwrap();
        for (typo, want) in [
            ("udp-los", "03-udp-loss"),
            ("latencyy", "08-latency"),
            ("03-udp-lost", "03-udp-loss"),
            ("tcp-ehco", "01-tcp-echo"),
            ("serial", "07-serial-stream"),
            ("tcp", "01-tcp-echo"),
        ] {
            let err = c.find(typo).unwrap_err();
            assert!(
                err.what.ends_with(&format!("did you mean {want}?")),
                "{typo}: {}",
                err.what
            );
        }
        // "udp" starts two slugs: no guess.
        for far in ["zzzzzz", "udp", "x"] {
            let err = c.find(far).unwrap_err();
            assert!(!err.what.contains("did you mean"), "{far}: {}", err.what);
        }
    }

    /// A student may have the binary alone: a lesson that names a file of the repository
    /// (`src/...`, `arduino/...`, `bench/...`, BENCHMARKS.md) says, in the same paragraph,
    /// that it is in the source repository, or shows it (`lab show 07 --sketch`).
    #[test]
    fn lessons_label_files_a_binary_user_does_not_have() {
        let c = Catalog::load(None).unwrap();
        for lab in &c.labs {
            for para in lab.lesson.split("\n\n") {
                let names_a_file = ["src/", "arduino/", "bench/", "BENCHMARKS.md"]
                    .iter()
                    .any(|f| para.contains(f));
                let labelled = para.contains("source repository")
                    || para.contains("that repository")
                    || para.contains("--sketch");
                assert!(
                    !names_a_file || labelled,
                    "{}: a repository file without saying where it is:\n{para}",
                    lab.id
                );
            }
            let client = lab.lesson.contains("Python client") || lab.lesson.contains("plot client");
            assert!(
                !client || lab.lesson.contains("does not ship"),
                "{}: the course's client is not shipped with lab; say so",
                lab.id
            );
        }
    }

    /// Every lesson opens with its box: what you build and how to check it (or, without
    /// an exercise, what you will see and do), before the long theory.
    #[test]
    fn every_lesson_opens_with_its_box() {
        let c = Catalog::load(None).unwrap();
        for lab in &c.labs {
            let head: String = lab.lesson.lines().take(20).collect::<Vec<_>>().join("\n");
            let check = format!("lab check {:02}", lab.number());
            let builds = head.contains("What you build") || head.contains("WHAT YOU BUILD");
            match &lab.exercise {
                Some(_) => assert!(builds && head.contains(&check), "{}:\n{head}", lab.id),
                None => assert!(head.contains("What you will see"), "{}:\n{head}", lab.id),
            }
        }
    }

    #[test]
    fn a_local_folder_overrides_a_lesson() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("02-udp-echo")).unwrap();
        std::fs::write(
            dir.path().join("02-udp-echo/lesson.md"),
            "# Our own lesson\n",
        )
        .unwrap();
        let c = Catalog::load(Some(dir.path())).unwrap();
        assert_eq!(c.find("2").unwrap().lesson, "# Our own lesson\n");
        assert_ne!(c.find("1").unwrap().lesson, "# Our own lesson\n");
    }
}
