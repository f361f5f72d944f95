//! The control pty: how long the machine itself holds up a pty's bytes, measured all
//! through a check, so 07's waits can leave that time uncharged.
//!
//! The kernel hands bytes written to a pty's master to the reader's side in a worker
//! thread. On a loaded machine that worker waits for a CPU, at load 29 for over a
//! second, while the program reading the device shows nothing: it sleeps in a read
//! (or waits in `D` for the worker), never queued, so no schedstat counter of its own
//! sees the delay. The grader's device writer therefore also writes one byte at a time
//! (a heartbeat, at most one per millisecond, right behind the device's own bytes) to a
//! second pty, which a thread of the grader reads as soon as it can. Any heartbeat
//! older than [`HELD`] and still not delivered means the machine was holding ptys up:
//! that time accumulates in [`Ledger::held`], a counter the checks read the way they
//! read a program's CPU-queue time. Each heartbeat also carries how many device
//! samples had been written before it, so the grader knows roughly how far the
//! device's bytes could have reached the program ([`Ledger::delivered_samples`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A heartbeat delivered within this long was not held up: heartbeats go out every
/// millisecond, and an idle machine delivers one in well under 0.1 ms.
pub const HELD: Duration = Duration::from_millis(2);

/// Most heartbeats in flight: the control pty itself holds about 4 KiB before a write
/// fails, so the ledger stays small whatever the machine does.
const MAX_PENDING: usize = 64 * 1024;

/// What went into the control pty and what came out, and the time the machine held it.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Heartbeats written and not yet delivered, oldest first: (control bytes written
    /// up to and including it, device samples written before it, when).
    pending: VecDeque<(u64, u64, Instant)>,
    /// Control bytes written.
    written: u64,
    /// Control bytes delivered to the grader's reader.
    delivered: u64,
    /// Device samples written before the latest delivered heartbeat.
    delivered_samples: u64,
    /// Time in which some heartbeat was older than [`HELD`] and not delivered, up to
    /// `accounted_until`.
    held: Duration,
    /// The end of the time already counted in `held`.
    accounted_until: Option<Instant>,
}

impl Ledger {
    /// Notes a heartbeat of `n` bytes written at `at`, after `samples` device samples.
    pub fn wrote(&mut self, n: u64, samples: u64, at: Instant) {
        if n == 0 || self.pending.len() >= MAX_PENDING {
            return;
        }
        self.written += n;
        if self.delivered >= self.written {
            // Already read (noted late): delivered, never pending.
            self.delivered_samples = samples;
            return;
        }
        self.pending.push_back((self.written, samples, at));
    }

    /// Notes `n` control bytes read at `at`: the heartbeats they complete are delivered,
    /// and the time the oldest of them waited beyond [`HELD`] is held time.
    pub fn read(&mut self, n: u64, at: Instant) {
        if n == 0 {
            return;
        }
        self.held += self.held_since_counted(at);
        self.accounted_until = Some(self.accounted_until.map_or(at, |u| u.max(at)));
        self.delivered += n;
        while let Some(&(end, samples, _)) = self.pending.front() {
            if end > self.delivered {
                break;
            }
            self.delivered_samples = samples;
            self.pending.pop_front();
        }
    }

    /// Time the oldest pending heartbeat has been held at `now` that `held` does not
    /// count yet.
    fn held_since_counted(&self, now: Instant) -> Duration {
        let Some(&(_, _, oldest)) = self.pending.front() else {
            return Duration::ZERO;
        };
        let from = oldest + HELD;
        let from = self.accounted_until.map_or(from, |u| u.max(from));
        now.saturating_duration_since(from)
    }

    /// All time so far (to `now`) in which the machine held a heartbeat up, including a
    /// hold still going on.
    pub fn held(&self, now: Instant) -> Duration {
        self.held + self.held_since_counted(now)
    }

    /// Device samples written before the latest heartbeat the machine delivered: bytes
    /// it had (very likely) handed on to whoever reads the device by then.
    pub fn delivered_samples(&self) -> u64 {
        self.delivered_samples
    }
}

/// The control pty's grader side: its master (written by the device's writer) and the
/// thread reading its slave.
pub struct Control {
    /// The master the heartbeats go into.
    master: File,
    /// When the latest heartbeat went out.
    last_beat: Option<Instant>,
    /// Shared with the reader and the checks.
    ledger: Arc<Mutex<Ledger>>,
}

/// Reads the held time from any thread (a client's reader notes it at each recv).
#[derive(Clone, Debug)]
pub struct HeldMeter(Arc<Mutex<Ledger>>);

impl HeldMeter {
    /// Seconds the machine has held the control pty's bytes up so far.
    pub fn seconds(&self) -> f64 {
        lock(&self.0).held(Instant::now()).as_secs_f64()
    }

    /// See [`Ledger::delivered_samples`].
    pub fn delivered_samples(&self) -> u64 {
        lock(&self.0).delivered_samples()
    }
}

