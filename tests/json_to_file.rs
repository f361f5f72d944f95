//! 06-json-to-file's receiver and sender, as real processes: malformed lines, `nc` as a
//! sender, python3 reading the file back, a seeded kill -9 loop under 100,000 records,
//! a torn last record cut at every byte offset, and a full disk (RLIMIT_FSIZE).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, lab, run, spawn_server, stdout, Reaper, Server};
use serde_json::Value;

/// A receiver on `bind` saving to `file`.
fn receiver(file: &Path, bind: &str) -> Server {
    let f = file.to_str().unwrap();
    spawn_server(&[
        "run", "06", "--role", "receiver", "--bind", bind, "--out", f, "--quiet",
    ])
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads one reply line, without its newline.
fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.ends_with('\n'), "reply cut short: {l:?}");
    l.trim_end().to_string()
}

/// The file's records; panics on a line that is not JSON or a missing final newline.
fn records(file: &Path) -> Vec<Value> {
    let data = std::fs::read(file).unwrap();
    assert!(data.is_empty() || data.ends_with(b"\n"), "torn last line");
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `lab run 06` as a quiet receiver on an ephemeral port; the file's path comes next.
const RECEIVER: [&str; 8] = [
    "run",
    "06",
    "--role",
    "receiver",
    "--bind",
    "127.0.0.1:0",
    "--quiet",
    "--out",
];

/// The address a receiver started with [`RECEIVER`] prints on its first line.
fn listening_at(child: &mut std::process::Child) -> SocketAddr {
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    first
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
}

#[test]
fn malformed_lines_get_errors_are_not_saved_and_the_connection_stays() {
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let s = receiver(&file, "127.0.0.1:0");
    let mut c = connect(s.addr);
    let mut r = BufReader::new(c.try_clone().unwrap());
    c.write_all(b"{\"sender\":\"t\",\"seq\":1}\n").unwrap();
    assert_eq!(reply(&mut r), "ok 1");
    let bad: [(&[u8], &str); 6] = [
        (b"this is not json\n", "error - not JSON"),
        (b"[1,2,3]\n", "error - not a JSON object"),
        (b"42\n", "error - not a JSON object"),
        (
            b"{\"sender\":\"t\",\"seq\":2,\"x\":\"\xff\"}\n",
            "error - not UTF-8",
        ),
        (
            b"{\"sender\":\"t\",\"note\":\"no seq\"}\n",
            "error - a record with a sender needs an integer seq",
        ),
        (b"{\"sender\":\"t\",\"seq\":\"2\"}\n", "error - seq must be"),
    ];
    for (line, want) in bad {
        c.write_all(line).unwrap();
        let got = reply(&mut r);
        assert!(
            got.starts_with(want),
            "{got:?} for {}",
            String::from_utf8_lossy(line)
        );
    }
    // 10 MiB without a newline, then one: one error, memory stays bounded.
    let big = vec![b'x'; 10 << 20];
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&big).unwrap();
        w.write_all(b"\n").unwrap();
    });
    assert_eq!(reply(&mut r), "error - line longer than 65536 bytes");
    writer.join().unwrap();
    assert!(
        common::rss_kib(s.child.id()) < 64 * 1024,
        "the receiver held the long line"
    );
    c.write_all(b"{\"sender\":\"t\",\"seq\":2}\n").unwrap();
    assert_eq!(reply(&mut r), "ok 2", "the connection survived");
    let saved = records(&file);
    assert_eq!(saved.len(), 2, "{saved:?}");
    assert_eq!(saved[1]["seq"], 2);
}

