//! 05-chat's server end to end: the protocol with real peers (nc, ncat, python3, the
//! lab's own client), nick rules, `/msg`, framing, and hostile peers (a 10 MiB line, a
//! client that never reads, resets, invalid UTF-8, a thousand clients, running out of
//! descriptors). No timed assertions: every wait is a generous deadline.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{have, lab, rss_kib, server, Reaper};

/// How long any expected line may take: loopback answers in microseconds; this only
/// expires when the line is not coming (or the machine is badly overloaded).
const WAIT: Duration = Duration::from_secs(20);

/// A test client on a plain socket, reading line by line.
struct Peer {
    w: TcpStream,
    r: BufReader<TcpStream>,
    /// The nickname the server gave or confirmed.
    nick: String,
}

impl Peer {
    /// Connects and reads the welcome line (which names the guest nickname).
    fn join(addr: SocketAddr) -> Peer {
        let w = TcpStream::connect(addr).unwrap();
        w.set_read_timeout(Some(WAIT)).unwrap();
        w.set_nodelay(true).unwrap();
        let mut p = Peer {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
            nick: String::new(),
        };
        let welcome = p.line();
        let nick = welcome
            .strip_prefix("* welcome, you are ")
            .and_then(|r| r.split(';').next())
            .unwrap_or_else(|| panic!("not a welcome: {welcome:?}"));
        assert_eq!(
            welcome,
            format!("* welcome, you are {nick}; /nick NAME to change, /help for commands")
        );
        p.nick = nick.to_string();
        p
    }

    /// Joins and takes a nickname; `watchers` see the join and the rename.
    fn named(addr: SocketAddr, nick: &str, watchers: &mut [&mut Peer]) -> Peer {
        let mut p = Peer::join(addr);
        let guest = p.nick.clone();
        for w in watchers.iter_mut() {
            w.expect(&format!("* {guest} joined"));
        }
        p.send(&format!("/nick {nick}"));
        p.expect(&format!("* {guest} is now {nick}"));
        for w in watchers.iter_mut() {
            w.expect(&format!("* {guest} is now {nick}"));
        }
        p.nick = nick.to_string();
        p
    }

    fn send(&mut self, line: &str) {
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut v = Vec::new();
        let n = self.r.read_until(b'\n', &mut v).unwrap_or_else(|e| {
            panic!("{}: no line within {WAIT:?}: {e}", self.nick);
        });
        assert!(n > 0, "{}: the server closed the connection", self.nick);
        assert_eq!(v.pop(), Some(b'\n'), "{}: cut line {v:?}", self.nick);
        String::from_utf8(v).expect("the server sends UTF-8")
    }

    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} expected {want:?}", self.nick);
    }

    /// Reads until EOF (or a reset), with the read timeout as a bound.
    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{}: expected the server to close: {e}", self.nick),
        }
    }
}

/// A peer program (nc, ncat, python3) whose stdin we write and whose stdout lines we
/// read through a channel.
struct ProcPeer {
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    _child: Reaper,
    name: String,
}

impl ProcPeer {
    fn spawn(name: &str, cmd: &str, args: &[&str]) -> ProcPeer {
        let mut child: Child = Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ProcPeer {
            stdin: child.stdin.take(),
            lines: rx,
            _child: Reaper(child),
            name: name.to_string(),
        }
    }

    fn send(&mut self, line: &str) {
        let s = self.stdin.as_mut().unwrap();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("{}: no line within {WAIT:?}: {e}", self.name))
    }

    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{} expected {want:?}", self.name);
    }
}

/// A python3 chat client: stdin lines to the socket, socket lines to stdout.
const PY_CLIENT: &str = r#"
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def pump():
    for line in sys.stdin.buffer:
        s.sendall(line)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=pump, daemon=True).start()
f = s.makefile("rb")
for line in f:
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
"#;

fn require(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is required in CI (see .ci/apt-packages)"
    );
    eprintln!("skipped: {tool} is not installed");
    false
}

