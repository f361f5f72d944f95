//! The command line as a user meets it: every command, id forms, errors and exit codes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{lab, run, stderr, stdout};

const IDS: [&str; 8] = [
    "01-tcp-echo",
    "02-udp-echo",
    "03-udp-loss",
    "04-raw-icmp",
    "05-chat",
    "06-json-to-file",
    "07-serial-stream",
    "08-latency",
];

#[test]
fn no_arguments_says_what_this_is_and_what_to_do_next() {
    let tmp = tempfile::tempdir().unwrap();
    let progress = tmp.path().join("progress.txt");
    let first_screen = |lines: &str| {
        std::fs::write(&progress, lines).unwrap();
        let o = common::lab()
            .env("LAB_PROGRESS", &progress)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(o.status.success());
        stdout(&o)
    };
    let s = first_screen("");
    assert!(s.contains("workbook for network sockets"), "{s}");
    assert!(s.contains("Next:"), "{s}");
    assert!(s.contains("lab run "), "{s}");
    // The way to the exercises is named before any error does.
    assert!(s.contains("lab init"), "{s}");
    // A mark is explained only when a lab shows it: none yet, and no lab is planned.
    for legend in ["✓ passed", "~ started", "· planned"] {
        assert!(!s.contains(legend), "{legend} in\n{s}");
    }
    assert!(!s.contains('·') && !s.contains('✓'), "{s}");
    let s = first_screen("01-tcp-echo passed\n02-udp-echo ran\n");
    assert!(s.contains("✓ passed"), "{s}");
    assert!(s.contains("~ started"), "{s}");
    assert!(!s.contains("·"), "no lab is planned:\n{s}");
    assert!(s.contains("Next: UDP echo"), "{s}");
}

