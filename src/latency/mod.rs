//! `lab latency`: a latency harness in the spirit of sockperf and wrk2, with hyperfine's
//! report habits. A pipeline:
//!
//! 1. **Check everything first** ([`validate`], [`export::OutDir::prepare`]): sizes,
//!    rates, the output folder, the server; a mistake costs nothing when found before
//!    measuring.
//! 2. **Measure** one (mode, size) at a time: a probe ([`pingpong`], [`stream`]) yields
//!    latencies, [`probe::measure`] records them into an HdrHistogram.
//! 3. **Export** after each size ([`export`]): the result model ([`result`]) goes through
//!    one small exporter per format, and every file is rewritten, so an interrupted run
//!    keeps what it measured.
//!
//! The measuring peer is [`server`], an event-driven server on [`crate::core`]; the
//! clients are deliberately plain loops (see [`pingpong`] for why).

pub mod compare;
pub mod env;
pub mod export;
pub mod pingpong;
pub mod probe;
pub mod result;
pub mod server;
pub mod stream;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::error::LabError;
use crate::out::{bold, dim, duration_us, progress};
use crate::say;
use crate::units::{self, Rate};
use crate::wire::epoch_ns;

use export::OutDir;
use probe::{Label, Plan, Probe};
use result::{Floor, Measured, Params, Run};

/// The documented default address of `--role server`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7008";
/// The Arduino's sample rate: analogRead at the default prescaler plus the serial loop
/// gives about 896 samples per second (see notes/arduino-sim.md).
pub const ARDUINO_RATE: f64 = 896.0;
/// Round trips per size when neither --count nor --duration is given: 10 000 resolves
/// p99.9 with ten samples above it, in about 0.1 s per size on loopback.
pub const DEFAULT_COUNT: u64 = 10_000;
/// Seconds per buffer size in stream mode by default: enough for ten buffers of 256
/// samples at 896 per second.
pub const DEFAULT_STREAM_SECONDS: f64 = 3.0;
/// Most latencies `--count` records per size: at ~10 us a round trip, a billion is
/// about three hours; longer runs are `--duration`'s job.
const MAX_COUNT: u64 = 1_000_000_000;
/// Most `--warmup` round trips: a million is seconds on loopback and minutes across a
/// slow network, far beyond what warms any cache or socket; without a bound a typo
/// (`--warmup 18446744073709551615`) runs until killed, recording nothing.
const MAX_WARMUP: u64 = 1_000_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// TCP round trips with TCP_NODELAY on both ends (Nagle off).
    Tcp,
    /// TCP round trips with Nagle's algorithm on (TCP_NODELAY off).
    TcpNagle,
    /// UDP round trips.
    Udp,
    /// Samples at a fixed rate in buffers of N: the age of each sample on arrival.
    Stream,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::TcpNagle => "tcp-nagle",
            Mode::Udp => "udp",
            Mode::Stream => "stream",
        }
    }
}

/// Which end(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Both ends in this process on loopback (or only the client with --connect).
    Client,
    /// Only the server, for a client on another machine.
    Server,
}

/// What the server at `--connect` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// A `lab latency --role server` (or, for UDP, any echo server).
    Lab,
    /// A `sockperf server` (Debian package sockperf): sockperf's 14-byte header, sizes
    /// from 14 bytes, one protocol per server (`--tcp` for TCP).
    Sockperf,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Lab => "lab",
            Peer::Sockperf => "sockperf",
        }
    }
}

/// `lab latency`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LatencyArgs {
    /// `compare A B`.
    #[command(subcommand)]
    pub command: Option<LatencyCommand>,
    /// The measurement's options.
    #[command(flatten)]
    pub opts: Opts,
}

/// Subcommands of `lab latency`.
#[derive(Debug, Subcommand)]
pub enum LatencyCommand {
    /// Two runs side by side with the ratio B/A per size and percentile.
    Compare {
        /// Folder (or summary.json) of run A.
        a: PathBuf,
        /// Folder (or summary.json) of run B.
        b: PathBuf,
    },
}

