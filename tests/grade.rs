//! The grader end to end, through the real binary: solutions get full marks, starters
//! fail, every mutant is caught by the check aimed at it (`lab dev check`), hostile
//! programs get a clear verdict and leave no process behind, every output format is
//! valid, and the student commands work on a fresh workspace.
//!
//! Needs python3 (student programs and mutants) and cargo (Rust solutions). Each test
//! prints the seed it used; `--seed` replays it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lab() -> Command {
    let mut c = common::lab();
    c.stdin(Stdio::null());
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fixed seed per test, printed so a failure can be replayed.
fn seed(name: &str) -> String {
    let s = name.bytes().map(u64::from).sum::<u64>() * 7919 % 1_000_000;
    eprintln!("{name}: seed {s}");
    s.to_string()
}

/// Processes still alive (not zombies) whose environment holds `LAB_TEST_MARK=mark`.
fn leftovers(mark: &str) -> Vec<String> {
    let needle = format!("LAB_TEST_MARK={mark}");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            let cmd = std::fs::read_to_string(e.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            found.push(format!("{name}: {cmd}"));
        }
    }
    found
}

/// Waits (bounded) until no marked process remains; returns what is left.
fn settle(mark: &str) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftovers(mark);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{s}"))
}

/// Checks a JUnit document as CI dashboards read it: Jenkins' xUnit plugin validates
/// against its junit-10.xsd (tests/schemas/) and drops a file that fails; `junitparser`
/// (PyPI) must read it. Returns one line per test case, `suite name result`, from
/// junitparser, or None when a tool is missing outside CI.
fn read_junit(xml: &[u8], dir: &Path) -> Option<Vec<String>> {
    let file = dir.join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    if !common::have("xmllint") {
        common::skip("xmllint missing (apt-get install libxml2-utils)");
        return None;
    }
    let o = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(repo().join("tests/schemas/junit-10.xsd"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "junit-10.xsd rejects lab's JUnit:\n{}\n{}",
        text(&o),
        String::from_utf8_lossy(xml)
    );
    let py = Command::new("python3")
        .args(["-c", "import sys\nfrom junitparser import JUnitXml\nx = JUnitXml.fromfile(sys.argv[1])\nfor s in x:\n    for c in s:\n        print(s.name, c.name, ','.join(type(r).__name__ for r in c.result) or 'pass')"])
        .arg(&file)
        .output()
        .unwrap();
    if String::from_utf8_lossy(&py.stderr).contains("No module named 'junitparser'") {
        common::skip("junitparser missing (pip install junitparser)");
        return None;
    }
    assert!(py.status.success(), "junitparser: {}", text(&py));
    Some(
        String::from_utf8_lossy(&py.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn dev_check_solutions_full_marks_starters_fail_mutants_caught() {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-exercises");
    let o = lab()
        .args(["dev", "check", "--root"])
        .arg(repo())
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let mutants = std::fs::read_dir(repo().join("tests/mutants"))
        .unwrap()
        .count();
    let variants = std::fs::read_dir(repo().join("tests/variants"))
        .unwrap()
        .count();
    // Every lab with an exercise x (solution + starter) x (Rust + Python), plus every
    // mutant and every correct variant.
    let labs = lab::labs::exercises().count();
    assert!(
        t.contains(&format!(
            "all {} items behave as required",
            4 * labs + mutants + variants
        )),
        "{t}"
    );
    // Rust mutants are built and caught like Python ones.
    assert!(t.contains("mutant tcp_lines_text.rs"), "{t}");
    for kind in [
        "solution (Rust)",
        "solution (Python)",
        "starter (Rust)",
        "starter (Python)",
    ] {
        assert_eq!(t.matches(kind).count(), labs, "{kind} for each lab:\n{t}");
    }
    assert!(!t.contains("BAD"), "{t}");
}

#[test]
fn mutant_metadata_names_real_checks_and_every_check_has_a_mutant() {
    // Every mutant targets an existing check, and every check but `starts` is the
    // target of at least one mutant (so each classic mistake is proven to be caught).
    let o = lab().args(["dev", "check", "--help"]).output().unwrap();
    assert!(o.status.success());
    let mut targets = Vec::new();
    for e in std::fs::read_dir(repo().join("tests/mutants"))
        .unwrap()
        .flatten()
    {
        let t = std::fs::read_to_string(e.path()).unwrap();
        // `# key: value` in Python, `// key: value` in Rust.
        let field = |k: &str| {
            t.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("# {k}: "))
                        .or_else(|| l.strip_prefix(&format!("// {k}: ")))
                })
                .unwrap_or_else(|| panic!("{} has no {k} header", e.path().display()))
                .to_string()
        };
        let (lab, check) = (field("lab"), field("caught-by"));
        targets.push((lab, check));
    }
    for (lab, checks) in [
        (
            "01-tcp-echo",
            &[
                "one_line",
                "byte_at_a_time",
                "lines_in_one_write",
                "utf8_split",
                "raw_bytes",
                "silent_client",
                "many_clients",
                "reset_mid_request",
                "slow_reader",
                "eof_half_close",
                "restart_same_port",
                "fd_leak",
                "idle_client",
            ][..],
        ),
        (
            "02-udp-echo",
            &[
                "one_byte",
                "size_1472",
                "size_8000",
                "size_65507",
                "binary_bytes",
                "two_senders",
                "burst",
            ][..],
        ),
        (
            "03-udp-loss",
            &[
                "clean_run",
                "loss",
                "duplicates",
                "reordering",
                "foreign",
                "stranger_same_session",
                "bounded_memory",
                "near_u64_max",
                "end_marker_repeated",
                "tail_loss",
            ][..],
        ),
        (
            "04-raw-icmp",
            &[
                "replies",
                "wire_format",
                "own_requests",
                "other_identifier",
                "ip_options",
                "silent_target",
                "odd_size",
            ][..],
        ),
        (
            "05-chat",
            &[
                "two_clients",
                "no_echo",
                "join_leave",
                "ten_clients",
                "byte_at_a_time",
                "lines_in_one_write",
                "reset_mid_line",
                "slow_reader",
                "fd_cycles",
                "vanished_receiver",
                "idle_clients",
            ][..],
        ),
        (
            "06-json-to-file",
            &[
                "one_record",
                "many_in_one_write",
                "byte_at_a_time",
                "split_and_merged",
                "invalid_lines",
                "resend",
                "kill_restart",
                "two_senders",
                "unicode_nested",
                "idle_sender",
            ][..],
        ),
        (
            "07-serial-stream",
            &[
                "every_byte_in_order",
                "two_clients",
                "client_leaves",
                "late_client_fresh",
                "slow_client",
                "buffers_of_k",
                "sample_age",
                "quiet_serial_idle",
            ][..],
        ),
    ] {
        for c in checks {
            let has = targets.iter().any(|(l, t)| l == lab && t == c);
            // one_byte has no dedicated mutant: the starters fail it.
            assert!(has || *c == "one_byte", "no mutant for {lab} {c}");
        }
    }
}

/// Grades a hostile program (lab 01) and returns the Gradescope document (its test
/// outputs carry the message, the transcript and the program's output).
fn grade_hostile(
    program: &str,
    namespaces: bool,
    seed: &str,
) -> (Output, serde_json::Value, Vec<String>) {
    let mark = format!("{program}-{namespaces}-{}", std::process::id());
    let path = repo().join("tests/programs").join(program);
    let mut c = lab();
    c.args([
        "grade",
        "01",
        "--format",
        "gradescope",
        "--seed",
        seed,
        "--cmd",
    ])
    .arg(format!("python3 {}", path.display()))
    .env("LAB_TEST_MARK", &mark)
    // None of these ever listens, so each waits the whole deadline: 8 s lets python3
    // start and write its first 16 KiB even on a loaded 2-CPU machine (with 3 s,
    // infinite_output.py had not written enough to be capped when the suite ran beside
    // other builds).
    .env("LAB_READY_TIMEOUT_MS", "8000");
    if !namespaces {
        c.env("LAB_NO_NAMESPACES", "1");
    }
    let o = c.output().unwrap();
    let left = settle(&mark);
    let v = json(&String::from_utf8_lossy(&o.stdout));
    (o, v, left)
}

#[test]
fn hostile_programs_get_a_clear_verdict_and_leave_no_process() {
    let seed = seed("hostile");
    let cases: &[(&str, &str)] = &[
        ("fork_bomb.py", "did not listen on TCP 127.0.0.1:"),
        ("infinite_output.py", "more bytes not kept"),
        ("never_listens.py", "is running but did not listen"),
        (
            "wrong_port.py",
            "read the port from the `--port N` argument",
        ),
        (
            "ignores_sigterm.py",
            "ignored SIGTERM and was killed with SIGKILL",
        ),
    ];
    // With namespaces (where the machine has them) and with the fallback sandbox. All
    // at once, but the fork bombs (which keep both CPUs busy until they are killed) in
    // a second round, so they do not starve the others' python3 of its start.
    let modes = [true, false];
    let round = |bombs: bool| -> Vec<_> {
        std::thread::scope(|s| {
            let handles: Vec<_> = cases
                .iter()
                .filter(|(p, _)| (*p == "fork_bomb.py") == bombs)
                .flat_map(|&(p, want)| modes.iter().map(move |&ns| (p, want, ns)))
                .map(|(p, want, ns)| {
                    let seed = seed.clone();
                    s.spawn(move || (p, want, ns, grade_hostile(p, ns, &seed)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let mut results = round(false);
    results.extend(round(true));
    for (p, want, ns, (o, v, left)) in results {
        let ctx = format!("{p} (namespaces: {ns})");
        assert!(left.is_empty(), "{ctx} left processes behind: {left:?}");
        // Gradescope runners exit 0 whatever the grade; the score says it all.
        assert!(o.status.success(), "{ctx}: {}", text(&o));
        assert_eq!(v["score"], 0.0, "{ctx}: {v}");
        let tests = v["tests"].as_array().unwrap();
        assert_eq!(tests[0]["name"], "starts", "{ctx}");
        assert_eq!(tests[0]["status"], "failed", "{ctx}");
        let out = tests[0]["output"].as_str().unwrap();
        assert!(out.contains(want), "{ctx}: expected {want:?} in:\n{out}");
        assert!(
            tests[1..]
                .iter()
                .all(|t| t["output"].as_str().unwrap().starts_with("not run")),
            "{ctx}: {v}"
        );
        if p == "fork_bomb.py" {
            // The same verdict as never_listens.py, so the verdict alone says nothing
            // of containment: the bomb reports how many of its 400 forks went through,
            // and the pids cgroup (or RLIMIT_NPROC, both 128 of room) must have
            // refused the rest. `left` above checks that none of them survived.
            let counts = out
                .lines()
                .find_map(|l| l.strip_prefix("fork bomb: "))
                .unwrap_or_else(|| panic!("{ctx}: the bomb's count is missing:\n{out}"));
            let num = |word: &str| -> u32 {
                counts
                    .split(", ")
                    .find_map(|part| part.strip_suffix(word))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{ctx}: no {word:?} in {counts:?}"))
            };
            let (forked, refused) = (num(" forked"), num(" refused"));
            assert!(
                forked <= 160 && refused > 0,
                "{ctx}: {forked} forks went through and {refused} were refused: no cap on processes"
            );
        }
        if p == "infinite_output.py" {
            // Output is capped (16 KiB per stream plus the report's framing).
            assert!(
                out.len() < 40_000,
                "{ctx}: {} bytes of output kept",
                out.len()
            );
        }
    }
}

/// Grades lab 02 against a mutant that fails three size checks at once (fast: the
/// truncated echo comes straight back) in `format`.
fn grade_02(format: &str, seed: &str) -> Command {
    let mut c = lab();
    c.args(["grade", "02", "--format", format, "--seed", seed, "--cmd"])
        .arg(format!(
            "python3 {}",
            repo().join("tests/mutants/udp_buffer_1024.py").display()
        ));
    c
}

/// Runs commands side by side, four at a time (as `lab dev check` grades), and
/// returns their outputs in order.
fn outputs(cmds: Vec<Command>) -> Vec<Output> {
    let mut cmds = cmds;
    let mut out = Vec::new();
    while !cmds.is_empty() {
        let wave: Vec<Command> = cmds.drain(..cmds.len().min(4)).collect();
        out.extend(std::thread::scope(|s| {
            let hs: Vec<_> = wave
                .into_iter()
                .map(|mut c| s.spawn(move || c.output().unwrap()))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        }));
    }
    out
}

#[test]
fn every_output_format_is_valid() {
    let seed = seed("formats");
    let tmp = tempfile::tempdir().unwrap();
    // The same program and seed in every format: gradings that wait on the network
    // more than on the CPU, so they run side by side and are checked one by one after
    // (one after another they took a minute of CI).
    let gh_out = tmp.path().join("github_output");
    let gh_out_actions = tmp.path().join("github_output_actions");
    let human = tmp.path().join("report/human.txt");
    let mut gh = grade_02("gh-classroom", &seed);
    gh.env("GITHUB_OUTPUT", &gh_out);
    // Under the workflow: GitHub Actions and a step-output file.
    let mut actions = grade_02("gh-classroom", &seed);
    actions
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &gh_out_actions);
    let mut human_cmd = grade_02("human", &seed);
    human_cmd.arg("--out").arg(&human);
    let [json_o, again, junit_o, gh_o, actions_o, gradescope_o, exercism_o, human_o]: [Output; 8] =
        outputs(vec![
            grade_02("json", &seed),
            grade_02("json", &seed),
            grade_02("junit", &seed),
            gh,
            actions,
            grade_02("gradescope", &seed),
            grade_02("exercism", &seed),
            human_cmd,
        ])
        .try_into()
        .unwrap();

    // json: the shape; failed checks carry a message.
    let o = json_o;
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed grade exits 1: {}",
        text(&o)
    );
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["lab"], "02-udp-echo");
    assert_eq!(v["max_score"], 8.0);
    assert_eq!(v["score"], 5.0, "{v}");
    for t in v["tests"].as_array().unwrap() {
        for k in ["name", "status", "score", "max_score", "message"] {
            assert!(t.get(k).is_some(), "{k} missing in {t}");
        }
    }
    let failed: Vec<&str> = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "fail")
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["size_1472", "size_8000", "size_65507"]);
    // Deterministic: the same seed gives the same document (random payloads included).
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&o.stdout)
    );

    // junit: parses as XML (Python's parser), counts add up.
    let o = junit_o;
    let xml = tmp.path().join("junit.xml");
    std::fs::write(&xml, &o.stdout).unwrap();
    let py = Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); s = r.find('testsuite'); print(r.tag, r.get('tests'), r.get('failures'), len(s.findall('testcase')), len(s.findall('testcase/failure')), s.find('properties/property').get('name'))"])
        .arg(&xml)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "testsuites 8 3 8 3 seed",
        "{}",
        text(&py)
    );
    if let Some(cases) = read_junit(&o.stdout, tmp.path()) {
        assert_eq!(cases.len(), 8, "{cases:?}");
        assert!(
            cases.contains(&"02-udp-echo size_1472 Failure".to_string()),
            "{cases:?}"
        );
    }

    // gh-classroom: ::notice lines, result= base64 of the documented JSON, also written
    // to $GITHUB_OUTPUT.
    let o = gh_o;
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        t.contains("::notice title=Autograding complete::Points 5/8"),
        "{t}"
    );
    assert!(
        t.contains("::notice title=Autograding report::{\"totalPoints\":5,\"maxPoints\":8}"),
        "{t}"
    );
    let result = t
        .lines()
        .find_map(|l| l.strip_prefix("result="))
        .expect("result= line")
        .to_string();
    let file = std::fs::read_to_string(&gh_out).unwrap();
    assert_eq!(file.trim(), format!("result={result}"));
    let py = Command::new("python3")
        .args(["-c", "import base64, sys; sys.stdout.write(base64.b64decode(sys.argv[1], validate=True).decode())", &result])
        .output()
        .unwrap();
    let v = json(&String::from_utf8_lossy(&py.stdout));
    assert_eq!(v["version"], 1);
    assert_eq!(v["status"], "fail");
    assert_eq!(v["max_score"], 8.0);
    let tests = v["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 8);
    for t in tests {
        for k in [
            "name",
            "status",
            "score",
            "message",
            "test_code",
            "filename",
            "line_no",
            "duration",
        ] {
            assert!(t.get(k).is_some(), "{k} missing in {t}");
        }
    }
    let sum: f64 = tests.iter().map(|t| t["score"].as_f64().unwrap()).sum();
    assert_eq!(sum, 5.0, "scores sum to the points reported");
    // Under the workflow (GitHub Actions, a step-output file), the reporter prints the
    // notices: lab prints them only outside it, and still hands over `result`.
    let o = actions_o;
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!t.contains("::notice"), "the reporter prints these: {t}");
    assert!(t.contains("::error title=02-udp-echo size_1472::"), "{t}");
    let file = std::fs::read_to_string(&gh_out_actions).unwrap();
    let printed = t.lines().find(|l| l.starts_with("result=")).unwrap_or("");
    assert!(printed.len() > 100, "{t}");
    assert_eq!(file.trim(), printed, "the reporter gets the result");

    // gradescope: exits 0 whatever the grade; documented fields.
    let o = gradescope_o;
    assert!(o.status.success());
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["score"], 5.0);
    assert!(v["execution_time"].is_u64() && v["output"].is_string());
    for t in v["tests"].as_array().unwrap() {
        assert!(["passed", "failed"].contains(&t["status"].as_str().unwrap()));
        for k in [
            "score",
            "max_score",
            "name",
            "number",
            "output",
            "visibility",
        ] {
            assert!(t.get(k).is_some(), "{k} missing in {t}");
        }
    }

    // exercism v2: exits 0; tests in order with pass/fail; output capped at 500.
    let o = exercism_o;
    assert!(o.status.success());
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["version"], 2);
    assert_eq!(v["status"], "fail");
    let tests = v["tests"].as_array().unwrap();
    assert_eq!(tests[0]["name"], "starts");
    assert_eq!(tests[2]["status"], "fail");
    assert!(
        tests[2]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes back"),
        "{}",
        tests[2]
    );
    assert!(tests.iter().all(|t| t["output"]
        .as_str()
        .is_none_or(|s| s.chars().count() <= 500)));

    // human, written with --out.
    let o = human_o;
    assert_eq!(o.status.code(), Some(1));
    let h = std::fs::read_to_string(&human).unwrap();
    assert!(
        h.contains("size_1472")
            && h.contains("FAIL")
            && h.contains("hint:")
            && h.contains(&format!("--seed {seed}")),
        "{h}"
    );
    assert!(
        h.contains("unmet: client A sent 1472 bytes and got 1024 bytes back"),
        "{h}"
    );
}

