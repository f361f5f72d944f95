//! The grader's checks for 05-chat's exercise: a smaller chat server, black box.
//!
//! The contract (labs/05-chat/lab.toml): `--port N` on 127.0.0.1; a client's first
//! line is its nickname, and the others then get `* NICK joined`; every later line TEXT
//! goes to every *other* client as `<NICK> TEXT`; a departure (EOF or reset) gives the
//! others `* NICK left`; a client that stops reading must not delay anyone else.
//!
//! Lines from different senders may interleave in any order (a server with a thread
//! per client is right to deliver them as its threads run), so where several clients
//! talk at once the checks compare the *set* of lines and the order *per sender* only.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::grade::checks::{starts, Check, Suite};
use crate::grade::harness::{
    idle_cut, Harness, Outcome, Transport, Unmet, Wait, IDLE, REPLY_TIMEOUT,
};
use crate::grade::sandbox::{tcp_queues, thread_queued_seconds};
use crate::out::escape_bytes;

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "05-chat",
    transport: Transport::Tcp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --port N and listens on 127.0.0.1:N",
            mistake: "the server must take its port from `--port N` and listen on it",
            hint: "Parse the argument after --port; bind 127.0.0.1 on that port, then listen().",
            run: starts,
            prologue: None,
        },
        Check {
            name: "two_clients",
            description: "two clients join and exchange a line each way",
            mistake: "the line format is exactly `<NICK> TEXT`, and the first line a client sends is its nickname, not a message",
            hint: "Remember each client's first line as its nickname; send every later line to the others as b\"<\" + nick + b\"> \" + line + b\"\\n\".",
            run: two_clients,
            prologue: None,
        },
        Check {
            name: "no_echo",
            description: "a sender does not get its own line back",
            mistake: "echo to the sender: the broadcast loop sends to every client, the sender included",
            hint: "In the broadcast loop, skip the client the line came from.",
            run: no_echo,
            prologue: None,
        },
        Check {
            name: "join_leave",
            description: "`* NICK joined` and `* NICK left` reach the others; the server keeps serving",
            mistake: "no join or leave announcement, or one that is sent to the wrong clients",
            hint: "After reading the nickname, send `* NICK joined` to the others; when recv() returns b\"\" (EOF), remove the client and send `* NICK left` to the rest.",
            run: join_leave,
            prologue: None,
        },
        Check {
            name: "ten_clients",
            description: "ten clients each say three lines at once; everyone gets all the others' lines, each sender's in order",
            mistake: "one client at a time, or lines lost or reordered when many clients talk at once",
            hint: "Serve every client at once (a thread per client, or one select/poll loop), and keep one list of connected clients for the broadcast.",
            run: ten_clients,
            prologue: None,
        },
        Check {
            name: "byte_at_a_time",
            description: "a nickname and a line sent one byte per write arrive whole",
            mistake: "no framing: each recv() was taken as a whole line, but TCP is a byte stream",
            hint: "Keep a buffer per client; append what recv() returns; act only on complete lines (up to '\\n').",
            run: byte_at_a_time,
            prologue: None,
        },
        Check {
            name: "lines_in_one_write",
            description: "a nickname and three lines in one write are four lines",
            mistake: "no framing: one recv() can hold several lines (even the nickname and the first messages)",
            hint: "Loop: while the buffer holds a '\\n', cut one line off the front and act on it; keep the rest for later.",
            run: lines_in_one_write,
            prologue: None,
        },
        Check {
            name: "reset_mid_line",
            description: "a client that resets mid-line is announced as left; the others keep chatting",
            mistake: "an unhandled ECONNRESET (ConnectionResetError) ended the server or the client's thread without `* NICK left`",
            hint: "Treat an error on a client's socket like EOF: remove the client, announce `* NICK left`, keep serving.",
            run: reset_mid_line,
            prologue: None,
        },
        Check {
            name: "slow_reader",
            description: "five clients that never read do not delay 8 MB of lines to the others",
            mistake: "a send to a client that does not read blocks, and stalls the sender and everyone waiting on it: forever if blocking, or for the whole send timeout per stuck client (worse under a lock every thread needs)",
            hint: "Never wait for one client: give each client its own outbound queue (a writer thread fed with put_nowait/try_send, or non-blocking sends with a buffer) and drop a client whose queue grows too long. Never hold the client-list lock while sending; a send timeout only helps if it is short, since each stuck client costs it once.",
            run: slow_reader,
            prologue: None,
        },
        Check {
            name: "fd_cycles",
            description: "200 join/leave cycles under a 64-descriptor limit, each announced, then chat still works",
            mistake: "sockets of departed clients are never closed (or never removed from the client list), so descriptors run out",
            hint: "When a client leaves, close its socket and remove it from the list (`with conn:` in Python, drop it in Rust).",
            run: fd_cycles,
            prologue: None,
        },
        Check {
            name: "vanished_receiver",
            description: "lines sent just as receivers reset still reach the others, and the sender can go on",
            mistake: "a failed send to a client that just vanished (EPIPE/ECONNRESET) is not handled: it kills the sender's thread or the server",
            hint: "Wrap each send of the broadcast in try/except (or match on the error): a receiver that fails is dropped, the loop goes on to the next.",
            run: vanished_receiver,
            prologue: None,
        },
        Check {
            name: "idle_clients",
            description: "A and B join and A speaks, then both sit idle while every other check runs (7 s at least); then A speaks again and B hears it",
            mistake: "a socket timeout on client connections (settimeout(5), set_read_timeout): a person at nc who pauses is dropped (and announced as left)",
            hint: "Set no timeout on a client's socket: a blocking recv() waits as long as the client needs (or wait in select/poll).",
            run: idle_clients,
            prologue: Some(idle_clients_open),
        },
    ],
};

