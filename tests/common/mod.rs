//! Helpers shared by the integration tests: run the real binary, start servers on
//! ephemeral ports and learn their address from their first line of output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The `lab` binary under test, isolated (see [`isolate`]).
pub fn lab() -> Command {
    let mut c = lab_exe();
    isolate(&mut c);
    c
}

/// The `lab` binary under test, without the runner's own target folder (see
/// [`isolate`], which also keeps it away from the user's files).
pub fn lab_exe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
    c.env_remove("CARGO_TARGET_DIR");
    c
}

/// Keeps a `lab` process away from the user's files and the CI's settings: colours off,
/// and progress, HOME and XDG state in this test binary's own folder under cargo's
/// `target/tmp` (one per test binary, reused by the next run, so nothing piles up in
/// /tmp and the real progress file is never touched).
pub fn isolate(c: &mut Command) -> &mut Command {
    let dir = scratch_dir();
    // cargo and rustup find their toolchains from HOME unless told: keep the real ones
    // (`lab check` builds Rust exercises).
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        for (var, sub) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
            if std::env::var_os(var).is_none() {
                c.env(var, home.join(sub));
            }
        }
    }
    c.env("NO_COLOR", "1")
        .env("LAB_PROGRESS", dir.join("progress.txt"))
        .env("HOME", dir.join("home"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env_remove("GITHUB_OUTPUT")
        // The runner's own target folder (`CARGO_TARGET_DIR=target/load cargo test`, a
        // second copy of the suite) is not where a graded workspace builds: tests that
        // want a shared one set it themselves.
        .env_remove("CARGO_TARGET_DIR")
        // Under GitHub Actions, `--format gh-classroom` leaves the notices to the
        // autograding reporter: tests choose that themselves.
        .env_remove("GITHUB_ACTIONS")
}

/// This test binary's scratch folder, `target/tmp/<test name>/`.
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
    std::fs::create_dir_all(dir.join("home")).expect("create the tests' scratch folder");
    dir
}

/// The progress file the isolated `lab` uses.
pub fn scratch_progress() -> PathBuf {
    scratch_dir().join("progress.txt")
}

