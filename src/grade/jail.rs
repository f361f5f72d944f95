//! What an untrusted program may touch: the policy the grader applies to every program
//! it runs (the student's server, and `cargo build` of a Rust submission, whose
//! `build.rs` is code too). `sandbox.rs` starts the process; this module decides what
//! the process gets:
//!
//! - no privilege: `no_new_privs`, every capability dropped (bounding, ambient,
//!   permitted), and, when the grader is root (outside namespaces, or inside one that
//!   maps 65534), the uid/gid of `nobody` where that user can reach the program's files;
//! - Landlock (Linux 5.13+): read and execute on the system folders, read on `/etc`
//!   entry by entry minus its secrets (`shadow`, `gshadow`, ssh host keys, sudoers,
//!   private TLS keys), read-only on the workspace, read-write on a private temporary
//!   folder (its HOME and TMPDIR) and the few devices named; with ABI 4+ TCP bind and
//!   connect only on the ports the grader names; with ABI 6+ no signals and no
//!   abstract UNIX sockets outside the sandbox;
//! - a clean environment: PATH, HOME, TMPDIR, LANG and the lab's own variables, never
//!   the grader's (CI tokens live there).
//! - for a root grader's build ([`View`]): nobody, in its own mount and network
//!   namespaces, reading a readable copy of the workspace bound at the workspace's path
//!   (`nobody.rs`), where folders nobody cannot pass on the way to the toolchain or the
//!   workspace (a 0700 /root) are covered by an empty tmpfs and only what the build
//!   needs is bound back at its own path; for a root grader's program whose files
//!   nobody cannot reach (or whose build read a copy), the same kind of view in its own
//!   mount namespace, with that copy at the workspace's path.
//!
//! Everything is best effort against what the kernel offers, and [`Applied`] records
//! truthfully what was enforced, for the transcript.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};

use crate::sys;

/// The uid and gid a root grader gives programs outside namespaces (`nobody`).
pub const NOBODY: u32 = 65534;

/// System folders a program may read and execute from (interpreters, libraries).
const SYSTEM_DIRS: &[&str] = &["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/opt"];

/// Entries of /etc never readable in the sandbox. Landlock only allows, so /etc is
/// allowed entry by entry, skipping these (and they are unreadable by `nobody` anyway).
const ETC_SECRETS: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl",
    "security",
    "subuid",
    "subgid",
    "machine-id",
];

/// Devices a program may read and write: the harmless ones every runtime opens.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/urandom",
    "/dev/random",
];

/// PATH of a sandboxed program: system folders only (a version manager's shims under
/// the grader's HOME are out of reach by design).
pub const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// What one program may touch.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Folders (or files) it may read and execute: its workspace, its executable.
    pub read: Vec<PathBuf>,
    /// Folders it may read and write: its private temporary folder, a build's target.
    pub write: Vec<PathBuf>,
    /// Device files it may open read-write besides the usual ones (07's pty).
    pub devices: Vec<PathBuf>,
    /// TCP ports it may bind (its `--port`); None leaves TCP unrestricted.
    pub bind: Option<Vec<u16>>,
    /// TCP ports it may connect to; None leaves connect unrestricted.
    pub connect: Option<Vec<u16>>,
    /// Keep CAP_NET_RAW (ambient) for a program in the grader's own user + network
    /// namespace (04's raw ICMP): that capability covers only that namespace.
    pub keep_net_raw: bool,
    /// Run as `nobody` where the grader is root (of its user namespace, which then maps
    /// 65534 too: see [`nobody_mapped`]) and that user reaches `read`.
    pub drop_uid: bool,
    /// Give the program its own user + network namespace with nothing but a down
    /// loopback (builds: no network at all).
    pub own_netns: bool,
    /// A root grader's build or program run as nobody: the private view of the files
    /// that lets nobody reach the toolchain and nobody's copy of the workspace
    /// ([`plan_view`], `nobody.rs`); with it the build gets its own mount and network
    /// namespaces, and no user namespace.
    pub view: Option<View>,
}

/// A private view of the file system for a build or a program run as nobody by a root
/// grader: folders nobody cannot pass are covered with an empty tmpfs, the paths the
/// build needs are bound back at their own place, and nobody's copy of the workspace is
/// bound at the workspace's path (`sys::PrivateMounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// Folders to cover (nobody cannot pass them: a 0700 /root).
    pub cover: Vec<PathBuf>,
    /// Paths to bind back inside them.
    pub bind: Vec<PathBuf>,
    /// (a folder, the path it is shown at): a root grader's copy of a workspace, made
    /// readable by nobody, shown where the workspace is (`nobody.rs`).
    #[serde(default)]
    pub copy: Vec<(PathBuf, PathBuf)>,
    /// The working folder, entered again once the view is made.
    pub chdir: Option<PathBuf>,
}

