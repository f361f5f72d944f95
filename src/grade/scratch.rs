//! `Scratch`: a temporary folder of the grader's own, removed with everything in it
//! when dropped. A build's private HOME (`build`), nobody's copy of a workspace
//! (`nobody`), one student's TMPDIR (`class`) and `lab dev check`'s exercises each hold
//! one for as long as they need it, so a grading that ends any way (an error, a failed
//! check, a panic unwinding) leaves nothing in TMPDIR.

use std::path::{Path, PathBuf};

/// A fresh folder `TMPDIR/lab-STEM-NANOS`, removed on drop. A removal error is ignored:
/// a drop cannot report it, and no result depends on it.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Makes the folder, with the process's default mode (its caller tightens it where
    /// it must). `stem` says whose it is (`build-PID`, `view-PID`, `class-STUDENT`,
    /// `dev-PID`); the clock's nanoseconds keep two made by the same holder apart.
    pub fn new(stem: &str) -> std::io::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let d = std::env::temp_dir().join(format!("lab-{stem}-{nanos:x}"));
        std::fs::create_dir(&d)?;
        Ok(Scratch(d))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_and_what_it_holds_go_on_drop() {
        let s = Scratch::new(&format!("scratch-test-{}", std::process::id())).unwrap();
        let p = s.path().to_path_buf();
        assert!(p.is_dir());
        assert!(p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("lab-scratch-test-"));
        std::fs::create_dir_all(p.join("a/b")).unwrap();
        std::fs::write(p.join("a/b/f"), "x").unwrap();
        drop(s);
        assert!(!p.exists());
    }
}