#[test]
fn nc_is_a_sender_and_python_reads_the_file_back() {
    if !have("nc") || !have("python3") {
        assert!(
            std::env::var_os("CI").is_none(),
            "nc and python3 are required in CI"
        );
        eprintln!("skipped: nc (netcat-openbsd) or python3 missing");
        return;
    }
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let s = receiver(&file, "127.0.0.1:0");
    let port = s.addr.port().to_string();
    let mut nc = Command::new("nc")
        .args(["-N", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    nc.stdin
        .take()
        .unwrap()
        .write_all(
            "{\"temp\": 21.5}\n{\"temp\": 22, \"city\": \"M\u{fc}nchen\"}\n{\"seq\": 9}".as_bytes(),
        )
        .unwrap();
    let out = nc.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 1\nok 2\nok 9\n");
    let saved = records(&file);
    assert_eq!(saved.len(), 3);
    let anon = saved[0]["sender"].as_str().unwrap();
    assert!(anon.starts_with("anon-127.0.0.1:"), "{anon}");
    assert_eq!(saved[1]["city"], "M\u{fc}nchen");

    // The lab's own sender adds more; python3 then reads the whole file line by line.
    let o = lab()
        .args([
            "run",
            "06",
            "--role",
            "sender",
            "--connect",
            &s.addr.to_string(),
        ])
        .args(["--generate", "500", "--sender", "py", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        stdout(&o).contains("sent 500, acknowledged 500, resent 0"),
        "{}",
        stdout(&o)
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             n = 0\n\
             with open(sys.argv[1], encoding='utf-8') as f:\n\
             \x20   for line in f:\n\
             \x20       r = json.loads(line)\n\
             \x20       assert isinstance(r, dict) and isinstance(r['seq'], int)\n\
             \x20       n += 1\n\
             print(n)\n",
        )
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "503");
}

#[test]
fn sender_reads_a_file_and_a_resend_is_not_saved_twice() {
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"a\":1}\n{\"a\":2}\nnot json\n{\"sender\":\"own\",\"seq\":5}\n",
    )
    .unwrap();
    let s = receiver(&file, "127.0.0.1:0");
    for round in 0..2 {
        let o = lab()
            .args([
                "run",
                "06",
                "--role",
                "sender",
                "--connect",
                &s.addr.to_string(),
            ])
            .args(["--sender", "fixed", "--quiet", "--input"])
            .arg(&input)
            .output()
            .unwrap();
        assert!(o.status.success(), "round {round}: {}", common::stderr(&o));
        assert!(stdout(&o).contains("acknowledged 3"), "{}", stdout(&o));
        assert!(stdout(&o).contains("skipped 1"), "{}", stdout(&o));
    }
    // The second run sent the same (sender, seq) pairs: acknowledged, not saved again.
    assert_eq!(records(&file).len(), 3);
}

/// Counts each (sender, seq) in the file.
fn census(file: &Path) -> HashMap<(String, u64), u32> {
    let mut m = HashMap::new();
    for r in records(file) {
        let k = (
            r["sender"].as_str().unwrap().to_string(),
            r["seq"].as_u64().unwrap(),
        );
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[test]
fn kill_9_loop_under_100k_records_keeps_each_exactly_once() {
    const N: u64 = 100_000;
    let seed: u64 = std::env::var("LAB_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6006);
    eprintln!("kill -9 loop: seed {seed} (LAB_TEST_SEED replays it)");
    let mut rng = lab::rng::Rng::new(seed);
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let mut rx = receiver(&file, "127.0.0.1:0");
    let bind = rx.addr.to_string();
    let sender = lab()
        .args(["run", "06", "--role", "sender", "--connect", &bind])
        .args(["--generate", &N.to_string(), "--sender", "k9", "--quiet"])
        .args(["--give-up", "60", "--seed", &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sender = Reaper(sender);
    let began = Instant::now();
    let mut kills = 0;
    // Kill at random moments while the sender runs: at most 12 kills, at most 90 s.
    while kills < 12 && began.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(rng.range(50, 400) as u64));
        if sender.0.try_wait().unwrap().is_some() {
            break;
        }
        rx.child.kill().unwrap(); // SIGKILL
        rx.child.wait().unwrap();
        kills += 1;
        drop(rx);
        std::thread::sleep(Duration::from_millis(rng.range(0, 100) as u64));
        rx = receiver(&file, &bind);
    }
    // Let the sender finish against the last receiver (bounded by its --give-up).
    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = sender.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "the sender did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    sender
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "sender: {out}");
    assert!(out.contains(&format!("acknowledged {N}")), "{out}");
    eprintln!("{kills} kills; sender: {}", out.trim());
    drop(rx);
    let c = census(&file);
    assert_eq!(c.len() as u64, N, "every record present");
    for q in 1..=N {
        assert_eq!(c.get(&("k9".to_string(), q)), Some(&1), "seq {q}");
    }
    assert!(kills > 0, "the loop never killed the receiver");
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_offset() {
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let good = "{\"sender\":\"a\",\"seq\":1}\n{\"sender\":\"a\",\"seq\":2}\n";
    let last = "{\"sender\":\"a\",\"seq\":3,\"v\":\"caf\u{e9}\"}\n";
    for cut in 0..last.len() {
        std::fs::write(&file, [good.as_bytes(), &last.as_bytes()[..cut]].concat()).unwrap();
        let o = run(&[
            "run",
            "06",
            "--role",
            "receiver",
            "--bind",
            "127.0.0.1:0",
            // Recover the file, then stop at once.
            "--duration",
            "1ms",
            "--quiet",
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let said = stdout(&o);
        assert_eq!(
            said.contains(&format!("cut a torn last line ({cut} bytes")),
            cut > 0,
            "cut {cut}: {said}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), good, "cut {cut}");
    }
    // After recovery the sender's resend of record 3 is saved; 2 is acknowledged only.
    let s = receiver(&file, "127.0.0.1:0");
    let mut c = connect(s.addr);
    let mut r = BufReader::new(c.try_clone().unwrap());
    c.write_all(format!("{{\"sender\":\"a\",\"seq\":2}}\n{}", last).as_bytes())
        .unwrap();
    assert_eq!(reply(&mut r), "ok 2");
    assert_eq!(reply(&mut r), "ok 3");
    assert_eq!(records(&file).len(), 3);
}

#[test]
fn a_full_disk_gives_no_ack_no_torn_record_and_a_clear_message() {
    if !have("prlimit") {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is required in CI"
        );
        eprintln!("skipped: prlimit missing");
        return;
    }
    let dir = tmp();
    let file: PathBuf = dir.path().join("r.jsonl");
    // 4 KiB file-size limit: a few dozen records fit, then write() fails with EFBIG.
    let mut child = Command::new("prlimit")
        .arg("--fsize=4096")
        .arg(env!("CARGO_BIN_EXE_lab"))
        .args(RECEIVER)
        .arg(&file)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_at(&mut child);
    let stderr = child.stderr.take().unwrap();
    let mut child = Reaper(child);
    let mut c = connect(addr);
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut acked = Vec::new();
    let mut refused = None;
    for seq in 1..=200u64 {
        // Records of ~100 bytes, one at a time, so each is its own commit.
        c.write_all(
            format!(
                "{{\"sender\":\"d\",\"seq\":{seq},\"pad\":\"{}\"}}\n",
                "x".repeat(64)
            )
            .as_bytes(),
        )
        .unwrap();
        let got = reply(&mut r);
        if got == format!("ok {seq}") {
            acked.push(seq);
        } else {
            assert!(got.starts_with(&format!("error {seq} not saved:")), "{got}");
            refused = Some(seq);
            break;
        }
    }
    let refused = refused.expect("the file-size limit was never reached");
    assert!(!acked.is_empty());
    // The file holds exactly the acknowledged records, whole.
    let c_ = census(&file);
    assert_eq!(c_.len(), acked.len());
    assert!(!c_.contains_key(&("d".to_string(), refused)));
    assert!(std::fs::metadata(&file).unwrap().len() <= 4096);
    // Still alive and answering: the resend is refused again, not acknowledged.
    c.write_all(
        format!(
            "{{\"sender\":\"d\",\"seq\":{refused},\"pad\":\"{}\"}}\n",
            "x".repeat(64)
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(reply(&mut r).starts_with(&format!("error {refused} not saved:")));
    assert!(child.0.try_wait().unwrap().is_none(), "the receiver died");
    let _ = lab::sys::send_signal(child.0.id(), libc::SIGTERM);
    let _ = child.0.wait();
    let mut err = String::new();
    BufReader::new(stderr).read_to_string(&mut err).unwrap();
    assert!(
        err.contains("cannot write") && err.contains("File too large"),
        "{err}"
    );
    assert!(err.contains("fix:") && err.contains("ulimit -f"), "{err}");
}

/// A sender that half-closes (sends its records, then `shutdown(SHUT_WR)`: EOF) gets an
/// ack for every record and then a clean close, also while another connection keeps the
/// receiver busy. The receiver closes a peer once *its own* replies are out; if it
/// waited for the whole receiver to be idle (the bug this pins), the busy neighbour
/// would keep the half-closed peer waiting as long as the neighbour kept sending.
#[test]
fn a_half_closed_sender_gets_every_ack_then_eof_while_a_neighbour_keeps_sending() {
    if !have("python3") {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required in CI"
        );
        eprintln!("skipped: python3 missing");
        return;
    }
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let s = receiver(&file, "127.0.0.1:0");

    // The neighbour: streams records until told to stop (bounded: 5,000,000 records or
    // 120 s), a second thread reading its acks so it never blocks on a full buffer.
    // Its flood also makes each fsync carry many megabytes, so under load the half-closed
    // peer's acks can take seconds: the deadlines below are generous for that.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let busy = connect(s.addr);
    let reader = {
        let (stream, acked) = (busy.try_clone().unwrap(), acked.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(l) if l.starts_with("ok ") => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
        })
    };
    let writer = {
        let (mut stream, stop) = (busy, stop.clone());
        std::thread::spawn(move || {
            let began = Instant::now();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed)
                && seq < 5_000_000
                && began.elapsed() < Duration::from_secs(120)
            {
                let mut chunk = String::new();
                for _ in 0..200 {
                    seq += 1;
                    chunk.push_str(&format!("{{\"sender\":\"busy\",\"seq\":{seq},\"v\":1}}\n"));
                }
                if stream.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
            }
            let _ = stream.shutdown(std::net::Shutdown::Write);
        })
    };
    // The receiver is busy once the neighbour's acks flow (20 s at most).
    let began = Instant::now();
    while acked.load(Ordering::Relaxed) < 1000 && began.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        acked.load(Ordering::Relaxed) >= 1000,
        "the neighbour got no acks"
    );

    // The half-closing peer, python3: 1000 records, SHUT_WR, then read until EOF.
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import socket, sys\n\
             s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
             s.settimeout(60)\n\
             s.sendall(b''.join(b'{\"sender\":\"half\",\"seq\":%d}\\n' % i for i in range(1, 1001)))\n\
             s.shutdown(socket.SHUT_WR)\n\
             data = b''\n\
             try:\n\
             \x20   while True:\n\
             \x20       b = s.recv(65536)\n\
             \x20       if not b:\n\
             \x20           print('eof')\n\
             \x20           break\n\
             \x20       data += b\n\
             except socket.timeout:\n\
             \x20   print('timeout: no EOF after 60 s')\n\
             print(data.count(b'ok '))\n\
             sys.stdout.write(data.decode())\n",
        )
        .arg(s.addr.port().to_string())
        .output()
        .unwrap();
    let neighbour_still_sending = !writer.is_finished();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    reader.join().unwrap();
    let out = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("eof"),
        "the half-closed peer was never closed; it got {} acks",
        out.matches("ok ").count()
    );
    assert_eq!(lines.next(), Some("1000"), "acks the half-closed peer got");
    let acks: Vec<&str> = lines.collect();
    let want: Vec<String> = (1..=1000).map(|i| format!("ok {i}")).collect();
    assert_eq!(acks, want, "every record acknowledged once, in order");
    assert!(
        neighbour_still_sending,
        "the neighbour stopped before the half-closed peer finished: the test proved nothing"
    );
    let half = records(&file)
        .iter()
        .filter(|r| r["sender"] == "half")
        .count();
    assert_eq!(half, 1000);
}

/// The receiver's peak resident memory (`VmHWM`, KiB) from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// Record `k` of the memory test (~80 bytes): odd seqs, so no two replies share a run
/// and every record costs the receiver a queued reply entry until its sync returns.
fn odd_record(out: &mut Vec<u8>, k: u64) {
    let seq = 2 * k + 1;
    writeln!(
        out,
        "{{\"sender\":\"m\",\"seq\":{seq},\"pad\":\"{:0>40}\"}}",
        k
    )
    .unwrap();
}

/// A stalled disk and a fast sender: the receiver stops reading while too much waits
/// for a sync (back-pressure: the sender waits in TCP), so its memory stays bounded, and
/// every record still arrives and is acknowledged. The first fdatasync is made to take
/// 15 s for real by the receiver's test-only `LAB_TEST_SLOW_FSYNC_MS` (a sleep in its
/// sync thread). Without the bound the receiver reads on during the stall and queues a
/// reply (~50 bytes) per record, and once the sync returns it owes more acks than a
/// connection may queue (4 MiB) and drops the sender.
#[test]
fn a_slow_disk_bounds_the_receivers_memory_and_loses_nothing() {
    const RECORDS: u64 = 2_600_000; // ~80 bytes each: 208 MB
    const CAP_KIB: u64 = 56 << 10; // measured 25-37 MiB (debug build) with the bound
    let dir = tmp();
    let file = dir.path().join("r.jsonl");
    let mut child = lab()
        .args(RECEIVER)
        .arg(&file)
        .env(lab::labs::json_to_file::store::SLOW_SYNC_ENV, "15000,1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr = listening_at(&mut child);
    let mut child = Reaper(child);
    let pid = child.0.id();
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut sent = 0u64;
        for k in 0..RECORDS {
            odd_record(&mut buf, k);
            if buf.len() >= 1 << 20 || k + 1 == RECORDS {
                w.write_all(&buf).unwrap();
                sent += buf.len() as u64;
                buf.clear();
            }
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
        sent
    });
    let mut r = BufReader::with_capacity(1 << 16, c);
    let mut line = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for k in 0..RECORDS {
        line.clear();
        let read = r.read_until(b'\n', &mut line);
        let want = format!("ok {}\n", 2 * k + 1);
        assert!(
            read.is_ok() && line == want.as_bytes(),
            "ack {k}: {read:?}, got {:?} for {want:?} (the receiver's peak RSS so far: {} KiB)",
            String::from_utf8_lossy(&line),
            peak_rss_kib(pid)
        );
        assert!(Instant::now() < deadline, "600 s and only {k} acks");
    }
    let sent = writer.join().unwrap();
    assert!(sent >= 200_000_000, "only {sent} bytes sent");
    let peak = peak_rss_kib(pid);
    let _ = lab::sys::send_signal(pid, libc::SIGTERM);
    let _ = child.0.wait();
    // Every record is in the file once, as sent, in order.
    let data = std::fs::read(&file).unwrap();
    assert_eq!(data.len() as u64, sent);
    let mut expect = Vec::new();
    for (k, got) in data.split_inclusive(|&b| b == b'\n').enumerate() {
        expect.clear();
        odd_record(&mut expect, k as u64);
        assert_eq!(got, &expect[..], "line {}", k + 1);
    }
    assert!(
        peak < CAP_KIB,
        "the receiver peaked at {peak} KiB of memory (bound {CAP_KIB} KiB) while a slow disk held its syncs"
    );
    eprintln!("receiver peak RSS {peak} KiB for {sent} bytes");
}
