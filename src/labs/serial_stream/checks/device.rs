//! The grader's Arduino: a pseudo-terminal whose slave path the program under test gets
//! as `--serial`, and a thread writing a known waveform into its master, one byte per
//! sample at the Arduino's rate (or, when a check asks, a burst as fast as the pty takes
//! it). Every write is timed, so a check can tell how long each sample waited before a
//! client received it, and the waveform is seeded noise, so any run of received bytes
//! can be located exactly in what was written (a gap, a repeat or a stale sample shows).
//!
//! On a loaded machine a pty itself is slow: the kernel hands written bytes to the
//! reader's side in a worker thread, which was measured waiting over a second for a CPU
//! at load 29 while the reader waited only milliseconds. The writer therefore also
//! beats a control pty ([`super::control`]), which measures that delay all through the
//! check: [`Device::held`] for the waits, [`Device::delivered`] for what could have
//! reached the program.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::{Control, HeldMeter};
use crate::rng::Rng;

/// Most samples one check writes: 80 MiB, beyond the largest burst (64 MiB) plus the
/// paced samples around it, so a runaway check cannot write (or time-stamp) without
/// bound.
const MAX_SAMPLES: u64 = 80 << 20;

/// The writer wakes every millisecond, so at 896 samples/s most writes carry one byte,
/// as the Arduino's bytes arrive.
pub const TICK: Duration = Duration::from_millis(1);

/// Bytes per write during a burst: what a serial driver hands over at once.
const BURST_WRITE: usize = 4096;

/// What the writer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not started yet, or paused: nothing is written (a quiet serial line).
    Quiet,
    /// `rate` samples per second, counted from `since`, when `base` had been written.
    Paced { since: Instant, base: u64 },
    /// Samples up to this index as fast as the pty takes them, then paced again.
    Burst { until: u64 },
}

/// What the writer has done, shared with the check.
#[derive(Debug)]
struct State {
    /// Current mode.
    mode: Mode,
    /// Samples written so far (sample indexes 0..written).
    written: u64,
    /// After each write: (samples written so far, when the write returned).
    times: Vec<(u64, Instant)>,
}

/// The pty, its writer thread and what it wrote; dropping it stops the thread and closes
/// the master (which the program sees as the device unplugged).
pub struct Device {
    /// The slave's path (/dev/pts/N): the program's `--serial`.
    pub path: String,
    /// The waveform's seed.
    seed: u64,
    /// Shared with the writer.
    state: Arc<Mutex<State>>,
    /// Set to end the writer.
    stop: Arc<AtomicBool>,
    /// The writer, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// The control pty's reader, joined on drop.
    control_reader: Option<JoinHandle<()>>,
    /// The control pty's measure, or why there is none.
    held: Result<HeldMeter, String>,
}

/// Sample `i` of the waveform of `seed`: seeded noise, every byte value equally likely,
/// so 16 bytes in a row identify their place among millions.
pub fn sample(seed: u64, i: u64) -> u8 {
    (Rng::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64() >> 56) as u8
}

