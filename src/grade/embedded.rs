//! Exercises (starters) and reference solutions, compiled into the binary so an
//! installed `lab` can write a workspace and check it with no source tree.
//!
//! Which labs have an exercise is decided by the registry ([`crate::labs::LABS`]): its
//! `lab!(ID, .., bin: NAME)` line embeds `exercises/` and `solutions/` files named after
//! the id (`rust/ID.rs`, `python/ID.py`) through [`exercise_files!`]. The workspace's
//! own files (Cargo.toml, README) are listed here once.

/// A file of the workspace: path relative to the workspace root, and its contents.
pub type File = (&'static str, &'static str);

/// One exercise's source in both languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    /// `rust/ID.rs`.
    pub rust: &'static str,
    /// `python/ID.py`.
    pub python: &'static str,
}

/// One lab's exercise files.
#[derive(Debug, Clone, Copy)]
pub struct ExerciseFiles {
    /// Lab id.
    pub lab: &'static str,
    /// The cargo binary name (a `[[bin]]` in both workspaces' Cargo.toml).
    pub bin: &'static str,
    /// The Rust source, relative to the workspace.
    pub rust: &'static str,
    /// The Python source, relative to the workspace.
    pub python: &'static str,
    /// What `lab init` writes.
    pub starter: Sources,
    /// What `lab solution` reveals once the exercise passed.
    pub solution: Sources,
}

/// The [`ExerciseFiles`] of lab `$id` with cargo binary `$bin`, embedded from
/// `exercises/` and `solutions/` (used by the registry's `lab!` lines).
#[macro_export]
macro_rules! exercise_files {
    ($id:literal, $bin:literal) => {
        $crate::grade::embedded::ExerciseFiles {
            lab: $id,
            bin: $bin,
            rust: concat!("rust/", $id, ".rs"),
            python: concat!("python/", $id, ".py"),
            starter: $crate::grade::embedded::Sources {
                rust: include_str!(concat!("../../exercises/rust/", $id, ".rs")),
                python: include_str!(concat!("../../exercises/python/", $id, ".py")),
            },
            solution: $crate::grade::embedded::Sources {
                rust: include_str!(concat!("../../solutions/rust/", $id, ".rs")),
                python: include_str!(concat!("../../solutions/python/", $id, ".py")),
            },
        }
    };
}

/// The starter workspace's own files (besides each exercise's sources).
const WORKSPACE: &[File] = &[
    ("Cargo.toml", include_str!("../../exercises/Cargo.toml")),
    ("README.md", include_str!("../../exercises/README.md")),
];

/// The solutions workspace's own files.
const SOLUTIONS_WORKSPACE: &[File] = &[("Cargo.toml", include_str!("../../solutions/Cargo.toml"))];

/// The starter workspace `lab init` writes: its Cargo.toml and README, and every
/// exercise's Rust and Python starter.
pub fn starters() -> Vec<File> {
    let mut files = WORKSPACE.to_vec();
    for (_, ex) in crate::labs::exercises() {
        let f = &ex.files;
        files.extend([(f.rust, f.starter.rust), (f.python, f.starter.python)]);
    }
    files
}

/// The reference solutions, laid out like the starters.
pub fn solutions() -> Vec<File> {
    let mut files = SOLUTIONS_WORKSPACE.to_vec();
    for (_, ex) in crate::labs::exercises() {
        let f = &ex.files;
        files.extend([(f.rust, f.solution.rust), (f.python, f.solution.python)]);
    }
    files
}

/// The exercise files of a lab.
pub fn exercise(lab: &str) -> Option<&'static ExerciseFiles> {
    crate::labs::exercise(lab).map(|e| &e.files)
}

/// Every lab's exercise files, in order.
pub fn exercises() -> impl Iterator<Item = &'static ExerciseFiles> {
    crate::labs::exercises().map(|(_, e)| &e.files)
}

/// A file's embedded contents.
pub fn get(set: &[File], path: &str) -> Option<&'static str> {
    set.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// Writes a set of files under `dir` (creating folders); existing files are kept
/// unless `overwrite`. Returns the paths written.
pub fn write_all(
    set: &[File],
    dir: &std::path::Path,
    overwrite: bool,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for (path, text) in set {
        let p = dir.join(path);
        if p.exists() && !overwrite {
            continue;
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, text)?;
        written.push(p);
    }
    Ok(written)
}