/// How many clients in slow_reader never read.
const SLOW: usize = 5;
/// How long slow_reader waits for the server to read A's 8 MB while SLOW clients read
/// nothing: generous for a loaded CI machine (a correct server needs about a second),
/// and well under SLOW times a 5 s send timeout waited out in turn.
const FLOOD_WAIT: Duration = Duration::from_secs(10);

/// How long slow_reader's clients that never read then read what they were sent, not
/// counting time the grader or the server waited for a CPU: a few megabytes already in
/// the kernel take milliseconds to read on an idle machine.
const LATE_READ: Duration = Duration::from_secs(3);

/// How long a pause lets the server register a client whose nickname it has read
/// (a thread per client does so microseconds later; this covers a loaded machine).
const REGISTER_PAUSE: Duration = Duration::from_millis(100);

/// A grader client: its socket, and the bytes read past the last whole line.
struct Chatter {
    /// Its label in the transcript (A, B, ...).
    name: String,
    /// Its nickname.
    nick: String,
    sock: TcpStream,
    pending: Vec<u8>,
}

/// A fresh, valid nickname: a word and the label, so transcripts stay readable.
fn nick(ctx: &mut Harness, label: &str) -> String {
    let n = ctx.rng.range(3, 6);
    // The label's first word, as letters and digits only (`V0.1` -> `v01`).
    let tag: String = label
        .split(' ')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("{}_{}", ctx.rng.word(n), tag.to_ascii_lowercase())
}

impl Chatter {
    /// Connects, sends the nickname, and waits until the server has read it and (a
    /// pause later) registered the client: for a join nobody else sees.
    fn join(ctx: &mut Harness, name: &str) -> Outcome<Chatter> {
        let c = Chatter::join_seen(ctx, name)?;
        std::thread::sleep(REGISTER_PAUSE);
        Ok(c)
    }

