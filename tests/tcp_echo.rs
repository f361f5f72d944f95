//! 01-tcp-echo's server with real peers (nc, socat, python3) and hostile clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{have, rss_kib, server, stdout};

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads exactly `n` bytes (or fails after the read timeout).
fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    c.read_exact(&mut buf).unwrap();
    buf
}

/// Pipes `input` through a peer command and returns its stdout.
fn peer(cmd: &str, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn netcat_gets_one_reply_per_line() {
    assert!(
        have("nc"),
        "nc (netcat-openbsd) is required: apt-get install netcat-openbsd"
    );
    let s = server("01", &["--quiet"]);
    let port = s.addr.port().to_string();
    // -N: shut down the socket after stdin's EOF, so the server sees EOF and closes.
    let got = peer("nc", &["-N", "127.0.0.1", &port], b"hello\nworld\n");
    assert_eq!(got, "Received: hello\nReceived: world\n");
}

#[test]
fn socat_works_too() {
    assert!(have("socat"), "socat is required: apt-get install socat");
    let s = server("01", &["--quiet"]);
    let got = peer("socat", &["-", &format!("TCP:{}", s.addr)], b"over socat\n");
    assert_eq!(got, "Received: over socat\n");
}

#[test]
fn a_python_socket_client_works() {
    assert!(have("python3"), "python3 is required");
    let s = server("01", &["--quiet"]);
    let script = format!(
        r#"
import socket
s = socket.create_connection(("127.0.0.1", {port}))
s.sendall("naïve café\n".encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(16)
    if not chunk:
        break
    data += chunk
print(data.decode(), end="")
"#,
        port = s.addr.port()
    );
    let got = peer("python3", &["-c", &script], b"");
    assert_eq!(got, "Received: naïve café\n");
}

#[test]
fn our_client_talks_to_any_echo_server() {
    assert!(have("socat"), "socat is required: apt-get install socat");
    // A plain echo server that is not ours: socat running `cat` per connection.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut echo = Command::new("socat")
        .args([
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
            "EXEC:cat",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let o = common::lab()
        .args([
            "run",
            "01",
            "--role",
            "client",
            "--connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-m", "first", "-m", "second"])
        .output()
        .unwrap();
    let _ = echo.kill();
    let _ = echo.wait();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(stdout(&o), "first\nsecond\n");
}

#[test]
fn our_client_reads_stdin_lines_against_our_server() {
    let s = server("01", &["--quiet"]);
    let mut child = common::lab()
        .args([
            "run",
            "01",
            "--role",
            "client",
            "--connect",
            &s.addr.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "Received: a\nReceived: b\n");
}

#[test]
fn one_byte_writes_still_make_one_line() {
    let s = server("01", &["--quiet"]);
    let mut c = connect(s.addr);
    c.set_nodelay(true).unwrap();
    for b in b"bytewise\n" {
        c.write_all(&[*b]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(read_n(&mut c, 19), b"Received: bytewise\n");
}

#[test]
fn many_lines_in_one_write_each_get_a_reply_in_order() {
    let s = server("01", &["--quiet"]);
    let mut c = connect(s.addr);
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    let mut blob = lines.join("\n");
    blob.push('\n');
    c.write_all(blob.as_bytes()).unwrap();
    let mut r = BufReader::new(c);
    for l in &lines {
        let mut got = String::new();
        r.read_line(&mut got).unwrap();
        assert_eq!(got, format!("Received: {l}\n"));
    }
}

#[test]
fn non_utf8_bytes_come_back_unchanged() {
    let s = server("01", &["--quiet"]);
    let mut c = connect(s.addr);
    c.write_all(b"\xff\xfe\x00ok\n").unwrap();
    assert_eq!(read_n(&mut c, 16), b"Received: \xff\xfe\x00ok\n");
}

#[test]
fn a_client_reset_mid_line_does_not_disturb_others() {
    let s = server("01", &["--quiet"]);
    let other = connect(s.addr);
    {
        let c = connect(s.addr);
        (&c).write_all(b"half a li").unwrap();
        // SO_LINGER 0 turns close() into a reset (RST) instead of a FIN.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    let mut other = other;
    other.write_all(b"still here\n").unwrap();
    assert_eq!(read_n(&mut other, 21), b"Received: still here\n");
    // And a new client is served too.
    let mut fresh = connect(s.addr);
    fresh.write_all(b"new\n").unwrap();
    assert_eq!(read_n(&mut fresh, 14), b"Received: new\n");
}

#[test]
fn a_ten_mib_line_gets_one_error_and_memory_stays_bounded() {
    let s = server("01", &["--quiet"]);
    let pid = s.child.id();
    let before = rss_kib(pid);
    let mut c = connect(s.addr);
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..10 {
        c.write_all(&chunk).unwrap();
    }
    c.write_all(b"\nafter\n").unwrap();
    let mut r = BufReader::new(c);
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("Error: line longer than 65536 bytes"),
        "{first}"
    );
    let mut second = String::new();
    r.read_line(&mut second).unwrap();
    assert_eq!(
        second, "Received: after\n",
        "the server recovers at the next newline"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    // Holding the line would take 10240 KiB; the cap is 64 KiB plus read buffers.
    assert!(
        grown < 4 * 1024,
        "server grew by {grown} KiB for a 10 MiB line"
    );
}

#[test]
fn a_client_that_never_reads_cannot_stall_the_others() {
    let s = server("01", &["--quiet"]);
    let pid = s.child.id();
    let before = rss_kib(pid);
    let hog = connect(s.addr);
    // The hog sends lines and never reads a reply. Its replies fill the socket buffers,
    // then the server's outbound buffer; the server must stop reading from it (or drop
    // it) and keep serving everyone else. Either way the hog's writes stop going through:
    // a server without back-pressure would read (and queue 6 reply bytes per 2 sent)
    // for as long as the hog writes. The hog gives up at `SENT_LIMIT`, far more than the
    // kernel's socket buffers plus the server's 1 MiB high-water mark, so a broken server
    // shows as `sent == SENT_LIMIT` (and ~100 MiB of RSS) rather than filling the machine.
    const SENT_LIMIT: usize = 32 << 20;
    let mut w = hog.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let progress = Arc::new(AtomicUsize::new(0));
    let shared = Arc::clone(&progress);
    let writer = thread::spawn(move || {
        let lines = "x\n".repeat(32 * 1024);
        // A generous bound for a loaded machine, not a measurement.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = 0usize;
        while Instant::now() < deadline && sent < SENT_LIMIT {
            match w.write_all(lines.as_bytes()) {
                Ok(()) => sent += lines.len(),
                // Timed out (the server stopped reading) or reset (it dropped us).
                Err(_) => return (sent, true),
            }
            shared.store(sent, Ordering::Relaxed);
        }
        (sent, false)
    });
    // The polite clients come once the hog is a real hog: 256 KiB of its lines are
    // 1.5 MiB of replies, past the server's high-water mark (or it stalled sooner).
    // Waiting on that, not on a nap, keeps the test's point when the hog is slow to
    // get a CPU; the bound is only a hang guard.
    let until = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < 256 << 10
        && !writer.is_finished()
        && Instant::now() < until
    {
        thread::sleep(Duration::from_millis(10));
    }
    for i in 0..20 {
        let mut c = connect(s.addr);
        // A stalled server never answers; a starved one answers late. The timeout only
        // guards against the hang, so it is generous for a loaded 2-CPU machine.
        c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let line = format!("polite {i}\n");
        c.write_all(line.as_bytes()).unwrap();
        let want = format!("Received: {line}");
        assert_eq!(read_n(&mut c, want.len()), want.as_bytes());
    }
    let (sent, stalled) = writer.join().unwrap();
    eprintln!("the hog got {sent} bytes through before it stalled: {stalled}");
    assert!(sent > 0);
    assert!(
        stalled && sent < SENT_LIMIT,
        "the server kept reading {sent} bytes from a client that never reads: no back-pressure"
    );
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!("server RSS grew by {grown} KiB");
    // The cap is 4 MiB of replies; the rest is read buffers and allocator slack.
    assert!(
        grown < 16 * 1024,
        "server grew by {grown} KiB: the hog's replies are not bounded"
    );
    drop(hog);
}

#[test]
fn a_thousand_clients_at_once() {
    // The test holds 1000 sockets and the server 1000 more: raise our own limit.
    lab::sys::raise_nofile_limit(8192).unwrap();
    let s = server("01", &["--quiet"]);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(s.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("client {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("Received: client {i}\n");
        assert_eq!(read_n(c, want.len()), want.as_bytes(), "client {i}");
    }
    for c in &clients {
        c.shutdown(Shutdown::Write).unwrap();
    }
    for c in clients.iter_mut() {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "EOF after the replies");
    }
}

#[test]
fn a_last_line_without_newline_is_answered_at_eof() {
    let s = server("01", &["--quiet"]);
    let mut c = connect(s.addr);
    c.write_all(b"no newline").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"Received: no newline\n");
}

#[test]
fn the_server_narrates_connections_by_default() {
    let s = server("01", &[]);
    {
        let mut c = connect(s.addr);
        c.write_all(b"x\n").unwrap();
        read_n(&mut c, 12);
    }
    let accept = s.lines.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut seen = vec![accept];
    while let Ok(l) = s.lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(l);
        if seen.iter().any(|l| l.contains("bye")) {
            break;
        }
    }
    let all = seen.join("\n");
    assert!(all.contains("accept()"), "{all}");
    assert!(all.contains("bye"), "{all}");
}

#[test]
fn the_server_and_client_speak_ipv6_too() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        common::skip("no IPv6 loopback on this machine");
        return;
    }
    let s = common::server_at("01", "[::1]:0", &["--quiet"]);
    let addr = s.addr;
    assert!(addr.is_ipv6(), "{addr}");
    let o = common::lab()
        .args([
            "run",
            "01",
            "--role",
            "client",
            "--connect",
            &addr.to_string(),
            "-m",
            "v6",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "Received: v6\n");
}

/// Issue 18: Ctrl-C took 26 s on this server with 300 clients sending: the loop heard
/// the signal only at its next poll, after a turn that read every client's budget (now
/// rule 9 of the core: a signal is heard before the next read, and a stopped loop leaves
/// the rest of the turn undone; the core's unit tests count that). End to end: 100
/// clients send without pause and never read; SIGINT; the server must say it stopped
/// and exit. The bound is generous (a loaded machine), the broken server missed it by
/// tens of seconds in a debug build.
#[test]
fn ctrl_c_stops_the_server_while_a_hundred_clients_flood_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut s = server("01", &["--quiet"]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut floods = Vec::new();
    for _ in 0..4 {
        let mut socks: Vec<TcpStream> = (0..25).map(|_| connect(s.addr)).collect();
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        floods.push(thread::spawn(move || {
            // A line that never ends: the server reads and discards it as fast as it can.
            let chunk = vec![b'x'; 64 * 1024];
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                socks.retain_mut(|c| {
                    c.set_write_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    match c.write(&chunk) {
                        Ok(n) => {
                            sent.fetch_add(n, Ordering::SeqCst);
                            true
                        }
                        Err(e) => {
                            e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut
                        }
                    }
                });
                if socks.is_empty() {
                    break;
                }
            }
        }));
    }
    // Busy: 256 MiB through (bounded: 60 s), then Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(Ordering::SeqCst) < 256 << 20 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    lab::sys::send_signal(s.child.id(), libc::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit within 20 s of Ctrl-C while clients flooded it"
        );
        thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::SeqCst);
    for f in floods {
        f.join().unwrap();
    }
    assert!(status.success(), "{status}");
    // Its output to the end (the pipe closes with the process; 10 s per line at most).
    let said: Vec<String> =
        std::iter::from_fn(|| s.lines.recv_timeout(Duration::from_secs(10)).ok()).collect();
    assert!(
        said.iter().any(|l| l.starts_with("server stopped")),
        "no 'server stopped' line: {said:?}"
    );
}
