//! Where samples come from: a real serial port, any pseudo-terminal, or the built-in
//! simulated Arduino. Each runs in a thread of its own and hands samples to the event
//! loop through a bounded channel plus the core's waker.
//!
//! Why a thread: `serialport` reads are blocking (they wait up to the port timeout for
//! bytes). The event loop must never block, so a reader thread does the waiting and the
//! loop is only woken when there is something to forward.
//!
//! Why bounded, and why `try_send`: if the loop ever fell behind, an unbounded channel
//! would grow without limit; a blocking send would stall the serial reading (and then the
//! kernel's serial buffer overflows and drops bytes we cannot count). So the reader never
//! waits: a chunk that does not fit is dropped and counted in [`SourceHandle::dropped`].
//!
//! Unplugging: a USB Arduino that is pulled out (or a pty whose other end closed) either
//! reads 0 bytes while reported readable, or fails with EIO / a hang-up. Both mean "the
//! device is gone": the reader reports it, closes the port, and tries to reopen the same
//! path with exponential backoff (100 ms doubling to 2 s), so a missing device never makes
//! it spin. When the path opens again it reports that the device is back.
//!
//! Stale samples: bytes that queued up in the kernel while nobody read the port (a
//! simulator or board that started before us) are not live. Each (re)open clears the
//! port's input buffer first, so the first sample forwarded is one read after the open.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::core::Waker;
use clap::ValueEnum;
use serialport::{ClearBuffer, SerialPort, TTYPort};

use crate::error::LabError;

/// Chunks the channel holds before the reader starts dropping. 1024 chunks is at least a
/// second of data at any rate we produce (the simulator sends a chunk per millisecond; a
/// serial read returns at most every byte time), far more slack than a healthy loop needs.
pub(super) const CHANNEL_CHUNKS: usize = 1024;

/// How long one serial read waits for bytes before checking whether it should stop.
/// 100 ms keeps shutdown prompt without waking often when the line is quiet.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// First wait before reopening a lost device; doubled after each failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between reopen attempts: a replugged board is found within 2 s.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The simulator's tick: it wakes every millisecond and emits the samples that are due,
/// so at 896 samples/s most chunks hold one sample, as a real board's bytes arrive.
const SIM_TICK: Duration = Duration::from_millis(1);

/// The shape of the simulated Arduino's signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Waveform {
    /// A sine of period 128 samples (7 Hz at 896 samples/s), centred on 128.
    Sine,
    /// Sample n is n mod 256: every byte value in turn, easy to check for gaps.
    Ramp,
    /// Seeded pseudo-random bytes (xorshift64*), the seed printed at start.
    Noise,
    /// 64 samples at 32, then 64 at 224.
    Square,
}

impl Waveform {
    /// The value of sample `n`. `noise` is the generator's state for [`Waveform::Noise`].
    pub fn sample(self, n: u64, noise: &mut u64) -> u8 {
        match self {
            Waveform::Sine => {
                let phase = (n % 128) as f64 / 128.0 * std::f64::consts::TAU;
                (128.0 + 127.0 * phase.sin()).round() as u8
            }
            Waveform::Ramp => (n % 256) as u8,
            Waveform::Noise => {
                // xorshift64* (Vigna): tiny, seedable, good enough to look like noise.
                *noise ^= *noise >> 12;
                *noise ^= *noise << 25;
                *noise ^= *noise >> 27;
                (noise.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            }
            Waveform::Square => {
                if n % 128 < 64 {
                    32
                } else {
                    224
                }
            }
        }
    }
}

/// Which source to start.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// The built-in simulated Arduino.
    Sim {
        /// Signal shape.
        waveform: Waveform,
        /// Samples per second (the real sketch makes about 896).
        rate: f64,
        /// Seed of the noise waveform.
        seed: u64,
    },
    /// A serial device or pseudo-terminal (a symlink to one works too).
    Port {
        /// Path such as /dev/ttyACM0 or /dev/pts/3.
        path: PathBuf,
        /// Baud rate (ignored by pseudo-terminals, which are as fast as their writer).
        baud: u32,
    },
}

impl SourceSpec {
    /// One line saying what this source is, for the banner.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Sim {
                waveform,
                rate,
                seed,
            } => {
                let w = format!("{waveform:?}").to_lowercase();
                if *waveform == Waveform::Noise {
                    format!("simulated Arduino ({w}, seed {seed}, {rate} samples/s)")
                } else {
                    format!("simulated Arduino ({w}, {rate} samples/s)")
                }
            }
            SourceSpec::Port { path, baud } => {
                format!("serial port {} at {baud} baud", path.display())
            }
        }
    }
}

