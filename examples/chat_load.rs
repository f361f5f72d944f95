//! Load generator for bench/chat.sh: how many chat lines per second a line-based chat
//! server (lab 05's, or `ncat --chat`) delivers. A benchmark tool, not part of `lab`.
//!
//!   cargo build --release --example chat_load
//!   target/release/examples/chat_load --addr 127.0.0.1:7005 --clients 100 --senders 10 \
//!       --deliveries 3000000 [--write line|bulk] [--pid SERVER_PID] [--timeout 60]
//!       [--ready-file PATH]
//!
//! 1. Connects N clients one after another, reading whatever arrives meanwhile (join
//!    notices: a server that announces joins with blocking writes would stall if nobody
//!    read them), then reads until nothing arrives for 0.5 s. With --pid, the server's
//!    RSS growth over this phase divided by N is the memory per idle client.
//!    With --ready-file, it then writes PATH and waits until PATH is removed (so the
//!    script can attach a syscall counter to the server for the measured phase only).
//! 2. The first S clients send 64-byte lines; every client counts the lines it
//!    receives, until each has received every line of every *other* sender
//!    (S x LINES x (N - 1) deliveries in all, LINES chosen to reach --deliveries), or
//!    --timeout. The slowest receiver may lag at most WINDOW lines behind everything
//!    sent (one window shared by all senders, handed out round-robin), so no server
//!    ever meets a client that does not keep up (lab would drop it as `too slow`, ncat
//!    would block): the figure is the server's pace, not a drop count.
//!
//! `--write line` (the default) is how chat clients talk: one line per write(), so a
//! server reads what arrived since its last read (one line, or several if it fell
//! behind). `--write bulk` writes up to 256 lines (16 KiB) per write(), the old
//! measure: every read then carries kilobytes and both servers pay mostly for copying.
//!
//! Prints one line: `DELIVERED_PER_S BYTES_PER_IDLE_CLIENT SERVER_CPU_US_PER_1000
//! SERVER_BUSY_% LOAD_BUSY_%` (server figures 0 without --pid). The last two say who
//! was the bottleneck: a server near 100% busy is saturated; a generator near 100%
//! with the server well below means the rate is the generator's, and the server's CPU
//! per 1000 deliveries is then the figure to compare. A second line on stderr gives
//! the generator's reads, writes and bytes per read. One thread and one mio poll, so
//! the generator is pinned to one CPU like the server is to the other; it reads each
//! socket in 256 KiB reads until one comes back short (one read per socket per event,
//! where reading until WouldBlock would cost two) and counts newlines 8 bytes at a time.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Most lines the slowest receiver may lag behind everything sent (64 KiB of 64-byte
/// lines: far below lab's 256 KiB queue per client, and enough to keep every pipe full).
const WINDOW: u64 = 1024;
/// Lines per write in bulk mode (16 KiB).
const CHUNK: u64 = 256;
const LINE: usize = 64;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Line,
    Bulk,
}

struct Args {
    addr: SocketAddr,
    clients: usize,
    senders: usize,
    deliveries: u64,
    mode: Mode,
    pid: Option<u32>,
    timeout: Duration,
    /// Written once every client has joined; the measured phase starts when it is gone.
    ready_file: Option<String>,
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
    let mode = match get("--write").as_deref() {
        None | Some("line") => Mode::Line,
        Some("bulk") => Mode::Bulk,
        Some(m) => return Err(format!("--write {m}: line or bulk")),
    };
    let a = Args {
        addr,
        clients: num("--clients", 100)? as usize,
        senders: num("--senders", 1)? as usize,
        deliveries: num("--deliveries", 2_000_000)?,
        mode,
        pid: get("--pid")
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| format!("--pid: {e}"))?,
        timeout: Duration::from_secs(num("--timeout", 60)?),
        ready_file: get("--ready-file"),
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

/// Newlines in `b`, 8 bytes at a time: a byte of `x` is zero exactly where `b` had a
/// newline, and the carry-free test below sets that byte's top bit (exact, no false
/// positives). Several times faster than a byte loop, so the generator's CPU goes to
/// its system calls.
fn newlines(b: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut n = 0u64;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])) ^ (ONES * u64::from(b'\n'));
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        n += u64::from(zero.count_ones());
    }
    n + words.remainder().iter().filter(|&&c| c == b'\n').count() as u64
}

struct Client {
    sock: TcpStream,
    /// Lines received.
    got: u64,
    /// Lines this client sent (senders only).
    sent: u64,
    /// Bytes of the line or chunk being written that are still unwritten (a write
    /// may take part of it).
    partial: usize,
}

/// The generator's own counts, for the stderr line.
#[derive(Default)]
struct Counts {
    reads: u64,
    read_bytes: u64,
    writes: u64,
}