/// Runs `lab ARGS` to completion (stdin closed).
pub fn run(args: &[&str]) -> Output {
    lab()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lab")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `lab` server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines the server printed after its first one.
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lab run ID --role server --bind 127.0.0.1:0 EXTRA...` and waits for the
/// line naming its address (the first address-looking word on its first line).
pub fn server(id: &str, extra: &[&str]) -> Server {
    server_at(id, "127.0.0.1:0", extra)
}

/// Like [`server`], bound to `bind`.
pub fn server_at(id: &str, bind: &str, extra: &[&str]) -> Server {
    let mut args = vec!["run", id, "--role", "server", "--bind", bind];
    args.extend_from_slice(extra);
    spawn_server(&args)
}

/// Starts `lab ARGS...` (any command that serves and names its address on its first
/// line, such as `latency --role server`) and waits, at most 20 s, for that line. Its
/// output keeps being read (and queued) so the server never meets a closed pipe.
pub fn spawn_server(args: &[&str]) -> Server {
    let mut child = lab()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start server");
    let out: ChildStdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server printed nothing");
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    Server {
        child,
        addr,
        lines: rx,
    }
}

/// `lab latency --role server` on an ephemeral loopback port, serving for at most
/// `seconds`.
pub fn latency_server(seconds: u32) -> Server {
    let secs = seconds.to_string();
    spawn_server(&[
        "latency",
        "--role",
        "server",
        "--bind",
        "127.0.0.1:0",
        "--serve-for",
        &secs,
    ])
}

/// Any child process (a peer tool, a client), killed and reaped when dropped, however
/// the test ends.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a program is on PATH (peers such as nc or socat).
/// Skips the calling test for `why`, loudly: outside CI it prints `SKIPPED: why` where
/// cargo shows a test's output; in CI (`CI` set), where every tool is installed, a skip
/// means a broken setup, so it fails the test instead.
pub fn skip(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("in CI nothing may be skipped, but: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A command that runs its arguments as nobody (65534, through setpriv) where nobody
/// reaches every path of `paths` at its own place: a private mount namespace
/// (`unshare -m`, as root) in which the outermost folder above a path that nobody
/// cannot pass (a 0700 /root holding rustup, a CI clone in it) is covered by an empty
/// tmpfs and the path is bound back. So the tests of a grader that is not root run in
/// CI too. The paths themselves must be readable by others (rustup's folders and a
/// built binary are). Also returns the folder holding the staging mount points (keep
/// it until the command ends). Err says why it cannot be done here.
pub fn as_nobody_reaching(paths: &[PathBuf]) -> Result<(Command, tempfile::TempDir), String> {
    use std::os::unix::fs::PermissionsExt;
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err("needs root (to become nobody, and to mount)".into());
    }
    for tool in ["setpriv", "unshare", "mount"] {
        if !have(tool) {
            return Err(format!("{tool} (util-linux) is not installed"));
        }
    }
    let open = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
    };
    let quote =
        |p: &std::path::Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let stage = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::set_permissions(stage.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let (mut first, mut covers, mut last) = (String::new(), Vec::<PathBuf>::new(), String::new());
    for (i, p) in paths.iter().enumerate() {
        let mut above: Vec<&std::path::Path> = p.ancestors().skip(1).collect();
        above.reverse();
        let Some(closed) = above.into_iter().find(|a| !open(a)) else {
            continue; // nobody reaches it already
        };
        let s = stage.path().join(i.to_string());
        let make = if p.is_dir() {
            std::fs::create_dir(&s).map_err(|e| e.to_string())?;
            format!("mkdir -p {}", quote(p))
        } else {
            std::fs::write(&s, "").map_err(|e| e.to_string())?;
            format!(
                "mkdir -p {} && touch {}",
                quote(p.parent().unwrap()),
                quote(p)
            )
        };
        first.push_str(&format!("mount --bind {} {}\n", quote(p), quote(&s)));
        if !covers.iter().any(|c| closed.starts_with(c)) {
            covers.retain(|c| !c.starts_with(closed));
            covers.push(closed.to_path_buf());
        }
        last.push_str(&format!(
            "{make}\nmount --bind {} {}\n",
            quote(&s),
            quote(p)
        ));
    }
    let mut script = String::from("set -e\n");
    script.push_str(&first);
    for c in &covers {
        script.push_str(&format!(
            "mount -t tmpfs -o mode=0755,size=1m tmpfs {}\n",
            quote(c)
        ));
    }
    script.push_str(&last);
    script.push_str("exec setpriv --reuid 65534 --regid 65534 --clear-groups -- \"$@\"\n");
    let mut c = Command::new("unshare");
    // The runner's target folder is root's, and not the graded workspace's.
    c.env_remove("CARGO_TARGET_DIR");
    c.args([
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
        "sh",
    ]);
    Ok((c, stage))
}

/// Where this user's Rust toolchain is: (CARGO_HOME, RUSTUP_HOME).
pub fn toolchain_homes() -> (PathBuf, PathBuf) {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let var = |k: &str, d: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(d))
    };
    (var("CARGO_HOME", ".cargo"), var("RUSTUP_HOME", ".rustup"))
}

/// A turn on the whole machine for a test that must use fixed ports (the README's):
/// two copies of the suite run at once (CONTRIBUTING: running the suite under load)
/// take turns instead of failing on "address in use". Held while the returned socket
/// lives: an abstract Unix socket, so the turn ends with the process however it ends,
/// and nothing is left on disk. Waits at most 15 minutes, then goes ahead (the test
/// then says what is in use).
pub fn machine_turn(name: &str) -> Option<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(format!("lab-test-{name}"))
        .expect("an abstract socket name");
    let until = Instant::now() + Duration::from_secs(15 * 60);
    let mut said = false;
    loop {
        match std::os::unix::net::UnixListener::bind_addr(&addr) {
            Ok(l) => return Some(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < until => {
                if !said {
                    eprintln!("waiting for another run of `{name}` on this machine to finish");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(_) => return None,
        }
    }
}