/// Checks that `lines` hold, for each sender, its lines in the order it sent them.
fn assert_order_per_sender(lines: &[String], senders: &[&str], per_sender: usize) {
    for s in senders {
        let mine: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("<{s}> ")))
            .collect();
        let want: Vec<String> = (0..per_sender).map(|i| format!("<{s}> line {i}")).collect();
        assert_eq!(
            mine.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            want,
            "lines of {s} out of order or missing"
        );
    }
}

#[test]
fn nc_ncat_python_and_a_socket_chat_together_in_order_per_sender() {
    if !(require("nc") && require("ncat") && require("python3")) {
        return;
    }
    let srv = server("05", &["--quiet"]);
    let port = srv.addr.port().to_string();
    let mut watch = Peer::named(srv.addr, "watch", &mut []);

    // One at a time, each welcomed before the next starts: clients that connect at
    // once are accepted in an order nobody controls, so the guest numbers (and what
    // each earlier peer hears) would be up to the scheduler.
    let names = ["nc", "ncat", "py"];
    let mut peers = Vec::new();
    let mut guests = Vec::new();
    for name in names {
        let mut p = match name {
            "nc" => ProcPeer::spawn("nc", "nc", &["127.0.0.1", &port]),
            "ncat" => ProcPeer::spawn("ncat", "ncat", &["127.0.0.1", &port]),
            _ => ProcPeer::spawn("py", "python3", &["-c", PY_CLIENT, &port]),
        };
        let welcome = p.line();
        let guest = welcome
            .strip_prefix("* welcome, you are ")
            .and_then(|r| r.split(';').next())
            .unwrap()
            .to_string();
        watch.expect(&format!("* {guest} joined"));
        p.send(&format!("/nick {name}"));
        p.expect(&format!("* {guest} is now {name}"));
        watch.expect(&format!("* {guest} is now {name}"));
        peers.push(p);
        guests.push(guest);
    }
    // Everyone else hears each join and rename that came after their own.
    for (k, later) in [(0, 1), (0, 2), (1, 2)] {
        let (guest, name) = (&guests[later], names[later]);
        peers[k].expect(&format!("* {guest} joined"));
        peers[k].expect(&format!("* {guest} is now {name}"));
    }

    // All three talk at once, 50 lines each; nobody hears itself.
    const N: usize = 50;
    for i in 0..N {
        for p in peers.iter_mut() {
            p.send(&format!("line {i}"));
        }
    }
    let mut seen: Vec<String> = (0..3 * N).map(|_| watch.line()).collect();
    assert_order_per_sender(&seen, &names, N);
    for (k, p) in peers.iter_mut().enumerate() {
        let got: Vec<String> = (0..2 * N).map(|_| p.line()).collect();
        assert!(
            !got.iter()
                .any(|l| l.starts_with(&format!("<{}> ", names[k]))),
            "{} heard its own line: {got:?}",
            names[k]
        );
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != names[k]).collect();
        assert_order_per_sender(&got, &others, N);
    }
    // The python client ends its input: it leaves, and everyone hears it.
    peers[2].stdin.take();
    seen.clear();
    watch.expect("* py left");
    peers[0].expect("* py left");
    peers[1].expect("* py left");
}

