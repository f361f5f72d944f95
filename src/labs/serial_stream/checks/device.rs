//! The grader's Arduino: a pseudo-terminal whose slave path the program under test gets
//! as `--serial`, and a thread writing a known waveform into its master, one byte per
//! sample at the Arduino's rate (or, when a check asks, a burst as fast as the pty takes
//! it). Every write is timed, so a check can tell how long each sample waited before a
//! client received it, and the waveform is seeded noise, so any run of received bytes
//! can be located exactly in what was written (a gap, a repeat or a stale sample shows).
//!
//! On a loaded machine a pty itself is slow: the kernel hands written bytes to the
//! reader's side in a worker thread, which was measured waiting over a second for a CPU
//! at load 29 while the reader waited only milliseconds. A check that times samples
//! asks for a control pty ([`Device::watch_delivery`]): the writer writes every byte to
//! it too, and the grader reads it at once, so the control's delay is what the machine
//! added to each sample before any program could have read it.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rng::Rng;

/// Most samples one check writes: 80 MiB, beyond the largest burst (64 MiB) plus the
/// paced samples around it, so a runaway check cannot write (or time-stamp) without
/// bound.
const MAX_SAMPLES: u64 = 80 << 20;

/// The writer wakes every millisecond, so at 896 samples/s most writes carry one byte,
/// as the Arduino's bytes arrive.
const TICK: Duration = Duration::from_millis(1);

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
    /// The control pty, once a check asked for it.
    control: Option<Control>,
}

/// The control pty: the same bytes as the device, read by the grader as they come.
#[derive(Debug)]
struct Control {
    /// Its master, which the writer writes each chunk to after the device's.
    master: File,
    /// The device's sample index of the control's first byte.
    base: u64,
    /// After each read of the control: (samples delivered so far, when).
    delivered: Vec<(u64, Instant)>,
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
}

/// Sample `i` of the waveform of `seed`: seeded noise, every byte value equally likely,
/// so 16 bytes in a row identify their place among millions.
pub fn sample(seed: u64, i: u64) -> u8 {
    (Rng::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64() >> 56) as u8
}

impl Device {
    /// Opens a pty in raw mode (bytes pass unchanged) and starts its writer, quiet.
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
            control: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("grader-arduino".into())
            .spawn(move || write_loop(master, seed, rate, &st, &sp))?;
        Ok(Device {
            path,
            seed,
            state,
            stop,
            thread: Some(thread),
            control_reader: None,
        })
    }

    /// Opens the control pty (see the module's comment): from the next write on, every
    /// sample is also written to it, and read by a thread of the grader's.
    pub fn watch_delivery(&mut self) -> std::io::Result<()> {
        let (master, path) = crate::sys::open_pty()?;
        crate::sys::set_raw(&master)?;
        crate::sys::set_nonblocking(&master)?;
        // O_NOCTTY: the grader must not make it its controlling terminal.
        let mut slave = File::options()
            .read(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)?;
        {
            let mut s = self.lock();
            let base = s.written;
            s.control = Some(Control {
                master,
                base,
                delivered: Vec::new(),
            });
        }
        let (st, stop) = (Arc::clone(&self.state), Arc::clone(&self.stop));
        self.control_reader = Some(
            std::thread::Builder::new()
                .name("grader-control".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut total = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        // A short wait, so the reader notices `stop`.
                        if !crate::sys::wait_readable(&slave, Duration::from_millis(50))
                            .unwrap_or(false)
                        {
                            continue;
                        }
                        let Ok(n) = slave.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        let now = Instant::now();
                        total += n as u64;
                        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(c) = &mut s.control {
                            let end = c.base + total;
                            c.delivered.push((end, now));
                        }
                    }
                })?,
        );
        Ok(())
    }

    /// How long sample `i` took to come out of the control pty after it was written:
    /// the machine's own delay for it (None without a control, or before it came).
    pub fn machine_delay(&self, i: u64) -> Option<Duration> {
        let s = self.lock();
        let c = s.control.as_ref()?;
        let k = c.delivered.partition_point(|&(end, _)| end <= i);
        let delivered = c.delivered.get(k)?.1;
        let j = s.times.partition_point(|&(end, _)| end <= i);
        let written = s.times.get(j)?.1;
        Some(delivered.saturating_duration_since(written))
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
        let w = got.len().min(16);
        if w == 0 {
            return None;
        }
        let written = self.written();
        (0..=written.saturating_sub(w as u64))
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
fn write_loop(mut master: File, seed: u64, rate: f64, state: &Mutex<State>, stop: &AtomicBool) {
    let mut chunk = Vec::with_capacity(BURST_WRITE);
    while !stop.load(Ordering::SeqCst) {
        let (mode, written) = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            (s.mode, s.written)
        };
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
        if let Some(c) = s.control.as_mut().filter(|_| took > 0) {
            // Right behind the device's bytes, so both wait for the same kernel work.
            // Paced samples only ever fill a few bytes of its buffer.
            let _ = c.master.write(&chunk[..took as usize]);
        }
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