    /// Connects and sends the nickname; the caller then expects the others to hear
    /// of it, which proves the server registered it.
    fn join_seen(ctx: &mut Harness, name: &str) -> Outcome<Chatter> {
        let nick = nick(ctx, name);
        let sock = ctx.connect(name)?;
        let mut c = Chatter {
            name: name.to_string(),
            nick,
            sock,
            pending: Vec::new(),
        };
        let line = format!("{}\n", c.nick);
        c.send(ctx, line.as_bytes())?;
        ctx.wait_consumed(&c.sock);
        Ok(c)
    }

    fn send(&mut self, ctx: &mut Harness, data: &[u8]) -> Outcome {
        let name = self.name.clone();
        ctx.send(&name, &mut self.sock, data)
    }

    /// Says one line.
    fn say(&mut self, ctx: &mut Harness, text: &str) -> Outcome {
        self.send(ctx, format!("{text}\n").as_bytes())
    }

    /// The next whole line (without its newline), or why there is none by `until`.
    fn next_line(&mut self, until: Instant) -> Result<String, String> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = &line[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Ok(String::from_utf8_lossy(line).into_owned());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.nothing_more("nothing more arrived in time"));
            }
            let _ = self.sock.set_read_timeout(Some(left));
            let mut buf = [0u8; 64 * 1024];
            match self.sock.read(&mut buf) {
                Ok(0) => return Err(self.nothing_more("the server closed the connection")),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.nothing_more("nothing more arrived in time"))
                }
                Err(e) => return Err(self.nothing_more(&format!("the connection failed: {e}"))),
            }
        }
    }

    fn nothing_more(&self, why: &str) -> String {
        if self.pending.is_empty() {
            why.to_string()
        } else {
            format!(
                "{why} (after a piece of a line without its newline: \"{}\")",
                escape_bytes(&self.pending, 60)
            )
        }
    }

    /// Expects exactly `want` as the next line.
    fn expect(&mut self, ctx: &mut Harness, want: &str) -> Outcome {
        ctx.step(format!("client {} expects \"{want}\"", self.name));
        match self.next_line(Instant::now() + REPLY_TIMEOUT) {
            Ok(got) if got == want => Ok(()),
            Ok(got) => Err(Unmet::fail(format!(
                "client {} ({}) expected \"{want}\" but got \"{}\"",
                self.name,
                self.nick,
                escape_bytes(got.as_bytes(), 80)
            ))),
            Err(why) => Err(Unmet::fail(format!(
                "client {} ({}) expected \"{want}\" but {why}",
                self.name, self.nick
            ))),
        }
    }

    /// Expects exactly the lines `want`, in any order across senders but in order per
    /// sender (the nickname in `<NICK>` or `* NICK`), within `limit`. Lines equal to
    /// `ignore` (a `* NICK left` the server may or may not send) are skipped.
    fn expect_set(
        &mut self,
        ctx: &mut Harness,
        want: &[String],
        ignore: Option<&str>,
        limit: Duration,
    ) -> Outcome {
        ctx.step(format!(
            "client {} expects {} lines, in any order across senders (first: \"{}\")",
            self.name,
            want.len(),
            escape_bytes(want.first().map(String::as_bytes).unwrap_or(b""), 60)
        ));
        let until = Instant::now() + limit;
        let mut left: Vec<&String> = want.iter().collect();
        let mut got = 0;
        while !left.is_empty() {
            let line = self.next_line(until).map_err(|why| {
                Unmet::fail(format!(
                    "client {} ({}) got {got} of the {} lines it expected, then {why}; still missing e.g. \"{}\"",
                    self.name,
                    self.nick,
                    want.len(),
                    escape_bytes(left[0].as_bytes(), 80)
                ))
            })?;
            if Some(line.as_str()) == ignore {
                continue;
            }
            let sender = sender_of(&line);
            // The first line still expected from this sender must be this one.
            match left.iter().position(|w| sender_of(w) == sender) {
                Some(i) if *left[i] == line => {
                    left.remove(i);
                    got += 1;
                }
                Some(i) => {
                    let detail = if left.iter().any(|w| **w == line) {
                        format!(
                            "out of order: from {sender} it expected \"{}\" first",
                            escape_bytes(left[i].as_bytes(), 60)
                        )
                    } else {
                        format!(
                            "expected from {sender} next: \"{}\"",
                            escape_bytes(left[i].as_bytes(), 60)
                        )
                    };
                    return Err(Unmet::fail(format!(
                        "client {} ({}) got \"{}\": {detail}",
                        self.name,
                        self.nick,
                        escape_bytes(line.as_bytes(), 80)
                    )));
                }
                None => {
                    return Err(Unmet::fail(format!(
                        "client {} ({}) got an unexpected line \"{}\" (after {got} expected ones)",
                        self.name,
                        self.nick,
                        escape_bytes(line.as_bytes(), 80)
                    )))
                }
            }
        }
        Ok(())
    }

    /// Resets the connection: SO_LINGER 0 then close sends an RST.
    fn reset(self, ctx: &mut Harness) {
        ctx.step(format!(
            "client {} resets the connection (SO_LINGER 0 then close: an RST)",
            self.name
        ));
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
    }
}