#[test]
fn list_shows_all_eight_labs_and_json_parses_back() {
    let o = run(&["list"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for id in IDS {
        assert!(s.contains(id), "{id} missing from\n{s}");
    }
    // 04 no longer needs root: without CAP_NET_RAW it runs in a namespace of its own.
    assert!(!s.contains("needs: root"), "04 needs no root:\n{s}");

    let o = run(&["list", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let labs = v.as_array().unwrap();
    let ids: Vec<&str> = labs.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, IDS);
    assert_eq!(labs[0]["status"], "ready");
    assert_eq!(labs[0]["number"], 1);
    assert!(labs[0]["hints_total"].as_u64().unwrap() > 0);
    assert_eq!(labs[3]["status"], "ready");
    assert_eq!(labs[3]["needs"].as_array().map(Vec::len), Some(0));
}

#[test]
fn show_renders_the_lesson_and_raw_prints_markdown() {
    let o = run(&["show", "01"]);
    assert!(o.status.success());
    let s = stdout(&o);
    assert!(s.contains("accept"), "{s}");
    assert!(
        s.lines().all(|l| l.chars().count() <= 100),
        "lines wrapped to the width"
    );
    let raw = stdout(&run(&["show", "01", "--raw"]));
    assert!(raw.starts_with("# "), "{raw}");
}

#[test]
fn every_id_form_finds_the_same_lab() {
    let want = stdout(&run(&["show", "03-udp-loss", "--raw"]));
    for form in ["03", "3", "udp-loss", "UDP-Loss"] {
        let o = run(&["show", form, "--raw"]);
        assert!(o.status.success(), "{form}");
        assert_eq!(stdout(&o), want, "{form}");
    }
}

#[test]
fn a_missing_id_exits_2_and_lists_the_ids() {
    for cmd in [&["show"][..], &["run"], &["hint"], &["check"]] {
        let o = run(cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("`lab {}` needs a lab id", cmd[0])),
            "{e}"
        );
        for id in IDS {
            assert!(e.contains(id), "{id} not listed in {e}");
        }
        assert!(e.contains("fix:"), "{e}");
    }
    // --help is still clap's, exit 0.
    assert_eq!(run(&["show", "--help"]).status.code(), Some(0));
}

#[test]
fn an_unknown_id_exits_2_and_lists_the_valid_ones() {
    for cmd in ["show", "run", "hint"] {
        let o = run(&[cmd, "99-nope"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let e = stderr(&o);
        assert!(e.contains("no lab called \"99-nope\""), "{e}");
        for id in IDS {
            assert!(e.contains(id), "{id} not suggested in {e}");
        }
    }
}

#[test]
fn running_a_planned_lab_says_so_with_exit_2() {
    // Every lab is built; a course can still mark one planned in its own lab.toml.
    let dir = tempfile::tempdir().unwrap();
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/labs/06-json-to-file/lab.toml"
    ))
    .unwrap()
    .replace("status = \"ready\"", "status = \"planned\"");
    std::fs::create_dir_all(dir.path().join("06-json-to-file")).unwrap();
    std::fs::write(dir.path().join("06-json-to-file/lab.toml"), toml).unwrap();
    let o = lab()
        .arg("--labs")
        .arg(dir.path())
        .args(["run", "06"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("not built yet"), "{e}");
    assert!(e.contains("fix:"), "{e}");
}

#[test]
fn hints_come_one_at_a_time_and_all_at_once() {
    let progress = tempfile::NamedTempFile::new().unwrap();
    let hint = |all: bool| {
        let mut c = lab();
        c.env("LAB_PROGRESS", progress.path()).args(["hint", "01"]);
        if all {
            c.arg("--all");
        }
        let o = c.output().unwrap();
        assert!(o.status.success());
        stdout(&o)
    };
    let first = hint(false);
    assert!(first.contains("1. ") && !first.contains("2. "), "{first}");
    let second = hint(false);
    assert!(
        second.contains("2. ") && !second.contains("3. "),
        "{second}"
    );
    let saved = std::fs::read_to_string(progress.path()).unwrap();
    assert!(saved.contains("01-tcp-echo hints=2"), "{saved}");
    let all = hint(true);
    assert!(all.contains("6. "), "{all}");
}

#[test]
fn doctor_reports_loopback_and_json_parses() {
    let o = run(&["doctor"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("loopback IPv4"));
    let o = run(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let loopback = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "loopback IPv4")
        .unwrap();
    assert_eq!(loopback["level"], "ok");
    let raw = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "raw sockets")
        .unwrap();
    if raw["level"] != "ok" {
        assert!(raw["fix"].as_str().unwrap().contains("CAP_NET_RAW"));
    }
}

/// `lab doctor --json` run through `wrapper` (e.g. `setpriv ...`), as parsed checks.
fn doctor_via(wrapper: &[&str]) -> Vec<serde_json::Value> {
    let mut c = std::process::Command::new(wrapper[0]);
    c.args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_lab"))
        .args(["doctor", "--json"]);
    common::isolate(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array().unwrap().clone()
}

fn named<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {checks:?}"))
}

/// Without CAP_NET_RAW, doctor says so and gives the fix, whichever fallback (namespace,
/// ping socket) it then finds. As root the tests would never see that path, so root
/// drops the capability with setpriv; other users are there already.
#[test]
fn doctor_gives_the_raw_socket_fix_without_cap_net_raw() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let checks = if root {
        if !common::have("setpriv") {
            return common::skip("setpriv (util-linux) is needed to drop CAP_NET_RAW as root");
        }
        doctor_via(&["setpriv", "--bounding-set", "-net_raw", "--"])
    } else {
        doctor_via(&["env"])
    };
    let raw = named(&checks, "raw sockets");
    let detail = raw["detail"].as_str().unwrap();
    if !root && detail.starts_with("raw ICMP socket opened") {
        return common::skip("this lab binary has CAP_NET_RAW (setcap?): no fix to check");
    }
    assert!(detail.starts_with("no raw socket"), "{raw}");
    let fix = raw["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("CAP_NET_RAW") && fix.contains("setcap cap_net_raw+ep"),
        "{raw}"
    );
}

/// The open-file limit check reports soft and hard each under its own name: with
/// different values (set by prlimit) a swap shows.
#[test]
fn doctor_reports_soft_and_hard_open_file_limits_the_right_way_round() {
    if !common::have("prlimit") {
        return common::skip("prlimit (util-linux) is needed to set the limits");
    }
    let checks = doctor_via(&["prlimit", "--nofile=1024:4096", "--"]);
    let nofile = named(&checks, "open-file limit");
    let detail = nofile["detail"].as_str().unwrap();
    assert!(detail.contains("soft 1024, hard 4096"), "{nofile}");
}

#[test]
fn a_port_in_use_is_a_clear_error_with_exit_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(&["run", "01", "--role", "server", "--bind", &addr]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("address already in use"), "{e}");
    assert!(e.contains("fix:") && e.contains("--bind"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn connecting_to_a_closed_port_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let o = run(&[
        "run",
        "01",
        "--role",
        "client",
        "--connect",
        &port,
        "-m",
        "hi",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("connection refused"), "{e}");
    assert!(e.contains("start the server first"), "{e}");
}

#[test]
fn lab_flags_have_their_own_help_and_bad_ones_exit_2() {
    let o = run(&["run", "01", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    // The generic `lab run --help` mentions `--role server` in an example, so `--role`
    // alone proves nothing: look for lab 01's flag as clap lists it, with its own
    // descriptions, and for the absence of the generic help.
    let out = stdout(&o);
    assert!(out.contains("--role <ROLE>"), "{out}");
    assert!(
        out.contains("Only the server: serves many clients until Ctrl-C"),
        "lab 01's role descriptions missing:\n{out}"
    );
    assert!(!out.contains("LAB FLAGS"), "generic help instead:\n{out}");
    let o = run(&["run", "01", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--bogus"));
    let o = run(&["run", "01", "--bind", "not-an-address"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn top_level_help_documents_exit_codes() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for cmd in ["list", "show", "run", "hint", "doctor", "completions"] {
        assert!(s.contains(cmd), "{cmd} missing from help");
    }
    // The codes with their meanings, not just the heading: a swap of 1 and 2 must show.
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "Exit status: 0 success; 1 a lab or check ran and its expectation was not met; \
             2 usage or environment error"
        ),
        "{s}"
    );
}

#[test]
fn completions_offer_lab_ids_and_each_labs_own_flags() {
    let o = run(&["completions", "bash"]);
    assert!(o.status.success());
    let script = stdout(&o);
    assert!(script.contains("_lab"));
    for id in IDS {
        assert!(script.contains(id), "{id} is not offered");
    }
    // Each lab's flags, under its own case (03's --loss, 07's --serial).
    for (case, flag) in [
        (
            "lab__subcmd__run__subcmd__03__subcmd__udp__subcmd__loss)",
            "--loss",
        ),
        (
            "lab__subcmd__run__subcmd__07__subcmd__serial__subcmd__stream)",
            "--serial",
        ),
    ] {
        let at = script.find(case).unwrap_or_else(|| panic!("no {case}"));
        let opts = script[at..].lines().nth(1).unwrap();
        assert!(opts.contains(flag), "{case}: {opts}");
    }
    // And what bash offers when asked, by calling the completion function as bash does.
    if !common::have("bash") {
        common::skip("bash is missing: the completion function is not run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lab.bash");
    std::fs::write(&file, &script).unwrap();
    let ask = |words: &str| {
        let prog = format!(
            r#"source "$1"; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1));
               _lab lab "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}";
               echo "${{COMPREPLY[*]}}""#
        );
        let o = std::process::Command::new("bash")
            .args(["-c", &prog, "bash"])
            .arg(&file)
            .output()
            .unwrap();
        stdout(&o)
    };
    let ids = ask(r#"lab run """#);
    assert!(
        ids.contains("01-tcp-echo") && ids.contains("08-latency"),
        "{ids}"
    );
    assert_eq!(ask("lab run 03-udp-loss --lo").trim(), "--loss");
    assert!(ask("lab show 0").contains("05-chat"));
}

#[test]
fn a_closed_pipe_exits_quietly() {
    // Like `lab list | head -0`: the reading end is closed before lab writes anything,
    // so its first write fails with EPIPE. It must exit 0 without a panic message.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for args in [&["list"][..], &["show", "01"], &["run", "01"]] {
        let out = lab()
            .args(args)
            .stdout(writer.try_clone().unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn reading_one_line_then_closing_the_pipe_exits_quietly() {
    // `lab list | head -1`: the reader goes away after the first line, while lab may
    // still be writing the rest. Whether or not a write meets the closed pipe, lab
    // must end with status 0 and nothing on stderr.
    for args in [&["list"][..], &["show", "07"]] {
        let mut child = lab()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        // The reader was dropped above: the pipe is closed now.
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn a_long_running_printer_stops_quietly_when_its_reader_goes() {
    // A 03 receiver prints a report line every --interval from inside its event loop,
    // where no error can be returned. Once its reader has gone, the loop must notice
    // the closed stdout and end, with status 0 and nothing on stderr, long before its
    // sender (two minutes) is done.
    // Killed and reaped however the test ends.
    let mut rx = common::Reaper(
        lab()
            .args([
                "run",
                "03",
                "--role",
                "receiver",
                "--bind",
                "127.0.0.1:0",
                "--wait",
                "30s",
                "--interval",
                "0.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(rx.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let _sender = common::Reaper(
        lab()
            .args(["run", "03", "--role", "sender", "--connect"])
            .arg(addr.to_string())
            .args(["--duration", "120", "--rate", "2000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Read up to the first report line (the one after the column headings), then
    // close the pipe. The receiver prints until the sender stops, so this is bounded
    // by the sender's --duration.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let heading = seen.last().is_some_and(|l: &String| l.contains("interval"));
        seen.push(line);
        if heading {
            break;
        }
    }
    drop(lines);
    assert!(
        seen.iter().any(|l| l.contains("interval")),
        "no report line: {seen:?}"
    );
    let status = wait_at_most(&mut rx.0, Duration::from_secs(60));
    let mut err = String::new();
    rx.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
}

#[test]
fn a_closed_pipe_still_runs_drops() {
    // `lab dev check` writes the exercises into a temporary folder that a guard removes
    // when dropped; its first line is printed after that. With stdout already closed,
    // the error must travel up through the guard (exiting on the spot would leave the
    // folder behind) and end with status 0.
    let tmp = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = lab()
        .args(["dev", "check", "--root"])
        .arg(tmp.path())
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("lab-dev-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Waits for `child` to end, killing it (and failing) after `limit`.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_tcp_demo_tells_the_whole_story() {
    let o = run(&["run", "01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for want in [
        "listen(backlog=",
        "accept()",
        "Received: hello",
        "Received: slowly",
        "0 bytes: EOF",
        "ECONNREFUSED",
        "with SO_REUSEADDR",
    ] {
        assert!(s.contains(want), "{want:?} missing from\n{s}");
    }
}

#[test]
fn the_udp_demo_shows_boundaries_truncation_and_the_maximum() {
    let o = run(&["run", "02"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for want in [
        "16 bytes copied; the datagram had 100",
        "65507 bytes back, identical",
        "sendto(65508 bytes)",
        "ECONNREFUSED",
    ] {
        assert!(s.contains(want), "{want:?} missing from\n{s}");
    }
}

#[test]
fn running_a_demo_records_progress() {
    let progress = tempfile::NamedTempFile::new().unwrap();
    let o = lab()
        .env("LAB_PROGRESS", progress.path())
        .args(["run", "02"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let saved = std::fs::read_to_string(progress.path()).unwrap();
    assert!(saved.contains("02-udp-echo ran"), "{saved}");
    let o = lab()
        .env("LAB_PROGRESS", progress.path())
        .arg("list")
        .output()
        .unwrap();
    assert!(stdout(&o).contains("[demo run]"), "{}", stdout(&o));
}

#[test]
fn ctrl_c_stops_a_server_cleanly() {
    let s = common::server("01", &["--quiet"]);
    let pid = s.child.id() as i32;
    // kill(1) sends SIGINT, as Ctrl-C in a terminal does.
    let st = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean stop, not death by signal");
    // The reader thread ends when the pipe closes; collect everything it saw.
    let mut last = Vec::new();
    while let Ok(l) = s.lines.recv_timeout(std::time::Duration::from_secs(5)) {
        last.push(l);
    }
    assert!(
        last.iter().any(|l| l.contains("server stopped")),
        "{last:?}"
    );
}

#[test]
fn a_course_can_override_a_lesson_with_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("01-tcp-echo")).unwrap();
    std::fs::write(
        dir.path().join("01-tcp-echo/lesson.md"),
        "# Our course's TCP lesson\n",
    )
    .unwrap();
    let o = lab()
        .args([
            "--labs",
            dir.path().to_str().unwrap(),
            "show",
            "01",
            "--raw",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "# Our course's TCP lesson\n");
    let bad = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bad.path().join("02-udp-echo")).unwrap();
    std::fs::write(bad.path().join("02-udp-echo/lab.toml"), "id = [broken").unwrap();
    let o = lab()
        .env("LAB_LABS", bad.path())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid lab.toml for 02-udp-echo"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn show_sketch_prints_the_arduino_sketch_from_the_binary() {
    let o = run(&["show", "07", "--sketch"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sketch = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("arduino/analog_stream/analog_stream.ino"),
    )
    .unwrap();
    assert_eq!(stdout(&o).trim_end(), sketch.trim_end());
    // Another lab has no board: a usage error that names the lab that has one.
    let o = run(&["show", "01", "--sketch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("lab show 07 --sketch"),
        "{}",
        stderr(&o)
    );
}
