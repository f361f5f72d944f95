//! The grader's sandbox against hostile programs, through the real binary: each test
//! grades a program that tries to leave its workspace (read secrets, write outside,
//! reach host services, read the grader's environment, break the isolated run,
//! daemonize, allocate 2 GB) and checks the verdict is a failure, nothing leaked or was
//! written, and no process is left. Runs with namespaces and with LAB_NO_NAMESPACES=1.
//! Needs python3; parts that need root (a secret only root can read) or Landlock say
//! so and skip loudly.

mod common;

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A string no file or variable holds except the ones this test plants.
fn secret() -> String {
    format!("lab-secret-{}", std::process::id())
}

fn root() -> bool {
    // SAFETY-free: read our own uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn python_ok() -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "python3 missing in CI");
        eprintln!("SKIP: python3 is not installed");
    }
    ok
}

/// Processes still carrying `mark` in their environment (none may survive grading).
fn leftovers(mark: &str) -> Vec<String> {
    let needle = format!("LAB_TEST_MARK={mark}");
    let mut left = Vec::new();
    // A killed process takes a moment to vanish: look a few times.
    for _ in 0..50 {
        left.clear();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(env) = std::fs::read(e.path().join("environ")) {
                if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                    let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                    if !stat.contains(") Z ") {
                        left.push(stat);
                    }
                }
            }
        }
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    left
}

/// Grades `python3 FILE` as lab 01 (JSON), with the grader's environment holding a fake
/// CI token. Returns the output and the report text.
fn grade(script: &str, dir: &Path, namespaces: bool, mark: &str) -> (Output, String) {
    let mut c = common::lab_exe();
    c.args([
        "grade",
        "01",
        "--format",
        "gradescope",
        "--seed",
        "15",
        "--cmd",
    ])
    .arg(format!("python3 {script}"))
    .current_dir(dir)
    .env("LAB_TEST_MARK", mark)
    .env("FAKE_CI_TOKEN", secret())
    .env("LAB_READY_TIMEOUT_MS", "4000")
    .env(
        "LAB_PROGRESS",
        std::env::temp_dir().join(format!("lab-sbx-progress-{}", std::process::id())),
    )
    .stdin(Stdio::null());
    if !namespaces {
        c.env("LAB_NO_NAMESPACES", "1");
    }
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o, text)
}

/// A hostile program that tries everything at start, then prints `LEAK ...` for each
/// attempt that worked, and exits (so `starts` fails: the verdict is 0).
const HOSTILE: &str = r#"
import os, socket, sys
outside, port, sock_path, abstract, dgram_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def attempt(what, f):
    try:
        r = f()
        print("LEAK", what, r, flush=True)
    except Exception as e:
        print("blocked", what, type(e).__name__, e, flush=True)
attempt("shadow", lambda: open("/etc/shadow").read()[:40])
attempt("secret file", lambda: open(os.path.join(outside, "secret.txt")).read())
attempt("write outside", lambda: open(os.path.join(outside, "written.txt"), "w").write("x"))
attempt("write /tmp", lambda: open("/tmp/lab-sbx-written-%d" % os.getppid(), "w").write("x"))
def tcp():
    s = socket.create_connection(("127.0.0.1", port), timeout=2); s.sendall(b"hi"); return "connected"
attempt("host tcp", tcp)
def unix(path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(path); s.sendall(b"hi"); return "connected"
attempt("host unix socket", lambda: unix(sock_path))
attempt("host abstract socket", lambda: unix("\0" + abstract))
attempt("grader env", lambda: [k for k in os.environ if "TOKEN" in k] or (_ for _ in ()).throw(KeyError("no token")))
attempt("grader environ", lambda: open("/proc/1/environ").read()[:40])
attempt("break the isolated run", lambda: open("/proc/1/fd/1", "w").write("x"))
attempt("kill the grader", lambda: os.kill(os.getppid(), 9))
def dgram():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM); a.sendto(b"hi", dgram_path); return "sent"
attempt("host unix datagram socket", dgram)
def uring():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(425, 8, ctypes.create_string_buffer(120))  # io_uring_setup
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
    return fd
attempt("io_uring", uring)
print("uid:", os.getuid(), flush=True)
print("env:", sorted(os.environ), flush=True)
"#;

/// Host-side services a program must not reach: TCP on loopback, a pathname UNIX
/// socket (world-writable, so only the sandbox stops it) and an abstract one.
struct Services {
    tcp: TcpListener,
    unix: UnixListener,
    abstract_: UnixListener,
    abstract_name: String,
    dgram: std::os::unix::net::UnixDatagram,
}