/// Who a line is from: `<NICK> ...` or `* NICK ...`; the whole line otherwise.
fn sender_of(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<') {
        rest.split('>').next().unwrap_or(rest)
    } else if let Some(rest) = line.strip_prefix("* ") {
        rest.split(' ').next().unwrap_or(rest)
    } else {
        line
    }
}

fn said(nick: &str, text: &str) -> String {
    format!("<{nick}> {text}")
}

fn joined(nick: &str) -> String {
    format!("* {nick} joined")
}

fn left(nick: &str) -> String {
    format!("* {nick} left")
}

/// A random line of chat.
fn text(ctx: &mut Harness) -> String {
    let n = ctx.rng.range(3, 10);
    format!("hello {}", ctx.rng.word(n))
}

/// `from` says a fresh line and `to` gets it, with `from`'s nickname.
fn relay(ctx: &mut Harness, from: &mut Chatter, to: &mut Chatter) -> Outcome {
    let t = text(ctx);
    from.say(ctx, &t)?;
    to.expect(ctx, &said(&from.nick, &t))
}

/// Joins A and B (A sees B join).
fn pair(ctx: &mut Harness) -> Outcome<(Chatter, Chatter)> {
    let mut a = Chatter::join(ctx, "A")?;
    let b = Chatter::join_seen(ctx, "B")?;
    a.expect(ctx, &joined(&b.nick))?;
    Ok((a, b))
}

/// `idle_clients`' start, right after `starts`: A and B join, A speaks, B hears; then
/// both connections are left idle while the other checks run.
fn idle_clients_open(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    relay(ctx, &mut a, &mut b)?;
    ctx.hold_idle("A", a.sock, &a.nick);
    ctx.hold_idle("B", b.sock, &b.nick);
    Ok(())
}

/// `idle_clients`' end: after 7 s idle at least, A speaks and B hears it.
fn idle_clients(ctx: &mut Harness) -> Outcome {
    let mut back = Vec::new();
    for name in ["A", "B"] {
        let (sock, nick) = ctx.resume_idle(name)?;
        back.push(Chatter {
            name: name.to_string(),
            nick,
            sock,
            pending: Vec::new(),
        });
    }
    let (mut b, mut a) = (back.remove(1), back.remove(0));
    let t = text(ctx);
    let idle = IDLE.as_secs_f64();
    a.say(ctx, &t)
        .map_err(|_| idle_cut("A", "closed or reset the connection", idle))?;
    b.expect(ctx, &said(&a.nick, &t))
}

fn two_clients(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    relay(ctx, &mut a, &mut b)?;
    relay(ctx, &mut b, &mut a)
}

fn no_echo(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    for _ in 0..2 {
        relay(ctx, &mut a, &mut b)?;
        // B's line is the next thing A may get: an echo of A's own would come first.
        relay(ctx, &mut b, &mut a)?;
    }
    Ok(())
}