/// Options of a measurement.
#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// Modes to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tcp")]
    pub mode: Vec<Mode>,
    /// Ping-pong message sizes in bytes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,16,64,256,1024,4096,16384"
    )]
    pub sizes: Vec<usize>,
    /// Stream mode: samples per buffer.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    pub buffer_sizes: Vec<usize>,
    /// Latencies to record per size (default 10000 for ping-pong).
    #[arg(long, conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(0..=MAX_COUNT))]
    pub count: Option<u64>,
    /// Time per size: seconds (`3`) or with a unit (`500ms`, `2m`); default 3 s for
    /// stream mode.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    pub duration: Option<Duration>,
    /// Latencies discarded per size before recording (at most 1000000).
    #[arg(long, default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(0..=MAX_WARMUP))]
    pub warmup: u64,
    /// Ping-pong: open loop at this many requests per second, measured from the intended
    /// send time. Stream: samples per second (default 896, the Arduino's rate).
    /// From 0.01 to 1000000 per second.
    #[arg(long, value_parser = units::rate)]
    pub rate: Option<Rate>,
    /// The client spins on a non-blocking socket instead of sleeping in recv (one core
    /// at 100%; pin the server to another core).
    #[arg(long)]
    pub busy_poll: bool,
    /// Write each TCP message in two halves, as a header and a body: with tcp-nagle this
    /// shows Nagle's algorithm meeting delayed ACKs.
    #[arg(long)]
    pub split_writes: bool,
    /// Run only the server (`--role server --bind 0.0.0.0:7008`) for a client elsewhere.
    #[arg(long, value_enum, default_value_t = Role::Client)]
    pub role: Role,
    /// Address the server listens on (TCP and UDP, same port).
    #[arg(long, default_value = DEFAULT_ADDR)]
    pub bind: SocketAddr,
    /// Measure against a server at HOST:PORT instead of starting one on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// What the --connect server speaks: `sockperf` measures a running `sockperf
    /// server` with sockperf's own messages, to compare the two clients on one server.
    #[arg(long, value_enum, default_value_t = Peer::Lab)]
    pub peer: Peer,
    /// Write the report here: .hgrm, interval log, CSV, JSON, SVG plots, report.md.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the run already in --out (without it, an existing run is never touched).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Seed of the payload bytes (default: from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Server only: stop after this long: seconds (`60`) or with a unit (`10m`); default:
    /// until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    pub serve_for: Option<Duration>,
}

/// Entry point of `lab latency`.
pub fn main(args: LatencyArgs) -> Result<()> {
    match args.command {
        Some(LatencyCommand::Compare { a, b }) => compare::run(&a, &b),
        None => run(&for_peer(args.opts)?).map(|_| ()),
    }
}

/// `--sizes`' default, as clap writes it above (a test in tests/latency_peers.rs
/// keeps the two in step through the sockperf defaults).
const DEFAULT_SIZES: [usize; 7] = [1, 16, 64, 256, 1024, 4096, 16384];

/// Fits the defaults to the peer: sockperf's messages carry a 14-byte header, so with
/// `--peer sockperf` and no `--sizes` the default sizes below it are left out (and
/// said so), instead of refusing the command as written.
fn for_peer(mut o: Opts) -> Result<Opts> {
    use crate::wire::sockperf::HEADER_LEN;
    if o.peer == Peer::Sockperf && o.sizes == DEFAULT_SIZES {
        o.sizes.retain(|&s| s >= HEADER_LEN);
        say!(
            "{}",
            dim(format!(
                "--peer sockperf: sizes {} (sockperf's messages start with a {HEADER_LEN}-byte header; choose others with --sizes)",
                o.sizes
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ))
        )?;
    }
    Ok(o)
}

fn usage(what: String, fix: &str) -> anyhow::Error {
    LabError::usage(what).fix(fix).into()
}