/// Plans a [`View`] in which nobody reaches every folder of `need` (each must be
/// readable and searchable by others itself; only the folders above it may be
/// closed). Err says which one nobody cannot read, and the fix.
pub fn plan_view(need: &[PathBuf], chdir: Option<&Path>) -> Result<View, String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let mut view = View {
        chdir: chdir.map(Path::to_path_buf),
        ..View::default()
    };
    for p in need {
        if nobody_reaches(p) {
            continue;
        }
        match mode(p) {
            Ok(m) if m & 0o005 == 0o005 => {}
            Ok(_) => {
                return Err(format!(
                    "{} is not readable by others (chmod o+rX it)",
                    p.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
        // Inside a folder bound back already, with every folder between open to others.
        if let Some(outer) = view.bind.iter().find(|b| p.starts_with(b)) {
            let open = p
                .ancestors()
                .skip(1)
                .take_while(|a| a != outer)
                .all(|a| mode(a).is_ok_and(|m| m & 0o001 != 0));
            if open {
                continue;
            }
            return Err(format!(
                "a folder between {} and {} is closed to others",
                outer.display(),
                p.display()
            ));
        }
        // The outermost closed folder above it is covered; everything below it that the
        // build needs is bound back.
        if !view.cover_above(p)? {
            return Err(format!("{} is not reachable by others", p.display()));
        }
        view.bind.push(p.clone());
    }
    Ok(view)
}

impl View {
    /// Covers the outermost folder above `p` that others cannot pass (once, however
    /// many paths lie under it), so that `p`'s mount point can be made in the tmpfs;
    /// false when every folder above `p` is open. Err when that folder is /, which
    /// cannot be covered.
    pub fn cover_above(&mut self, p: &Path) -> Result<bool, String> {
        use std::os::unix::fs::PermissionsExt;
        let mut above: Vec<&Path> = p.ancestors().skip(1).collect();
        above.reverse();
        let Some(closed) = above
            .into_iter()
            .find(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        else {
            return Ok(false);
        };
        if closed == Path::new("/") {
            return Err("/ is closed to others: nobody can reach nothing".to_string());
        }
        if !self.cover.iter().any(|c| c == closed) {
            self.cover.push(closed.to_path_buf());
        }
        Ok(true)
    }

    /// The mounts to make, as the child between fork and exec needs them.
    fn prepare(&self) -> std::io::Result<sys::PrivateMounts> {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)
        };
        let mut m = sys::PrivateMounts::default();
        for dir in &self.cover {
            m.cover.push(c(dir)?);
        }
        // Shallower first: a build's target folder inside the workspace is bound over
        // the copy shown there, never hidden under it.
        let mut mounts: Vec<(&PathBuf, &PathBuf)> = self.bind.iter().map(|p| (p, p)).collect();
        mounts.extend(self.copy.iter().map(|(from, at)| (from, at)));
        mounts.sort_by_key(|(_, at)| at.components().count());
        for (from, at) in mounts {
            // Mount points: every folder from the covered one down to `at` (none when
            // nothing above it is covered: it exists already).
            if let Some(cover) = self.cover.iter().find(|d| at.starts_with(d)) {
                let mut below: Vec<&Path> = at.ancestors().take_while(|a| a != cover).collect();
                below.reverse();
                for d in below {
                    let d = c(d)?;
                    if !m.mkdirs.contains(&d) {
                        m.mkdirs.push(d);
                    }
                }
            }
            m.binds.push((c(from)?, c(at)?));
        }
        if m.binds.len() > sys::MAX_BINDS {
            return Err(std::io::Error::other("too many paths to bind back"));
        }
        m.chdir = self.chdir.as_deref().map(c).transpose()?;
        Ok(m)
    }
}

/// What was enforced for one program, for the transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Short descriptions of each protection in force.
    pub on: Vec<String>,
    /// Protections this machine could not give, with why.
    pub off: Vec<String>,
}

/// Everything prepared before the fork: the Landlock ruleset as a file descriptor and
/// the credentials to switch to (`sys::confine` applies them between fork and exec).
#[derive(Debug)]
pub struct Prepared {
    /// The ruleset to enforce, if Landlock is available.
    pub ruleset: Option<OwnedFd>,
    /// uid/gid to switch to.
    pub ids: Option<(u32, u32)>,
    /// Keep CAP_NET_RAW as an ambient capability.
    pub keep_net_raw: bool,
    /// Unshare user + network namespaces first.
    pub own_netns: bool,
    /// A root grader's build or program: its own mount namespace and this view.
    pub mounts: Option<sys::PrivateMounts>,
    /// What is enforced.
    pub applied: Applied,
    /// Why the program must not start at all: a root grader whose program would run
    /// as uid 0 (nobody cannot reach its files and there is no view). Fail closed.
    pub refused: Option<String>,
}

/// The kernel's Landlock ABI version (0: none), probed once. `LAB_NO_LANDLOCK=1`
/// makes it 0, to see (and test) what the grader does on a kernel without Landlock.
pub fn landlock_abi() -> i32 {
    static ABI_V: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *ABI_V.get_or_init(|| {
        if std::env::var_os("LAB_NO_LANDLOCK").is_some_and(|v| v != "0") {
            0
        } else {
            sys::landlock_abi()
        }
    })
}

/// True when uid and gid 65534 exist in this process's user namespace: always outside
/// namespaces; inside the grader's only when a root grader mapped them (`ns.rs`).
pub fn nobody_mapped() -> bool {
    let maps = |file: &str| {
        std::fs::read_to_string(file).is_ok_and(|m| {
            m.lines().any(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                f.len() == 3 && f[0] <= u64::from(NOBODY) && u64::from(NOBODY) < f[0] + f[2]
            })
        })
    };
    maps("/proc/self/uid_map") && maps("/proc/self/gid_map")
}