#[test]
fn nick_rules_who_me_msg_help_and_quit() {
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "alice", &mut []);
    let mut b = Peer::named(srv.addr, "bob", &mut [&mut a]);
    let mut c = Peer::join(srv.addr);
    a.expect(&format!("* {} joined", c.nick));
    b.expect(&format!("* {} joined", c.nick));

    // Unique case-insensitively; 1-32 of [A-Za-z0-9_-].
    c.send("/nick ALICE");
    c.expect("! nick ALICE is taken");
    for bad in ["caf\u{e9}", "two words", &"x".repeat(33), "<bob>"] {
        c.send(&format!("/nick {bad}"));
        c.expect("! invalid nick");
    }
    c.send(&format!("/nick {}", "c".repeat(32)));
    let long = "c".repeat(32);
    let guest = c.nick.clone();
    c.expect(&format!("* {guest} is now {long}"));
    a.expect(&format!("* {guest} is now {long}"));
    b.expect(&format!("* {guest} is now {long}"));
    c.nick = long.clone();
    c.send("/nick carol");
    for p in [&mut c, &mut a, &mut b] {
        p.expect(&format!("* {long} is now carol"));
    }
    c.nick = "carol".into();
    // A changed nick is free at once.
    b.send(&format!("/nick {long}"));
    for p in [&mut b, &mut a, &mut c] {
        p.expect(&format!("* bob is now {long}"));
    }
    b.send("/nick bob");
    for p in [&mut b, &mut a, &mut c] {
        p.expect(&format!("* {long} is now bob"));
    }

    a.send("/who");
    a.expect("* online: alice, bob, carol");
    a.send("/me waves");
    b.expect("* alice waves");
    c.expect("* alice waves");

    // /msg reaches only its receiver; carol's next line proves she got nothing else.
    a.send("/msg BOB psst");
    b.expect("*alice* psst");
    a.send("/msg nobody hi");
    a.expect("! no such nick");
    a.send("/msg bob");
    a.expect("! usage: /msg NICK TEXT");
    a.send("after");
    b.expect("<alice> after");
    c.expect("<alice> after");

    a.send("/dance");
    a.expect("! unknown command /dance");
    a.send("/help");
    a.expect("* commands: /nick NAME, /who, /me ACTION, /msg NICK TEXT, /quit [REASON], /help; anything else is said to everyone");

    c.send("/quit off to lunch");
    a.expect("* carol left (quit: off to lunch)");
    b.expect("* carol left (quit: off to lunch)");
    c.expect_closed();
    // The nick is free again.
    let mut d = Peer::join(srv.addr);
    a.expect(&format!("* {} joined", d.nick));
    d.send("/nick Carol");
    d.expect(&format!("* {} is now Carol", d.nick));
    a.expect(&format!("* {} is now Carol", d.nick));
    b.send("/quit");
    a.expect("* bob left (quit)");
}