fn join_leave(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    let c = Chatter::join_seen(ctx, "C")?;
    a.expect(ctx, &joined(&c.nick))?;
    b.expect(ctx, &joined(&c.nick))?;
    ctx.step("client C closes its connection (EOF)");
    let _ = c.sock.shutdown(std::net::Shutdown::Both);
    drop(c.sock);
    a.expect(ctx, &left(&c.nick))?;
    b.expect(ctx, &left(&c.nick))?;
    // Another client joins after the departure: the server keeps serving.
    let d = Chatter::join_seen(ctx, "D")?;
    a.expect(ctx, &joined(&d.nick))?;
    relay(ctx, &mut b, &mut a)
}

fn ten_clients(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    const N: usize = 10;
    const ROUNDS: usize = 3;
    let mut cs: Vec<Chatter> = Vec::new();
    for i in 0..N {
        let c = if i == 0 {
            Chatter::join(ctx, "C0")?
        } else {
            Chatter::join_seen(ctx, &format!("C{i}"))?
        };
        // Everyone already there hears the join.
        let line = joined(&c.nick);
        for prev in cs.iter_mut() {
            prev.expect(ctx, &line)?;
        }
        cs.push(c);
    }
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); N];
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..N).collect();
        for i in (1..N).rev() {
            let j = ctx.rng.range(0, i + 1);
            order.swap(i, j);
        }
        for i in order {
            let t = format!("round {round} {}", ctx.rng.word(6));
            cs[i].say(ctx, &t)?;
            sent[i].push(said(&cs[i].nick, &t));
        }
    }
    for (i, c) in cs.iter_mut().enumerate() {
        let want: Vec<String> = (0..N)
            .filter(|&j| j != i)
            .flat_map(|j| sent[j].clone())
            .collect();
        c.expect_set(ctx, &want, None, REPLY_TIMEOUT * 2)?;
    }
    Ok(())
}

fn byte_at_a_time(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let mut a = Chatter::join(ctx, "A")?;
    let nick = nick(ctx, "B");
    let mut b = ctx.connect("B")?;
    let t = text(ctx);
    let data = format!("{nick}\n{t}\n");
    ctx.step(format!(
        "client B sends \"{}\" one byte per write, each once the server has read the last",
        escape_bytes(data.as_bytes(), 60)
    ));
    for byte in data.as_bytes() {
        b.write_all(std::slice::from_ref(byte))
            .map_err(|e| Unmet::fail(format!("client B could not send: {e}")))?;
        ctx.wait_consumed(&b);
    }
    a.expect(ctx, &joined(&nick))?;
    a.expect(ctx, &said(&nick, &t))?;
    // A line-per-recv server would have sent a line per byte: catch those too.
    let t2 = text(ctx);
    let mut b = Chatter {
        name: "B".into(),
        nick,
        sock: b,
        pending: Vec::new(),
    };
    b.say(ctx, &t2)?;
    a.expect(ctx, &said(&b.nick, &t2))
}

fn lines_in_one_write(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let mut a = Chatter::join(ctx, "A")?;
    let nick = nick(ctx, "B");
    let lines: Vec<String> = (0..3).map(|_| text(ctx)).collect();
    let mut b = ctx.connect("B")?;
    let data = format!("{nick}\n{}\n", lines.join("\n"));
    ctx.send("B", &mut b, data.as_bytes())?;
    a.expect(ctx, &joined(&nick))?;
    for l in &lines {
        a.expect(ctx, &said(&nick, l))?;
    }
    Ok(())
}

fn reset_mid_line(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    for round in 0..2 {
        let mut r = Chatter::join_seen(ctx, &format!("R{round}"))?;
        a.expect(ctx, &joined(&r.nick))?;
        b.expect(ctx, &joined(&r.nick))?;
        r.send(ctx, b"this line never ends")?;
        // The reset must land mid-line: after the server has read the half line.
        ctx.wait_consumed(&r.sock);
        let nick = r.nick.clone();
        r.reset(ctx);
        a.expect(ctx, &left(&nick))?;
        b.expect(ctx, &left(&nick))?;
    }
    relay(ctx, &mut a, &mut b)?;
    relay(ctx, &mut b, &mut a)
}

