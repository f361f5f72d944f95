//! Where a workspace's Rust build goes: a folder of its own under the target folder,
//! named after the workspace and the content of what cargo compiles.
//!
//! cargo judges a build fresh by file times. Two workspaces of the same exercises share
//! one package name, so in one target folder (`CARGO_TARGET_DIR` set for the grader,
//! `--target-dir`, a class graded two at a time) the second student's build was
//! "fresh" whenever their sources were older than the first student's build: a student
//! whose Rust did not compile was graded with another student's binary. A resubmission
//! unpacked with its original times would likewise keep the earlier binary. Keyed by
//! the workspace's path and the content of its sources, every build starts from a
//! folder only that exact source ever built into; older folders of the same workspace
//! are removed, so a workspace keeps one.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

/// Most files and bytes hashed; a bigger workspace gets a key of its own per build
/// (built from nothing each time, never stale).
const MAX_FILES: usize = 10_000;
const MAX_BYTES: u64 = 64 << 20;

/// The build's folder under `base` for workspace `ws`, with the other folders of `ws`
/// under `base` removed.
pub fn own(base: &Path, ws: &Path) -> PathBuf {
    let ws = ws.canonicalize().unwrap_or_else(|_| ws.to_path_buf());
    let mut h = Fnv::default();
    h.write(ws.as_os_str().as_encoded_bytes());
    let prefix = format!("lab-{:08x}-", h.finish() as u32);
    let sources = sources_key(
        &ws,
        &base.canonicalize().unwrap_or_else(|_| base.to_path_buf()),
    );
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name != format!("{prefix}{sources:016x}") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    base.join(format!("{prefix}{sources:016x}"))
}

/// A hash of every file cargo may compile in `ws` (`*.rs`, `*.toml`, `Cargo.lock`),
/// names and contents, outside `.git`, other dot folders, `target` and `skip`.
fn sources_key(ws: &Path, skip: &Path) -> u64 {
    let mut files = Vec::new();
    let mut stack = vec![ws.to_path_buf()];
    let (mut count, mut bytes) = (0usize, 0u64);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let (path, name) = (e.path(), e.file_name());
            let name = name.to_string_lossy();
            let Ok(kind) = e.file_type() else { continue };
            // A link to a file counts as the file (cargo reads through it); a link to a
            // folder is not followed (it could lead anywhere, or in a circle).
            let file = kind.is_file() || (kind.is_symlink() && path.is_file());
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" && path != skip {
                    stack.push(path);
                }
            } else if file
                && (name.ends_with(".rs") || name.ends_with(".toml") || name == "Cargo.lock")
            {
                count += 1;
                bytes += e.metadata().map_or(0, |m| m.len());
                if count > MAX_FILES || bytes > MAX_BYTES {
                    return unique();
                }
                files.push(path);
            }
        }
    }
    files.sort();
    let mut h = Fnv::default();
    for f in files {
        h.write(
            f.strip_prefix(ws)
                .unwrap_or(&f)
                .as_os_str()
                .as_encoded_bytes(),
        );
        h.write_u8(0);
        match std::fs::read(&f) {
            Ok(data) => {
                h.write_u64(data.len() as u64);
                h.write(&data);
            }
            // Unreadable here: cargo will say so; never reuse a build for it.
            Err(_) => return unique(),
        }
    }
    h.finish()
}

/// A key no other build has: the time and the process.
fn unique() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (std's hasher promises neither).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(root: &Path, name: &str, main: &str) -> PathBuf {
        let w = root.join(name);
        std::fs::create_dir_all(w.join("rust")).unwrap();
        std::fs::write(w.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        std::fs::write(w.join("rust/01.rs"), main).unwrap();
        std::fs::write(w.join("rust/notes.txt"), "not compiled").unwrap();
        w
    }

    #[test]
    fn two_workspaces_never_share_a_build_folder() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("shared-target");
        let a = ws(t.path(), "alice", "fn main() {}");
        let b = ws(t.path(), "bob", "fn main() {}");
        assert_ne!(own(&base, &a), own(&base, &b));
    }

    #[test]
    fn the_folder_follows_the_sources_not_their_times() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("target");
        let a = ws(t.path(), "alice", "fn main() {}");
        let first = own(&base, &a);
        std::fs::create_dir_all(first.join("debug")).unwrap();
        // Unchanged sources, and a file cargo does not compile changed: the same folder.
        std::fs::write(a.join("rust/notes.txt"), "edited").unwrap();
        assert_eq!(own(&base, &a), first);
        assert!(first.join("debug").is_dir());
        // A changed source, whatever its time: a new folder, and the old one is gone.
        std::fs::write(a.join("rust/01.rs"), "fn main() { broken }").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(a.join("rust/01.rs"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let second = own(&base, &a);
        assert_ne!(second, first);
        assert!(
            !first.exists(),
            "the workspace's older build folder is removed"
        );
        // A build of another workspace in the same base is left alone.
        let b = ws(t.path(), "bob", "fn main() {}");
        let theirs = own(&base, &b);
        std::fs::create_dir_all(&theirs).unwrap();
        let _ = own(&base, &a);
        assert!(theirs.is_dir());
    }

    #[test]
    fn a_source_behind_a_link_is_hashed_through_it() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("target");
        let a = ws(t.path(), "alice", "fn main() {}");
        let real = t.path().join("elsewhere.rs");
        std::fs::write(&real, "pub fn f() {}").unwrap();
        std::os::unix::fs::symlink(&real, a.join("rust/linked.rs")).unwrap();
        let first = own(&base, &a);
        std::fs::write(&real, "pub fn f() { changed() }").unwrap();
        assert_ne!(own(&base, &a), first);
    }

    #[test]
    fn a_target_folder_inside_the_workspace_is_not_hashed() {
        let t = tempfile::tempdir().unwrap();
        let a = ws(t.path(), "alice", "fn main() {}");
        let base = a.join("build-here");
        let first = own(&base, &a);
        std::fs::create_dir_all(base.join("junk")).unwrap();
        std::fs::write(base.join("junk/gen.rs"), "// written by a build").unwrap();
        std::fs::create_dir_all(a.join("target/debug")).unwrap();
        std::fs::write(a.join("target/debug/x.rs"), "// also a build's").unwrap();
        assert_eq!(own(&base, &a), first);
    }
}
