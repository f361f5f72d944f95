//! # 07-serial-stream: Arduino samples over serial, forwarded over TCP in buffers of N
//!
//! What you will learn: how a byte stream from a device becomes a network stream; why a
//! blocking device read lives in its own thread next to an event loop; what a buffer of
//! N samples costs in latency (the first sample waits for the other N-1); and what a
//! server does about a client that cannot keep up.
//!
//! The course's setup: an Arduino reads pin A0, scales it to one byte (0-255) and writes
//! it to the serial port at 115200 baud, about 896 times a second; a server on a
//! Raspberry Pi forwards those bytes to clients in buffers of 16, on port 1234; a client
//! on the PC plots them. `lab run 07` plays all three parts on loopback, with a
//! simulated Arduino unless `--serial` names a real one.
//!
//! Read along in the order bytes travel:
//! 1. the source ([`source`]): a reader thread (or the simulator) hands chunks of
//!    samples to the event loop through a bounded channel and the core's waker;
//! 2. the server ([`server`]): each wake-up takes the whole channel into one queue
//!    ([`staged`]); each client reads it from its own position, from the first sample
//!    read after it connected, and gets a buffer of N sent when one is full, under a
//!    budget per turn of the loop shared equally among clients; a client whose socket
//!    is backed up skips buffers instead of slowing anyone down;
//! 3. the client ([`client`]): plain blocking `recv` calls, like the course's Python
//!    client, drawing an oscilloscope ([`plot`]) or printing a summary.
//!
//! Wire format: [`Framing::Raw`], the sample bytes and nothing else, so
//! `sock.recv(16)` in Python gets 16 uint8 samples exactly as before. With
//! `--framing stamped` the server speaks the latency harness's stream protocol
//! ([`crate::wire::stamped`]) instead, so `lab latency --mode stream --connect` measures
//! the age of every sample this server forwards, from another machine too.

pub mod checks;
mod client;
mod demo;
pub mod plot;
mod ports;
mod server;
pub mod source;
mod staged;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::error::LabError;
use crate::units::{self, Rate};
use crate::wire::stamped::{self, BufferTime};
use crate::wire::WallClock;
use source::{SourceSpec, Waveform};

pub use ports::{available_ports, serial_command, SerialCommand};

/// The documented default address (labs/07-serial-stream/lab.toml): the course's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:1234";

/// The Arduino sketch the lab's samples come from, embedded so that `lab show 07
/// --sketch` prints it for a student who has the binary and not the repository.
pub const SKETCH: &str = include_str!("../../../arduino/analog_stream/analog_stream.ino");

/// Samples per TCP send by default: the course's `sock.recv(16)`.
pub const DEFAULT_BUFFER: u32 = 16;

/// Largest `--buffer`: 64 KiB is over a minute of samples at 896/s, far past any use.
const MAX_BUFFER: u32 = 65_536;

/// Samples per second of the Arduino sketch: 1 ms delay plus a ~104 us conversion and
/// the loop's overhead give about 896, not 1000 (measured in simavr).
pub const ARDUINO_RATE: f64 = 896.0;

/// Bytes we queue for one client beyond what its kernel socket buffer holds, before it
/// skips buffers: 16 KiB is 18 s of samples at 896/s, and anything older is not "live".
/// (At least two buffers, so a large `--buffer` can still be queued at all.)
const MAX_QUEUED: usize = 16 * 1024;

/// Connections the kernel may queue before we accept them.
const BACKLOG: i32 = 128;

/// Stamps the demo's in-process probe may hold before new ones are dropped.
const PROBE_STAMPS: usize = 4096;

/// Unparsed bytes a stamped client may leave with us: its frames are 22 bytes (a
/// subscription, clock probes), so 4 KiB unparsed is not one of our clients.
const MAX_CLIENT_INBOUND: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Source, server and client on loopback, the client plotting live.
    Demo,
    /// Only the server: forwards the source to every client until Ctrl-C.
    Server,
    /// Only the client: connects and plots, prints or dumps the samples.
    Client,
}

/// How samples are put on the wire. `Raw` stays the default so the course's clients
/// keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Framing {
    /// The sample bytes, nothing else: N bytes per send.
    Raw,
    /// The latency harness's stream protocol ([`crate::wire::stamped`]): a client
    /// subscribes (choosing its own buffer size), may ask for our clock, and gets each
    /// buffer as a frame stamped with its first sample's birth time on the wall clock.
    Stamped,
}

impl Framing {
    /// Appends the wire form of one buffer of `samples` to `out`; `now` converts its
    /// birth time for the stamped framing.
    pub fn encode(self, samples: &[u8], time: BufferTime, now: WallClock, out: &mut Vec<u8>) {
        match self {
            Framing::Raw => out.extend_from_slice(samples),
            Framing::Stamped => stamped::emit_samples(samples, time, now, out),
        }
    }