#[test]
fn exercism_reports_a_build_failure_as_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = lab().arg("init").arg(tmp.path()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        tmp.path().join("rust/02-udp-echo.rs"),
        "fn main() { this is not rust }\n",
    )
    .unwrap();
    let o = lab()
        .args([
            "grade", "02", "--lang", "rust", "--format", "exercism", "--dir",
        ])
        .arg(tmp.path())
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-broken"),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "exercism runners exit 0: {}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["status"], "error");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("cargo build --bin udp-echo failed")),
        "{v}"
    );
    // JUnit: a failed build is an error case, not a green suite of zero tests.
    let o = lab()
        .args([
            "grade", "02", "--lang", "rust", "--format", "junit", "--dir",
        ])
        .arg(tmp.path())
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-broken"),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    if let Some(cases) = read_junit(&o.stdout, tmp.path()) {
        assert_eq!(cases, ["02-udp-echo build Error"]);
    }
}

/// Writes a Python program to `dir` and returns the `--cmd` that runs it.
fn python_program(dir: &Path, name: &str, code: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, code).unwrap();
    format!("python3 {}", path.display())
}

fn grade_cmd(format: &str, cmd: &str) -> Output {
    lab()
        .args([
            "grade", "02", "--format", format, "--seed", "4242", "--cmd", cmd,
        ])
        .output()
        .unwrap()
}