/// Refuses arguments that cannot work, before anything else happens.
pub fn validate(o: &Opts) -> Result<()> {
    // A finished run is evidence (compare reads it): never overwrite one silently. We
    // refuse rather than pick a new dated folder, so the folder is always the one the
    // user named, for scripts and `lab latency compare A B` alike.
    if let Some(dir) = &o.out {
        if !o.force && dir.join("summary.json").exists() {
            return Err(usage(
                format!("{} already holds a run (summary.json)", dir.display()),
                "choose a new folder with --out, or add --force to replace that run",
            ));
        }
    }
    let pingpong = o.mode.iter().any(|m| *m != Mode::Stream);
    if pingpong {
        if o.sizes.is_empty() {
            return Err(usage(
                "no message sizes given".into(),
                "give sizes in bytes, e.g. --sizes 1,16,64",
            ));
        }
        if o.sizes.contains(&0) {
            return Err(usage(
                "message size 0: a round trip needs at least one byte to carry".into(),
                "use sizes of 1 byte or more, e.g. --sizes 1,16,64,256,1024",
            ));
        }
        if o.mode.contains(&Mode::Udp) {
            if let Some(&big) = o.sizes.iter().find(|&&s| s > crate::wire::MAX_DATAGRAM) {
                return Err(usage(
                    format!("UDP message size {big} is over 65507, the largest payload one IPv4 datagram can carry"),
                    "use sizes up to 65507 with --mode udp (65535 minus the 20-byte IP and 8-byte UDP headers), or measure big messages with --mode tcp",
                ));
            }
        }
        if let Some(&big) = o.sizes.iter().find(|&&s| s > pingpong::MAX_TCP_SIZE) {
            return Err(usage(
                format!("message size {big} is over 1 MiB"),
                "use sizes up to 1048576: beyond that a round trip measures copying, not latency",
            ));
        }
    }
    if o.peer == Peer::Sockperf {
        validate_sockperf(o)?;
    }
    if o.mode.contains(&Mode::Stream) {
        if o.buffer_sizes.is_empty() || o.buffer_sizes.contains(&0) {
            return Err(usage(
                "buffer size 0: a buffer holds at least one sample".into(),
                "use --buffer-sizes 1,4,16,64,256",
            ));
        }
        if let Some(&big) = o
            .buffer_sizes
            .iter()
            .find(|&&s| s > crate::wire::stamped::MAX_SAMPLES)
        {
            return Err(usage(
                format!("buffer size {big} is over 65535 samples"),
                "use --buffer-sizes up to 65535",
            ));
        }
        // The server refuses streams it could not serve (see `server`): say so here,
        // before anything is measured. (--rate's parser already caps the sample rate
        // at the server's 1,000,000 a second.)
        let rate = o.rate.map_or(ARDUINO_RATE, Rate::per_second);
        if let Some(&small) = o
            .buffer_sizes
            .iter()
            .find(|&&n| rate / n as f64 > server::MAX_FRAME_RATE)
        {
            return Err(usage(
                format!(
                    "buffers of {small} at {rate:.0} samples/s are {:.0} buffers/s, over the server's {:.0}",
                    rate / small as f64,
                    server::MAX_FRAME_RATE
                ),
                &format!(
                    "use buffers of at least {:.0} samples at this rate, or a lower --rate",
                    (rate / server::MAX_FRAME_RATE).ceil()
                ),
            ));
        }
    }
    if o.count == Some(0) {
        return Err(usage(
            "--count 0 measures nothing".into(),
            "use --count 1000 or more for stable percentiles",
        ));
    }
    Ok(())
}