impl Services {
    fn new(dir: &Path) -> Services {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::fs::PermissionsExt;
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let path = dir.join("host.sock");
        let unix = UnixListener::bind(&path).unwrap();
        unix.set_nonblocking(true).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let abstract_name = format!("lab-sbx-{}-{n}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name).unwrap();
        let abstract_ = UnixListener::bind_addr(&addr).unwrap();
        abstract_.set_nonblocking(true).unwrap();
        let dgram_path = dir.join("host.dgram");
        let dgram = std::os::unix::net::UnixDatagram::bind(&dgram_path).unwrap();
        dgram.set_nonblocking(true).unwrap();
        std::fs::set_permissions(&dgram_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        Services {
            dgram,
            tcp,
            unix,
            abstract_,
            abstract_name,
        }
    }

    /// Which services got a connection.
    fn reached(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.tcp.accept().is_ok() {
            v.push("tcp");
        }
        if self.unix.accept().is_ok() {
            v.push("unix");
        }
        if self.abstract_.accept().is_ok() {
            v.push("abstract");
        }
        if self.dgram.recv(&mut [0u8; 16]).is_ok() {
            v.push("unix datagram");
        }
        v
    }
}

/// The hostile program's command line: its script, then what it attacks.
fn hostile_args(file: &Path, outside: &Path, services: &Services) -> String {
    format!(
        "{} {} {} {} {} {}",
        file.display(),
        outside.display(),
        services.tcp.local_addr().unwrap().port(),
        outside.join("host.sock").display(),
        services.abstract_name,
        outside.join("host.dgram").display(),
    )
}

fn outside_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    // World-readable and writable: only the sandbox may stand in the way.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let f = d.path().join("secret.txt");
    std::fs::write(&f, secret()).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    d
}

/// A workspace folder nobody can read (as `lab init` would make it, but world-readable
/// so a root grader may drop to nobody).
fn workspace(name: &str, body: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = d.path().join(name);
    std::fs::write(&f, body).unwrap();
    (d, f)
}

fn landlock() -> bool {
    // What the grader itself finds: `lab doctor` probes the kernel's Landlock ABI
    // (/sys/kernel/security/lsm is missing where securityfs is not mounted, as here).
    let doctor = common::lab_exe()
        .arg("doctor")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let on = doctor.contains("Landlock ABI");
    if !on {
        eprintln!(
            "SKIP (partly): Landlock is not enabled here; only uid and mode bits protect files"
        );
    }
    on
}

#[test]
fn a_hostile_program_reaches_nothing_outside_its_workspace() {
    if !python_ok() {
        return;
    }
    let ll = landlock();
    for namespaces in [true, false] {
        let outside = outside_dir();
        let services = Services::new(outside.path());
        let (ws, file) = workspace("hostile.py", HOSTILE);
        // The program's arguments: through --cmd, before the contract's.
        let script = hostile_args(&file, outside.path(), &services);
        let mark = format!("hostile-{namespaces}-{}", std::process::id());
        let (o, text) = grade(&script, ws.path(), namespaces, &mark);
        let ctx = format!("namespaces {namespaces}:\n{text}");
        assert!(text.contains("blocked shadow"), "{ctx}");
        if ll || root() {
            assert!(!text.contains("LEAK"), "{ctx}");
        }
        assert!(
            !text.contains(&secret()),
            "the secret or token leaked: {ctx}"
        );
        assert!(!outside.path().join("written.txt").exists(), "{ctx}");
        assert_eq!(services.reached(), Vec::<&str>::new(), "{ctx}");
        assert!(!text.contains("grading without namespaces"), "{ctx}");
        // What Landlock does not cover, seccomp refuses, with or without Landlock.
        assert!(text.contains("blocked host unix datagram socket"), "{ctx}");
        assert!(text.contains("blocked io_uring"), "{ctx}");
        // A root grader runs programs as nobody, inside namespaces too (the workspace
        // is world-readable).
        if root() {
            assert!(text.contains("uid: 65534"), "{ctx}");
        }
        // Gradescope's format exits 0 whatever the grade: the score says it.
        assert!(
            o.status.success() && text.contains("\"score\": 0.0"),
            "a zero grade: {ctx}"
        );
        // The program prints its environment's names; a missing line must fail, not
        // make the checks below search an empty string (which holds nothing, so
        // "no secret in it" would always pass).
        let env_line = text
            .lines()
            .find(|l| l.contains("env: ["))
            .unwrap_or_else(|| panic!("the program's env line is missing: {ctx}"));
        for name in ["FAKE_CI_TOKEN", "CARGO", "RUST_BACKTRACE"] {
            assert!(
                !env_line.contains(name),
                "{name} reached the program: {ctx}"
            );
        }
        assert!(leftovers(&mark).is_empty(), "{ctx}");
    }
}

#[test]
fn daemons_and_big_allocations_end_with_the_grading() {
    if !python_ok() {
        return;
    }
    // Double fork + setsid, ignore SIGTERM, then allocate 2 GB and sleep.
    let body = r#"
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
    os._exit(0)
try:
    big = bytearray(2 << 30)
    print("allocated 2 GB", flush=True)
except MemoryError:
    print("2 GB refused", flush=True)
time.sleep(60)
"#;
    for namespaces in [true, false] {
        let (ws, file) = workspace("daemon.py", body);
        let mark = format!("daemon-{namespaces}-{}", std::process::id());
        let (o, text) = grade(&file.display().to_string(), ws.path(), namespaces, &mark);
        let ctx = format!("namespaces {namespaces}:\n{text}");
        assert!(
            o.status.success() && text.contains("\"score\": 0.0"),
            "{ctx}"
        );
        // 2 GiB fits the 4 GiB address-space limit or not: either way the grader goes on.
        assert!(leftovers(&mark).is_empty(), "a daemon survived: {ctx}");
    }
}

#[test]
fn a_hostile_build_script_reads_and_reaches_nothing() {
    if !python_ok() {
        return;
    }
    let Ok(cargo) = Command::new("cargo").arg("--version").output() else {
        return common::skip("cargo is not installed");
    };
    assert!(cargo.status.success());
    let outside = outside_dir();
    let services = Services::new(outside.path());
    let ws = tempfile::tempdir().unwrap();
    let o = common::lab_exe()
        .args(["init"])
        .arg(ws.path().join("w"))
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join(format!("lab-sbx-progress-{}", std::process::id())),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let w = ws.path().join("w");
    let toml = std::fs::read_to_string(w.join("Cargo.toml")).unwrap();
    std::fs::write(
        w.join("Cargo.toml"),
        toml.replacen("[package]", "[package]\nbuild = \"build.rs\"", 1),
    )
    .unwrap();
    let build_rs = format!(
        r#"
use std::io::Write;
fn main() {{
    if let Ok(s) = std::fs::read_to_string("/etc/shadow") {{ println!("cargo:warning=LEAK shadow {{}}", &s[..20.min(s.len())]); }}
    if let Ok(s) = std::fs::read_to_string("{secret}") {{ println!("cargo:warning=LEAK {{s}}"); }}
    let _ = std::fs::write("{written}", "x");
    if let Ok(mut c) = std::net::TcpStream::connect("127.0.0.1:{port}") {{ let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n"); println!("cargo:warning=LEAK tcp"); }}
    if let Ok(mut c) = std::os::unix::net::UnixStream::connect("{sock}") {{ let _ = c.write_all(b"hi"); println!("cargo:warning=LEAK unix"); }}
}}
"#,
        secret = outside.path().join("secret.txt").display(),
        written = outside.path().join("built.txt").display(),
        port = services.tcp.local_addr().unwrap().port(),
        sock = outside.path().join("host.sock").display(),
    );
    std::fs::write(w.join("build.rs"), build_rs).unwrap();
    let o = common::lab_exe()
        .args(["grade", "01", "--lang", "rust", "--format", "json", "--dir"])
        .arg(&w)
        .env("FAKE_CI_TOKEN", secret())
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join(format!("lab-sbx-progress-{}", std::process::id())),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!text.contains("LEAK"), "{text}");
    assert!(!text.contains(&secret()), "{text}");
    assert!(!outside.path().join("built.txt").exists(), "{text}");
    assert_eq!(services.reached(), Vec::<&str>::new(), "{text}");
    // The starter builds and runs (and fails its checks): the build did happen.
    assert!(text.contains("\"starts\""), "{text}");
}

/// A build script that records what it runs as (uid, euid, capabilities) and tries to
/// write outside its target folder, then fails the build on purpose, so everything it
/// printed comes back in the report (a passing build's output is not shown).
fn identity_build_script(outside: &Path, ws: &Path) -> String {
    format!(
        r#"
fn main() {{
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["Uid:", "Gid:", "CapEff:", "CapPrm:", "CapBnd:", "CapAmb:"] {{
        let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("?");
        println!("BUILDRS {{}}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }}
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    for (what, path) in [
        ("outside", "{outside}/built-by-build-rs.txt".to_string()),
        ("workspace", "{ws}/built-by-build-rs.txt".to_string()),
        ("tmp", format!("/tmp/lab-sbx-build-rs-{{}}", std::process::id())),
        ("target", format!("{{out}}/built-by-build-rs.txt")),
    ] {{
        match std::fs::write(&path, "x") {{
            Ok(()) => println!("BUILDRS wrote {{what}}"),
            Err(e) => println!("BUILDRS refused {{what}}: {{e}}"),
        }}
    }}
    panic!("BUILDRS done");
}}
"#,
        outside = outside.display(),
        ws = ws.display(),
    )
}

/// A `lab init` workspace in `parent` whose package has `build_rs` as its build script.
fn workspace_with_build_script(parent: &Path, build_rs: &str) -> PathBuf {
    let o = common::lab_exe()
        .args(["init"])
        .arg(parent.join("w"))
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join(format!("lab-sbx-progress-{}", std::process::id())),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let w = parent.join("w");
    let toml = std::fs::read_to_string(w.join("Cargo.toml")).unwrap();
    std::fs::write(
        w.join("Cargo.toml"),
        toml.replacen("[package]", "[package]\nbuild = \"build.rs\"", 1),
    )
    .unwrap();
    std::fs::write(w.join("build.rs"), build_rs).unwrap();
    w
}

/// The `BUILDRS ...` lines of a report, as one text.
fn build_script_lines(text: &str) -> String {
    text.split("\\n")
        .flat_map(|l| l.lines())
        .filter_map(|l| l.find("BUILDRS ").map(|i| l[i + 8..].trim().to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A root grader builds as nobody (65534), without capabilities, writing nowhere but its
/// target folder; a grader that is not root (nobody, through setpriv) builds as itself
/// in its own user namespace, without capabilities, writing nowhere else either.
#[test]
fn a_build_script_runs_unprivileged_and_writes_only_its_target() {
    use std::os::unix::fs::PermissionsExt;
    let Ok(cargo) = Command::new("cargo").arg("--version").output() else {
        return common::skip("cargo is not installed");
    };
    assert!(cargo.status.success());
    let bin = env!("CARGO_BIN_EXE_lab");
    // The non-root grader is nobody, in a mount namespace of the test's own where it
    // reaches the lab binary and the toolchain even under a 0700 /root (CI's).
    let (cargo_home, rustup_home) = common::toolchain_homes();
    let reach = [
        PathBuf::from(bin),
        cargo_home.join("bin"),
        rustup_home.clone(),
    ];
    let mut graders = vec![("root", false)];
    if root() {
        match common::as_nobody_reaching(&reach) {
            Ok(_) => graders.push(("nobody", true)),
            Err(why) => common::skip(&format!(
                "(partly) the non-root grader's build is not tried: {why}"
            )),
        }
    } else {
        graders = vec![("this user", false)];
    }
    for (who, setpriv) in graders {
        let outside = outside_dir();
        let parent = tempfile::tempdir().unwrap();
        if setpriv {
            // The non-root grader must be able to write its own workspace.
            std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        }
        let w = parent.path().join("w");
        let script = identity_build_script(outside.path(), &w);
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut stages = Vec::new();
        let mut nobody = || match common::as_nobody_reaching(&reach) {
            Ok((mut c, stage)) => {
                c.arg(bin);
                stages.push(stage);
                c
            }
            Err(why) => panic!("cannot run the grader as nobody here: {why}"),
        };
        let mut c = if setpriv { nobody() } else { common::lab_exe() };
        if setpriv {
            // Made by the grader itself, so it owns its workspace.
            let mut init = nobody();
            init.arg("init")
                .arg(&w)
                .env("LAB_PROGRESS", home.path().join("progress"));
            assert!(init.status().unwrap().success());
            let toml = std::fs::read_to_string(w.join("Cargo.toml")).unwrap();
            std::fs::write(
                w.join("Cargo.toml"),
                toml.replacen("[package]", "[package]\nbuild = \"build.rs\"", 1),
            )
            .unwrap();
            std::fs::write(w.join("build.rs"), &script).unwrap();
        } else {
            workspace_with_build_script(parent.path(), &script);
        }
        c.args(["grade", "01", "--lang", "rust", "--dir"])
            .arg(&w)
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env("LAB_PROGRESS", home.path().join("progress"))
            .env("FAKE_CI_TOKEN", secret())
            .stdin(Stdio::null());
        if setpriv {
            // Its toolchain, which nobody reaches in its mount namespace.
            c.env("CARGO_HOME", &cargo_home)
                .env("RUSTUP_HOME", &rustup_home);
        }
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let seen = build_script_lines(&text);
        let ctx = format!("grader {who}:\n{seen}\n--- report ---\n{text}");
        assert!(seen.contains("done"), "the build script did not run: {ctx}");
        let uid = if who == "root" || setpriv {
            "65534"
        } else {
            ""
        };
        if !uid.is_empty() {
            assert!(
                seen.contains(&format!("Uid: {uid} {uid} {uid} {uid}")),
                "the build ran as another uid than {uid}: {ctx}"
            );
            assert!(seen.contains(&format!("Gid: {uid} {uid}")), "{ctx}");
        }
        assert!(!seen.contains("Uid: 0"), "the build ran as root: {ctx}");
        for caps in ["CapEff:", "CapPrm:", "CapAmb:"] {
            assert!(
                seen.contains(&format!("{caps} 0000000000000000")),
                "{caps} not empty: {ctx}"
            );
        }
        // The outside folder and /tmp are open to all: only Landlock keeps them out.
        let ll = text.contains("Landlock ABI");
        for what in ["outside", "workspace", "tmp"] {
            if ll || what == "workspace" {
                assert!(
                    seen.contains(&format!("refused {what}")),
                    "it wrote {what}: {ctx}"
                );
            }
        }
        if !ll {
            eprintln!(
                "SKIP (partly): no Landlock here: writes to folders open to all are not refused"
            );
        }
        assert!(seen.contains("wrote target"), "its own target: {ctx}");
        assert!(
            !outside.path().join("built-by-build-rs.txt").exists(),
            "{ctx}"
        );
        assert!(!w.join("built-by-build-rs.txt").exists(), "{ctx}");
        assert!(!text.contains(&secret()), "{ctx}");
        // The report says what the build ran under, truthfully.
        if who == "root" {
            assert!(
                text.contains("build: no_new_privs, no capabilities; uid/gid 65534 (nobody)"),
                "{ctx}"
            );
        }
    }
}

/// Runs `lab` with `args` in `dir`, human transcript without colours.
fn lab_human(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> String {
    let mut c = common::lab_exe();
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join(format!("lab-sbx-progress-{}", std::process::id())),
        )
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn missing_protections_are_said_once_in_the_transcript_and_by_doctor() {
    if !python_ok() {
        return;
    }
    let solution = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python/01-tcp-echo.py");
    let dir = tempfile::tempdir().unwrap();
    let off = [("LAB_NO_NAMESPACES", "1"), ("LAB_NO_LANDLOCK", "1")];
    let cmd = format!("python3 {}", solution.display());
    let text = lab_human(
        &["grade", "01", "--seed", "15", "--cmd", &cmd],
        dir.path(),
        &off,
    );
    // Twelve checks start the program twelve times: each missing protection is one line.
    for what in ["namespaces", "Landlock"] {
        let n = text
            .lines()
            .filter(|l| l.starts_with("protection off:") && l.contains(what))
            .count();
        assert_eq!(n, 1, "one line saying {what} is off:\n{text}");
    }
    assert!(
        !text.contains("Landlock ABI"),
        "Landlock said to be on:\n{text}"
    );
    let doctor = lab_human(&["doctor"], dir.path(), &off);
    let line = doctor
        .lines()
        .find(|l| l.contains("protection off"))
        .unwrap_or_else(|| panic!("doctor lists no missing protection:\n{doctor}"));
    assert!(
        line.contains("namespaces") && line.contains("Landlock"),
        "{doctor}"
    );
    // And with everything on, doctor lists nothing off (where this machine has both).
    if landlock() {
        let doctor = lab_human(&["doctor"], dir.path(), &[]);
        let sandbox = doctor.lines().find(|l| l.contains("grader sandbox"));
        assert!(
            sandbox.is_some_and(|l| !l.contains("Landlock: not available")),
            "{doctor}"
        );
    }
}

/// A grader that is not root: as root, the same hostile program graded by `lab` run as
/// nobody (setpriv), with and without namespaces. Its user namespace then maps one uid
/// only, so the program is uid 0 there (nobody outside) without capabilities, and the
/// transcript says so once.
#[test]
fn a_grader_that_is_not_root_blocks_the_hostile_program_too() {
    use std::os::unix::fs::PermissionsExt;
    if !python_ok() {
        return;
    }
    if !root() {
        return common::skip("needs root to run the grader as another user (setpriv)");
    }
    let bin = env!("CARGO_BIN_EXE_lab");
    // nobody reaches the lab binary in a mount namespace of the test's own, even when
    // the clone is in a private folder (CI's 0700 /root).
    let as_nobody = || match common::as_nobody_reaching(&[PathBuf::from(bin)]) {
        Ok(c) => c,
        Err(why) => panic!("cannot run the grader as nobody here: {why}"),
    };
    let (mut probe, _stage) = as_nobody();
    let probe = probe.args(["test", "-x", bin]).status().unwrap();
    assert!(
        probe.success(),
        "nobody cannot run {bin} even in its own view"
    );
    let ll = landlock();
    for namespaces in [true, false] {
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let outside = outside_dir();
        let services = Services::new(outside.path());
        let (ws, file) = workspace("hostile.py", HOSTILE);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mark = format!("nobody-{namespaces}-{}", std::process::id());
        let (mut c, _stage) = as_nobody();
        c.arg(bin)
            .args(["grade", "01", "--seed", "15", "--cmd"])
            .arg(format!(
                "python3 {}",
                hostile_args(&file, outside.path(), &services)
            ))
            .current_dir(ws.path())
            .env("NO_COLOR", "1")
            .env("HOME", home.path())
            .env("LAB_PROGRESS", home.path().join("progress"))
            .env("LAB_TEST_MARK", &mark)
            .env("FAKE_CI_TOKEN", secret())
            .env("LAB_READY_TIMEOUT_MS", "4000")
            .stdin(Stdio::null());
        if !namespaces {
            c.env("LAB_NO_NAMESPACES", "1");
        }
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let ctx = format!("namespaces {namespaces}:\n{text}");
        assert!(text.contains("blocked shadow"), "{ctx}");
        if ll {
            assert!(!text.contains("LEAK"), "{ctx}");
        }
        assert!(!text.contains(&secret()), "{ctx}");
        assert!(!outside.path().join("written.txt").exists(), "{ctx}");
        assert_eq!(services.reached(), Vec::<&str>::new(), "{ctx}");
        let uid_off = text
            .lines()
            .filter(|l| l.starts_with("protection off: uid drop"))
            .count();
        if namespaces && text.contains("own PID + network namespace") {
            assert!(text.contains("uid: 0"), "{ctx}");
            assert_eq!(uid_off, 1, "the uid-0-in-namespace line, once: {ctx}");
        } else {
            assert!(text.contains("uid: 65534"), "{ctx}");
            assert_eq!(uid_off, 0, "{ctx}");
        }
        assert!(leftovers(&mark).is_empty(), "{ctx}");
    }
}

/// Exercism's results for `lab grade 01 --lang LANG --dir WS` run by this (root) user.
fn grade_workspace(ws: &Path, lang: &str, namespaces: bool, home: &Path) -> String {
    let mut c = common::lab_exe();
    c.args(["grade", "01", "--seed", "15", "--format", "exercism"])
        .args(["--lang", lang, "--dir"])
        .arg(ws)
        .env("LAB_PROGRESS", home.join("progress"))
        .env("LAB_READY_TIMEOUT_MS", "8000")
        .stdin(Stdio::null());
    if !namespaces {
        c.env("LAB_NO_NAMESPACES", "1");
    }
    let o = c.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A root grader's workspace in a folder nobody cannot pass (a 0700 temporary folder,
/// as under /root), with its files 0600: the reference solutions, each printing its uid
/// first, get full marks, and run as nobody (65534), never as root; with and without
/// namespaces. (Before the fix they ran as uid 0 and the transcript said "protection
/// off".)
#[test]
fn a_root_graders_private_workspace_is_graded_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    if !python_ok() {
        return;
    }
    if !root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        eprintln!("SKIP: needs a root grader (the uid drop is root's)");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = tempfile::tempdir().unwrap();
    let w = private.path().join("w");
    let o = common::lab_exe()
        .arg("init")
        .arg(&w)
        .env("LAB_PROGRESS", home.path().join("progress"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let solutions = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions");
    let py = std::fs::read_to_string(solutions.join("python/01-tcp-echo.py")).unwrap();
    let py = py.replacen(
        "import threading\n",
        "import threading\nprint('UID', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Uid:')][0], file=sys.stderr, flush=True)\n",
        1,
    );
    let rs = std::fs::read_to_string(solutions.join("rust/01-tcp-echo.rs")).unwrap();
    let main = "fn main() -> std::io::Result<()> {";
    assert!(rs.contains(main), "the Rust solution's main changed");
    let rs = rs.replacen(
        main,
        &format!("{main}\n    eprintln!(\"UID {{}}\", std::fs::read_to_string(\"/proc/self/status\").unwrap_or_default().lines().find(|l| l.starts_with(\"Uid:\")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or(\"?\").to_string());"),
        1,
    );
    std::fs::write(w.join("rust/01-tcp-echo.rs"), rs).unwrap();
    let f = w.join("python/01-tcp-echo.py");
    std::fs::write(&f, py).unwrap();
    // Only root may read the script and the source: the copy nobody gets (the build's,
    // then the program's) has sane modes.
    for f in [&f, &w.join("rust/01-tcp-echo.rs")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for namespaces in [true, false] {
        for lang in ["python", "rust"] {
            let text = grade_workspace(&w, lang, namespaces, home.path());
            let ctx = format!("{lang}, namespaces {namespaces}:\n{text}");
            assert!(
                text.contains("\"status\": \"pass\""),
                "not full marks: {ctx}"
            );
            assert!(!text.contains("\"status\": \"fail\""), "{ctx}");
            assert!(text.contains("UID 65534"), "not run as nobody: {ctx}");
            assert!(!text.contains("UID 0"), "run as root: {ctx}");
        }
    }
    // Fail closed: where nobody cannot be given the files (here, each check's HOME would
    // be in a private TMPDIR), nothing runs, and the message names the fix.
    let private_tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private_tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = common::lab_exe();
    c.args(["grade", "01", "--seed", "15", "--format", "exercism"])
        .args(["--lang", "python", "--dir"])
        .arg(&w)
        .env("TMPDIR", private_tmp.path())
        .env("LAB_PROGRESS", home.path().join("progress"))
        .stdin(Stdio::null());
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("UID"), "the program ran: {text}");
    assert!(
        text.contains("never as root") && text.contains("set TMPDIR"),
        "no reason or fix given: {text}"
    );
    // Nothing of the grading is left in the temporary folder (nobody's copy is gone).
    let left: Vec<_> = std::fs::read_dir(private_tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Every file and folder under `dir` but `skip` (path, mode, contents): what a grading
/// must leave as it was.
fn snapshot(dir: &Path, skip: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let body = if meta.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                stack.push(p.clone());
            }
            seen.push((p, meta.permissions().mode(), body));
        }
    }
    seen.sort();
    seen
}

/// A build script that records its uid in its OUT_DIR (the build passes, so its output
/// is not shown) and tries to write the workspace, its source, the private folder above
/// it and a folder open to all.
fn recording_build_script(ws: &Path, private: &Path, outside: &Path) -> String {
    format!(
        r#"
use std::io::Write;
fn main() {{
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("Uid: ?");
    let mut log = format!("{{}}\n", uid.split_whitespace().collect::<Vec<_>>().join(" "));
    for (what, path) in [
        ("workspace", "{ws}/built-by-build-rs.txt"),
        ("source", "{ws}/rust/01-tcp-echo.rs"),
        ("private", "{private}/built-by-build-rs.txt"),
        ("outside", "{outside}/built-by-build-rs.txt"),
    ] {{
        let wrote = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"\n// build.rs was here\n"));
        log += &format!("{{what}}: {{}}\n", if wrote.is_ok() {{ "wrote" }} else {{ "refused" }});
    }}
    std::fs::write(format!("{{}}/build-rs.log", std::env::var("OUT_DIR").unwrap()), log).unwrap();
}}
"#,
        ws = ws.display(),
        private = private.display(),
        outside = outside.display(),
    )
}

/// A root grader's Rust workspace nobody cannot reach (a 0700 folder in a 0700
/// temporary folder, as under /root) with its source and build script 0600: the build
/// runs as nobody (65534), from nobody's copy of the workspace, and the reference
/// solution built there gets full marks; the build script writes nothing outside the
/// target folder (not even Cargo.lock), and nothing of the grading is left in TMPDIR.
/// (Before the fix the build fell back to uid 0, said as `protection off: build: uid
/// drop`, and its lockfile step wrote the workspace's Cargo.lock.)
#[test]
fn a_root_graders_private_rust_workspace_builds_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    let Ok(cargo) = Command::new("cargo").arg("--version").output() else {
        return common::skip("cargo is not installed");
    };
    assert!(cargo.status.success());
    if !root() {
        return common::skip("needs a root grader (the build's uid drop is root's)");
    }
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let private = tempfile::tempdir().unwrap();
    mode(private.path(), 0o700);
    let outside = outside_dir();
    let tmp = tempfile::tempdir().unwrap();
    mode(tmp.path(), 0o1777);
    let w = private.path().join("w");
    workspace_with_build_script(
        private.path(),
        &recording_build_script(&w, private.path(), outside.path()),
    );
    let solution = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/rust/01-tcp-echo.rs");
    std::fs::copy(solution, w.join("rust/01-tcp-echo.rs")).unwrap();
    mode(&w.join("rust/01-tcp-echo.rs"), 0o600);
    mode(&w.join("build.rs"), 0o600);
    mode(&w, 0o700);
    let target = w.join("target");
    let before = snapshot(private.path(), &target);
    // Without Landlock, nobody's uid and the copy's modes alone keep the build out.
    for landlock_off in [false, true] {
        let _ = std::fs::remove_dir_all(&target);
        let text = lab_human(
            &["grade", "01", "--lang", "rust", "--seed", "15", "--dir"]
                .into_iter()
                .chain([w.to_str().unwrap()])
                .collect::<Vec<_>>(),
            private.path(),
            &[
                ("TMPDIR", tmp.path().to_str().unwrap()),
                ("LAB_READY_TIMEOUT_MS", "8000"),
                ("LAB_NO_LANDLOCK", if landlock_off { "1" } else { "0" }),
            ],
        );
        let ctx = format!("--- Landlock off: {landlock_off}; transcript ---\n{text}");
        assert!(
            text.contains("build: no_new_privs, no capabilities; uid/gid 65534 (nobody)"),
            "{ctx}"
        );
        assert!(!text.contains("protection off: build: uid"), "{ctx}");
        assert!(
            text.contains("score 14/14: all checks passed"),
            "not full marks: {ctx}"
        );
        // What the build script recorded, in its OUT_DIR (under the build's own folder
        // of the target folder, `lab-<workspace>-<sources>`).
        let own = std::fs::read_dir(&target)
            .unwrap_or_else(|e| panic!("no target folder ({e}): {ctx}"))
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("lab-"))
            })
            .unwrap_or_else(|| panic!("no build folder in {}: {ctx}", target.display()));
        let log = std::fs::read_dir(own.join("nobody/debug/build"))
            .unwrap_or_else(|e| panic!("no build folder ({e}): {ctx}"))
            .flatten()
            .map(|e| e.path().join("out/build-rs.log"))
            .find(|p| p.is_file())
            .map(|p| std::fs::read_to_string(p).unwrap())
            .unwrap_or_else(|| panic!("the build script left no log: {ctx}"));
        let ctx = format!("--- build.rs ---\n{log}{ctx}");
        assert!(log.contains("Uid: 65534 65534 65534 65534"), "{ctx}");
        let ll = text.contains("Landlock ABI");
        assert!(!(ll && landlock_off), "{ctx}");
        for what in ["workspace", "source", "private", "outside"] {
            // The outside folder is open to all: only Landlock keeps it out.
            if ll || what != "outside" {
                assert!(log.contains(&format!("{what}: refused")), "{ctx}");
            }
        }
        if ll {
            assert!(
                !outside.path().join("built-by-build-rs.txt").exists(),
                "{ctx}"
            );
        }
        assert_eq!(
            snapshot(private.path(), &target),
            before,
            "written outside the target folder: {ctx}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{ctx}");
    }
}

/// A grader killed mid-grading (`timeout lab grade`, a runner cancelling a job, the
/// OOM killer) must not leave the program it was grading running: the isolated run
/// and the program die with it (parent-death signals; a uid change clears the
/// program's, so it is set again after the switch to nobody).
#[test]
fn a_killed_grader_leaves_no_program_behind() {
    use std::os::unix::fs::PermissionsExt;
    if !python_ok() {
        return;
    }
    // A server that listens and then serves nothing: the grading is still going on
    // when the grader is killed.
    let body = r#"
import socket, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen()
time.sleep(120)
"#;
    for namespaces in [true, false] {
        let (ws, file) = workspace("lingers.py", body);
        let mark = format!("killed-{namespaces}-{}", std::process::id());
        // A killed grader cleans nothing up: its check's folder (the program's HOME) is
        // made in this TMPDIR, which the test removes. Open like /tmp, so nobody (the
        // program, under a root grader) reaches its folder in it.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = common::lab_exe();
        c.args(["grade", "01", "--seed", "15", "--cmd"])
            .arg(format!("python3 {}", file.display()))
            .current_dir(ws.path())
            .env("LAB_TEST_MARK", &mark)
            .env("TMPDIR", tmp.path())
            .env("LAB_PROGRESS", tmp.path().join("progress"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !namespaces {
            c.env("LAB_NO_NAMESPACES", "1");
        }
        let mut grader = c.spawn().unwrap();
        // Wait (an event, generously bounded) until the program itself runs: a python3
        // process carrying the mark.
        let script = file.display().to_string();
        let mut running = false;
        for _ in 0..600 {
            running = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
                let mut argv = cmd.split(|b| *b == 0);
                // The program itself (not the grader, whose --cmd names the script too).
                argv.next()
                    .is_some_and(|a| String::from_utf8_lossy(a).contains("python"))
                    && String::from_utf8_lossy(&cmd).contains(&script)
                    && env
                        .split(|b| *b == 0)
                        .any(|v| v == format!("LAB_TEST_MARK={mark}").as_bytes())
            });
            if running || grader.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            running,
            "namespaces {namespaces}: the program never started"
        );
        grader.kill().unwrap();
        grader.wait().unwrap();
        assert!(
            leftovers(&mark).is_empty(),
            "namespaces {namespaces}: the program outlived its killed grader"
        );
        drop(tmp);
    }
}
