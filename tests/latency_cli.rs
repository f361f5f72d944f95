//! `lab latency` from the outside: bad input gets a clear error and exit 2 before any
//! measuring, and short real runs on loopback produce a complete report. Every child is
//! bounded in time (`--count`/`--duration`, `--serve-for`) and killed if it outlives the
//! test.

mod common;

use common::Reaper;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

fn lab(args: &[&str]) -> Output {
    common::lab().args(args).output().expect("run lab")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Asserts a usage error (exit 2) whose message and fix mention `what` and `fix`, and
/// that nothing was measured.
fn assert_usage(args: &[&str], what: &str, fix: &str) {
    let o = lab(args);
    let (out, err) = text(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?}\nstdout: {out}\nstderr: {err}"
    );
    assert!(err.contains(what), "{args:?}: expected {what:?} in: {err}");
    assert!(
        err.contains("fix:") && err.contains(fix),
        "{args:?}: expected fix {fix:?} in: {err}"
    );
    assert!(!out.contains("p50"), "measured despite bad input: {out}");
}

/// A loopback port nobody listens on: bound by the kernel, then released.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn size_zero_is_refused() {
    assert_usage(
        &["latency", "--sizes", "16,0"],
        "message size 0",
        "--sizes 1,16",
    );
    assert_usage(
        &["latency", "--mode", "stream", "--buffer-sizes", "0"],
        "buffer size 0",
        "--buffer-sizes",
    );
}

#[test]
fn udp_size_over_65507_is_refused() {
    assert_usage(
        &["latency", "--mode", "udp", "--sizes", "65508"],
        "over 65507",
        "IP and 8-byte UDP headers",
    );
    // The same size is fine for TCP (it is only refused before measuring if over 1 MiB).
    assert_usage(
        &["latency", "--mode", "tcp", "--sizes", "2000000"],
        "over 1 MiB",
        "1048576",
    );
}

#[test]
fn unreachable_host_is_a_clear_error() {
    let port = closed_port();
    let target = format!("127.0.0.1:{port}");
    assert_usage(
        &["latency", "--connect", &target, "--count", "10"],
        "connection refused",
        "lab latency --role server",
    );
    assert_usage(
        &[
            "latency",
            "--connect",
            &target,
            "--mode",
            "stream",
            "--duration",
            "1",
        ],
        "connection refused",
        "lab latency --role server",
    );
    // UDP: the kernel answers with ICMP port unreachable, reported as a refusal.
    assert_usage(
        &[
            "latency",
            "--connect",
            &target,
            "--mode",
            "udp",
            "--count",
            "10",
        ],
        "refused",
        "",
    );
    assert_usage(
        &["latency", "--connect", "no-such-host.invalid:7008"],
        "cannot resolve",
        "HOST:PORT",
    );
}

#[test]
fn unwritable_output_dir_is_found_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("report");
    // The target is unreachable too: the folder must be the error, as it is checked first.
    let target = format!("127.0.0.1:{}", closed_port());
    assert_usage(
        &[
            "latency",
            "--connect",
            &target,
            "--out",
            out.to_str().unwrap(),
        ],
        "cannot write the report",
        "--out DIR",
    );
}

