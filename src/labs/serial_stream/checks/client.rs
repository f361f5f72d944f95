//! The grader's clients for 07's checks: each reads in a thread of its own and records
//! every byte and when each recv returned, so a check can locate what a client got in
//! the waveform and how long each sample waited, while it drives other clients. It also
//! notes, at each recv, how long the program and the reader itself had waited for a
//! CPU so far, and how long the machine had held ptys up (the device's control pty),
//! so a check can tell a sample the program held back from one a loaded machine
//! delivered late.

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::HeldMeter;
use super::device::Device;
use crate::grade::harness::{Harness, Outcome, Unmet};
use crate::grade::sandbox::{thread_queued_seconds, QueueMeter};

/// Bytes a client keeps: over 8 MiB, a bound on memory whatever a program sends.
const CLIENT_CAP: usize = 8 << 20;

/// What one client's reader thread saw.
#[derive(Debug, Default)]
struct Rx {
    /// Every byte received, in order (up to [`CLIENT_CAP`]).
    data: Vec<u8>,
    /// The latest 16 bytes received, past the cap too.
    last: Vec<u8>,
    /// After each recv: (bytes received so far, when the recv returned).
    recvs: Vec<(usize, Instant)>,
    /// How the stream ended, if it did (EOF, reset).
    ended: Option<String>,
    /// Seconds the program and this reader had waited for a CPU, plus the seconds the
    /// machine held ptys up, when the reader started and then after each recv (one
    /// more entry than `recvs`); empty when the grader had no program to meter.
    queued: Vec<(Instant, f64)>,
    /// The same sum, as of the reader's latest wake-up (at least every 50 ms while it
    /// gets a CPU).
    queued_now: f64,
}

/// A client that reads in a thread of its own, timing each recv.
pub struct Client {
    /// Its name in the transcript (A, B, ...).
    pub name: String,
    /// Its socket (kept to reset it on purpose).
    sock: Option<TcpStream>,
    /// What it received.
    rx: Arc<Mutex<Rx>>,
    /// Set to stop the reader.
    stop: Arc<AtomicBool>,
    /// The reader, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// Samples written just before it connected.
    pub joined_at: u64,
    /// Samples the machine had handed to the device's reader side by then (see
    /// [`Device::delivered`]): at most `joined_at`, less while the machine holds ptys up.
    pub joined_delivered: u64,
}

impl Client {
    /// Connects and starts reading, noting at each recv the CPU-queue time of the
    /// program (the newest one `ctx` started) and of the reader (see [`Client::queued`]).
    pub fn connect(ctx: &mut Harness, dev: &Device, name: &str) -> Outcome<Client> {
        let meter = ctx.program().map(|p| p.meter());
        let held = dev.held_meter();
        // Counted before connecting: the client connects after this sample. Counted
        // after, a grader thread that waited for a CPU between its connect and the
        // count dated the client late by that wait, and a correct program's first
        // samples looked like a stale backlog (0.49 s of them, at load 25).
        let joined_delivered = dev.delivered();
        let joined_at = dev.written();
        let s = ctx.connect(name)?;
        let joined = (joined_at, joined_delivered.min(joined_at));
        Client::reading(name, s, joined, meter, held)
    }

    fn reading(
        name: &str,
        s: TcpStream,
        (joined_at, joined_delivered): (u64, u64),
        meter: Option<QueueMeter>,
        held: Option<HeldMeter>,
    ) -> Outcome<Client> {
        let mut r = s
            .try_clone()
            .map_err(|e| Unmet::error(format!("cannot clone a socket: {e}")))?;
        // Short timeouts only so the reader notices `stop`.
        let _ = r.set_read_timeout(Some(Duration::from_millis(50)));
        // The baseline, before the reader thread exists (its own queue time starts at 0).
        let held_seconds = move || held.as_ref().map_or(0.0, |h| h.seconds());
        let start = meter.as_ref().map(|m| m.queued_seconds() + held_seconds());
        let rx = Arc::new(Mutex::new(Rx {
            queued: start.map(|q| vec![(Instant::now(), q)]).unwrap_or_default(),
            queued_now: start.unwrap_or(0.0),
            ..Rx::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx2, stop2) = (Arc::clone(&rx), Arc::clone(&stop));
        // Read just after the clock: a reader descheduled between its recv and the clock
        // has that wait both in the time it notes and in the queue sum.
        let queued = move || {
            meter
                .as_ref()
                .map(|m| m.queued_seconds() + thread_queued_seconds() + held_seconds())
        };
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop2.load(Ordering::SeqCst) {
                let got = r.read(&mut buf);
                let now = Instant::now();
                let q = queued();
                let mut st = rx2.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(q) = q {
                    st.queued_now = q;
                }
                match got {
                    Ok(0) => {
                        st.ended = Some("the program closed the connection".into());
                        return;
                    }
                    Ok(n) => {
                        let room = CLIENT_CAP.saturating_sub(st.data.len()).min(n);
                        st.data.extend_from_slice(&buf[..room]);
                        st.last.extend_from_slice(&buf[n.saturating_sub(16)..n]);
                        let cut = st.last.len().saturating_sub(16);
                        st.last.drain(..cut);
                        let total = st.data.len();
                        st.recvs.push((total, now));
                        if let Some(q) = q {
                            st.queued.push((now, q));
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        st.ended = Some(format!("the connection failed: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Client {
            name: name.to_string(),
            sock: Some(s),
            rx,
            stop,
            thread: Some(thread),
            joined_at,
            joined_delivered,
        })
    }

    /// A copy of what it received so far.
    pub fn received(&self) -> (Vec<u8>, Vec<(usize, Instant)>, Option<String>) {
        let st = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        (st.data.clone(), st.recvs.clone(), st.ended.clone())
    }

    /// The CPU-queue timeline: (when, seconds the program and the reader had waited
    /// for a CPU, and the machine had held ptys up, by then), first when the reader started, then after each recv (entry
    /// `i + 1` belongs to recv `i`); empty when there was no program to meter.
    pub fn queued(&self) -> Vec<(Instant, f64)> {
        self.rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queued
            .clone()
    }

    /// The latest CPU-queue sum (as in [`Client::queued`]): how long the program and
    /// this client's reader have waited for a CPU, and the machine held ptys up, so far.
    pub fn queued_now(&self) -> f64 {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).queued_now
    }

    /// The latest (up to) 16 bytes received.
    pub fn last(&self) -> Vec<u8> {
        self.rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last
            .clone()
    }

    /// Bytes received so far (up to the cap).
    pub fn count(&self) -> usize {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).data.len()
    }

    /// Leaves abruptly: SO_LINGER 0 then close sends a reset, like a killed client.
    pub fn reset(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(s) = self.sock.take() {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
