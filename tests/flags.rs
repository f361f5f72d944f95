//! Every numeric flag of every command, fed what a careless user or an attacker types:
//! the real binary must refuse each value as a usage error (exit 2) whose message names
//! the flag, never panic (exit 101), never hang. Also the command-line promises that are
//! not numbers: `lab run ID --help` shows the lab's own flags, `lab reset` refuses a
//! folder that is not a workspace, `--cmd ""` is refused, `lab latency --out` never
//! overwrites a run.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{lab, stderr, stdout};

/// Values no numeric flag accepts: signs, non-finite and out-of-range floats, hex,
/// empty and blank, past u64, trailing garbage, a non-ASCII digit, and (added below) a
/// 10 kB string.
const HOSTILE: &[&str] = &[
    "-1",
    "nan",
    "inf",
    "-inf",
    "1e300",
    "1e-300",
    "0x10",
    "",
    " ",
    "18446744073709551616",
    "5s5",
    "١",
    "-0.5ms",
];

/// (command, flag, bounds): each numeric flag with the flags that would bound the run
/// if the value were (wrongly) accepted. A bound that is the flag under test, or
/// conflicts with it, is left out.
fn numeric_flags() -> Vec<(&'static [&'static str], &'static str)> {
    const R01: &[&str] = &["run", "01"];
    const R02: &[&str] = &["run", "02"];
    const R03: &[&str] = &["run", "03"];
    const R04: &[&str] = &["run", "04"];
    const R05: &[&str] = &["run", "05"];
    const R06: &[&str] = &["run", "06"];
    const R07: &[&str] = &["run", "07"];
    const R08: &[&str] = &["run", "08"];
    const IMP: &[&str] = &["impair"];
    const LAT: &[&str] = &["latency"];
    const WATCH: &[&str] = &["watch", "02"];
    const CHECK: &[&str] = &["check", "02"];
    let mut v: Vec<(&[&str], &str)> = Vec::new();
    for f in ["--timeout", "--duration"] {
        v.push((R01, f));
        v.push((R02, f));
    }
    for f in [
        "--count",
        "--duration",
        "--rate",
        "--size",
        "--loss",
        "--dup",
        "--reorder",
        "--delay",
        "--jitter",
        "--seed",
        "--interval",
        "--rcvbuf",
        "--buffer",
        "--linger",
        "--idle",
        "--wait",
        "--end-markers",
        "--first-seq",
    ] {
        v.push((R03, f));
    }
    for f in ["--count", "--interval", "--size", "--ttl", "--timeout"] {
        v.push((R04, f));
    }
    for f in ["--idle-timeout", "--keepalive", "--duration"] {
        v.push((R05, f));
    }
    for f in [
        "--generate",
        "--rate",
        "--window",
        "--give-up",
        "--seed",
        "--narrate",
        "--duration",
        "--count",
    ] {
        v.push((R06, f));
    }
    for f in [
        "--buffer",
        "--baud",
        "--rate",
        "--seed",
        "--count",
        "--duration",
    ] {
        v.push((R07, f));
    }
    for f in ["--count", "--stream-seconds"] {
        v.push((R08, f));
    }
    for f in [
        "--loss",
        "--dup",
        "--reorder",
        "--delay",
        "--jitter",
        "--seed",
        "--duration",
    ] {
        v.push((IMP, f));
    }
    for f in [
        "--sizes",
        "--buffer-sizes",
        "--count",
        "--duration",
        "--warmup",
        "--rate",
        "--seed",
        "--serve-for",
    ] {
        v.push((LAT, f));
    }
    for f in ["--interval-ms", "--max-runs", "--seed"] {
        v.push((WATCH, f));
    }
    v.push((CHECK, "--seed"));
    v
}

