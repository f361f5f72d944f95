//! Checks for 01-tcp-echo: a line server. Each newline-terminated line L gets
//! `Received: L\n` back; several clients at once. The checks act like real, rude peers.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::grade::checks::{starts, Check, Suite};
use crate::grade::harness::{
    idle_cut, read_all, Harness, Outcome, Transport, Unmet, Wait, IDLE, REPLY_TIMEOUT,
};
use crate::grade::sandbox::{describe_status, tcp_queues};

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "01-tcp-echo",
    transport: Transport::Tcp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --port N and listens on 127.0.0.1:N",
            mistake: "the server must take its port from `--port N` and listen on it",
            hint: "Parse the argument after --port; bind 127.0.0.1 (or 0.0.0.0) on that port, then listen().",
            run: starts,
            prologue: None,
        },
        Check {
            name: "one_line",
            description: "one line in one write gets `Received: L` back",
            mistake: "the reply format is exactly `Received: ` + the line + `\\n`",
            hint: "Reply b\"Received: \" + line + b\"\\n\", where line excludes its own newline.",
            run: one_line,
            prologue: None,
        },
        Check {
            name: "byte_at_a_time",
            description: "a line sent in one-byte writes gets one reply",
            mistake: "no framing: each recv() was treated as a whole line, but TCP is a byte stream",
            hint: "Keep a buffer per client; append what recv() returns; reply only for complete lines (up to '\\n').",
            run: byte_at_a_time,
            prologue: None,
        },
        Check {
            name: "lines_in_one_write",
            description: "several lines in one write get one reply each, in order",
            mistake: "no framing: one recv() can hold several lines; split the buffer at every '\\n'",
            hint: "Loop: while the buffer holds a '\\n', cut one line off the front and reply to it.",
            run: lines_in_one_write,
            prologue: None,
        },
        Check {
            name: "utf8_split",
            description: "a multi-byte UTF-8 character split across two writes comes back intact",
            mistake: "decoding each chunk as text: a character split across recv() calls is not valid UTF-8 on its own",
            hint: "Work with bytes; only split at b'\\n' (a newline byte never occurs inside a UTF-8 character).",
            run: utf8_split,
            prologue: None,
        },
        Check {
            name: "raw_bytes",
            description: "invalid UTF-8, \\r\\n, NUL and other control bytes come back unchanged; the server keeps serving",
            mistake: "lines handled as text: decoding fails on bytes that are not UTF-8 (the connection or the server dies), or \\r\\n is turned into \\n",
            hint: "Keep lines as bytes: split at b'\\n' only and send back exactly the bytes before it (a \\r included). No decode()/encode(), no text-mode makefile(), no lines() in Rust: read_until(b'\\n') into a Vec<u8>.",
            run: raw_bytes,
            prologue: None,
        },
        Check {
            name: "silent_client",
            description: "a client that connects and sends nothing does not block another client",
            mistake: "one client at a time: the server blocks in recv() on a silent client while another waits",
            hint: "Serve each client in its own thread, or use one event loop (select/poll, mio).",
            run: silent_client,
            prologue: None,
        },
        Check {
            name: "many_clients",
            description: "eight clients interleave lines; each gets only its own replies",
            mistake: "replies sent to the wrong client, or per-server instead of per-client buffers",
            hint: "Each connection needs its own buffer and its own socket to reply on.",
            run: many_clients,
            prologue: None,
        },
        Check {
            name: "reset_mid_request",
            description: "a client that resets mid-line does not take the server down",
            mistake: "an unhandled ECONNRESET (ConnectionResetError) ended the server",
            hint: "Treat errors on one client's socket as that client leaving: close it and keep serving.",
            run: reset_mid_request,
            prologue: None,
        },
        Check {
            name: "slow_reader",
            description: "lines of up to 6 MiB to a client that pauses reading while the server is stopped and continued: every reply byte arrives",
            mistake: "ignoring a partial send: send() (write() in Rust) may take only part of the bytes, and the rest was never sent",
            hint: "Use sendall() in Python or write_all() in Rust: a send() returns early when the send buffer is full and the socket has a timeout or is non-blocking, or when a signal interrupts it. With non-blocking sockets keep the unsent rest and wait for writable.",
            run: slow_reader,
            prologue: None,
        },
        Check {
            name: "eof_half_close",
            description: "after the client half-closes, the reply still comes, then the server closes and idles",
            mistake: "spinning on EOF: recv() returning 0 bytes means the peer closed; looping on it burns a CPU",
            hint: "When recv() returns 0 (b'' in Python), reply to what is complete, close the socket and stop reading it.",
            run: eof_half_close,
            prologue: None,
        },
        Check {
            name: "restart_same_port",
            description: "a restart right after the server closed connections binds the same port",
            mistake: "no SO_REUSEADDR: the old connections in TIME_WAIT keep the port, so bind() fails",
            hint: "Set SO_REUSEADDR on the listening socket before bind() (Rust's TcpListener already does).",
            run: restart_same_port,
            prologue: None,
        },
        Check {
            name: "fd_leak",
            description: "300 connect/close cycles under a 64-descriptor limit, then one more request",
            mistake: "fd leak: sockets of finished clients are never closed, so accept() runs out of descriptors",
            hint: "Close every accepted socket when its client leaves (with `with conn:` in Python, or drop it in Rust).",
            run: fd_leak,
            prologue: None,
        },
        Check {
            name: "idle_client",
            description: "a client that echoes a line, then sits idle while every other check runs (7 s at least), then sends another line",
            mistake: "a socket timeout on client connections (settimeout(5), set_read_timeout): a person at nc who pauses is cut off",
            hint: "Set no timeout on a client's socket: a blocking recv() waits as long as the client needs (or wait in select/poll). The exercise contract keeps a quiet client connected.",
            run: idle_client,
            prologue: Some(idle_client_open),
        },
    ],
};