#[test]
fn one_byte_at_a_time_crlf_and_invalid_utf8() {
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut b = Peer::named(srv.addr, "b", &mut [&mut a]);
    for byte in b"one byte at a time\r\n" {
        a.w.write_all(&[*byte]).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    b.expect("<a> one byte at a time");
    // Several lines in one write, then bytes that are not UTF-8, and a terminal escape.
    a.w.write_all(b"x\ny\ncaf\xff\xfe!\n\x1b[2Jclear\n")
        .unwrap();
    b.expect("<a> x");
    b.expect("<a> y");
    b.expect("<a> caf\u{fffd}\u{fffd}!");
    b.expect("<a> \u{fffd}[2Jclear");
    // Empty lines are nothing to say.
    a.send("");
    a.send("last");
    b.expect("<a> last");
}

#[test]
fn a_10_mib_line_gets_an_error_and_memory_stays_bounded() {
    let srv = server("05", &["--quiet"]);
    let pid = srv.child.id();
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut b = Peer::named(srv.addr, "b", &mut [&mut a]);
    let before = rss_kib(pid);
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..10 {
        a.w.write_all(&chunk).unwrap();
    }
    a.expect("! line too long (limit 4096 bytes)");
    let after = rss_kib(pid);
    // The line is dropped as it comes, never held: the server grows by its read
    // buffer at most, nowhere near the 10 MiB sent.
    assert!(
        after < before + 2048,
        "RSS went from {before} KiB to {after} KiB"
    );
    // The client stays; the rest of the long line is skipped up to its newline.
    a.w.write_all(b"tail of the long line\nback to normal\n")
        .unwrap();
    b.expect("<a> back to normal");
    // Exactly at the limit is fine.
    let max = "m".repeat(4096);
    a.send(&max);
    b.expect(&format!("<a> {max}"));
}

#[test]
fn a_client_that_never_reads_is_dropped_and_ten_others_get_everything() {
    let srv = server("05", &["--quiet"]);
    let addr = srv.addr;
    // The slow one: a tiny receive buffer, and it never reads.
    let slow = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&addr.into()).unwrap();
        TcpStream::from(s)
    };
    const PEERS: usize = 10;
    const LINES: usize = 100;
    let mut peers: Vec<Peer> = Vec::new();
    for i in 0..PEERS {
        let mut watchers: Vec<&mut Peer> = peers.iter_mut().collect();
        let p = Peer::named(addr, &format!("p{i}"), &mut watchers);
        peers.push(p);
    }
    // Each peer reads in its own thread while all of them talk: 10 x 100 lines of
    // 1000 bytes, about 1 MB, far more than the slow client's buffers plus its queue.
    let (tx, rx) = mpsc::channel();
    let mut writers = Vec::new();
    for (i, p) in peers.into_iter().enumerate() {
        let tx = tx.clone();
        let mut r = p.r;
        let nick = p.nick;
        thread::spawn(move || {
            let want = (PEERS - 1) * LINES;
            let mut got = Vec::new();
            let mut slow_left = false;
            while got.len() < want || !slow_left {
                let mut v = Vec::new();
                if r.read_until(b'\n', &mut v).unwrap_or(0) == 0 {
                    break;
                }
                let l = String::from_utf8(v).unwrap().trim_end().to_string();
                if l == "* guest1 left (too slow)" {
                    slow_left = true;
                } else {
                    got.push(l);
                }
            }
            let _ = tx.send((nick, got, slow_left));
        });
        let mut w = p.w;
        writers.push(thread::spawn(move || {
            for k in 0..LINES {
                let mut line = format!("line {k} ").into_bytes();
                line.resize(1000, b'a' + (i % 26) as u8);
                line.push(b'\n');
                w.write_all(&line).unwrap();
                // Paced (about 0.5 MB/s per writer, 4.5 MB/s into each reader), so a
                // reader thread the scheduler leaves out for 50 ms on a busy machine is
                // still a reader, not "too slow": the slow client never reads at all,
                // and 1 MB still reaches it in well under a second.
                if k % 5 == 4 {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            w
        }));
    }
    drop(tx);
    let _keep: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for _ in 0..PEERS {
        let (nick, got, slow_left) = rx.recv_timeout(WAIT * 2).expect("a peer hung");
        assert!(slow_left, "{nick} never heard the slow client dropped");
        assert_eq!(got.len(), (PEERS - 1) * LINES, "{nick} missed lines");
        for j in 0..PEERS {
            let s = format!("p{j}");
            if s == nick {
                continue;
            }
            let mine: Vec<&String> = got
                .iter()
                .filter(|l| l.starts_with(&format!("<{s}> ")))
                .collect();
            assert_eq!(mine.len(), LINES, "{nick} got {} lines of {s}", mine.len());
            for (k, l) in mine.iter().enumerate() {
                assert!(
                    l.starts_with(&format!("<{s}> line {k} ")),
                    "{nick}: {s}'s line {k} out of order"
                );
            }
        }
    }
    // The slow client was disconnected: reading it ends in EOF or a reset.
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = Vec::new();
    let _ = (&slow).take(64 << 20).read_to_end(&mut sink);
}

#[test]
fn reset_mid_line_is_announced_and_the_half_line_is_not_said() {
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut r = Peer::named(srv.addr, "r", &mut [&mut a]);
    r.w.write_all(b"this line never ends").unwrap();
    thread::sleep(Duration::from_millis(50));
    socket2::SockRef::from(&r.w)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(r);
    a.expect("* r left (reset)");
    // The nick is free at once.
    let mut r2 = Peer::join(srv.addr);
    a.expect(&format!("* {} joined", r2.nick));
    r2.send("/nick r");
    r2.expect(&format!("* {} is now r", r2.nick));
}

#[test]
fn eof_leaves_at_once_and_a_last_line_without_newline_is_said() {
    if !require("nc") {
        return;
    }
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let port = srv.addr.port().to_string();
    // nc -N: shut down the socket after stdin's EOF.
    let o = Command::new("nc")
        .args(["-N", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"/nick piped\nhi there\nbye")?;
            c.wait_with_output()
        })
        .unwrap();
    a.expect("* guest2 joined");
    a.expect("* guest2 is now piped");
    a.expect("<piped> hi there");
    a.expect("<piped> bye");
    a.expect("* piped left");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("* welcome, you are guest2;"), "{out}");
}