    /// The length on the wire of one buffer of `samples` samples.
    pub fn frame_len(self, samples: usize) -> usize {
        match self {
            Framing::Raw => samples,
            Framing::Stamped => stamped::HEADER_LEN + samples,
        }
    }
}

/// Flags of `lab run 07-serial-stream`.
#[derive(Debug, Parser)]
#[command(
    about = "Arduino samples over serial, forwarded to TCP clients in buffers of N bytes, plotted live."
)]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Server: address to listen on (`0.0.0.0:1234` to serve other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Client: the server, as HOST:PORT.
    #[arg(long, default_value = DEFAULT_ADDR, value_name = "HOST:PORT")]
    connect: String,
    /// Samples per TCP send (the course's 16). Larger buffers mean fewer sends and
    /// longer waits for the first sample of each.
    #[arg(long, default_value_t = DEFAULT_BUFFER, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=MAX_BUFFER as i64))]
    buffer: u32,
    /// Server: set TCP_NODELAY on each client (no Nagle: small sends leave at once).
    #[arg(long)]
    nodelay: bool,
    /// Read a serial device or pseudo-terminal instead of the simulated Arduino.
    #[arg(long, value_name = "PATH")]
    serial: Option<PathBuf>,
    /// Baud rate of --serial (the sketch uses 115200).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Simulated Arduino: the signal on A0.
    #[arg(long, value_enum, default_value_t = Waveform::Sine)]
    waveform: Waveform,
    /// Samples per second: the simulated Arduino's rate; with --serial, the rate used
    /// to date samples that arrive together (and to stamp frames).
    #[arg(long, default_value_t = Rate::new(ARDUINO_RATE), value_parser = units::rate)]
    rate: Rate,
    /// Simulated Arduino: seed of the noise waveform (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Server: wire format. `raw` for any client (the course's Python one too),
    /// `stamped` for `lab latency --mode stream --connect ADDR`.
    #[arg(long, value_enum, default_value_t = Framing::Raw)]
    framing: Framing,
    /// Client: draw a live plot (the default; off a terminal, a summary each second).
    #[arg(long, group = "show")]
    plot: bool,
    /// Client: print each received buffer as numbers, one line per recv.
    #[arg(long, group = "show")]
    print: bool,
    /// Client: write the received bytes to stdout unchanged.
    #[arg(long, group = "show")]
    raw: bool,
    /// Client: stop after this many samples.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long: seconds (`10`) or with a unit (`500ms`, `2m`); the demo's
    /// default is 10 s; 0 runs until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds_or_zero)]
    duration: Option<Duration>,
    /// Server: print only the banner and the totals, not every client.
    #[arg(long, short)]
    quiet: bool,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    if args.framing == Framing::Stamped {
        if args.role != Role::Server {
            return Err(LabError::usage(
                "--framing stamped is for --role server: it feeds `lab latency`, not the plot",
            )
            .fix("start `lab run 07 --role server --framing stamped` and measure it with `lab latency --mode stream --connect HOST:PORT`; leave out --framing for the demo and the client")
            .into());
        }
        if args.buffer as usize > stamped::MAX_SAMPLES {
            return Err(LabError::usage(format!(
                "--buffer {} does not fit a stamped frame (at most 65535 samples)",
                args.buffer
            ))
            .fix("use --buffer 65535 or less (stamped clients choose their own size anyway)")
            .into());
        }
    }
    match args.role {
        Role::Demo => demo::demo(&args),
        Role::Server => server::serve(&args),
        Role::Client => client::client(&args),
    }
}

/// The source the flags ask for, with the noise seed chosen (and later printed).
fn source_spec(args: &Args) -> SourceSpec {
    match &args.serial {
        Some(path) => SourceSpec::Port {
            path: path.clone(),
            baud: args.baud,
        },
        None => SourceSpec::Sim {
            waveform: args.waveform,
            rate: args.rate.per_second(),
            // A clock before 1970 reads 0, which would be a poor seed.
            seed: args.seed.unwrap_or_else(|| crate::wire::epoch_ns().max(1)),
        },
    }
}

/// `Some(limit)` for a positive `--duration`, `None` to run until stopped.
fn duration_limit(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_framing_is_the_bytes() {
        let now = WallClock::now();
        let time = BufferTime {
            oldest: now.at - Duration::from_millis(5),
            seq: 32,
            period_ns: 1_116_071,
        };
        let mut out = Vec::new();
        Framing::Raw.encode(&[1, 2, 3], time, now, &mut out);
        assert_eq!(out, [1, 2, 3]);
    }
}
