//! Benchmark: 07-serial-stream's forwarding path (pty -> reader thread -> waker -> event
//! loop -> TCP) against socat doing the same job (pty -> TCP in one select loop), both
//! measured in the same run on the same machine, reported as ratios.
//!
//!     cargo bench --bench serial_stream
//!
//! Two measurements per forwarder, each bounded in count and time:
//! - latency: write one byte into the pty, time until a TCP client receives it; 1000
//!   times, one at a time (lab with --buffer 1; TCP_NODELAY on both sides);
//! - throughput: 4 MiB written into the pty as fast as it takes them, time until the
//!   client has all of them (lab with --buffer 4096: one send per 4 KiB, about what
//!   socat's 8 KiB reads give it; --buffer 1 would measure 4 million 1-byte sends).
//!
//! Needs socat (apt-get install -y socat); without it the benchmark says so and stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Round trips measured per forwarder: enough for a stable p99, a second or two each.
const PINGS: usize = 1000;
/// Bytes for the throughput run: long enough to swamp start-up costs.
const BULK: usize = 4 << 20;
/// No single measurement may take longer than this.
const LIMIT: Duration = Duration::from_secs(60);

/// A forwarder process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pty whose master is close-on-exec (so the forwarder does not inherit it).
fn pty() -> (std::fs::File, String) {
    lab::sys::open_pty().expect("a pty")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn connect_retrying(addr: SocketAddr) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(_) if Instant::now() < end => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

/// Starts `lab` forwarding the pty; returns it with a connected client.
fn start_lab(path: &str, buffer: usize) -> (Proc, TcpStream) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lab"))
        .args([
            "run",
            "07",
            "--role",
            "server",
            "--bind",
            "127.0.0.1:0",
            "--nodelay",
            "--quiet",
        ])
        .args(["--serial", path, "--buffer", &buffer.to_string()])
        .env("NO_COLOR", "1")
        .env(
            "LAB_PROGRESS",
            std::env::temp_dir().join("lab-bench-progress.toml"),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lab");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().expect("a banner").unwrap();
    let addr: SocketAddr = banner
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Keep draining its stdout so it can never block on a full pipe.
    thread::spawn(move || for _ in lines {});
    let c = connect_retrying(addr);
    // Let the server accept before we write: samples from before a connect are stale.
    thread::sleep(Duration::from_millis(200));
    (Proc(child), c)
}

/// Starts socat forwarding the same way (raw pty in, TCP out, no Nagle).
fn start_socat(path: &str) -> (Proc, TcpStream) {
    let port = free_port();
    let child = Command::new("socat")
        .arg("-u")
        .arg(format!("OPEN:{path},raw,echo=0,b115200"))
        .arg(format!(
            "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,nodelay"
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("start socat");
    let c = connect_retrying(format!("127.0.0.1:{port}").parse().unwrap());
    thread::sleep(Duration::from_millis(200));
    (Proc(child), c)
}

/// Microseconds from writing one byte into the pty to reading it from TCP, PINGS times.
fn latencies(master: &mut std::fs::File, c: &mut TcpStream) -> Vec<f64> {
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let end = Instant::now() + LIMIT;
    let mut out = Vec::with_capacity(PINGS);
    let mut b = [0u8; 1];
    for i in 0..PINGS {
        assert!(Instant::now() < end, "latency run over its time limit");
        let v = [(i % 256) as u8];
        let t = Instant::now();
        master.write_all(&v).unwrap();
        c.read_exact(&mut b).expect("the byte came back");
        out.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(b, v, "byte {i} changed on the way");
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

/// Seconds to move BULK bytes from the pty to the client.
fn bulk(mut master: std::fs::File, c: &mut TcpStream) -> f64 {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let writer = thread::spawn(move || {
        let chunk = vec![0x55u8; 4096];
        for _ in 0..BULK / chunk.len() {
            master.write_all(&chunk).unwrap();
        }
        master
    });
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    while got < BULK {
        assert!(t.elapsed() < LIMIT, "bulk run over its time limit");
        got += c.read(&mut buf).expect("bulk read");
    }
    let secs = t.elapsed().as_secs_f64();
    drop(writer.join());
    secs
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    if Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("serial_stream bench: socat is not installed (apt-get install -y socat); nothing measured");
        return;
    }
    let mut rows = Vec::new();
    for name in ["socat", "lab"] {
        let start = |path: &str, buffer| {
            if name == "lab" {
                start_lab(path, buffer)
            } else {
                start_socat(path)
            }
        };
        let (mut master, path) = pty();
        let (proc_, mut c) = start(&path, 1);
        let lat = latencies(&mut master, &mut c);
        drop((proc_, c, master));
        let (master, path) = pty();
        let (proc_, mut c) = start(&path, 4096);
        let secs = bulk(master, &mut c);
        drop(proc_);
        println!(
            "{name:>6}: latency p50 {:.0} us  p99 {:.0} us  max {:.0} us   bulk {:.1} MB/s",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
            BULK as f64 / secs / 1e6
        );
        rows.push((pct(&lat, 0.5), pct(&lat, 0.99), BULK as f64 / secs));
    }
    let (s, l) = (rows[0], rows[1]);
    println!(
        "lab / socat: latency p50 x{:.2}, p99 x{:.2}; throughput x{:.2} ({} pings, {} MiB)",
        l.0 / s.0,
        l.1 / s.1,
        l.2 / s.2,
        PINGS,
        BULK >> 20
    );
}