#[test]
fn a_program_that_crashes_at_start_is_an_error_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let cmd = python_program(
        tmp.path(),
        "crash.py",
        "import sys\nprint('starting up', file=sys.stderr, flush=True)\n1 / 0\n",
    );
    // Exercism: nothing could be judged, so a top-level error saying why, traceback
    // included (the spec's own example is a syntax error), never `fail` + null.
    let o = grade_cmd("exercism", &cmd);
    assert!(o.status.success(), "exercism runners exit 0: {}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["status"], "error", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains("ZeroDivisionError"), "{v}");
    // Gradescope: `starts` fails, the rest are "not run": no empty headings for them.
    let o = grade_cmd("gradescope", &cmd);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let tests = v["tests"].as_array().unwrap();
    assert!(tests.len() > 2, "{v}");
    assert!(tests[0]["output"]
        .as_str()
        .unwrap()
        .contains("ZeroDivisionError"));
    for t in &tests[1..] {
        let out = t["output"].as_str().unwrap();
        assert!(out.starts_with("not run:"), "{t}");
        assert!(
            !out.contains("what the grader did") && !out.contains("hint:"),
            "a check that never ran has nothing to show: {t}"
        );
    }
    // JUnit: errors, valid for Jenkins and junitparser.
    let o = grade_cmd("junit", &cmd);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    if let Some(cases) = read_junit(&o.stdout, tmp.path()) {
        assert_eq!(cases.len(), tests.len());
        assert!(cases.iter().all(|c| c.ends_with(" Error")), "{cases:?}");
    }
}