/// `idle_client`'s start, right after `starts`: a line echoed, then the connection
/// is left idle while the other checks run.
fn idle_client_open(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let mut s = ctx.connect("I")?;
    let l = line(ctx);
    ctx.send("I", &mut s, &[&l[..], b"\n"].concat())?;
    ctx.expect("I", &mut s, &reply(&l))?;
    ctx.hold_idle("I", s, "");
    Ok(())
}

/// `idle_client`'s end: after 7 s idle at least, one more line gets its reply.
fn idle_client(ctx: &mut Harness) -> Outcome {
    let (mut s, _) = ctx.resume_idle("I")?;
    let l = line(ctx);
    // A reset can also show only now, when the line is written or its reply read.
    let idle = IDLE.as_secs_f64();
    ctx.send("I", &mut s, &[&l[..], b"\n"].concat())
        .map_err(|_| idle_cut("I", "closed or reset the connection", idle))?;
    ctx.expect("I", &mut s, &reply(&l))
}

/// A random printable line (no newline) from the seeded generator.
fn line(ctx: &mut Harness) -> Vec<u8> {
    let n = ctx.rng.range(3, 12);
    let w = ctx.rng.word(n);
    format!("hello {w}").into_bytes()
}

fn reply(line: &[u8]) -> Vec<u8> {
    let mut r = b"Received: ".to_vec();
    r.extend_from_slice(line);
    r.push(b'\n');
    r
}