/// Reads what `c` has (see the module comment); returns the lines in it, or just
/// discards it when `count` is false (join notices). An error or EOF is fatal: a
/// benchmark client must never be dropped.
fn drain(
    c: &mut Client,
    buf: &mut [u8],
    i: usize,
    count: bool,
    k: &mut Counts,
) -> Result<u64, String> {
    let mut lines = 0;
    loop {
        match c.sock.read(buf) {
            Ok(0) => return Err(format!("client {i}: the server closed the connection")),
            Ok(n) => {
                k.reads += 1;
                k.read_bytes += n as u64;
                if count {
                    lines += newlines(&buf[..n]);
                }
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

/// Writes (the rest of) one line or chunk for sender `c`; true if it went out whole.
fn write_some(c: &mut Client, chunk: &[u8], k: &mut Counts) -> Result<bool, String> {
    loop {
        let from = chunk.len() - c.partial;
        match c.sock.write(&chunk[from..]) {
            Ok(w) => {
                k.writes += 1;
                // Count whole lines once they are fully written.
                let unsent = |p: usize| p.div_ceil(LINE);
                let was = unsent(c.partial);
                c.partial -= w;
                c.sent += (was - unsent(c.partial)) as u64;
                return Ok(c.partial == 0);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("sender: {e}")),
        }
    }
}

fn run(a: Args) -> Result<String, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut cs: Vec<Client> = Vec::with_capacity(a.clients);
    let mut k = Counts::default();
    let deadline = Instant::now() + a.timeout;
    let at_start = a.pid.and_then(proc_stats);

    // Reads (and discards) whatever is ready within `wait`; returns whether anything was.
    let pump = |poll: &mut Poll,
                events: &mut Events,
                cs: &mut Vec<Client>,
                buf: &mut [u8],
                k: &mut Counts,
                wait| {
        poll.poll(events, Some(wait)).map_err(|e| e.to_string())?;
        let mut any = false;
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() {
                drain(&mut cs[i], buf, i, false, k)?;
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
            partial: 0,
        });
        pump(
            &mut poll,
            &mut events,
            &mut cs,
            &mut buf,
            &mut k,
            Duration::ZERO,
        )?;
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
        &mut k,
        Duration::from_millis(500),
    )? {
        if Instant::now() > deadline {
            return Err("join notices never stopped".into());
        }
    }
    let idle = a.pid.and_then(proc_stats);
    if let Some(f) = &a.ready_file {
        // Tell the script the clients are in (it may attach a syscall counter to the
        // server now) and wait, bounded, until it removes the file.
        std::fs::write(f, b"joined\n").map_err(|e| format!("--ready-file {f}: {e}"))?;
        let until = Instant::now() + Duration::from_secs(30);
        while std::path::Path::new(f).exists() {
            if Instant::now() > until {
                return Err(format!("--ready-file {f} was not removed within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let setup = start_timer(&a);
    k = Counts::default();

    let per_sender = a.deliveries.div_ceil((a.senders * (a.clients - 1)) as u64);
    let want_total = per_sender * (a.senders * (a.clients - 1)) as u64;
    let mut line = [b'x'; LINE];
    line[..5].copy_from_slice(b"bmsg ");
    line[LINE - 1] = b'\n';
    let per_write = if a.mode == Mode::Line { 1 } else { CHUNK };
    let chunk: Vec<u8> = line.repeat(per_write as usize);
    let start = Instant::now();
    let cpu0 = a.pid.and_then(proc_stats);
    let mut delivered = 0u64;
    let mut first = 0usize;
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
        // The window left, handed out round-robin (one line or chunk per sender per
        // round, starting one further each pass) until it is used up or every sender
        // is blocked or done.
        let mut room = WINDOW.saturating_sub(lag);
        let mut open = vec![true; a.senders];
        let mut still = a.senders;
        while room > 0 && still > 0 {
            for j in 0..a.senders {
                let s = (first + j) % a.senders;
                if !open[s] {
                    continue;
                }
                let c = &mut cs[s];
                if c.partial == 0 {
                    let n = (per_sender - c.sent).min(per_write).min(room);
                    if n == 0 {
                        open[s] = false;
                        still -= 1;
                        continue;
                    }
                    // A chunk shorter than per_write is its tail.
                    c.partial = n as usize * LINE;
                    room -= n;
                }
                if !write_some(c, &chunk[..], &mut k)? {
                    open[s] = false;
                    still -= 1;
                }
                if room == 0 {
                    break;
                }
            }
        }
        first = (first + 1) % a.senders;
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() {
                let n = drain(&mut cs[i], &mut buf, i, true, &mut k)?;
                cs[i].got += n;
                delivered += n;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let load_busy = proc_stats(std::process::id()).map_or(0.0, |(c, _)| (c - setup) / el * 100.0);
    let (rss_per, cpu_per, busy) = match (at_start, idle, cpu0, a.pid.and_then(proc_stats)) {
        (Some((_, r0)), Some((_, r1)), Some((c0, _)), Some((c1, _))) => (
            (r1.saturating_sub(r0) * 1024) as f64 / a.clients as f64,
            (c1 - c0) * 1e9 / delivered as f64,
            (c1 - c0) / el * 100.0,
        ),
        _ => (0.0, 0.0, 0.0),
    };
    eprintln!(
        "chat_load: {delivered} deliveries in {el:.2} s; generator: {} writes, {} reads of {:.0} B on average",
        k.writes,
        k.reads,
        k.read_bytes as f64 / k.reads.max(1) as f64
    );
    Ok(format!(
        "{:.0} {rss_per:.0} {cpu_per:.1} {busy:.0} {load_busy:.0}",
        delivered as f64 / el
    ))
}

/// The generator's own CPU seconds so far (the measured phase subtracts it).
fn start_timer(_a: &Args) -> f64 {
    proc_stats(std::process::id()).map_or(0.0, |(c, _)| c)
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