/// Flags that end a command quickly if a hostile value were accepted; the ones that
/// are the flag under test or conflict with it are dropped.
fn bounds(cmd: &[&str], flag: &str) -> Vec<&'static str> {
    let pairs: &[(&str, &str)] = match cmd {
        ["run", "01" | "02"] => &[
            ("--role", "server"),
            ("--bind", "127.0.0.1:0"),
            ("--duration", "1"),
        ],
        ["run", "03"] => &[("--count", "10"), ("--wait", "1s")],
        ["run", "04"] => &[("--count", "1"), ("--timeout", "1")],
        ["run", "05"] => &[
            ("--role", "server"),
            ("--bind", "127.0.0.1:0"),
            ("--duration", "1"),
        ],
        // A sender to a closed port gives up after a second; it writes no file.
        ["run", "06"] => &[
            ("--role", "sender"),
            ("--connect", "127.0.0.1:9"),
            ("--generate", "1"),
            ("--give-up", "1"),
        ],
        ["run", "07"] => &[
            ("--role", "server"),
            ("--bind", "127.0.0.1:0"),
            ("--duration", "1"),
        ],
        ["run", "08"] => &[("--count", "10")],
        ["impair"] => &[("--listen", "127.0.0.1:0"), ("--duration", "1")],
        ["latency"] => &[("--count", "10"), ("--warmup", "1")],
        ["watch", _] => &[("--max-runs", "1")],
        _ => &[],
    };
    let conflicts = |b: &str| b == flag || (b == "--count" && flag == "--duration");
    pairs
        .iter()
        .filter(|(b, _)| !conflicts(b))
        .flat_map(|(b, v)| [*b, *v])
        .collect()
}