fn lock(l: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

impl Control {
    /// Opens the control pty (raw, non-blocking master) and starts its reader, which
    /// ends when `stop` is set or the master closes; returns the reader to join.
    pub fn open(stop: Arc<AtomicBool>) -> std::io::Result<(Control, HeldMeter, JoinHandle<()>)> {
        let (master, path) = crate::sys::open_pty()?;
        crate::sys::set_raw(&master)?;
        crate::sys::set_nonblocking(&master)?;
        // O_NOCTTY: the grader must not make it its controlling terminal.
        let mut slave = File::options()
            .read(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)?;
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let l = Arc::clone(&ledger);
        let reader = std::thread::Builder::new()
            .name("grader-control".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    // A short wait, so the reader notices `stop`.
                    match crate::sys::wait_readable(&slave, Duration::from_millis(50)) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(_) => return,
                    }
                    let n = match slave.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    lock(&l).read(n as u64, Instant::now());
                }
            })?;
        let meter = HeldMeter(Arc::clone(&ledger));
        Ok((
            Control {
                master,
                last_beat: None,
                ledger,
            },
            meter,
            reader,
        ))
    }

    /// Writes a heartbeat if none went out in the last millisecond; `samples` is how
    /// many device samples are written so far (all of them before this heartbeat).
    pub fn beat(&mut self, samples: u64) {
        let now = Instant::now();
        if self
            .last_beat
            .is_some_and(|t| now.duration_since(t) < super::device::TICK)
        {
            return;
        }
        self.last_beat = Some(now);
        // Noted under the ledger's lock, taken before the write: the reader may get the
        // byte at once, and must find its heartbeat in the ledger when it notes the
        // read (noted after, it stayed pending for good and counted as held). A full
        // control pty (its reader starved) refuses the byte: the pending ones already
        // measure the hold.
        let mut ledger = lock(&self.ledger);
        if let Ok(n) = self.master.write(&[0x55]) {
            ledger.wrote(n as u64, samples, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn prompt_delivery_is_not_held_time() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        for i in 0..100u64 {
            let at = t0 + ms(i);
            l.wrote(1, i * 2, at);
            l.read(1, at + Duration::from_micros(100));
        }
        assert_eq!(l.held(t0 + ms(200)), Duration::ZERO);
        assert_eq!(l.delivered_samples(), 198);
    }

    #[test]
    fn a_held_pty_counts_once_from_its_oldest_byte() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        // Heartbeats every ms for 500 ms, none delivered: the oldest waits 500 ms.
        for i in 0..500u64 {
            l.wrote(1, 10 + i, t0 + ms(i));
        }
        // Still going on: counted live, from the oldest byte's HELD on.
        assert_eq!(l.held(t0 + ms(300)), ms(300) - HELD);
        assert_eq!(l.delivered_samples(), 0);
        // Then all at once: the hold lasted from 2 ms to 500 ms, counted once.
        l.read(500, t0 + ms(500));
        assert_eq!(l.held(t0 + ms(900)), ms(500) - HELD);
        assert_eq!(l.delivered_samples(), 509);
        // A second hold adds to it; overlapping reads do not count twice.
        l.wrote(1, 600, t0 + ms(1000));
        l.wrote(1, 601, t0 + ms(1001));
        l.read(1, t0 + ms(1100));
        assert_eq!(l.delivered_samples(), 600);
        l.read(1, t0 + ms(1150));
        assert_eq!(l.held(t0 + ms(2000)), ms(500) - HELD + ms(150) - HELD);
        assert_eq!(l.delivered_samples(), 601);
    }

    #[test]
    fn a_partly_delivered_heartbeat_is_still_pending() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.wrote(2, 5, t0);
        l.read(1, t0 + Duration::from_micros(10));
        assert_eq!(l.delivered_samples(), 0);
        assert_eq!(l.held(t0 + ms(12)), ms(10));
        l.read(1, t0 + ms(12));
        assert_eq!(l.delivered_samples(), 5);
        assert_eq!(l.held(t0 + ms(50)), ms(10));
    }

    #[test]
    fn a_heartbeat_read_before_it_was_noted_is_not_held() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.read(1, t0 + ms(1));
        l.wrote(1, 7, t0);
        assert_eq!(l.delivered_samples(), 7);
        assert_eq!(l.held(t0 + ms(1000)), Duration::ZERO);
    }

    #[test]
    fn the_ledger_is_bounded() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        for i in 0..(MAX_PENDING as u64 + 10) {
            l.wrote(1, i, t0);
        }
        assert_eq!(l.pending.len(), MAX_PENDING);
    }

    #[test]
    fn a_real_control_pty_delivers_heartbeats() {
        let stop = Arc::new(AtomicBool::new(false));
        let (mut c, meter, reader) = match Control::open(Arc::clone(&stop)) {
            Ok(c) => c,
            Err(e) => panic!("cannot open a pty: {e}"),
        };
        for i in 1..=20u64 {
            c.beat(i);
            std::thread::sleep(super::super::device::TICK * 2);
        }
        let until = Instant::now() + Duration::from_secs(10);
        while meter.delivered_samples() < 20 && Instant::now() < until {
            std::thread::sleep(ms(5));
        }
        assert_eq!(meter.delivered_samples(), 20);
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap();
    }
}