#[test]
fn exercism_attaches_each_tests_output_cut_at_500_characters() {
    // A correct echo server that prints a long debug banner: every check passes, and
    // each test carries what the program printed, cut to 500 characters and saying so.
    let tmp = tempfile::tempdir().unwrap();
    let solution = repo().join("solutions/python/02-udp-echo.py");
    let cmd = python_program(
        tmp.path(),
        "chatty.py",
        &format!(
            "import runpy, sys\nprint('debug ' * 200, file=sys.stderr, flush=True)\nrunpy.run_path({:?}, run_name='__main__')\n",
            solution.display().to_string()
        ),
    );
    let o = grade_cmd("exercism", &cmd);
    assert!(o.status.success(), "{}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["status"], "pass", "{v}");
    for t in v["tests"].as_array().unwrap() {
        assert_eq!(t["status"], "pass", "{t}");
        let out = t["output"]
            .as_str()
            .unwrap_or_else(|| panic!("no output: {t}"));
        assert_eq!(out.chars().count(), 500, "{t}");
        assert!(out.contains("debug debug"), "{t}");
        assert!(out.ends_with("[output truncated at 500 characters]"), "{t}");
    }
}

#[test]
fn student_flow_init_check_solution_reset_watch() {
    let seed = seed("student");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let o = lab().arg("init").arg(&ws).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for f in [
        "Cargo.toml",
        "README.md",
        "lab-progress.txt",
        "rust/01-tcp-echo.rs",
        "python/02-udp-echo.py",
    ] {
        assert!(ws.join(f).is_file(), "{f} missing");
    }
    let run = |args: &[&str]| lab().args(args).current_dir(&ws).output().unwrap();

    // The solution is locked until a pass.
    let o = run(&["solution", "02"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The unmodified Python starter fails; then the student writes a working server.
    let o = run(&["check", "02", "--lang", "python", "--seed", &seed]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let starter = std::fs::read_to_string(ws.join("python/02-udp-echo.py")).unwrap();
    std::fs::copy(
        repo().join("solutions/python/02-udp-echo.py"),
        ws.join("python/02-udp-echo.py"),
    )
    .unwrap();
    // --lang auto picks Python: only the Python file differs from its starter.
    let o = run(&["check", "02", "--seed", &seed]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("score 8/8") && t.contains(&format!("seed {seed}")),
        "{t}"
    );
    let progress = std::fs::read_to_string(ws.join("lab-progress.txt")).unwrap();
    assert!(
        progress
            .lines()
            .any(|l| l.starts_with("02-udp-echo") && l.contains("passed")),
        "{progress}"
    );

    // An instructor grades the same workspace from its parent, naming it relatively:
    // the program still finds its file (it runs inside the workspace, where a relative
    // --dir used to be joined twice).
    let o = lab()
        .args([
            "grade", "02", "--dir", "ws", "--lang", "python", "--seed", &seed,
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("8/8"),
        "{}",
        text(&o)
    );

    let o = run(&["solution", "02"]);
    assert!(
        o.status.success() && text(&o).contains("recvfrom"),
        "{}",
        text(&o)
    );

    // Reset restores the starter and keeps the student's version.
    let o = run(&["reset", "02"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(ws.join("python/02-udp-echo.py")).unwrap(),
        starter
    );
    let backups: Vec<_> = walk(&ws.join(".lab-backup"));
    assert!(
        backups.iter().any(|p| p.ends_with("python/02-udp-echo.py")
            && std::fs::read_to_string(p)
                .unwrap()
                .contains("sendto(data, addr)")),
        "{backups:?}"
    );

    // Watch: one check at start (the starter fails), then a save triggers another
    // (polling), then --max-runs ends it.
    let mut child = lab()
        .args([
            "watch",
            "02",
            "--lang",
            "python",
            "--interval-ms",
            "50",
            "--max-runs",
            "2",
            "--seed",
            &seed,
        ])
        .current_dir(&ws)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Save only once the check at start has its verdict (else it may grade the save).
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let until = Instant::now() + Duration::from_secs(60);
    let mut out = String::new();
    let mut saved = false;
    loop {
        assert!(
            Instant::now() < until,
            "watch did not check twice within 60 s:\n{out}"
        );
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if !saved && line.contains("score ") {
                    std::fs::copy(
                        repo().join("solutions/python/02-udp-echo.py"),
                        ws.join("python/02-udp-echo.py"),
                    )
                    .unwrap();
                    saved = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    reader.join().unwrap();
    let _ = child.wait();
    let runs: Vec<&str> = out.split("--- 02-udp-echo").skip(1).collect();
    assert_eq!(
        runs.len(),
        2,
        "one check at start, one after the save:\n{out}"
    );
    assert!(!runs[0].contains("score 8/8"), "{out}");
    assert!(runs[1].contains("score 8/8"), "{out}");
}

/// `lab watch` outside a workspace fails at once with `lab check`'s error (exit 2),
/// instead of waiting for saves that cannot come.
#[test]
fn watch_outside_a_workspace_fails_like_check() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["check", "01"][..], &["watch", "01"], &["watch"]] {
        let mut child = lab()
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lab {args:?} outside a workspace was still waiting after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "lab {args:?}: {err}");
        assert!(
            err.contains("rust/01-tcp-echo.rs here"),
            "lab {args:?}: {err}"
        );
        assert!(err.contains("lab init"), "lab {args:?}: {err}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                v.extend(walk(&e.path()));
            } else {
                v.push(e.path());
            }
        }
    }
    v
}

#[test]
fn parallel_gradings_share_the_port_in_namespaces() {
    let seed = seed("parallel");
    let probe = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "true",
        ])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        common::skip("user namespaces are not available here; the fallback uses free ports");
        return;
    }
    let sol = repo().join("solutions/python/02-udp-echo.py");
    let outs: Vec<Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let sol = sol.clone();
                let seed = seed.clone();
                s.spawn(move || {
                    lab()
                        .args(["grade", "02", "--seed", &seed, "--cmd"])
                        .arg(format!("python3 {}", sol.display()))
                        .output()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in outs {
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            t.contains("own PID + network namespace")
                && t.contains("PORT 7002 for the first check"),
            "{t}"
        );
    }
}

#[test]
fn classroom_init_writes_a_workflow_that_runs_the_grader() {
    let tmp = tempfile::tempdir().unwrap();
    let o = lab()
        .args(["classroom", "init"])
        .arg(tmp.path())
        .args(["--git", "https://example.invalid/lab"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let wf = std::fs::read_to_string(tmp.path().join(".github/workflows/classroom.yml")).unwrap();
    assert!(wf.contains("lab grade --all --format gh-classroom"));
    assert!(wf.contains("LAB_RESULTS: \"${{ steps.lab.outputs.result }}\""));
    assert!(wf.contains("https://example.invalid/lab"));
    assert!(!wf.contains("OWNER"), "{wf}");
    assert!(
        text(&o).contains("cargo install --locked --git https://example.invalid/lab lab"),
        "says what was written: {}",
        text(&o)
    );
    // A second run refuses to overwrite.
    let o = lab()
        .args(["classroom", "init"])
        .arg(tmp.path())
        .args(["--git", "https://example.invalid/lab"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn classroom_init_without_git_uses_the_lab_checkouts_remote_or_refuses() {
    if !common::have("git") {
        common::skip("git missing");
        return;
    }
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", text(&o));
    };
    let init = |cwd: &Path, out: &Path| {
        lab()
            .args(["classroom", "init"])
            .arg(out)
            .current_dir(cwd)
            .output()
            .unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("assignment");
    // Not a git checkout: refused, naming --git, nothing written.
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let o = init(&plain, &out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--git"), "{}", text(&o));
    assert!(!out.join(".github").exists());
    // A checkout of lab with an ssh GitHub remote: its https URL.
    let checkout = tmp.path().join("lab");
    std::fs::create_dir(&checkout).unwrap();
    std::fs::write(
        checkout.join("Cargo.toml"),
        "[package]\nname = \"lab\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    git(&checkout, &["init", "-q"]);
    git(
        &checkout,
        &["remote", "add", "origin", "git@github.com:ada/lab.git"],
    );
    let o = init(&checkout, &out);
    assert!(o.status.success(), "{}", text(&o));
    let wf = std::fs::read_to_string(out.join(".github/workflows/classroom.yml")).unwrap();
    assert!(
        wf.contains("cargo install --locked --git https://github.com/ada/lab lab"),
        "{wf}"
    );
    assert!(
        text(&o).contains("https://github.com/ada/lab") && text(&o).contains("origin"),
        "{}",
        text(&o)
    );
    // Some other project's checkout (the assignment itself): refused.
    std::fs::write(
        checkout.join("Cargo.toml"),
        "[package]\nname = \"assignment\"\n",
    )
    .unwrap();
    std::fs::remove_dir_all(out.join(".github")).unwrap();
    let o = init(&checkout, &out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a checkout of lab"), "{}", text(&o));
}

#[test]
fn grade_all_lists_every_lab_and_fills_in_the_lab_id() {
    // Also covers the fallback sandbox (no namespaces, free ports) on correct programs.
    // 04's checks need the grader's namespaces (a sysctl and CAP_NET_RAW of its own), so
    // without them 04 fails closed: an error that says why, and exit status 1.
    let seed = seed("grade-all");
    let cmd = format!("python3 {}/solutions/python/{{lab}}.py", repo().display());
    let o = lab()
        .args([
            "grade", "--all", "--format", "json", "--seed", &seed, "--cmd", &cmd,
        ])
        .env("LAB_NO_NAMESPACES", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let labs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lab"].as_str().unwrap())
        .collect();
    assert_eq!(
        labs,
        [
            "01-tcp-echo",
            "02-udp-echo",
            "03-udp-loss",
            "04-raw-icmp",
            "05-chat",
            "06-json-to-file",
            "07-serial-stream"
        ]
    );
    for l in v.as_array().unwrap() {
        assert_eq!(l["seed"].to_string(), seed);
        if l["lab"] == "04-raw-icmp" {
            assert_eq!(l["status"], "error", "{l}");
            let m = l["tests"][0]["message"].as_str().unwrap();
            assert!(m.contains("namespaces are off here"), "{m}");
        } else {
            assert_eq!(l["score"], l["max_score"], "{l}");
        }
    }
}