/// Runs `lab ARGS` with a deadline; returns (exit code, stderr), or `None` if it
/// outlived the deadline (it is then killed and reaped).
fn run_bounded(args: &[String]) -> Option<(Option<i32>, String)> {
    let mut child = lab()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lab");
    // Generous: a refusal takes milliseconds; 30 s covers a loaded 2-CPU machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for lab") {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .expect("piped stderr")
                .read_to_string(&mut err)
                .ok();
            return Some((status.code(), err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `lab ARGS` whose last word is `FLAG=VALUE`: None when it is refused cleanly
/// (exit 2, naming the flag, no panic), else what went wrong.
fn check_refused(args: &[String], flag: &str, value: &str) -> Option<String> {
    let cmd = &args[..args.len() - 1];
    let shown: String = value.chars().take(20).collect();
    let Some((code, err)) = run_bounded(args) else {
        return Some(format!(
            "lab {} {flag}={shown:?}: still running after 30 s (killed)",
            cmd.join(" ")
        ));
    };
    if code != Some(2) || !err.contains(flag) || err.contains("panicked") {
        return Some(format!(
            "lab {} {flag}={shown:?}: exit {code:?}, stderr: {}",
            cmd.join(" "),
            err.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(160)
                .collect::<String>()
        ));
    }
    None
}

#[test]
fn every_numeric_flag_refuses_hostile_values_with_exit_2_naming_the_flag() {
    let long = "7".repeat(10_000);
    let mut values: Vec<&str> = HOSTILE.to_vec();
    values.push(&long);
    let mut cases: Vec<(Vec<String>, &str, &str)> = Vec::new();
    for (cmd, flag) in numeric_flags() {
        for value in &values {
            let mut args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            args.extend(bounds(cmd, flag).iter().map(|s| s.to_string()));
            // `--flag=VALUE`: so that `-1` reaches the flag's parser as its value.
            args.push(format!("{flag}={value}"));
            cases.push((args, flag, value));
        }
    }
    // About a thousand short runs: one after another they took 40 s of CI (mostly
    // process start-up, one CPU busy). Four workers pull from one list; each run is its
    // own process on ephemeral ports, so the order does not matter.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((args, flag, value)) = cases.get(i) else {
                    break;
                };
                let failure = check_refused(args, flag, value);
                failures.lock().unwrap().extend(failure);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of the hostile values were not refused cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn durations_take_units_and_a_bare_number_is_seconds() {
    // Accepted forms run: a server that stops after 300 ms, written three ways.
    for d in ["0.3", "300ms", ".3s"] {
        let o = lab()
            .args([
                "run",
                "02",
                "--role",
                "server",
                "--bind",
                "127.0.0.1:0",
                "-q",
            ])
            .arg(format!("--duration={d}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "--duration={d}: {}", stderr(&o));
    }
    // A relay delay needs its unit, and the error says which to write.
    let o = common::run(&["impair", "--delay", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("10ms"), "{}", stderr(&o));
}

#[test]
fn lab_run_id_help_shows_the_labs_own_flags() {
    for h in ["--help", "-h"] {
        let o = common::run(&["run", "01", h]);
        assert!(o.status.success(), "lab run 01 {h}: {}", stderr(&o));
        let out = stdout(&o);
        // Lab 01's own flag with its own values: the generic `run` help has neither.
        assert!(out.contains("--role <ROLE>"), "lab run 01 {h}:\n{out}");
        for role in ["demo", "server", "client"] {
            assert!(
                out.contains(role),
                "lab run 01 {h} lacks role {role}:\n{out}"
            );
        }
        assert!(out.contains("lab run 01-tcp-echo"), "{out}");
        assert!(!out.contains("LAB FLAGS"), "generic help instead:\n{out}");
    }
    let o = common::run(&["run", "03", "--help"]);
    let out = stdout(&o);
    assert!(o.status.success() && out.contains("--loss <LOSS>"), "{out}");
    assert!(!out.contains("--timeout"), "03 has no --timeout:\n{out}");
    // `lab run --help` stays the generic help of `run`.
    let o = common::run(&["run", "--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("LAB FLAGS"), "{}", stdout(&o));
    assert!(
        !stdout(&o).contains('\x1b'),
        "no colour codes off a terminal"
    );
    // Flags after the id that are not `--help` still reach the lab.
    let o = common::run(&["run", "01", "--role", "teapot"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("teapot"), "{}", stderr(&o));
}

#[test]
fn reset_refuses_a_folder_that_is_not_a_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nonexistent");
    let o = common::run(&["reset", "01", "--dir", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(!missing.exists(), "reset created {}", missing.display());
    assert!(!stdout(&o).contains("Reset"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("lab init"),
        "names the fix: {}",
        stderr(&o)
    );
    // An existing folder that is no workspace is refused too, and left empty.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = common::run(&["reset", "01", "--dir", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // In a real workspace it restores only the language asked for, and says which
    // file it reset and where the previous version is.
    let ws = tmp.path().join("ws");
    assert!(common::run(&["init", ws.to_str().unwrap()])
        .status
        .success());
    let (rust, python) = (
        ws.join("rust/01-tcp-echo.rs"),
        ws.join("python/01-tcp-echo.py"),
    );
    let rust_starter = std::fs::read_to_string(&rust).unwrap();
    std::fs::write(&rust, "// my rust work\n").unwrap();
    std::fs::write(&python, "# my python work\n").unwrap();
    let dir = ws.to_str().unwrap();
    let o = common::run(&["reset", "01", "--lang", "python", "--dir", dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  python/01-tcp-echo.py"), "{out}");
    assert!(!out.contains("rust/01-tcp-echo.rs"), "{out}");
    assert!(
        out.contains(".lab-backup/01-tcp-echo-"),
        "names the backup: {out}"
    );
    assert_eq!(std::fs::read_to_string(&rust).unwrap(), "// my rust work\n");
    assert_ne!(
        std::fs::read_to_string(&python).unwrap(),
        "# my python work\n"
    );
    let backups: Vec<_> = std::fs::read_dir(ws.join(".lab-backup"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read_to_string(backups[0].join("python/01-tcp-echo.py")).unwrap(),
        "# my python work\n"
    );
    // Without --lang: the Rust file too; a file already the starter is said to be so.
    let o = common::run(&["reset", "01", "--lang", "python", "--dir", dir]);
    assert!(stdout(&o).contains("nothing to reset"), "{}", stdout(&o));
    let o = common::run(&["reset", "01", "--dir", dir]);
    assert!(
        stdout(&o).contains("  rust/01-tcp-echo.rs"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read_to_string(&rust).unwrap(), rust_starter);
}

#[test]
fn an_empty_cmd_is_a_usage_error_not_a_grade() {
    for cmd in ["", "   ", "\t"] {
        for sub in ["check", "grade"] {
            let o = common::run(&[sub, "02", "--cmd", cmd]);
            assert_eq!(
                o.status.code(),
                Some(2),
                "lab {sub} 02 --cmd {cmd:?}: {}{}",
                stdout(&o),
                stderr(&o)
            );
            assert!(stderr(&o).contains("--cmd"), "{}", stderr(&o));
        }
    }
}

#[test]
fn latency_out_never_overwrites_a_run_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let measure = |extra: &[&str]| {
        let mut c: Command = lab();
        c.args([
            "latency", "--count", "5", "--warmup", "1", "--sizes", "1", "--out",
        ])
        .arg(&out)
        .args(extra)
        .stdin(Stdio::null());
        c.output().unwrap()
    };
    let first = measure(&[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let summary = out.join("summary.json");
    let before = std::fs::read(&summary).unwrap();
    let again = measure(&[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(
        std::fs::read(&summary).unwrap(),
        before,
        "the run was touched"
    );
    let forced = measure(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(
        std::fs::read(&summary).unwrap(),
        before,
        "--force rewrites it"
    );
}
