//! Load generator for bench/chat.sh: how many chat lines per second a line-based chat
//! server (lab 05's, or `ncat --chat`) delivers. A benchmark tool, not part of `lab`.
//!
//!   cargo build --release --example chat_load
//!   target/release/examples/chat_load --addr 127.0.0.1:7005 --clients 100 --senders 1 \
//!       --deliveries 2000000 [--pid SERVER_PID] [--timeout 60]
//!
//! 1. Connects N clients one after another, reading whatever arrives meanwhile (join
//!    notices: a server that announces joins with blocking writes would stall if nobody
//!    read them), then reads until nothing arrives for 0.5 s. With --pid, the server's
//!    RSS growth over this phase divided by N is the memory per idle client.
//! 2. The first S clients send 64-byte lines; every client counts the lines it
//!    receives, until each has received every line of every *other* sender
//!    (S x LINES x (N - 1) deliveries in all, LINES chosen to reach --deliveries), or
//!    --timeout. A sender stays at most WINDOW lines ahead of the slowest receiver, so
//!    no server ever meets a client that does not keep up (lab would drop it as
//!    `too slow`, ncat would block): the figure is the server's pace, not a drop count.
//!
//! Prints one line: `DELIVERED_PER_S BYTES_PER_IDLE_CLIENT SERVER_CPU_US_PER_1000`
//! (the last two 0 without --pid). One thread and one mio poll, so the generator is
//! pinned to one CPU like the server is to the other; it reads each socket in 256 KiB
//! reads until one comes back short (one read per socket per event, where reading until
//! WouldBlock would cost two) and counts newlines, a few instructions per byte.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Most lines a sender may be ahead of the slowest receiver (64 KiB of 64-byte lines:
/// far below lab's 256 KiB queue per client, and enough to keep every pipe full).
const WINDOW: u64 = 1024;
/// Lines per write at most (16 KiB).
const CHUNK: u64 = 256;
const LINE: usize = 64;

struct Args {
    addr: SocketAddr,
    clients: usize,
    senders: usize,
    deliveries: u64,
    pid: Option<u32>,
    timeout: Duration,
}

fn args() -> Result<Args, String> {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        v.iter()
            .position(|a| a == k)
            .and_then(|i| v.get(i + 1))
            .cloned()
    };
    let num = |k: &str, d: u64| -> Result<u64, String> {
        get(k).map_or(Ok(d), |s| s.parse().map_err(|e| format!("{k} {s}: {e}")))
    };
    let addr = get("--addr")
        .ok_or("--addr HOST:PORT is required")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    let a = Args {
        addr,
        clients: num("--clients", 100)? as usize,
        senders: num("--senders", 1)? as usize,
        deliveries: num("--deliveries", 2_000_000)?,
        pid: get("--pid")
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| format!("--pid: {e}"))?,
        timeout: Duration::from_secs(num("--timeout", 60)?),
    };
    if a.clients < 2 || a.senders == 0 || a.senders > a.clients {
        return Err("need --clients >= 2 and 1 <= --senders <= --clients".into());
    }
    Ok(a)
}

/// (utime + stime in seconds, VmRSS in KiB) of a process, from /proc.
fn proc_stats(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of stat are the 12th and 13th after the command name.
    let cpu = (f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?) as f64 / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((cpu, rss))
}

struct Client {
    sock: TcpStream,
    /// Lines received.
    got: u64,
    /// Lines this client sent (senders only).
    sent: u64,
}