fn one_line(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let l = line(ctx);
    let mut a = ctx.connect("A")?;
    ctx.send("A", &mut a, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("A", &mut a, &reply(&l))
}

fn byte_at_a_time(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let l = line(ctx);
    let mut a = ctx.connect("A")?;
    let mut data = l.clone();
    data.push(b'\n');
    ctx.step(format!(
        "client A sends \"{}\\n\" one byte per write, each once the server has read the last",
        String::from_utf8_lossy(&l)
    ));
    for b in &data {
        a.write_all(std::slice::from_ref(b))
            .map_err(|e| crate::grade::harness::send_failed("A", &e))?;
        // The server reads each byte alone: the next leaves only once it has.
        ctx.wait_consumed(&a);
    }
    ctx.expect("A", &mut a, &reply(&l))?;
    // A line-per-recv server sends "Received: h\n..." first; also catch extra replies.
    let l2 = line(ctx);
    ctx.send("A", &mut a, &[l2.as_slice(), b"\n"].concat())?;
    ctx.expect("A", &mut a, &reply(&l2))
}

fn lines_in_one_write(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let lines: Vec<Vec<u8>> = (0..3).map(|_| line(ctx)).collect();
    let mut a = ctx.connect("A")?;
    let mut data = Vec::new();
    let mut want = Vec::new();
    for l in &lines {
        data.extend_from_slice(l);
        data.push(b'\n');
        want.extend(reply(l));
    }
    ctx.send("A", &mut a, &data)?;
    ctx.expect("A", &mut a, &want)
}

fn utf8_split(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let l = "caf\u{e9} \u{2713} na\u{ef}ve".as_bytes().to_vec();
    // Split inside the 3-byte check mark (its first byte is at index 6).
    let cut = 7;
    let mut a = ctx.connect("A")?;
    ctx.send("A", &mut a, &l[..cut])?;
    ctx.step("the grader waits until the server has read those bytes");
    ctx.wait_consumed(&a);
    ctx.send("A", &mut a, &[&l[cut..], b"\n"].concat())?;
    ctx.expect("A", &mut a, &reply(&l))
}

fn silent_client(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let _silent = ctx.connect("S (silent: sends nothing)")?;
    let mut half = ctx.connect("H")?;
    ctx.send("H", &mut half, b"half a li")?;
    let l = line(ctx);
    let mut b = ctx.connect("B")?;
    ctx.send("B", &mut b, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("B", &mut b, &reply(&l))?;
    ctx.send("H", &mut half, b"ne\n")?;
    ctx.expect("H", &mut half, b"Received: half a line\n")
}

fn many_clients(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let names: Vec<String> = (0..8).map(|i| format!("C{i}")).collect();
    let mut clients = Vec::new();
    for n in &names {
        clients.push(ctx.connect(n)?);
    }
    for round in 0..3 {
        let order: Vec<usize> = {
            let mut o: Vec<usize> = (0..clients.len()).collect();
            for i in (1..o.len()).rev() {
                let j = ctx.rng.range(0, i + 1);
                o.swap(i, j);
            }
            o
        };
        let mut sent = Vec::new();
        for &i in &order {
            let l = format!("{} round {round} {}", names[i], ctx.rng.word(5)).into_bytes();
            ctx.send(&names[i], &mut clients[i], &[l.as_slice(), b"\n"].concat())?;
            sent.push((i, l));
        }
        for (i, l) in sent {
            ctx.expect(&names[i], &mut clients[i], &reply(&l))?;
        }
    }
    Ok(())
}

fn reset_mid_request(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    for round in 0..3 {
        let mut r = ctx.connect(&format!("R{round}"))?;
        ctx.send(&format!("R{round}"), &mut r, b"this line never ends")?;
        // The reset must land mid-request: after the server has read the half line.
        ctx.wait_consumed(&r);
        ctx.step(format!(
            "client R{round} resets the connection (SO_LINGER 0 then close: an RST)"
        ));
        let _ = socket2::SockRef::from(&r).set_linger(Some(Duration::ZERO));
        drop(r);
    }
    // Give the server a moment to meet the resets (its next recv() fails) before B,
    // so a server that dies of them is dead by the time B connects.
    std::thread::sleep(Duration::from_millis(50));
    let l = line(ctx);
    let mut b = ctx.connect("B")?;
    ctx.send("B", &mut b, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("B", &mut b, &reply(&l))
}

fn raw_bytes(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    // Each line is a trap for servers that treat lines as text: Latin-1 and stray bytes
    // (not UTF-8: a strict decode raises, Rust's lines() errors), a \r before the \n
    // (lines() and text-mode files drop it), a lone \r inside a line (universal
    // newlines split there), NUL and other control bytes, and an empty line.
    let lines: [&[u8]; 7] = [
        b"caf\xe9 au lait (Latin-1, not UTF-8)",
        b"telnet line\r",
        b"nul \x00 byte, bell \x07, escape \x1b[0m",
        b"\xff\xfe\xfd\xc3\x28 \x80",
        b"carriage\rreturn inside",
        b"",
        b"\r",
    ];
    let mut data = Vec::new();
    let mut want = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
        want.extend(reply(l));
    }
    let mut a = ctx.connect("A")?;
    ctx.send("A", &mut a, &data)?;
    ctx.expect("A", &mut a, &want)?;
    // The same connection still works, and so does a new one: a thread or a server that
    // died of those bytes shows here.
    let l = line(ctx);
    ctx.send("A", &mut a, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("A", &mut a, &reply(&l))?;
    let l = line(ctx);
    let mut b = ctx.connect("B")?;
    ctx.send("B", &mut b, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("B", &mut b, &reply(&l))
}

/// Sizes of the slow reader's lines. The long ones are larger than the most Linux lets a
/// send buffer grow to (tcp_wmem max, 4 MiB by default), so the server's send of such a
/// reply cannot complete while the client is not reading: it blocks, or (non-blocking,
/// or with a timeout) returns having taken only part. Short lines between them check
/// that what follows a long reply is not cut or reordered.
const SLOW_LINES: [usize; 5] = [6 << 20, 17, 1 << 20, 29, 3 << 20];

/// The longest the slow reader waits, reading nothing, for the server's send of the
/// first long reply to fill its buffer. A correct server gets there in well under a
/// second (a Python one reads the 6 MiB line first); 10 s covers a slow one. Time the
/// server spent waiting for a CPU is not charged (as for readiness, see
/// [`crate::grade::harness::ready_deadline_passed`]): on a machine running 30 jobs at
/// once a Python server once needed more than 10 s of wall time, the stops came before
/// its send waited, and a send whose count is ignored passed.
const SLOW_PAUSE: Duration = Duration::from_secs(10);

/// However loaded the machine, the wait above ends after this many times its length of
/// wall time (a server that never fills its buffer is stopped anyway).
const SLOW_WALL_FACTOR: u32 = 6;

/// How many times the grader stops and continues the server while its send waits, and
/// the gap between two stops.
const STOPS: u32 = 3;
const STOP_GAP: Duration = Duration::from_millis(100);

fn slow_reader(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let mut data = Vec::new();
    let mut want = Vec::new();
    for (i, &len) in SLOW_LINES.iter().enumerate() {
        let mut l = format!("{i:08} ").into_bytes();
        l.resize(len, b'a' + (i % 26) as u8);
        data.extend_from_slice(&l);
        data.push(b'\n');
        want.extend(reply(&l));
    }
    let mut a = ctx.connect("A")?;
    ctx.step(format!(
        "client A sends {} lines of {} bytes ({} in all) from a writer thread, then half-closes",
        SLOW_LINES.len(),
        SLOW_LINES.map(|n| n.to_string()).join(", "),
        data.len()
    ));
    let mut w = a.try_clone().map_err(|e| Unmet::error(e.to_string()))?;
    let writer = std::thread::spawn(move || {
        let r = w.write_all(&data);
        let _ = w.shutdown(std::net::Shutdown::Write);
        r
    });
    ctx.step(format!(
        "client A reads nothing (a slow reader) until the server's send of the first reply has filled its buffer and waits, {} s at most (not counting time the server waited for a CPU; {} s on any machine)",
        SLOW_PAUSE.as_secs(),
        (SLOW_PAUSE * SLOW_WALL_FACTOR).as_secs()
    ));
    // A blocking send() waits for room and then takes everything, unless a signal
    // interrupts it: then it returns the count sent so far. Stopping and continuing the
    // program (what Ctrl-Z then `fg` does) is such a signal, and harmless to a program
    // that finishes what it started (sendall, write_all). Several stops, so one lands
    // while the send is waiting even on a loaded machine.
    ctx.step(format!(
        "then the grader stops the server and continues it {STOPS} times (SIGSTOP, SIGCONT: as Ctrl-Z then fg would): a send() waiting for room returns early, with the count it sent so far"
    ));
    // Stop it once its send is waiting: its end of A's connection holds a send queue
    // of over 1 MiB that has stopped growing (bounded: a server that never gets there
    // is stopped anyway, and fails or passes on what it sends).
    let local = a.local_addr().map(|l| l.port()).unwrap_or(0);
    let queued = |ctx: &mut Harness| ctx.program().map_or(0.0, |p| p.queued_seconds());
    let wait = Wait::start(SLOW_PAUSE, queued(ctx)).within(SLOW_WALL_FACTOR);
    // Stable over three looks (150 ms), not one: a server descheduled in the middle of
    // its send also shows a queue that does not move for 50 ms, and a stop that lands
    // before the send waits interrupts nothing.
    let (mut last, mut same) = (0, 0);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let tx = tcp_queues(ctx.port, local).map_or(0, |(tx, _)| tx);
        same = if tx == last { same + 1 } else { 0 };
        if tx > 1 << 20 && same >= 3 {
            break;
        }
        last = tx;
        if wait.over(|| queued(ctx)) {
            break;
        }
    }
    ctx.step(format!(
        "after {} ms the server's end of A's connection holds {last} bytes not yet read by A{}",
        wait.elapsed().as_millis(),
        if last > 1 << 20 {
            ""
        } else {
            " (its send never filled the buffer: the stops come anyway)"
        }
    ));
    for _ in 0..STOPS {
        ctx.pause_program(Duration::from_millis(20));
        std::thread::sleep(STOP_GAP);
    }
    ctx.step("client A reads everything");
    // 30 s to move ~10 MiB over loopback: ~100x what a correct Python server needs on a
    // busy runner; only a stuck server reaches it.
    let (got, err) = read_all(&mut a, want.len() + 4096, Duration::from_secs(30));
    // The writer ends: the server either read everything or closed/reset.
    let _ = a.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    if got == want {
        return Ok(());
    }
    let at = got
        .iter()
        .zip(&want)
        .position(|(x, y)| x != y)
        .unwrap_or(got.len().min(want.len()));
    let line_no = want[..at].iter().filter(|&&b| b == b'\n').count();
    let died = match ctx.program().and_then(|p| p.try_ended()) {
        Some(e) => format!(
            "; the server {} (was a call interrupted by the stop treated as fatal? retry on EINTR / ErrorKind::Interrupted)",
            describe_status(e.status)
        ),
        None => String::new(),
    };
    Err(Unmet::fail(format!(
        "client A expected {} bytes of replies but got {}{}; they differ from byte {at} (reply line {}): expected \"{}\" got \"{}\"{died}",
        want.len(),
        got.len(),
        err.map(|e| format!(" ({e})")).unwrap_or_default(),
        line_no + 1,
        crate::out::escape_bytes(&want[at..], 40),
        crate::out::escape_bytes(&got[at.min(got.len())..], 40),
    )))
}

fn eof_half_close(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let l = line(ctx);
    let mut a = ctx.connect("A")?;
    ctx.send("A", &mut a, &[l.as_slice(), b"\n"].concat())?;
    ctx.shutdown_write("A", &a);
    ctx.expect("A", &mut a, &reply(&l))?;
    ctx.expect_eof("A", &mut a)?;
    drop(a);
    // CPU burned after the client left, as time runnable (see `busy_share`).
    const WINDOW: Duration = Duration::from_millis(400);
    ctx.step(format!(
        "the grader measures how busy the server is over {} ms of idleness",
        WINDOW.as_millis()
    ));
    let share = ctx.busy_share(WINDOW)?;
    ctx.step(format!(
        "the server was busy {:.0}% of the time",
        share * 100.0
    ));
    // A spinning thread is runnable ~100% of the time; an idle server ~0%. Half is a
    // wide margin both ways.
    if share > 0.5 {
        return Err(Unmet::fail(format!(
            "the server kept a CPU busy {:.0}% of the time while idle after the client closed",
            share * 100.0
        )));
    }
    Ok(())
}

fn restart_same_port(ctx: &mut Harness) -> Outcome {
    let first = ctx.start()?;
    let l = line(ctx);
    let mut a = ctx.connect("A")?;
    ctx.send("A", &mut a, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("A", &mut a, &reply(&l))?;
    ctx.step("the grader stops the server while A is connected (the server's side closes first, so its end of the connection enters TIME_WAIT)");
    let how = ctx.stop(first);
    ctx.step(format!("the server {how}"));
    // Reading EOF and closing completes the close; the server's side is in TIME_WAIT.
    let _ = a.set_read_timeout(Some(REPLY_TIMEOUT));
    let _ = read_all(&mut a, 1 << 16, REPLY_TIMEOUT);
    drop(a);
    ctx.step("restart the server on the same port at once");
    ctx.start().map_err(|u| {
        Unmet::fail(format!(
            "the restarted server did not come up: {}",
            u.message
        ))
    })?;
    let l = line(ctx);
    let mut b = ctx.connect("B")?;
    ctx.send("B", &mut b, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("B", &mut b, &reply(&l))
}

fn fd_leak(ctx: &mut Harness) -> Outcome {
    // 64 descriptors: enough for any runtime's own files plus a few clients; a leak of
    // one per connection exhausts it well within 300 cycles.
    ctx.step("the server runs with RLIMIT_NOFILE = 64");
    ctx.start_with(|l| l.nofile = Some(64))?;
    const CYCLES: usize = 300;
    ctx.step(format!(
        "{CYCLES} times: connect, send a line, read the reply, close"
    ));
    for i in 0..CYCLES {
        let l = format!("cycle {i}").into_bytes();
        let mut c = std::net::TcpStream::connect_timeout(&ctx.addr(), REPLY_TIMEOUT)
            .map_err(|e| Unmet::fail(format!("cycle {i}: could not connect: {e}")))?;
        let _ = c.set_nodelay(true);
        c.write_all(&[l.as_slice(), b"\n"].concat())
            .map_err(|e| Unmet::fail(format!("cycle {i}: send failed: {e}")))?;
        let want = reply(&l);
        let (got, _) = read_exact_or_less(&mut c, want.len());
        if got != want {
            return Err(Unmet::fail(format!(
                "cycle {i} of {CYCLES}: expected \"{}\" but got \"{}\"",
                crate::out::escape_bytes(&want, 40),
                crate::out::escape_bytes(&got, 40)
            )));
        }
    }
    let l = line(ctx);
    let mut b = ctx.connect("B")?;
    ctx.send("B", &mut b, &[l.as_slice(), b"\n"].concat())?;
    ctx.expect("B", &mut b, &reply(&l))
}

fn read_exact_or_less(s: &mut std::net::TcpStream, n: usize) -> (Vec<u8>, Option<String>) {
    let (mut got, err) = (Vec::new(), None);
    let until = Instant::now() + REPLY_TIMEOUT;
    let mut buf = [0u8; 256];
    while got.len() < n {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = s.set_read_timeout(Some(left));
        match std::io::Read::read(s, &mut buf[..(n - got.len()).min(256)]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    (got, err)
}