/// What the reader thread tells the event loop.
#[derive(Debug)]
pub enum SourceEvent {
    /// Samples, one byte each, in order.
    Samples {
        /// The bytes as read.
        data: Vec<u8>,
        /// When the last of them was born, as far as this machine can know it: when the
        /// read returned, or, for the simulator, when its schedule made the last one.
        at: Instant,
    },
    /// The device went away; the reader will try to reopen it after `retry_in`.
    Lost {
        /// What the read said.
        why: String,
        /// Wait before the first reopen attempt.
        retry_in: Duration,
    },
    /// A reopen attempt failed; next try after `retry_in`.
    RetryFailed {
        /// What the open said.
        why: String,
        /// Wait before the next attempt.
        retry_in: Duration,
    },
    /// The device opened again; samples follow.
    Back,
}

/// The running source: its channel, and a way to stop it.
pub struct SourceHandle {
    /// Events from the reader thread, in order.
    pub rx: Receiver<SourceEvent>,
    /// Data chunks dropped because the channel was full, or because they waited there
    /// too long to be live (either way: the loop fell behind).
    pub dropped: Arc<AtomicU64>,
    /// Set to ask the thread to finish (it checks at least every [`READ_TIMEOUT`]).
    stop: Arc<AtomicBool>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Close our end first: a reader blocked sending a status event into a full
        // channel then gets an error and returns, instead of waiting for us forever.
        let (_, closed) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SourceHandle {
    /// A source with no thread: the test feeds the channel itself.
    #[cfg(test)]
    pub(super) fn manual() -> (SyncSender<SourceEvent>, SourceHandle) {
        let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
        let handle = SourceHandle {
            rx,
            dropped: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        (tx, handle)
    }
}

/// Opens the source and starts its thread. A port that cannot be opened at start is a
/// usage error naming the fix; once running, a lost device is retried instead.
pub fn start(spec: &SourceSpec, waker: Waker) -> Result<SourceHandle, LabError> {
    let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let out = Outbox {
        tx,
        waker,
        dropped: Arc::clone(&dropped),
    };
    let thread_stop = Arc::clone(&stop);
    let thread = match spec.clone() {
        SourceSpec::Sim {
            waveform,
            rate,
            seed,
        } => thread::Builder::new()
            .name("sim-arduino".into())
            .spawn(move || simulate(waveform, rate, seed, &out, &thread_stop)),
        SourceSpec::Port { path, baud } => {
            let port = open_port(&path, baud).map_err(|e| open_error(&path, &e))?;
            thread::Builder::new()
                .name("serial-reader".into())
                .spawn(move || read_port(port, &path, baud, &out, &thread_stop))
        }
    }
    .map_err(|e| LabError::usage(format!("cannot start the source thread: {e}")))?;
    Ok(SourceHandle {
        rx,
        dropped,
        stop,
        thread: Some(thread),
    })
}

/// The sending side of the channel, with the waker that tells the loop to look.
struct Outbox {
    /// Bounded channel to the loop.
    tx: SyncSender<SourceEvent>,
    /// Wakes the loop's `poll` ([`crate::core::Handler::on_wake`]).
    waker: Waker,
    /// Count of data chunks dropped on a full channel.
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Hands samples over without ever waiting. Returns false once the loop is gone.
    fn samples(&self, data: Vec<u8>, at: Instant) -> bool {
        match self.tx.try_send(SourceEvent::Samples { data, at }) {
            Ok(()) => {
                let _ = self.waker.wake();
                true
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = self.waker.wake();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Status events are rare and must not be lost: these may wait for room.
    fn status(&self, ev: SourceEvent) -> bool {
        let ok = self.tx.send(ev).is_ok();
        let _ = self.waker.wake();
        ok
    }
}

/// The simulated Arduino: `rate` samples per second of `waveform`, paced by the clock
/// (the n-th sample is due at n / rate seconds), so the average rate is exact however
/// the thread is scheduled.
fn simulate(waveform: Waveform, rate: f64, seed: u64, out: &Outbox, stop: &AtomicBool) {
    let start = Instant::now();
    let mut n: u64 = 0;
    // xorshift must not start at 0 (it would stay 0).
    let mut noise = seed | 1;
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(SIM_TICK);
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if due <= n {
            continue;
        }
        // At most 64 KiB per chunk, so a stalled thread catching up stays bounded.
        let k = (due - n).min(64 * 1024);
        let data: Vec<u8> = (n..n + k).map(|i| waveform.sample(i, &mut noise)).collect();
        n += k;
        // Sample i is born at (i + 1) / rate, when it becomes due: stamping the chunk
        // with its last sample's birth, not with "now", keeps our 1 ms tick (and any
        // scheduling delay) inside the latency we measure instead of hiding it.
        let born = start + Duration::from_secs_f64(n as f64 / rate);
        if !out.samples(data, born) {
            return;
        }
    }
}

/// Opens a serial port for reading samples: raw 8N1 at `baud`, reads that wait at most
/// [`READ_TIMEOUT`], and the input buffer cleared (stale bytes are not live samples).
pub fn open_port(path: &std::path::Path, baud: u32) -> serialport::Result<TTYPort> {
    let port = serialport::new(path.to_string_lossy(), baud)
        .timeout(READ_TIMEOUT)
        .open_native()?;
    port.clear(ClearBuffer::Input)?;
    Ok(port)
}

/// Turns a failed open at start into an error that names the fix.
fn open_error(path: &std::path::Path, e: &serialport::Error) -> LabError {
    use serialport::ErrorKind as K;
    let p = path.display();
    match e.kind() {
        K::Io(io::ErrorKind::NotFound) => LabError::usage(format!("cannot open {p}: no such device"))
            .fix("plug the Arduino in and check the path with `lab serial list` (usually /dev/ttyACM0 or /dev/ttyUSB0), or leave out --serial to use the simulated Arduino"),
        K::Io(io::ErrorKind::PermissionDenied) => LabError::usage(format!("cannot open {p}: permission denied"))
            .fix("add yourself to the group that owns it: `sudo usermod -aG dialout $USER`, then log out and in again"),
        K::NoDevice => LabError::usage(format!("cannot open {p}: the port is busy"))
            .fix("another program has it open: close the Arduino IDE's serial monitor (or the other `lab` run) and try again"),
        _ => LabError::usage(format!("cannot open {p}: {e}"))
            .fix("check that the path is a serial device (`lab serial list`), or leave out --serial to use the simulated Arduino"),
    }
}

/// The reader thread for a real port or pty: read, forward, and survive unplugging.
fn read_port(
    mut port: TTYPort,
    path: &std::path::Path,
    baud: u32,
    out: &Outbox,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let lost = match port.read(&mut buf) {
            Ok(0) => "read 0 bytes while readable: the device closed".to_string(),
            Ok(n) => {
                if !out.samples(buf[..n].to_vec(), Instant::now()) {
                    return;
                }
                continue;
            }
            // No byte within the timeout: a quiet line, not an unplugged one.
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO, a hang-up (reported as BrokenPipe), ENXIO...: the device is gone.
            Err(e) => e.to_string(),
        };
        drop(port);
        let mut wait = BACKOFF_FIRST;
        if !out.status(SourceEvent::Lost {
            why: lost,
            retry_in: wait,
        }) {
            return;
        }
        port = loop {
            if !sleep_unless_stopped(wait, stop) {
                return;
            }
            match open_port(path, baud) {
                Ok(p) => break p,
                Err(e) => {
                    wait = (wait * 2).min(BACKOFF_MAX);
                    if !out.status(SourceEvent::RetryFailed {
                        why: e.to_string(),
                        retry_in: wait,
                    }) {
                        return;
                    }
                }
            }
        };
        if !out.status(SourceEvent::Back) {
            return;
        }
    }
}

/// Sleeps `d` in small steps; false if asked to stop meanwhile.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep(Duration::from_millis(20).min(end.saturating_duration_since(Instant::now())));
    }
    !stop.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waveforms_stay_in_shape() {
        let mut s = 1;
        let ramp: Vec<u8> = (250..260)
            .map(|n| Waveform::Ramp.sample(n, &mut s))
            .collect();
        assert_eq!(ramp, [250, 251, 252, 253, 254, 255, 0, 1, 2, 3]);
        assert_eq!(Waveform::Square.sample(0, &mut s), 32);
        assert_eq!(Waveform::Square.sample(64, &mut s), 224);
        assert_eq!(Waveform::Sine.sample(0, &mut s), 128);
        assert_eq!(Waveform::Sine.sample(32, &mut s), 255);
        assert_eq!(Waveform::Sine.sample(96, &mut s), 1);
    }

    #[test]
    fn noise_is_seeded() {
        let draw = |seed: u64| {
            let mut st = seed | 1;
            (0..64)
                .map(|n| Waveform::Noise.sample(n, &mut st))
                .collect::<Vec<u8>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // Not stuck: many distinct values.
        let mut v = draw(42);
        v.sort();
        v.dedup();
        assert!(v.len() > 40, "{v:?}");
    }
}
