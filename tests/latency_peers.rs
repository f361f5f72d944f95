//! `lab latency` against servers it did not start: a real `sockperf server` (Debian
//! package sockperf) spoken to in sockperf's own messages with `--peer sockperf`, the
//! wrong peer for each protocol, and a server that stops answering mid-run. Every child
//! is bounded (`--count`, a kill when its guard drops) and every wait has a deadline.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, latency_server, run, stderr, stdout, Reaper};

/// A loopback port free for both TCP and UDP right now.
fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts `sockperf server` (UDP, or TCP with `tcp`) on a free port and waits, at most
/// 10 s, until it answers: a TCP connect, or a UDP ping answered with sockperf's pong.
fn sockperf_server(tcp: bool) -> (Reaper, SocketAddr) {
    assert!(
        have("sockperf"),
        "sockperf is required: apt-get install sockperf"
    );
    let port = free_port();
    let mut cmd = Command::new("sockperf");
    cmd.arg("server");
    if tcp {
        cmd.arg("--tcp");
    }
    let child = cmd
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sockperf server");
    let guard = Reaper(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    udp.connect(addr).unwrap();
    // A 14-byte ping: sequence 1, flags 3 (client, answer me), size 14.
    let ping = b"\0\0\0\0\0\0\0\x01\0\x03\0\0\0\x0e";
    loop {
        assert!(Instant::now() < deadline, "sockperf server did not start");
        if tcp {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
        } else {
            let _ = udp.send(ping);
            let mut b = [0u8; 64];
            if matches!(udp.recv(&mut b), Ok(14)) {
                assert_eq!(b[9], 2, "sockperf's pong clears the client flag");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, addr)
}

fn summary(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// The README's command as written (no --sizes; bounded by --count): lab's default
/// sizes below sockperf's 14-byte header are left out, and it says so.
#[test]
fn the_readme_sockperf_command_works_as_written() {
    let (_server, addr) = sockperf_server(false);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "latency",
        "--connect",
        &addr.to_string(),
        "--mode",
        "udp",
        "--peer",
        "sockperf",
        "--count",
        "100",
        "--warmup",
        "10",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("14-byte header"), "{}", stdout(&o));
    let s = summary(dir.path());
    let sizes: Vec<u64> = s["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [16, 64, 256, 1024, 4096, 16384], "{s}");
}

/// `--peer sockperf` measures sockperf's own server, UDP and TCP, every request
/// answered by its pong (the probe checks sequence, size and flags of each one).
#[test]
fn measures_a_sockperf_server_over_udp_and_tcp() {
    for (tcp, modes) in [(false, "udp"), (true, "tcp,tcp-nagle")] {
        let (_server, addr) = sockperf_server(tcp);
        let dir = tempfile::tempdir().unwrap();
        let o = run(&[
            "latency",
            "--connect",
            &addr.to_string(),
            "--peer",
            "sockperf",
            "--mode",
            modes,
            "--sizes",
            "14,16,1024,65507",
            "--count",
            "300",
            "--warmup",
            "20",
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
        let s = summary(dir.path());
        assert_eq!(s["params"]["peer"], "sockperf");
        let series = s["series"].as_array().unwrap();
        let expected = if tcp { 8 } else { 4 };
        assert_eq!(series.len(), expected, "{s}");
        for x in series {
            assert_eq!(x["stats"]["count"], 300, "{x}");
            assert_eq!(x["lost"], 0, "{x}");
        }
    }
}

#[test]
fn sockperf_peer_refuses_what_sockperf_cannot_do() {
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--connect", "127.0.0.1:1", "--sizes", "8,16"],
            "message size 8 is below 14 bytes",
            "--sizes 14 or more",
        ),
        (
            &[
                "--connect",
                "127.0.0.1:1",
                "--sizes",
                "65508",
                "--mode",
                "tcp",
            ],
            "over 65507",
            "up to 65507",
        ),
        (
            &["--sizes", "16"],
            "needs the address of a running `sockperf server`",
            "--connect 127.0.0.1:11111",
        ),
        (
            &["--connect", "127.0.0.1:1", "--mode", "stream"],
            "no stream mode",
            "--mode tcp, tcp-nagle or udp",
        ),
    ];
    for (args, what, fix) in cases {
        let mut all = vec!["latency", "--peer", "sockperf"];
        all.extend_from_slice(args);
        let o = run(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(what) && err.contains(fix), "{all:?}: {err}");
        assert!(!stdout(&o).contains("p50"), "{all:?} measured");
    }
}

/// The wrong peer is named, within seconds, instead of a hang: a sockperf server ignores
/// lab's datagrams, and a lab server echoes sockperf's unchanged.
#[test]
fn the_wrong_peer_is_named() {
    let (_sp, addr) = sockperf_server(false);
    let started = Instant::now();
    let o = run(&[
        "latency",
        "--connect",
        &addr.to_string(),
        "--mode",
        "udp",
        "--sizes",
        "16",
        "--count",
        "100",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no UDP echo") && err.contains("--peer sockperf"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "took too long");

    let lab_server = latency_server(60);
    let lab_addr = lab_server.addr.to_string();
    for (mode, what) in [
        ("udp", "echoes datagrams unchanged"),
        ("tcp", "did not answer like a `sockperf server --tcp`"),
    ] {
        let o = run(&[
            "latency",
            "--connect",
            &lab_addr,
            "--peer",
            "sockperf",
            "--mode",
            mode,
            "--sizes",
            "16",
            "--count",
            "100",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{mode}: {err}");
        assert!(
            err.contains(what) && err.contains("drop --peer sockperf"),
            "{mode}: {err}"
        );
    }
}

/// A UDP server that stops answering (SIGSTOP: its socket stays open, so no ICMP
/// refusal arrives) ends the run with a clear error after 5 s of silence. Before, each
/// lost request waited forever in recv.
#[test]
fn a_udp_server_that_stops_answering_ends_the_run() {
    let server = latency_server(60);
    let addr = server.addr.to_string();
    let client = common::lab()
        .args([
            "latency",
            "--connect",
            &addr,
            "--mode",
            "udp",
            "--sizes",
            "16",
            "--count",
            "1000000000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = Reaper(client);
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = client.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the client still waits for a stopped server after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let mut err = String::new();
    use std::io::Read;
    client
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("no UDP answer") && err.contains("is the server still running"),
        "{err}"
    );
}