/// The host uid that uid 0 of this user namespace stands for (for the transcript).
fn outer_uid_of_root() -> String {
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"0")).then(|| f.get(1).map(|s| s.to_string()))?
            })
        })
        .unwrap_or_else(|| "?".to_string())
}

/// True when `nobody` can reach `path`: every ancestor searchable by others and the
/// path itself readable by others (mode bits; root's ACLs are not consulted).
pub fn nobody_reaches(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.permissions().mode() & 0o004 == 0 {
        return false;
    }
    path.ancestors()
        .skip(1)
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

impl Policy {
    /// Builds the ruleset and decides the credentials. Never fails: what cannot be
    /// enforced is recorded in `applied.off`.
    pub fn prepare(&self) -> Prepared {
        let mut applied = Applied::default();
        applied.on.push("no_new_privs, no capabilities".to_string());
        if self.keep_net_raw {
            applied
                .on
                .push("CAP_NET_RAW kept over its own network namespace only".to_string());
        }
        let mut ids = None;
        let mut mounts = None;
        let mut refused = None;
        let root = sys::euid() == 0;
        if root && self.drop_uid {
            let nobody = format!("uid/gid {NOBODY} (nobody)");
            if let Some(view) = &self.view {
                // A view (a build's, or a program's whose files nobody cannot reach):
                // its planner checked what nobody reaches in it.
                match view.prepare() {
                    Ok(m) => {
                        mounts = Some(m);
                        ids = Some((NOBODY, NOBODY));
                        applied.on.push(nobody);
                        if !view.cover.is_empty() {
                            applied.on.push(format!(
                                "own mount namespace: {} hidden but for what it needs",
                                view.cover
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                        if !view.copy.is_empty() {
                            applied.on.push(
                                "its workspace: a copy readable by nobody, at the workspace's path"
                                    .to_string(),
                            );
                        }
                    }
                    Err(e) => refused = Some(format!("cannot prepare its view of the files: {e}")),
                }
            } else {
                // Without a view, `nobody` must reach the program's files itself.
                match self.read.iter().find(|p| !nobody_reaches(p)) {
                    None => {
                        ids = Some((NOBODY, NOBODY));
                        applied.on.push(nobody);
                    }
                    // `ns::grade` gives such a program a view before it runs; should one
                    // still get here, it does not run as root (fail closed).
                    Some(p) => {
                        refused = Some(format!(
                            "{} is not readable by nobody, and a root grader never runs a program as root (chmod o+rX it)",
                            p.display()
                        ))
                    }
                }
            }
        } else if root {
            applied.off.push(format!(
                "uid drop: this user namespace maps only the grader's own uid (the grader is not root, and newuidmap is not used), so the program runs as uid 0 of its namespace (uid {} outside) without capabilities",
                outer_uid_of_root()
            ));
        }
        if self.own_netns {
            applied
                .on
                .push("own network namespace (no network)".to_string());
        }
        let abi_v = landlock_abi();
        let ruleset = if abi_v <= 0 {
            applied
                .off
                .push("Landlock: not available in this kernel (files are limited by uid and mode bits only)".to_string());
            None
        } else {
            match self.ruleset(ABI::from(abi_v), &mut applied) {
                Ok(fd) => fd,
                Err(e) => {
                    applied.off.push(format!("Landlock: {e}"));
                    None
                }
            }
        };
        Prepared {
            ruleset,
            ids,
            keep_net_raw: self.keep_net_raw,
            own_netns: self.own_netns,
            mounts,
            applied,
            refused,
        }
    }

    fn ruleset(
        &self,
        abi: ABI,
        applied: &mut Applied,
    ) -> Result<Option<OwnedFd>, landlock::RulesetError> {
        let read = AccessFs::from_read(abi);
        let all = AccessFs::from_all(abi);
        // Files only: rights that apply to a directory are refused on a file rule.
        let file_rw = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
        let abi_n = abi as i32;
        let mut rs = Ruleset::default().handle_access(all)?;
        let net = abi_n >= 4 && (self.bind.is_some() || self.connect.is_some());
        if net {
            rs = rs.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
        }
        if abi_n >= 6 {
            rs = rs.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
        }
        let mut rules: Vec<(PathBuf, landlock::BitFlags<AccessFs>)> = Vec::new();
        for d in SYSTEM_DIRS {
            rules.push((PathBuf::from(d), read));
        }
        if let Ok(entries) = std::fs::read_dir("/etc") {
            for e in entries.flatten() {
                let name = e.file_name();
                if !ETC_SECRETS.iter().any(|s| name == *s) {
                    rules.push((e.path(), read));
                }
            }
        }
        // /proc: the program's own entries (Python and Rust runtimes read a few). The
        // grader sets itself non-dumpable, so its own /proc entries stay closed.
        rules.push((PathBuf::from("/proc"), read));
        for d in DEVICES {
            rules.push((PathBuf::from(d), file_rw));
        }
        for d in &self.devices {
            rules.push((d.clone(), file_rw));
        }
        for p in &self.read {
            rules.push((p.clone(), read));
        }
        for p in &self.write {
            rules.push((p.clone(), all));
        }
        let mut rs = rs.create()?;
        for (path, access) in rules {
            // Folders that do not exist here (/lib32) are simply not allowed.
            let Ok(fd) = PathFd::new(&path) else { continue };
            // A rule on a file may only carry file rights.
            let access = if path.is_dir() {
                access
            } else {
                access & AccessFs::from_file(abi)
            };
            rs = rs.add_rule(PathBeneath::new(fd, access))?;
        }
        let mut rs = rs;
        if net {
            for p in self.bind.iter().flatten() {
                rs = rs.add_rule(NetPort::new(*p, AccessNet::BindTcp))?;
            }
            for p in self.connect.iter().flatten() {
                rs = rs.add_rule(NetPort::new(*p, AccessNet::ConnectTcp))?;
            }
        }
        applied.on.push(format!(
            "Landlock ABI {abi_n}: files (system read-only, workspace read-only, own temp folder writable){}{}",
            if net { ", TCP ports" } else { "" },
            if abi_n >= 6 { ", signals and abstract UNIX sockets scoped" } else { "" }
        ));
        if abi_n < 4 && (self.bind.is_some() || self.connect.is_some()) {
            applied.off.push(format!(
                "Landlock TCP port rules: need ABI 4, this kernel has {abi_n}"
            ));
        }
        if abi_n < 6 {
            applied.off.push(format!(
                "Landlock signal and abstract-socket scoping: need ABI 6, this kernel has {abi_n}"
            ));
        }
        Ok(rs.into())
    }
}

/// The environment of a sandboxed program: only these, plus the lab's own variables
/// (`extra`). HOME and TMPDIR are its private folder.
pub fn clean_env(home: &Path, path: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), path.to_string()),
        ("HOME".to_string(), home.display().to_string()),
        ("TMPDIR".to_string(), home.display().to_string()),
        (
            "LANG".to_string(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_string()),
        ),
    ];
    // The lab's own knobs (LAB_*) are not secrets and programs may read them.
    for (k, v) in std::env::vars() {
        if k.starts_with("LAB_") && !env.iter().any(|(e, _)| *e == k) {
            env.push((k, v));
        }
    }
    env.extend(extra.iter().cloned());
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_outermost_closed_folder_above_is_covered_once() {
        let d = tempfile::tempdir().unwrap();
        let set = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let closed = d.path().join("open/closed");
        for ws in ["a/ws", "b/ws"] {
            std::fs::create_dir_all(closed.join(ws)).unwrap();
        }
        // Closed: the tempdir's own folder (0700) opened, then `closed` and one inside it.
        set(d.path(), 0o755);
        set(&closed, 0o700);
        set(&closed.join("a"), 0o700);
        let mut view = View::default();
        assert_eq!(view.cover_above(&closed.join("a/ws")), Ok(true));
        assert_eq!(view.cover_above(&closed.join("b/ws")), Ok(true));
        assert_eq!(view.cover, std::slice::from_ref(&closed));
        // Nothing above /: nothing to cover.
        assert_eq!(view.cover_above(Path::new("/")), Ok(false));
        assert_eq!(view.cover, [closed]);
    }
}