#[test]
fn loopback_ping_pong_writes_a_full_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = lab(&[
        "latency",
        "--mode",
        "tcp,udp",
        "--sizes",
        "16,1024",
        "--count",
        "300",
        "--warmup",
        "20",
        "--seed",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    assert!(stdout.contains("seed 8"), "{stdout}");
    for label in ["tcp 16 B", "tcp 1024 B", "udp 16 B", "udp 1024 B"] {
        assert!(stdout.contains(label), "{label} missing: {stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    for s in series {
        assert_eq!(s["stats"]["count"], 300, "{s}");
        let (min, p50, max) = (
            s["stats"]["min_us"].as_f64().unwrap(),
            s["stats"]["p50_us"].as_f64().unwrap(),
            s["stats"]["max_us"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= p50 && p50 <= max, "{s}");
    }
    assert_eq!(json["params"]["seed"], 8);
    assert_eq!(json["env"]["loopback"], true);
    assert!(json["env"]["sndbuf"].as_u64().unwrap() > 0);
    for f in [
        "tcp-16B.hgrm",
        "udp-1024B.hgrm",
        "intervals.hlog",
        "summary.csv",
        "percentiles.svg",
        "by_size.svg",
        "report.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // compare: the run against itself is 1.00 everywhere.
    let o = lab(&[
        "latency",
        "compare",
        out.to_str().unwrap(),
        out.join("summary.json").to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("tcp ") || l.starts_with("udp "))
        .collect();
    assert_eq!(rows.len(), 4 * 6, "{stdout}");
    assert!(rows.iter().all(|r| r.ends_with("1.00")), "{stdout}");

    // compare: the ratio is B/A (below 1: B is faster). A run against itself cannot
    // tell B/A from A/B, so compare the run with a copy four times as slow (exact in
    // floating point), both ways round.
    let slow = {
        let mut j = json.clone();
        for s in j["series"].as_array_mut().unwrap() {
            for (k, v) in s["stats"].as_object_mut().unwrap() {
                if k.ends_with("_us") {
                    *v = serde_json::json!(v.as_f64().unwrap() * 4.0);
                }
            }
        }
        let f = dir.path().join("slow.json");
        std::fs::write(&f, serde_json::to_string(&j).unwrap()).unwrap();
        f
    };
    for (a, b, want) in [
        (out.clone(), slow.clone(), "4.00"),
        (slow.clone(), out.clone(), "0.25"),
    ] {
        let o = lab(&[
            "latency",
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ]);
        let (stdout, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("tcp ") || l.starts_with("udp "))
            .collect();
        assert_eq!(rows.len(), 4 * 6, "{stdout}");
        assert!(
            rows.iter().all(|r| r.ends_with(want)),
            "A = {}, B = {}: every B/A should be {want}\n{stdout}",
            a.display(),
            b.display()
        );
    }

    // compare: runs with no series in common compared nothing, and say so with exit 1
    // (a listing of "only in A" / "only in B" and exit 0 reads like a comparison).
    let only = |mode: &str| {
        let mut j = json.clone();
        j["series"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["mode"] == mode);
        let f = dir.path().join(format!("{mode}.json"));
        std::fs::write(&f, serde_json::to_string(&j).unwrap()).unwrap();
        f
    };
    let (tcp, udp) = (only("tcp"), only("udp"));
    let o = lab(&[
        "latency",
        "compare",
        tcp.to_str().unwrap(),
        udp.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{err}");
    assert!(
        stdout.contains("only in A") && stdout.contains("only in B"),
        "{stdout}"
    );
    assert!(err.contains("no series in common"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn compare_of_a_missing_run_names_the_fix() {
    assert_usage(
        &["latency", "compare", "/nonexistent/a", "/nonexistent/b"],
        "cannot read",
        "--out DIR",
    );
}

#[test]
fn nagle_and_delayed_ack_show_with_split_writes() {
    // Deterministic in kind, not in time: with Nagle on, the second half of each
    // message waits for an ACK the server delays (tens of ms); with TCP_NODELAY it does
    // not. We assert only the ordering of the medians, which is a factor of ~100.
    let o = lab(&[
        "latency",
        "--mode",
        "tcp,tcp-nagle",
        "--sizes",
        "64",
        "--count",
        "8",
        "--warmup",
        "2",
        "--split-writes",
        "--out",
        tempfile::tempdir()
            .unwrap()
            .path()
            .join("n")
            .to_str()
            .unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    let p50 = |label: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(label) && l.contains("p50"))
            .unwrap();
        // "p50 93.7 us" or "p50 44.0 ms": values of 1000 us and more print in ms.
        let mut w = line.split_whitespace().skip(4);
        let value: f64 = w.next().unwrap().parse().unwrap();
        match w.next().unwrap() {
            "ns" => value / 1000.0,
            "us" => value,
            "ms" => value * 1000.0,
            "s" => value * 1e6,
            unit => panic!("unknown unit {unit} in {line}"),
        }
    };
    assert!(p50("tcp-nagle 64 B") > p50("tcp 64 B"), "{stdout}");
}

/// Kills a child that is still running when the test ends.
#[test]
fn server_role_and_connect_work_across_processes() {
    let server = common::latency_server(30);
    let addr = server.addr.to_string();
    let o = lab(&[
        "latency",
        "--connect",
        &addr,
        "--mode",
        "tcp,udp,stream",
        "--sizes",
        "32",
        "--buffer-sizes",
        "1,8",
        "--rate",
        "4000",
        "--count",
        "400",
        "--warmup",
        "16",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    assert!(
        stdout.contains("tcp 32 B") && stdout.contains("udp 32 B"),
        "{stdout}"
    );
    // The age of a sample can never be below the time it waited for its buffer to
    // fill: the mean is at least the floor (N-1)/rate/2. A physical bound, not a timing.
    let row = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("stream 8 samples"))
        .expect(&stdout);
    let cols = figures(&row.split_whitespace().skip(3).collect::<Vec<_>>().join(" "));
    // count, min, p50, p90, p99, p99.9, max, mean, stdev, floor avg, floor max, lost
    let (count, mean, floor_avg) = (cols[0], cols[7], cols[9]);
    assert_eq!(count, 400.0, "{row}");
    assert_eq!(floor_avg, 875.0, "{row}"); // (8-1)/4000/2 s
    assert!(mean >= floor_avg - 0.1, "{row}");
}

#[test]
fn measures_against_any_echo_server_python3() {
    // A peer a user would meet: a plain Python echo server (TCP and UDP on one port,
    // echoing whatever arrives, bounded to 30 s). Our hello is 8 bytes any echo server
    // returns unchanged, so `--connect` works against it.
    let script = r#"
import socket, selectors, time, sys
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", 0)); t.listen(8); port = t.getsockname()[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", port))
print(port, flush=True)
sel = selectors.DefaultSelector(); sel.register(t, selectors.EVENT_READ); sel.register(u, selectors.EVENT_READ)
end = time.time() + 30
while time.time() < end:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        if s is t:
            c, _ = t.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); sel.register(c, selectors.EVENT_READ)
        elif s is u:
            d, a = u.recvfrom(65535); u.sendto(d, a)
        else:
            d = s.recv(65536)
            if d: s.sendall(d)
            else: sel.unregister(s); s.close()
"#;
    let child = match Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("python3 is needed for this test (apt-get install -y python3): {e}"),
    };
    let mut peer = Reaper(child);
    let mut port = String::new();
    let mut lines = BufReader::new(peer.0.stdout.take().unwrap());
    lines.read_line(&mut port).unwrap();
    let addr = format!("127.0.0.1:{}", port.trim());
    let o = lab(&[
        "latency",
        "--connect",
        &addr,
        "--mode",
        "tcp,udp",
        "--sizes",
        "1,1500",
        "--count",
        "200",
        "--warmup",
        "10",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    for label in ["tcp 1 B", "tcp 1500 B", "udp 1 B", "udp 1500 B"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {stdout}"));
        assert_eq!(row.split_whitespace().nth(3), Some("200"), "{row}");
    }
}

#[test]
fn guided_tour_runs_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let o = lab(&[
        "run",
        "08-latency",
        "--count",
        "50",
        "--stream-seconds",
        "0.3",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{stdout}\n{err}");
    for step in [
        "1. Round trips",
        "2. The same over UDP",
        "3. Nagle",
        "4. Buffer size",
    ] {
        assert!(stdout.contains(step), "{step} missing: {stdout}");
    }
    for d in ["1-sizes", "2-udp", "3-nagle", "4-stream"] {
        assert!(
            dir.path().join(d).join("report.md").is_file(),
            "{d} report missing"
        );
    }
}

/// A table row's figures, in microseconds where a unit follows (`118.3 us`, `1.1 ms`:
/// the table prints durations with their unit).
fn figures(cells: &str) -> Vec<f64> {
    let words: Vec<&str> = cells.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if let Ok(v) = words[i].parse::<f64>() {
            match words.get(i + 1) {
                Some(&"us") => i += 1,
                Some(&"ms") => {
                    out.push(v * 1000.0);
                    i += 2;
                    continue;
                }
                _ => {}
            }
            out.push(v);
        }
        i += 1;
    }
    out
}

/// Issue 18: streams the server would refuse (it bounds what one subscriber may ask
/// for) are refused here first, with the fix, before anything is measured.
#[test]
fn stream_rates_the_server_would_refuse_are_refused_up_front() {
    assert_usage(
        &[
            "latency",
            "--mode",
            "stream",
            "--rate",
            "1000000",
            "--buffer-sizes",
            "1",
        ],
        "buffers/s, over the server's 20000",
        "use buffers of at least 50 samples",
    );
}