fn slow_reader(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let mut a = Chatter::join(ctx, "A")?;
    // SLOW clients join with a 4 KiB receive buffer and never read. Several, because a
    // server that waits out a send timeout per stuck client (under a lock everyone
    // needs, or in the sender's own thread) stalls for that timeout once per client:
    // 5 s once fits in any deadline generous enough for CI, 5 s five times does not.
    let mut slow = Vec::with_capacity(SLOW);
    for k in 0..SLOW {
        let label = format!("S{k} (never reads)");
        let s_nick = nick(ctx, &label);
        let mut s = ctx.connect_small_window(&label, 4096)?;
        ctx.send(&format!("S{k}"), &mut s, format!("{s_nick}\n").as_bytes())?;
        a.expect(ctx, &joined(&s_nick))?;
        slow.push((s_nick, s));
    }
    // 8 MB for each S: twice the most Linux lets a send buffer grow to (tcp_wmem max,
    // 4 MiB by default), so a server that sends to an S with a blocking call must block.
    // Nobody else is connected yet, so no reader is asked to take a burst this large.
    const LINES: usize = 2000;
    const LEN: usize = 4000;
    let mut data = Vec::with_capacity(LINES * (LEN + 1));
    for i in 0..LINES {
        let mut l = format!("{i:05} ").into_bytes();
        l.resize(LEN, b'a' + (i % 26) as u8);
        data.extend_from_slice(&l);
        data.push(b'\n');
    }
    ctx.step(format!(
        "client A sends {LINES} lines ({} bytes) from a writer thread while S0 to S{} read nothing",
        data.len(),
        SLOW - 1
    ));
    let mut w = a
        .sock
        .try_clone()
        .map_err(|e| Unmet::error(e.to_string()))?;
    let writer = std::thread::spawn(move || w.write_all(&data));
    // Until the server has read all of it, or FLOOD_WAIT: a correct Python server needs
    // well under a second; one stuck on an S never gets there, and one that waits out
    // a 5 s send timeout for each S in turn needs 25 s.
    ctx.step(format!(
        "the grader waits (at most {} s) until the server has read all of A's lines",
        FLOOD_WAIT.as_secs()
    ));
    // Time the server waited for a CPU is not charged (a loaded machine's, not its): a
    // starved server still reading A's lines would meet B's join and A's ping late.
    let a_port = a.sock.local_addr().map(|l| l.port()).unwrap_or(0);
    let queued = |ctx: &mut Harness| ctx.program().map_or(0.0, |p| p.queued_seconds());
    let wait = Wait::start(FLOOD_WAIT, queued(ctx));
    loop {
        if writer.is_finished() && crate::grade::sandbox::rx_queue(ctx.port, a_port) == Some(0) {
            break;
        }
        if wait.over(|| queued(ctx)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = Chatter::join(ctx, "B")?;
    let ping = text(ctx);
    // Bounded: A's socket is full if the server stopped reading it.
    let _ = a.sock.set_write_timeout(Some(REPLY_TIMEOUT));
    if let Err(u) = a.say(ctx, &ping) {
        let _ = a.sock.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        return Err(Unmet::fail(format!(
            "{}: the server stopped reading A's lines, stuck sending to the clients that never read",
            u.message
        )));
    }
    let want = said(&a.nick, &ping);
    let s_left: Vec<String> = slow.iter().map(|(n, _)| left(n)).collect();
    ctx.step(format!(
        "client B expects \"{want}\" (after at most the tail of A's lines, and S0 to S{} leaving)",
        SLOW - 1
    ));
    let until = Instant::now() + REPLY_TIMEOUT * 2;
    let flood = format!("<{}> ", a.nick);
    let mut last_flood: Option<usize> = None;
    let outcome = loop {
        match b.next_line(until) {
            Ok(l) if l == want => break Ok(()),
            Ok(l) if s_left.contains(&l) => {}
            // The tail of A's lines, if B joined while the server still relayed them:
            // each must be whole, and in order.
            Ok(l) if l.starts_with(&flood) => {
                let n = l[flood.len()..]
                    .get(..5)
                    .and_then(|d| d.parse::<usize>().ok());
                let whole = n.is_some_and(|n| {
                    l.len() == flood.len() + LEN
                        && l.ends_with(((b'a' + (n % 26) as u8) as char).to_string().as_str())
                        && last_flood.is_none_or(|p| n > p)
                });
                if !whole {
                    break Err(Unmet::fail(format!(
                        "client B got a broken or out-of-order line of A's: \"{}\"",
                        escape_bytes(l.as_bytes(), 80)
                    )));
                }
                last_flood = n;
            }
            Ok(l) => {
                break Err(Unmet::fail(format!(
                    "client B expected \"{want}\" but got \"{}\"",
                    escape_bytes(l.as_bytes(), 80)
                )))
            }
            Err(why) => {
                break Err(Unmet::fail(format!(
                    "client B expected \"{want}\" but {why}: the server is still stuck sending to the clients that never read"
                )))
            }
        }
    };
    // Unblock the writer thread, which may be stuck on a server that stopped reading.
    let _ = a.sock.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    outcome?;
    // Now each S reads what it was sent. It may have been dropped (its last line cut
    // off by the close), or kept with lines skipped, but every line it got must be whole.
    ctx.step(format!(
        "clients S0 to S{} now read everything they were sent: every complete line must be whole",
        SLOW - 1
    ));
    let ok_line = |l: &[u8]| {
        let l = String::from_utf8_lossy(l);
        l == want
            || l.starts_with("* ")
            || l.strip_prefix(&flood).is_some_and(|rest| {
                rest.len() == LEN && rest.get(..5).is_some_and(|d| d.parse::<u32>().is_ok())
            })
    };
    for (k, (_, s)) in slow.iter_mut().enumerate() {
        let (got, end) = read_sent(ctx, s, 16 << 20);
        ctx.step(format!("client S{k} read {} bytes ({end})", got.len()));
        let mut lines = got.split(|&b| b == b'\n');
        lines.next_back(); // the piece after the last newline: cut by a drop, allowed
        if let Some(bad) = lines.find(|l| !ok_line(l)) {
            return Err(Unmet::fail(format!(
                "client S{k}, which read late, got a broken line \"{}\": part of a line was lost, as when the count send() returns is ignored",
                escape_bytes(bad, 80)
            )));
        }
    }
    Ok(())
}

/// Reads what the server has sent a client that read nothing so far (up to `max`
/// bytes): until EOF, or until the kernel holds nothing more for it (the server's send
/// queue towards it and its own receive queue both empty). Says which ended it.
///
/// A count, not a time: the line a server ignoring send()'s count cuts is the one that
/// met a full send buffer, megabytes into the stream. Read for a fixed 3 s, a grader
/// starved of CPU (a classroom server grading 30 submissions at once) never reached it
/// and the mistake passed. The wait is bounded by [`LATE_READ`] of the grader's and the
/// server's own time (time either waited for a CPU is not charged), and 12 times that
/// on any machine: a server that keeps sending is cut off there.
fn read_sent(ctx: &mut Harness, s: &mut TcpStream, max: usize) -> (Vec<u8>, String) {
    let local = s.local_addr().map(|l| l.port()).unwrap_or(0);
    let port = ctx.port;
    let held = move || {
        let server_end = tcp_queues(port, local).map_or(0, |(tx, _)| tx);
        let client_end = tcp_queues(local, port).map_or(0, |(_, rx)| rx);
        server_end + client_end
    };
    let queued = |ctx: &mut Harness| {
        ctx.program().map_or(0.0, |p| p.queued_seconds()) + thread_queued_seconds()
    };
    let wait = Wait::start(LATE_READ, queued(ctx));
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < max {
        match s.read(&mut buf) {
            Ok(0) => return (got, "the server closed it".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if held() == 0 {
                    return (got, "nothing more was on its way".into());
                }
            }
            Err(e) => return (got, e.to_string()),
        }
        if wait.over(|| queued(ctx)) {
            return (got, "the server was still sending".into());
        }
    }
    (got, format!("{max} bytes, the most it reads"))
}

fn fd_cycles(ctx: &mut Harness) -> Outcome {
    // 64 descriptors: enough for any runtime's own files plus a few clients; a leak of
    // one per connection exhausts it well within 200 cycles.
    ctx.step("the server runs with RLIMIT_NOFILE = 64");
    ctx.start_with(|l| l.nofile = Some(64))?;
    let mut w = Chatter::join(ctx, "W (watches)")?;
    const CYCLES: usize = 200;
    ctx.step(format!(
        "{CYCLES} times: a client connects, sends its nickname, and closes; W hears it join and leave"
    ));
    // Only the first and last cycles go to the transcript (and a failing one).
    let mut keep = None;
    for i in 0..CYCLES {
        let mut c = TcpStream::connect_timeout(&ctx.addr(), REPLY_TIMEOUT)
            .map_err(|e| Unmet::fail(format!("cycle {i}: could not connect: {e}")))?;
        let n = format!("cycle{i}");
        c.write_all(format!("{n}\n").as_bytes())
            .map_err(|e| Unmet::fail(format!("cycle {i}: send failed: {e}")))?;
        let r = w.expect(ctx, &joined(&n));
        drop(c);
        let r = r.and_then(|_| w.expect(ctx, &left(&n)));
        if let Err(u) = r {
            return Err(Unmet::fail(format!("cycle {i} of {CYCLES}: {}", u.message)));
        }
        match keep {
            None => keep = Some(ctx.transcript.len()),
            Some(k) if i + 1 < CYCLES => ctx.transcript.truncate(k),
            Some(_) => {}
        }
    }
    let mut x = Chatter::join_seen(ctx, "X")?;
    w.expect(ctx, &joined(&x.nick))?;
    relay(ctx, &mut x, &mut w)
}

fn vanished_receiver(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let (mut a, mut b) = pair(ctx)?;
    // Whether the server writes to a vanished client before it notices the reset is
    // a race; eight rounds of eight make a server that dies of it fail nearly always.
    const ROUNDS: usize = 8;
    const VANISH: usize = 8;
    for round in 0..ROUNDS {
        let mut vs = Vec::new();
        for k in 0..VANISH {
            let v = Chatter::join_seen(ctx, &format!("V{round}.{k}"))?;
            a.expect(ctx, &joined(&v.nick))?;
            b.expect(ctx, &joined(&v.nick))?;
            vs.push(v);
        }
        // They all vanish, and at once A talks: the server writes A's lines to
        // sockets that were just reset (EPIPE/ECONNRESET) before it notices.
        let nicks: Vec<String> = vs.iter().map(|v| v.nick.clone()).collect();
        ctx.step(format!(
            "clients V{round}.0 to V{round}.{} reset their connections, and A at once says three lines",
            VANISH - 1
        ));
        for v in vs {
            let _ = socket2::SockRef::from(&v.sock).set_linger(Some(Duration::ZERO));
        }
        let mut want: Vec<String> = nicks.iter().map(|n| left(n)).collect();
        for k in 0..3 {
            let t = format!("round {round} line {k}");
            a.say(ctx, &t)?;
            want.push(said(&a.nick, &t));
        }
        b.expect_set(ctx, &want, None, REPLY_TIMEOUT)?;
        let lefts: Vec<String> = nicks.iter().map(|n| left(n)).collect();
        a.expect_set(ctx, &lefts, None, REPLY_TIMEOUT)?;
    }
    relay(ctx, &mut a, &mut b)?;
    relay(ctx, &mut b, &mut a)
}