/// Reads everything `c` has until WouldBlock; returns the lines (newlines) in it.
/// An error or EOF is fatal: a benchmark client must never be dropped.
fn drain(c: &mut Client, buf: &mut [u8], i: usize) -> Result<u64, String> {
    let mut lines = 0;
    loop {
        match c.sock.read(buf) {
            Ok(0) => return Err(format!("client {i}: the server closed the connection")),
            Ok(n) => {
                lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                // A short read emptied the socket: stop here rather than pay another
                // read for its WouldBlock. Data arriving later is a new edge, a new event.
                if n < buf.len() {
                    return Ok(lines);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(lines),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("client {i}: {e}")),
        }
    }
}

fn run(a: Args) -> Result<String, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut cs: Vec<Client> = Vec::with_capacity(a.clients);
    let deadline = Instant::now() + a.timeout;
    let at_start = a.pid.and_then(proc_stats);

    // Reads whatever is ready within `wait`; returns whether anything was.
    let pump =
        |poll: &mut Poll, events: &mut Events, cs: &mut Vec<Client>, buf: &mut [u8], wait| {
            poll.poll(events, Some(wait)).map_err(|e| e.to_string())?;
            let mut any = false;
            for ev in events.iter() {
                let i = ev.token().0;
                if ev.is_readable() {
                    let n = drain(&mut cs[i], buf, i)?;
                    cs[i].got += n;
                    any = true;
                }
            }
            Ok::<bool, String>(any)
        };

    for i in 0..a.clients {
        let std = std::net::TcpStream::connect_timeout(&a.addr, Duration::from_secs(10))
            .map_err(|e| format!("client {i} of {}: connect: {e}", a.clients))?;
        std.set_nodelay(true).map_err(|e| e.to_string())?;
        std.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut sock = TcpStream::from_std(std);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        cs.push(Client {
            sock,
            got: 0,
            sent: 0,
        });
        pump(&mut poll, &mut events, &mut cs, &mut buf, Duration::ZERO)?;
        if Instant::now() > deadline {
            return Err(format!(
                "only {i} of {} clients connected in time",
                a.clients
            ));
        }
    }
    // Join notices: read until the server has been quiet for 0.5 s.
    while pump(
        &mut poll,
        &mut events,
        &mut cs,
        &mut buf,
        Duration::from_millis(500),
    )? {
        if Instant::now() > deadline {
            return Err("join notices never stopped".into());
        }
    }
    let idle = a.pid.and_then(proc_stats);
    for c in cs.iter_mut() {
        c.got = 0;
    }

    let per_sender = a.deliveries.div_ceil((a.senders * (a.clients - 1)) as u64);
    let want_total = per_sender * (a.senders * (a.clients - 1)) as u64;
    let mut line = [b'x'; LINE];
    line[..5].copy_from_slice(b"bmsg ");
    line[LINE - 1] = b'\n';
    let chunk: Vec<u8> = line.repeat(CHUNK as usize);
    // Bytes of a partly written chunk, per sender (a write may take part of it).
    let mut partial: Vec<usize> = vec![0; a.senders];
    let start = Instant::now();
    let cpu0 = a.pid.and_then(proc_stats);
    let mut delivered = 0u64;
    while delivered < want_total {
        if Instant::now() > deadline {
            return Err(format!(
                "timeout: {delivered} of {want_total} deliveries after {:.1} s",
                start.elapsed().as_secs_f64()
            ));
        }
        // Lines sent in all, and the slowest receiver's lag behind what it should have.
        let total_sent: u64 = cs[..a.senders].iter().map(|c| c.sent).sum();
        let lag = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let own = if i < a.senders { c.sent } else { 0 };
                (total_sent - own).saturating_sub(c.got)
            })
            .max()
            .unwrap_or(0);
        for (s, c) in cs[..a.senders].iter_mut().enumerate() {
            // Finish a partly written chunk first, then start another if allowed.
            loop {
                if partial[s] == 0 {
                    let room = WINDOW.saturating_sub(lag);
                    let n = (per_sender - c.sent).min(CHUNK).min(room);
                    if n == 0 {
                        break;
                    }
                    partial[s] = n as usize * LINE;
                }
                let from = chunk.len() - partial[s];
                match c.sock.write(&chunk[from..]) {
                    Ok(w) => {
                        // Count whole lines once they are fully written.
                        let unsent = |p: usize| p.div_ceil(LINE);
                        let was = unsent(partial[s]);
                        partial[s] -= w;
                        c.sent += (was - unsent(partial[s])) as u64;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("sender {s}: {e}")),
                }
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() {
                let n = drain(&mut cs[i], &mut buf, i)?;
                cs[i].got += n;
                delivered += n;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let (rss_per, cpu_per) = match (at_start, idle, cpu0, a.pid.and_then(proc_stats)) {
        (Some((_, r0)), Some((_, r1)), Some((c0, _)), Some((c1, _))) => (
            (r1.saturating_sub(r0) * 1024) as f64 / a.clients as f64,
            (c1 - c0) * 1e9 / delivered as f64,
        ),
        _ => (0.0, 0.0),
    };
    Ok(format!(
        "{:.0} {rss_per:.0} {cpu_per:.0}",
        delivered as f64 / el
    ))
}

fn main() {
    match args().and_then(run) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("chat_load: {e}");
            std::process::exit(1);
        }
    }
}