/// `--peer sockperf`: a client of someone else's server, with sockperf's message sizes.
fn validate_sockperf(o: &Opts) -> Result<()> {
    use crate::wire::sockperf::{HEADER_LEN, MAX_LEN};
    if o.role == Role::Server {
        return Err(usage(
            "--peer sockperf is for the client: lab's server speaks lab's protocol".into(),
            "run `sockperf server -i IP -p PORT` as the server, or drop --peer sockperf",
        ));
    }
    if o.connect.is_none() {
        return Err(usage(
            "--peer sockperf needs the address of a running `sockperf server`".into(),
            "start `sockperf server -i 127.0.0.1 -p 11111` (add --tcp for TCP) and pass --connect 127.0.0.1:11111",
        ));
    }
    if o.mode.contains(&Mode::Stream) {
        return Err(usage(
            "sockperf has no stream mode: it measures round trips".into(),
            "use --mode tcp, tcp-nagle or udp with --peer sockperf",
        ));
    }
    if let Some(&small) = o.sizes.iter().find(|&&s| s < HEADER_LEN) {
        return Err(usage(
            format!("message size {small} is below {HEADER_LEN} bytes, sockperf's header"),
            &format!("use --sizes {HEADER_LEN} or more with --peer sockperf (sockperf's -m counts its header; lab's default sizes start at 1), e.g. --sizes 16,1024"),
        ));
    }
    if let Some(&big) = o.sizes.iter().find(|&&s| s > MAX_LEN) {
        return Err(usage(
            format!("message size {big} is over {MAX_LEN}, the largest sockperf handles"),
            &format!("use sizes up to {MAX_LEN} with --peer sockperf"),
        ));
    }
    Ok(())
}