#[test]
fn a_thousand_clients_at_once() {
    lab::sys::raise_nofile_limit(8192).unwrap();
    let (soft, _) = lab::sys::nofile_limit().unwrap();
    if soft < 2100 {
        assert!(std::env::var_os("CI").is_none(), "open-file limit {soft}");
        eprintln!("skipped: the open-file limit is {soft}, 2100 needed");
        return;
    }
    let srv = server("05", &["--quiet"]);
    const N: usize = 1000;
    let mut first = Peer::named(srv.addr, "first", &mut []);
    let mut others: Vec<Peer> = (1..N).map(|_| Peer::join(srv.addr)).collect();
    first.send("hello, all 999 of you");
    let last = others.len() - 1;
    others[last].send("/nick last");
    others[last].send("and hello from the last");
    // Each reads past the joins (and the last one's rename) to the two lines.
    for (i, p) in others.iter_mut().enumerate() {
        let mut heard = Vec::new();
        while heard.len() < if i == last { 1 } else { 2 } {
            let l = p.line();
            if l.starts_with("<") {
                heard.push(l);
            } else {
                assert!(
                    l.ends_with(" joined") || l.contains(" is now last"),
                    "{}: {l}",
                    p.nick
                );
            }
        }
        assert_eq!(heard[0], "<first> hello, all 999 of you");
        if i != last {
            assert_eq!(heard[1], "<last> and hello from the last");
        }
    }
}

#[test]
fn out_of_descriptors_accept_backs_off_logs_once_and_recovers() {
    if !require("prlimit") {
        return;
    }
    // 24 descriptors: the loop's own (epoll, waker, signal pipe, stdio, listener) and a
    // dozen clients. prlimit sets soft = hard, so the server cannot raise it.
    let mut child = Command::new("prlimit")
        .args(["--nofile=24:24", "--"])
        .arg(env!("CARGO_BIN_EXE_lab"))
        .args(["run", "05", "--role", "server", "--bind", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let child = Reaper(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(WAIT).unwrap();
    let addr: SocketAddr = first
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    // 40 clients: the kernel completes every connection (backlog), the server accepts
    // until EMFILE and then must wait without spinning.
    let clients: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let until = Instant::now() + WAIT;
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("accept() failed")) && Instant::now() < until {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push(l);
        }
    }
    assert!(
        log.iter().any(|l| l.contains("Too many open files")),
        "no EMFILE logged: {log:?}"
    );
    let pid = child.0.id();
    let cpu = || -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime, fields 14 and 15 (12 and 13 after the command name).
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let c0 = cpu();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let share = (cpu() - c0) / t0.elapsed().as_secs_f64();
    // A spinning accept loop burns a whole CPU; retrying every 100 ms costs next to
    // nothing. A quarter is a wide margin both ways.
    assert!(
        share < 0.25,
        "the server used {:.0}% of a CPU while out of descriptors",
        share * 100.0
    );
    // Clients leave: the waiting ones are accepted and welcomed.
    let mut clients = clients;
    let waiting = clients.split_off(20);
    drop(clients);
    for w in waiting {
        w.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = BufReader::new(w);
        let mut l = String::new();
        // Joins of the others may come first; the welcome comes first of all.
        r.read_line(&mut l).unwrap();
        assert!(l.starts_with("* welcome, you are guest"), "{l:?}");
    }
    // The server's log, until it says it accepts again (bounded).
    let mut rest: Vec<String> = log;
    let until = Instant::now() + WAIT;
    while !rest.iter().any(|l| l.contains("accepting again")) && Instant::now() < until {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            rest.push(l);
        }
    }
    rest.extend(rx.try_iter());
    // Once per episode: between two "accepting again" the failure is said at most once
    // (the clients that get in may meet the limit again, a second episode, on a slow
    // machine where they all arrive before the first ones leave).
    for episode in rest.split(|l| l.contains("accepting again")) {
        assert!(
            episode
                .iter()
                .filter(|l| l.contains("accept() failed"))
                .count()
                <= 1,
            "logged more than once in one episode: {rest:?}"
        );
    }
    assert!(
        rest.iter().any(|l| l.contains("accepting again")),
        "{rest:?}"
    );
}