impl Device {
    /// Opens a pty in raw mode (bytes pass unchanged) and its control pty, and starts
    /// the writer, quiet. Without a control pty (the machine refused a second one) the
    /// device still works; [`Device::control_missing`] says why.
    pub fn open(seed: u64, rate: f64) -> std::io::Result<Device> {
        let (master, path) = crate::sys::open_pty()?;
        crate::sys::set_raw(&master)?;
        // Never block the writer: when the program does not read, the pty's buffer fills
        // and the writer waits, as a device's bytes would pile up (and stop can join it).
        crate::sys::set_nonblocking(&master)?;
        let state = Arc::new(Mutex::new(State {
            mode: Mode::Quiet,
            written: 0,
            times: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (control, held, control_reader) = match Control::open(Arc::clone(&stop)) {
            Ok((c, m, r)) => (Some(c), Ok(m), Some(r)),
            Err(e) => (None, Err(e.to_string()), None),
        };
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("grader-arduino".into())
            .spawn(move || write_loop(master, control, seed, rate, &st, &sp))?;
        Ok(Device {
            path,
            seed,
            state,
            stop,
            thread: Some(thread),
            control_reader,
            held,
        })
    }

    /// Why the machine's own pty delay is not measured, if it is not.
    pub fn control_missing(&self) -> Option<&str> {
        self.held.as_ref().err().map(String::as_str)
    }

    /// The control pty's meter, for a client's reader thread (None without one).
    pub fn held_meter(&self) -> Option<HeldMeter> {
        self.held.as_ref().ok().cloned()
    }

    /// Seconds so far in which the machine held a pty's bytes up (see
    /// [`super::control`]); 0 without a control pty.
    pub fn held(&self) -> f64 {
        self.held.as_ref().map_or(0.0, |m| m.seconds())
    }

    /// Samples the machine had (very likely) handed to the device's reader side by now;
    /// without a control pty, the samples written.
    pub fn delivered(&self) -> u64 {
        match &self.held {
            Ok(m) => m.delivered_samples(),
            Err(_) => self.written(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or resumes) writing at the paced rate, from now; a burst under way
    /// finishes first (it turns paced by itself).
    pub fn play(&self) {
        let mut s = self.lock();
        if matches!(s.mode, Mode::Burst { .. }) {
            return;
        }
        s.mode = Mode::Paced {
            since: Instant::now(),
            base: s.written,
        };
    }

    /// Stops writing: the serial line goes quiet.
    pub fn pause(&self) {
        self.lock().mode = Mode::Quiet;
    }

    /// Writes `n` more samples as fast as the pty takes them, then plays paced again.
    pub fn burst(&self, n: u64) {
        let mut s = self.lock();
        s.mode = Mode::Burst {
            until: s.written + n,
        };
    }

    /// Samples written so far.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// Sample `i`.
    pub fn sample(&self, i: u64) -> u8 {
        sample(self.seed, i)
    }

    /// When sample `i` was written (None if it was not, yet).
    pub fn written_at(&self, i: u64) -> Option<Instant> {
        let s = self.lock();
        let k = s.times.partition_point(|&(end, _)| end <= i);
        s.times.get(k).map(|&(_, t)| t)
    }

    /// Where `got` (at least 8 bytes, or all of it if shorter) starts among the samples
    /// written so far; the first match (the waveform makes a second one unlikely).
    pub fn locate(&self, got: &[u8]) -> Option<u64> {
        self.locate_since(got, 0)
    }

    /// [`Device::locate`] among the samples from `from` on only (a cheap look at
    /// whether a client is recent, when millions were written).
    pub fn locate_since(&self, got: &[u8], from: u64) -> Option<u64> {
        let w = got.len().min(16);
        if w == 0 {
            return None;
        }
        let written = self.written();
        (from..=written.saturating_sub(w as u64))
            .find(|&o| (0..w).all(|j| self.sample(o + j as u64) == got[j]))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in [self.thread.take(), self.control_reader.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}

/// The writer thread: every tick, writes what the mode says is due.
fn write_loop(
    mut master: File,
    mut control: Option<Control>,
    seed: u64,
    rate: f64,
    state: &Mutex<State>,
    stop: &AtomicBool,
) {
    let mut chunk = Vec::with_capacity(BURST_WRITE);
    while !stop.load(Ordering::SeqCst) {
        let (mode, written) = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            (s.mode, s.written)
        };
        // A heartbeat every tick, quiet or not, right behind the device's latest bytes.
        if let Some(c) = control.as_mut() {
            c.beat(written);
        }
        let due = match mode {
            Mode::Quiet => written,
            Mode::Paced { since, base } => base + (since.elapsed().as_secs_f64() * rate) as u64,
            Mode::Burst { until } => until,
        }
        .min(MAX_SAMPLES);
        let n = due.saturating_sub(written).min(BURST_WRITE as u64);
        if n == 0 {
            std::thread::sleep(TICK);
            continue;
        }
        chunk.clear();
        chunk.extend((written..written + n).map(|i| sample(seed, i)));
        let took = match master.write(&chunk) {
            Ok(k) => k as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            // The pty is full (the program is not reading) or gone: wait, like a device.
            Err(_) => 0,
        };
        let now = Instant::now();
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if took > 0 {
            s.written += took;
            let w = s.written;
            s.times.push((w, now));
        }
        if let Mode::Burst { until } = s.mode {
            if s.written >= until {
                s.mode = Mode::Paced {
                    since: now,
                    base: s.written,
                };
            }
        }
        let bursting = matches!(s.mode, Mode::Burst { .. });
        drop(s);
        if took == 0 || !bursting {
            std::thread::sleep(TICK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waveform_is_seeded_and_uses_every_byte_value() {
        let a: Vec<u8> = (0..4096).map(|i| sample(7, i)).collect();
        let b: Vec<u8> = (0..4096).map(|i| sample(7, i)).collect();
        let c: Vec<u8> = (0..4096).map(|i| sample(8, i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut seen = [false; 256];
        for v in &a {
            seen[*v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every value 0-255 occurs");
    }
}
