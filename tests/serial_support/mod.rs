//! Helpers shared by the 07-serial-stream tests: run `lab` as a server, follow what it
//! prints, read from it with deadlines, and check sample streams.
//!
//! Every wait here is bounded by a deadline, and a server left running is killed when
//! its handle drops, so a failing test cannot hang the suite or leak a process.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The `lab` binary under test.
pub fn lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lab"));
    crate::common::isolate(&mut c);
    c
}

/// A `lab run 07 --role server` process and the lines it has printed.
pub struct Server {
    /// The process; killed on drop if still running.
    child: Child,
    /// Lines of its stdout, as they come.
    lines: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts a server on an ephemeral loopback port with the given extra flags and
    /// waits (at most 15 s) for its banner.
    pub fn start(flags: &[&str]) -> Server {
        let mut child = lab()
            .args(["run", "07", "--role", "server", "--bind", "127.0.0.1:0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lab");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Server {
            child,
            lines: rx,
            seen: Vec::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let banner = s.wait_for("listening on", Duration::from_secs(15));
        let addr = banner
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        s.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("no address in {banner:?}"));
        s
    }

    /// Waits for a line containing `text` (at most `limit`), returning it.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no line with {text:?} within {limit:?}; got:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Waits until `n` lines contain `text` (at most `limit`).
    pub fn wait_count(&mut self, text: &str, n: usize, limit: Duration) {
        let end = Instant::now() + limit;
        while self.count(text) < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "only {} of {n} lines with {text:?}; got:\n{}",
                    self.count(text),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Lines seen so far that contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    /// Stops the server as Ctrl-C would (SIGTERM), waits for it (at most 10 s), and
    /// returns its exit status and the summary line.
    pub fn stop(mut self) -> (ExitStatus, String) {
        lab::sys::send_signal(self.child.id(), libc::SIGTERM).unwrap();
        let summary = self.wait_for("server stopped", Duration::from_secs(10));
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "server did not exit after SIGTERM");
            thread::sleep(Duration::from_millis(20));
        };
        (status, summary)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number just before `label` in `line` ("... 12 samples skipped ..." -> 12).
pub fn number_before(line: &str, label: &str) -> u64 {
    let head = line
        .split(label)
        .next()
        .unwrap_or_else(|| panic!("{label:?} not in {line:?}"));
    assert!(line.contains(label), "{label:?} not in {line:?}");
    head.split_whitespace()
        .last()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {line:?}"))
}

/// Connects to the server with a read timeout, so no read can hang.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Reads exactly `n` bytes, failing the test if they do not come within `limit`.
pub fn read_n(s: &mut TcpStream, n: usize, limit: Duration) -> Vec<u8> {
    let end = Instant::now() + limit;
    let mut got = vec![0u8; n];
    let mut have = 0;
    while have < n {
        assert!(
            Instant::now() < end,
            "only {have} of {n} bytes within {limit:?}"
        );
        match s.read(&mut got[have..]) {
            Ok(0) => panic!("server closed after {have} of {n} bytes"),
            Ok(k) => have += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {have} bytes: {e}"),
        }
    }
    got
}

/// Asserts that `b` is a stretch of the ramp waveform: each byte one more than the last,
/// modulo 256 (no sample lost, repeated or reordered).
pub fn assert_ramp(b: &[u8], what: &str) {
    assert!(!b.is_empty(), "{what}: no bytes");
    for i in 1..b.len() {
        assert_eq!(
            b[i],
            b[i - 1].wrapping_add(1),
            "{what}: byte {i} breaks the ramp (..{:?}..)",
            &b[i.saturating_sub(4)..(i + 4).min(b.len())]
        );
    }
}

/// The crate's seeded generator, so failures can be replayed.
#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use lab::rng::Rng;

/// A seed from the clock, printed so a failing run can be repeated with SERIAL_TEST_SEED.
pub fn seed(test: &str) -> u64 {
    let s = std::env::var("SERIAL_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{test}: seed {s} (set SERIAL_TEST_SEED={s} to repeat)");
    s
}