#[test]
fn idle_clients_time_out_and_everyone_hears_it() {
    let srv = server("05", &["--quiet", "--idle-timeout", "1"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut b = Peer::named(srv.addr, "b", &mut [&mut a]);
    // a keeps talking; b stays silent and is timed out.
    let until = Instant::now() + WAIT;
    let mut heard_b_left = false;
    while !heard_b_left && Instant::now() < until {
        a.send("/who");
        let l = a.line();
        heard_b_left = l == "* b left (timeout)";
        thread::sleep(Duration::from_millis(200));
    }
    assert!(heard_b_left, "b was never timed out");
    b.expect("! idle for 1 s: disconnected");
    b.expect_closed();
}

#[test]
fn the_lab_client_works_from_a_pipe() {
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut c = lab()
        .args(["run", "05", "--role", "client", "--connect"])
        .arg(srv.addr.to_string())
        .args(["--nick", "bot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    a.expect("* guest2 joined");
    a.expect("* guest2 is now bot");
    stdin.write_all(b"hello from a script\n").unwrap();
    a.expect("<bot> hello from a script");
    a.send("hi bot");
    // The reply to /who proves the server has queued "hi bot" for the client before
    // the client's input ends (the server flushes it before closing).
    a.send("/who");
    a.expect("* online: a, bot");
    drop(stdin);
    a.expect("* bot left");
    let o = Reaper(c);
    let mut child = o;
    let status = {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < until, "the client did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(status.success());
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.starts_with("* welcome, you are guest2;"), "{out}");
    assert!(out.contains("* guest2 is now bot\n"), "{out}");
    assert!(out.contains("<a> hi bot\n"), "{out}");
}

#[test]
fn the_demo_tells_the_story() {
    let o = common::run(&["run", "05"]);
    let out = common::stdout(&o);
    assert!(o.status.success(), "{out}{}", common::stderr(&o));
    for want in [
        "listener readable -> accept()",
        "* guest2 joined",
        "bob  recv()",
        "\"<ann> hello, bob\"",
        "queue of guest3 grows",
        "\"* guest3 left (too slow)\"",
        "all 200 flood lines, in order",
        "\"* bob left (quit: see you)\"",
        "left: reset",
        "What you saw",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn shutdown_by_the_client_still_gets_pending_lines() {
    // A client that half-closes (it will send no more) still hears what was queued
    // for it before the server closes.
    let srv = server("05", &["--quiet"]);
    let mut a = Peer::named(srv.addr, "a", &mut []);
    let mut b = Peer::named(srv.addr, "b", &mut [&mut a]);
    b.send("/who");
    b.w.shutdown(Shutdown::Write).unwrap();
    b.expect("* online: a, b");
    b.expect_closed();
    a.expect("* b left");
}
