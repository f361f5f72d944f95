//! Exercises (starters) and reference solutions, compiled into the binary so an
//! installed `lab` can write a workspace and check it with no source tree.
//!
//! Adding a lab's exercise: one [`Exercise`] entry, its four files below, and a
//! `[[bin]]` in `exercises/Cargo.toml` and `solutions/Cargo.toml`.

/// A file of the workspace: path relative to the workspace root, and its contents.
pub type File = (&'static str, &'static str);

macro_rules! files {
    ($root:literal: $($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../", $root, "/", $path)))),*]
    };
}

/// The starter workspace `lab init` writes.
pub const STARTERS: &[File] = files!("exercises":
    "Cargo.toml",
    "README.md",
    "rust/01-tcp-echo.rs",
    "rust/02-udp-echo.rs",
    "rust/03-udp-loss.rs",
    "rust/06-json-to-file.rs",
    "python/01-tcp-echo.py",
    "python/02-udp-echo.py",
    "python/03-udp-loss.py",
    "python/06-json-to-file.py",
);

/// The reference solutions, laid out like the starters.
pub const SOLUTIONS: &[File] = files!("solutions":
    "Cargo.toml",
    "rust/01-tcp-echo.rs",
    "rust/02-udp-echo.rs",
    "rust/03-udp-loss.rs",
    "rust/06-json-to-file.rs",
    "python/01-tcp-echo.py",
    "python/02-udp-echo.py",
    "python/03-udp-loss.py",
    "python/06-json-to-file.py",
);

/// One lab's exercise files.
#[derive(Debug, Clone, Copy)]
pub struct Exercise {
    /// Lab id.
    pub lab: &'static str,
    /// The cargo binary name.
    pub bin: &'static str,
    /// The Rust source, relative to the workspace.
    pub rust: &'static str,
    /// The Python source, relative to the workspace.
    pub python: &'static str,
}

/// Every lab with an exercise.
pub const EXERCISES: &[Exercise] = &[
    Exercise {
        lab: "01-tcp-echo",
        bin: "tcp-echo",
        rust: "rust/01-tcp-echo.rs",
        python: "python/01-tcp-echo.py",
    },
    Exercise {
        lab: "02-udp-echo",
        bin: "udp-echo",
        rust: "rust/02-udp-echo.rs",
        python: "python/02-udp-echo.py",
    },
    Exercise {
        lab: "03-udp-loss",
        bin: "udp-loss",
        rust: "rust/03-udp-loss.rs",
        python: "python/03-udp-loss.py",
    },
    Exercise {
        lab: "06-json-to-file",
        bin: "json-to-file",
        rust: "rust/06-json-to-file.rs",
        python: "python/06-json-to-file.py",
    },
];

/// The exercise of a lab.
pub fn exercise(lab: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.lab == lab)
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
