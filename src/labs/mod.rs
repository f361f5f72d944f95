//! The labs, and the one registry of them.
//!
//! Each lab is a folder here (`src/labs/<name>/`): its demo and roles, read top to
//! bottom like a lesson, and its grader checks (`checks.rs`). Labs share code only
//! through [`crate::core`] (the event loop) and [`crate::wire`] (byte formats), never
//! with each other.
//!
//! [`LABS`] is the only list of labs: the catalog (`lab list`, `lab show`), `lab run`,
//! the grader and `lab init`'s embedded exercises all read it, and the tests below fail
//! when it disagrees with `labs/<id>/lab.toml` or the exercise files. Adding a lab: its
//! folder here, `labs/<id>/{lab.toml,lesson.md}`, its exercise files, and one line in
//! [`LABS`]; CONTRIBUTING.md has the whole checklist.

pub mod chat;
pub mod json_to_file;
pub mod latency;
pub mod raw_icmp;
pub mod serial_stream;
pub mod tcp_echo;
pub mod udp_echo;
pub mod udp_loss;

use crate::catalog::Lab;
use crate::grade::checks::Suite;
use crate::grade::embedded::ExerciseFiles;

/// A lab's demo: parses the lab's own flags from `args` and runs.
pub type Demo = fn(&Lab, &[String]) -> anyhow::Result<()>;

/// Everything the binary holds for one lab.
#[derive(Clone, Copy)]
pub struct LabDef {
    /// Stable id such as `03-udp-loss` (course material refers to it); also the name of
    /// its folder under `labs/` and of its exercise files.
    pub id: &'static str,
    /// `labs/<id>/lab.toml`, embedded: title, summary, hints, the exercise contract.
    pub toml: &'static str,
    /// `labs/<id>/lesson.md`, embedded.
    pub lesson: &'static str,
    /// `lab run <id>`, once the demo is built.
    pub demo: Option<Demo>,
    /// The demo's own flags as a clap command (its `Args`), for shell completions: the
    /// same definition `lab run <id>` parses with, so completions cannot drift.
    pub flags: Option<fn() -> clap::Command>,
    /// The graded exercise: the grader's checks and the starter and solution files.
    pub exercise: Option<Exercise>,
}

/// A lab's graded exercise, as compiled into the binary.
#[derive(Clone, Copy)]
pub struct Exercise {
    /// The black-box checks (in the lab's `checks.rs`).
    pub suite: &'static Suite,
    /// Starters and reference solutions, Rust and Python.
    pub files: ExerciseFiles,
}

/// One registry line: `lab!(ID)` for a planned lab, `lab!(ID, demo: RUN, flags: ARGS)`
/// for one with a demo (ARGS: the clap struct RUN parses), `lab!(ID, demo: RUN, flags:
/// ARGS, checks: SUITE, bin: CARGO_BIN)` for one with an exercise.
macro_rules! lab {
    (@def $id:literal, $demo:expr, $flags:expr, $exercise:expr) => {
        LabDef {
            id: $id,
            toml: include_str!(concat!("../../labs/", $id, "/lab.toml")),
            lesson: include_str!(concat!("../../labs/", $id, "/lesson.md")),
            demo: $demo,
            flags: $flags,
            exercise: $exercise,
        }
    };
    ($id:literal) => {
        lab!(@def $id, None, None, None)
    };
    ($id:literal, demo: $demo:path, flags: $flags:path) => {
        lab!(@def $id, Some($demo as Demo),
             Some(<$flags as clap::CommandFactory>::command as fn() -> clap::Command), None)
    };
    ($id:literal, demo: $demo:path, flags: $flags:path, checks: $suite:path, bin: $bin:literal) => {
        lab!(@def $id, Some($demo as Demo),
             Some(<$flags as clap::CommandFactory>::command as fn() -> clap::Command),
             Some(Exercise {
                 suite: &$suite,
                 files: crate::exercise_files!($id, $bin),
             }))
    };
}

/// Every lab, in order.
pub const LABS: &[LabDef] = &[
    lab!("01-tcp-echo", demo: tcp_echo::run, flags: tcp_echo::Args, checks: tcp_echo::checks::SUITE, bin: "tcp-echo"),
    lab!("02-udp-echo", demo: udp_echo::run, flags: udp_echo::Args, checks: udp_echo::checks::SUITE, bin: "udp-echo"),
    lab!("03-udp-loss", demo: udp_loss::run, flags: udp_loss::Args, checks: udp_loss::checks::SUITE, bin: "udp-loss"),
    lab!("04-raw-icmp", demo: raw_icmp::run, flags: raw_icmp::Args, checks: raw_icmp::checks::SUITE, bin: "raw-icmp"),
    lab!("05-chat", demo: chat::run, flags: chat::Args, checks: chat::checks::SUITE, bin: "chat"),
    lab!("06-json-to-file", demo: json_to_file::run, flags: json_to_file::Args, checks: json_to_file::checks::SUITE, bin: "json-to-file"),
    lab!("07-serial-stream", demo: serial_stream::run, flags: serial_stream::Args, checks: serial_stream::checks::SUITE, bin: "serial-stream"),
    lab!("08-latency", demo: latency::run, flags: latency::Args),
];

