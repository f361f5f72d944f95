//! 02-udp-echo's server with a real python3 client, and our client.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have, server, stdout};

#[test]
fn a_python_udp_client_gets_every_size_back_unchanged() {
    assert!(have("python3"), "python3 is required");
    let s = server("02", &["--quiet"]);
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for size in (1, 1472, 8000, 65507):
    data = bytes(i % 251 for i in range(size))
    s.sendto(data, ("127.0.0.1", {port}))
    back, addr = s.recvfrom(65535)
    assert back == data, (size, len(back))
    print(size, len(back), addr[1] == {port})
"#,
        port = s.addr.port()
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout(&o),
        "1 1 True\n1472 1472 True\n8000 8000 True\n65507 65507 True\n"
    );
}

#[test]
fn boundaries_are_kept_for_a_burst_of_datagrams() {
    let s = server("02", &["--quiet"]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..100u32 {
        c.send_to(format!("datagram {i}").as_bytes(), s.addr)
            .unwrap();
    }
    let mut buf = [0u8; 100];
    let mut got = Vec::new();
    for _ in 0..100 {
        let (n, _) = c.recv_from(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // Loopback neither loses nor reorders at this rate; each one is whole.
    let want: Vec<String> = (0..100).map(|i| format!("datagram {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn netcat_udp_works() {
    assert!(have("nc"), "nc (netcat-openbsd) is required");
    let s = server("02", &["--quiet"]);
    // -u UDP, -w1: wait one second for replies after stdin's EOF.
    let mut child = Command::new("nc")
        .args(["-u", "-w1", "127.0.0.1", &s.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "ping\n");
}

#[test]
fn our_client_sends_lines_as_datagrams() {
    let s = server("02", &["--quiet"]);
    let o = common::lab()
        .args([
            "run",
            "02",
            "--role",
            "client",
            "--connect",
            &s.addr.to_string(),
        ])
        .args(["-m", "one", "-m", "two"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(stdout(&o), "one\ntwo\n");
}

#[test]
fn our_client_reports_when_nobody_listens() {
    let silent = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = common::lab()
        .args([
            "run",
            "02",
            "--role",
            "client",
            "--connect",
            &silent.to_string(),
        ])
        .args(["-m", "anyone?", "--timeout", "0.5"])
        .output()
        .unwrap();
    // Either outcome is a clear report with its own exit code: a timeout (exit 1, the
    // usual case: an unconnected UDP socket hears no ICMP error) or a refusal (exit 2,
    // with the fix). A client that panics after printing "no reply" exits 101: that is
    // not a report.
    let e = common::stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    match o.status.code() {
        Some(1) => assert!(e.contains("lab: 1 datagram(s) got no reply"), "{e}"),
        Some(2) => assert!(
            e.contains("nothing listens there") && e.contains("start the server first"),
            "{e}"
        ),
        other => panic!("exit {other:?}, want 1 (no reply) or 2 (refused):\n{e}"),
    }
}

#[test]
fn garbage_and_empty_datagrams_do_not_hurt_the_server() {
    let s = server("02", &["--quiet"]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"", s.addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(n, 0, "an empty datagram is echoed as an empty datagram");
    c.send_to(&[0xff; 3], s.addr).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[0xff; 3]);
}

/// The demo narrates in the order things happen: each datagram's `sendto()` by the
/// client before the server's `recvfrom()` of it, and that before the client's receive
/// of the echo. The server runs on its own thread, so a wrong order shows only now and
/// then: the demo runs several times (bounded: 6 runs of about half a second).
#[test]
fn the_demo_tells_each_send_before_its_receive() {
    for run in 0..6 {
        let o = common::run(&["run", "02"]);
        assert!(o.status.success(), "{}", common::stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        let at = |who: &str, what: &str| {
            lines
                .iter()
                .position(|l| l.contains(who) && l.contains(what))
                .unwrap_or_else(|| panic!("no {who} line with {what} in:\n{out}"))
        };
        for word in ["one", "two", "three"] {
            let sent = at("client", &format!("sendto(\"{word}\""));
            let got = at("server", &format!("\"{word}\""));
            assert!(
                sent < got,
                "run {run}: the server's recvfrom of {word:?} printed before the client's sendto:\n{out}"
            );
        }
        for size in ["100 bytes", "1472 bytes", "65507 bytes"] {
            let sent = at("client", &format!("sendto({size})"));
            let got = at("server", &format!("-> {size} from"));
            assert!(sent < got, "run {run}: {size}:\n{out}");
        }
    }
}