/// Resolves `--connect`.
fn resolve(target: &str) -> Result<SocketAddr> {
    let bad = || {
        usage(
            format!("cannot resolve {target}"),
            "give HOST:PORT, e.g. --connect 192.168.1.20:7008 or --connect pi.local:7008",
        )
    };
    target
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// One (mode, size) to measure.
#[derive(Debug, Clone, Copy)]
struct Job {
    mode: Mode,
    size: usize,
}

fn jobs(o: &Opts) -> Vec<Job> {
    let mut v = Vec::new();
    for &mode in &o.mode {
        let sizes = if mode == Mode::Stream {
            &o.buffer_sizes
        } else {
            &o.sizes
        };
        for &size in sizes {
            v.push(Job { mode, size });
        }
    }
    v
}

/// An open probe, its socket's (SO_SNDBUF, SO_RCVBUF), and how its clock was set.
type Opened = (
    Box<dyn Probe>,
    (Option<usize>, Option<usize>),
    Option<String>,
);

/// Opens the probe for one job.
fn open_probe(job: Job, addr: SocketAddr, o: &Opts, seed: u64) -> Result<Opened> {
    Ok(match job.mode {
        Mode::Tcp | Mode::TcpNagle | Mode::Udp => {
            let setup = pingpong::Setup {
                size: job.size,
                busy: o.busy_poll,
                rate: o.rate.map(Rate::per_second),
                seed,
                peer: o.peer,
            };
            if job.mode == Mode::Udp {
                let p = pingpong::UdpProbe::connect(addr, setup)?;
                let b = p.buffers();
                (Box::new(p), b, None)
            } else {
                let nodelay = job.mode == Mode::Tcp;
                let p = pingpong::TcpProbe::connect(addr, setup, nodelay, o.split_writes)?;
                let b = p.buffers();
                (Box::new(p), b, None)
            }
        }
        Mode::Stream => {
            let rate = o.rate.map_or(ARDUINO_RATE, Rate::per_second);
            let (p, note) = stream::StreamProbe::connect(addr, job.size, rate, o.busy_poll)?;
            let b = p.buffers();
            let clock = note.map(|n| {
                format!(
                    "separate clocks: offset {} estimated from round trips, +-{}",
                    duration_us(n.offset_ns as f64 / 1e3),
                    duration_us(n.uncertainty_ns as f64 / 1e3)
                )
            });
            (Box::new(p), b, clock)
        }
    })
}

/// Measures as the options say, prints the table, writes the report; returns the run.
pub fn run(o: &Opts) -> Result<Run> {
    validate(o)?;
    if o.role == Role::Server {
        return server::serve(o.bind, o.serve_for).map(|_| empty_run(o, o.bind, 0));
    }
    let out = o.out.as_deref().map(OutDir::prepare).transpose()?;
    // A clock before 1970 reads 0, which would be a poor seed.
    let seed = o.seed.unwrap_or_else(|| epoch_ns().max(1));
    // Loopback unless told otherwise: the server runs in a thread of this process.
    let (_local, addr) = match &o.connect {
        Some(t) => (None, resolve(t)?),
        None => {
            let l = server::Local::start("127.0.0.1:0".parse()?)?;
            let a = l.addr;
            (Some(l), a)
        }
    };
    let mut run = empty_run(o, addr, seed);
    say!(
        "{} {} against {addr} ({}), seed {seed}",
        bold("lab latency:"),
        o.mode
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        if addr.ip().is_loopback() {
            "loopback"
        } else {
            "another machine"
        }
    )?;
    let run_start = Instant::now();
    let mut measured: Vec<Measured> = Vec::new();
    if let Some(out) = &out {
        out.write(&run, &measured)?;
    }
    for job in jobs(o) {
        let (mut probe, buffers, clock) = open_probe(job, addr, o, seed)?;
        if measured.is_empty() {
            run.env = env::detect(
                addr.ip(),
                buffers,
                clock
                    .clone()
                    .unwrap_or_else(|| "shared (both ends on this machine)".into()),
            );
        }
        let (count, duration) = match (o.count, o.duration, job.mode) {
            (Some(c), _, _) => (Some(c), None),
            (None, Some(d), _) => (None, Some(d)),
            (None, None, Mode::Stream) => {
                (None, Some(Duration::from_secs_f64(DEFAULT_STREAM_SECONDS)))
            }
            (None, None, _) => (Some(DEFAULT_COUNT), None),
        };
        let plan = Plan {
            warmup: o.warmup,
            count,
            duration,
            interval: Duration::from_secs(1),
        };
        let stream = job.mode == Mode::Stream;
        let label = Label {
            mode: job.mode.name().into(),
            size: job.size,
            unit: if stream { "samples" } else { "B" }.into(),
            floor: stream
                .then(|| Floor::new(job.size, o.rate.map_or(ARDUINO_RATE, Rate::per_second))),
        };
        let len = count.unwrap_or_else(|| duration.map_or(0, |d| d.as_millis() as u64));
        let bar = progress(len, &format!("{} {}", label.mode, job.size));
        let m = probe::measure(probe.as_mut(), label, &plan, run_start, &bar)?;
        bar.finish_and_clear();
        let s = &m.series;
        say!(
            "  {:<20} p50 {:>10}   p99 {:>10}   max {:>10}{}",
            s.label(),
            duration_us(s.stats.p50_us),
            duration_us(s.stats.p99_us),
            duration_us(s.stats.max_us),
            if s.lost > 0 {
                format!("   lost {}", s.lost)
            } else {
                String::new()
            }
        )?;
        run.series.push(m.series.clone());
        measured.push(m);
        if let Some(out) = &out {
            out.write(&run, &measured)?;
        }
    }
    say!()?;
    for line in export::table::render(&run).lines() {
        say!("{line}")?;
    }
    if let Some(out) = &out {
        say!()?;
        say!(
            "{}",
            dim(format!("report: {}", out.dir.join("report.md").display()))
        )?;
    }
    Ok(run)
}

/// A run with its parameters and no series yet.
fn empty_run(o: &Opts, addr: SocketAddr, seed: u64) -> Run {
    Run {
        tool: format!("lab {}", env!("CARGO_PKG_VERSION")),
        started_unix: epoch_ns() / 1_000_000_000,
        params: Params {
            modes: o.mode.iter().map(|m| m.name().to_string()).collect(),
            sizes: o.sizes.clone(),
            buffer_sizes: o.buffer_sizes.clone(),
            count: o.count,
            duration_s: o.duration.map(|d| d.as_secs_f64()),
            warmup: o.warmup,
            rate: o.rate.map(Rate::per_second),
            busy_poll: o.busy_poll,
            split_writes: o.split_writes,
            target: addr.to_string(),
            peer: o.peer.name().into(),
            seed,
        },
        env: env::detect(
            addr.ip(),
            (None, None),
            "shared (both ends on this machine)".into(),
        ),
        series: Vec::new(),
    }
}