/// A lab of the registry by its exact id.
pub fn get(id: &str) -> Option<&'static LabDef> {
    LABS.iter().find(|l| l.id == id)
}

/// The demo of a lab, if it is built.
pub fn find(id: &str) -> Option<Demo> {
    get(id).and_then(|l| l.demo)
}

/// The exercise of a lab, if it has one.
pub fn exercise(id: &str) -> Option<&'static Exercise> {
    get(id).and_then(|l| l.exercise.as_ref())
}

/// Every lab with a graded exercise.
pub fn exercises() -> impl Iterator<Item = (&'static LabDef, &'static Exercise)> {
    LABS.iter()
        .filter_map(|l| l.exercise.as_ref().map(|e| (l, e)))
}

/// Parses a lab's flags; `--help` prints the lab's own help.
pub fn parse_args<T: clap::Parser>(lab: &Lab, args: &[String]) -> Result<T, clap::Error> {
    let name = format!("lab run {}", lab.id);
    T::try_parse_from(std::iter::once(name).chain(args.iter().cloned()))
}

#[cfg(test)]
mod tests {
    //! The registry against the files it stands for: these fail when a lab is added
    //! half-way (a ready lab without a demo, an exercise without its files or its
    //! Cargo `[[bin]]`, a lab.toml `[exercise]` the registry does not know).

    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::catalog::{Catalog, Status};

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn every_folder_under_labs_is_registered_in_order() {
        let mut folders: Vec<String> = std::fs::read_dir(repo().join("labs"))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let ids: Vec<&str> = LABS.iter().map(|l| l.id).collect();
        assert_eq!(
            ids, folders,
            "LABS must list every labs/<id>/ folder, in order"
        );
    }

    #[test]
    fn ready_labs_have_a_demo_and_planned_ones_do_not_claim_one() {
        let catalog = Catalog::load(None).unwrap();
        for (lab, def) in catalog.labs.iter().zip(LABS) {
            assert_eq!(lab.id, def.id);
            match lab.status {
                Status::Ready => assert!(def.demo.is_some(), "{} is ready but has no demo", lab.id),
                Status::Planned => assert!(
                    def.demo.is_none() && def.exercise.is_none(),
                    "{} is planned in lab.toml but the registry has its demo or exercise",
                    lab.id
                ),
            }
        }
    }

    #[test]
    fn lab_toml_exercise_and_registry_agree() {
        let catalog = Catalog::load(None).unwrap();
        for (lab, def) in catalog.labs.iter().zip(LABS) {
            assert_eq!(
                lab.exercise.is_some(),
                def.exercise.is_some(),
                "{}: lab.toml [exercise] and the registry disagree",
                lab.id
            );
            if let Some(ex) = &def.exercise {
                assert_eq!(
                    ex.suite.lab, def.id,
                    "{}: its checks say {}",
                    def.id, ex.suite.lab
                );
                assert_eq!(ex.files.lab, def.id);
                assert!(!ex.suite.checks.is_empty(), "{} has no checks", def.id);
            }
        }
    }

    /// `(name, path)` of every `[[bin]]` in a Cargo.toml.
    fn bins(manifest: &Path) -> BTreeSet<(String, String)> {
        let text = std::fs::read_to_string(manifest).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        doc.get("bin")
            .and_then(|b| b.as_array())
            .map(|bins| {
                bins.iter()
                    .map(|b| {
                        let s = |k: &str| b[k].as_str().unwrap().to_string();
                        (s("name"), s("path"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_exercise_has_its_files_and_exactly_its_cargo_bin() {
        let want: BTreeSet<(String, String)> = exercises()
            .map(|(_, e)| (e.files.bin.to_string(), e.files.rust.to_string()))
            .collect();
        for root in ["exercises", "solutions"] {
            assert_eq!(
                bins(&repo().join(root).join("Cargo.toml")),
                want,
                "{root}/Cargo.toml's [[bin]]s and the registry's exercises disagree"
            );
            for (_, e) in exercises() {
                for path in [e.files.rust, e.files.python] {
                    assert!(
                        repo().join(root).join(path).is_file(),
                        "{root}/{path} is missing"
                    );
                }
            }
        }
        for (_, e) in exercises() {
            assert_ne!(
                e.files.starter.rust, e.files.solution.rust,
                "{}",
                e.files.lab
            );
            assert_ne!(
                e.files.starter.python, e.files.solution.python,
                "{}",
                e.files.lab
            );
        }
    }
}
