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
//! 2. the server ([`Streamer`]): each client collects the samples that arrived after it
//!    connected into its own buffer of N, and gets it sent when full; a client whose
//!    socket is backed up skips buffers instead of slowing anyone down;
//! 3. the client ([`receive`]): plain blocking `recv` calls, like the course's Python
//!    client, drawing an oscilloscope ([`plot`]) or printing a summary.
//!
//! Wire format: [`Framing::Raw`], the sample bytes and nothing else, so
//! `sock.recv(16)` in Python gets 16 uint8 samples exactly as before. With
//! `--framing stamped` the server speaks the latency harness's stream protocol
//! ([`crate::wire::stamped`]) instead, so `lab latency --mode stream --connect` measures
//! the age of every sample this server forwards, from another machine too.

pub mod plot;
pub mod source;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use mio::Token;

use crate::catalog::Lab;
use crate::core::{Closed, Ctx, EventLoop, Handler, SendError};
use crate::error::{bind_error, connect_error, LabError};
use crate::out::{bold, code, dim, interactive, warn};
use crate::say;
use crate::wire::stamped::{self, Decoded, Frame, Kind};
use plot::Scope;
use source::{SourceEvent, SourceHandle, SourceSpec, Waveform};

/// The documented default address (labs/07-serial-stream/lab.toml): the course's port.
pub const DEFAULT_ADDR: &str = "127.0.0.1:1234";

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

/// One buffer's place in time and in the stream, for [`Framing::encode`].
#[derive(Debug, Clone, Copy)]
pub struct BufferTime {
    /// When the buffer's first sample was born, as far as this machine can know it.
    pub oldest: Instant,
    /// Index of the first sample among those this client was given (or skipped).
    pub seq: u64,
    /// Time between two samples, in ns (the source's nominal rate).
    pub period_ns: u32,
}

/// The two clocks read at one moment: `Instant` is monotonic but means nothing to
/// another process, the wall clock (ns since the Unix epoch) is what a stamped frame
/// carries, so a monotonic time is converted as "that long before this reading".
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// The monotonic clock now.
    pub at: Instant,
    /// The wall clock now, ns since the Unix epoch (CLOCK_REALTIME).
    pub ns: u64,
}

impl WallClock {
    /// Both clocks now.
    pub fn now() -> WallClock {
        WallClock {
            at: Instant::now(),
            ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        }
    }

    /// `t` on the wall clock (a time after this reading counts as now).
    pub fn epoch_ns(&self, t: Instant) -> u64 {
        let ago = self.at.saturating_duration_since(t).as_nanos() as u64;
        self.ns.saturating_sub(ago)
    }
}

impl Framing {
    /// Appends the wire form of one buffer of `samples` to `out`; `now` converts its
    /// birth time for the stamped framing.
    pub fn encode(self, samples: &[u8], time: BufferTime, now: WallClock, out: &mut Vec<u8>) {
        match self {
            Framing::Raw => out.extend_from_slice(samples),
            Framing::Stamped => {
                // Written in place: no Repr (and no copy of the samples) per buffer.
                let start = out.len();
                let n = samples.len().min(stamped::MAX_SAMPLES);
                out.resize(start + stamped::HEADER_LEN + n, 0);
                let mut f = Frame::new_unchecked(&mut out[start..]);
                f.set_kind(Kind::Samples);
                // The harness's seq is 32 bits: it wraps after 55 days at 896/s.
                f.set_seq(time.seq as u32);
                f.set_t0_ns(now.epoch_ns(time.oldest));
                f.set_period_ns(time.period_ns);
                f.set_samples(&samples[..n]);
            }
        }
    }
}

/// Flags of `lab run 07-serial-stream`.
#[derive(Debug, Parser)]
#[command(
    about = "Arduino samples over serial, forwarded to TCP clients in buffers of N bytes, plotted live."
)]
struct Args {
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
    #[arg(long, default_value_t = ARDUINO_RATE)]
    rate: f64,
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
    /// Stop after this many seconds (the demo's default is 10; 0 runs until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Server: print only the banner and the totals, not every client.
    #[arg(long, short)]
    quiet: bool,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    if !(args.rate > 0.0 && args.rate <= 10_000_000.0) {
        return Err(
            LabError::usage(format!("--rate {} is out of range", args.rate))
                .fix(
                    "give a rate between 1 and 10000000 samples per second (the Arduino makes 896)",
                )
                .into(),
        );
    }
    if args.duration.is_some_and(|d| !(d >= 0.0 && d.is_finite())) {
        return Err(
            LabError::usage("--duration must be a number of seconds, 0 or more")
                .fix("for example --duration 5 (0 runs until Ctrl-C)")
                .into(),
        );
    }
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
        Role::Demo => demo(&args),
        Role::Server => serve(&args),
        Role::Client => client(&args),
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
            rate: args.rate,
            seed: args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            }),
        },
    }
}

/// `Some(limit)` for a positive `--duration`, `None` to run until stopped.
fn duration_limit(d: Option<f64>) -> Option<Duration> {
    d.filter(|s| *s > 0.0).map(Duration::from_secs_f64)
}

// ---------------------------------------------------------------------------------------
// The server: samples in from the source thread, buffers of N out to every client.
// ---------------------------------------------------------------------------------------

/// What the server keeps per client.
struct Client {
    /// The client's address, for the log.
    peer: SocketAddr,
    /// When it connected (or subscribed): samples born before this are stale for it
    /// and never sent.
    since: Instant,
    /// Samples per send: the server's `--buffer`, or what a stamped client asked for.
    buffer: usize,
    /// Gets samples: always with raw framing; with stamped framing once it subscribed
    /// (before that it may be syncing clocks, and a sample frame would confuse that).
    subscribed: bool,
    /// Stamped framing: bytes received and not yet parsed; at most
    /// [`MAX_CLIENT_INBOUND`].
    inbound: Vec<u8>,
    /// Samples collected for its next buffer; sent when it holds `buffer` of them.
    pending: Vec<u8>,
    /// When the first sample in `pending` was born; earlier if a later one came
    /// sooner than the rate says, so that no sample i is dated after `oldest` + i
    /// periods (see [`Streamer::forward`]).
    oldest: Instant,
    /// Index of the first sample in `pending`, counted from when it connected.
    seq: u64,
    /// Bytes handed to the socket so far.
    sent: u64,
    /// Samples skipped because the client was not keeping up.
    skipped: u64,
    /// It is skipping now (so the log says so once, not once per buffer).
    lagging: bool,
    /// The demo's probe watches this client.
    probed: bool,
}

/// Tells the demo's client when each buffer's first sample was read, so it can measure
/// latency with raw framing (both run in one process and share a clock).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// Total bytes sent to the client once this buffer is sent.
    pub end: u64,
    /// When the buffer's first (oldest) sample was born.
    pub oldest: Instant,
}

/// Running totals of the server, printed when it stops.
#[derive(Debug, Default)]
struct Totals {
    /// Samples read from the source.
    samples: u64,
    /// Samples read while no client was connected (discarded: nobody to send them to).
    unwatched: u64,
    /// Clients accepted.
    clients: u64,
    /// Samples skipped for slow clients, all clients together.
    skipped: u64,
    /// Times the device went away.
    lost: u64,
    /// Reopen attempts that failed.
    retries: u64,
}

/// The streaming server: the event loop's handler.
struct Streamer {
    /// The source thread's channel.
    source: SourceHandle,
    /// Samples per send (stamped clients may choose another size).
    buffer: usize,
    /// Time between two samples at the source's nominal rate, ns: stamps the frames and
    /// dates the samples within a chunk that arrived together.
    period_ns: u32,
    /// Wire format.
    framing: Framing,
    /// Set TCP_NODELAY on new clients.
    nodelay: bool,
    /// Open clients by token; removed in `on_closed`.
    clients: HashMap<Token, Client>,
    /// Counters for the closing summary.
    totals: Totals,
    /// Log every client (false with --quiet).
    verbose: bool,
    /// The demo's latency probe: stamps for the first client.
    probe: Option<SyncSender<Stamp>>,
    /// Set by another thread (the demo) to stop the loop.
    stop: Arc<AtomicBool>,
    /// Scratch for encoding one buffer, reused.
    frame: Vec<u8>,
}

impl Streamer {
    fn new(source: SourceHandle, args: &Args) -> Streamer {
        let buffer = args.buffer as usize;
        Streamer {
            source,
            buffer,
            // Nanoseconds fit u32 down to 0.24 samples/s; slower rates are clamped.
            period_ns: (1e9 / args.rate).round().min(u32::MAX as f64) as u32,
            framing: args.framing,
            nodelay: args.nodelay,
            clients: HashMap::new(),
            totals: Totals::default(),
            verbose: !args.quiet,
            probe: None,
            stop: Arc::new(AtomicBool::new(false)),
            frame: Vec::with_capacity(buffer),
        }
    }

    /// A chunk of samples from the source, the last one born at `at`: add it to every
    /// client's buffer.
    fn forward(&mut self, ctx: &mut Ctx, data: &[u8], at: Instant) {
        self.totals.samples += data.len() as u64;
        if self.clients.is_empty() {
            // Nobody is watching: drop them now rather than hand them to a client
            // that connects later as if they were fresh.
            self.totals.unwatched += data.len() as u64;
            return;
        }
        let now = WallClock::now();
        let period = Duration::from_nanos(u64::from(self.period_ns));
        for (&token, c) in self.clients.iter_mut() {
            if at < c.since || !c.subscribed {
                // Born before this client connected (it waited in the channel): stale.
                // Or a stamped client that has not subscribed yet: nothing wanted.
                continue;
            }
            let mut rest = data;
            while !rest.is_empty() {
                // Samples that arrived together were born one period apart, the last
                // at `at`. A frame dates sample i of a buffer at oldest + i periods, so
                // `oldest` must be early enough for every sample in it, including
                // ones that came faster than the rate (a device catching up after a
                // stall): the earliest of "birth minus place in the buffer".
                let places = (rest.len() - 1 + c.pending.len()) as u32;
                let candidate = at.checked_sub(period * places).unwrap_or(at);
                if c.pending.is_empty() || candidate < c.oldest {
                    c.oldest = candidate;
                }
                let take = (c.buffer - c.pending.len()).min(rest.len());
                c.pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if c.pending.len() == c.buffer {
                    let time = BufferTime {
                        oldest: c.oldest,
                        seq: c.seq,
                        period_ns: self.period_ns,
                    };
                    self.frame.clear();
                    self.framing.encode(&c.pending, time, now, &mut self.frame);
                    c.pending.clear();
                    c.seq += c.buffer as u64;
                    // At least two buffers, so a large buffer can still be queued at all.
                    let max_queued = MAX_QUEUED.max(2 * self.frame.len());
                    let skipped =
                        send_or_skip(ctx, token, c, &self.frame, max_queued, self.verbose);
                    if skipped {
                        c.skipped += c.buffer as u64;
                        self.totals.skipped += c.buffer as u64;
                    } else if c.probed {
                        if let Some(p) = &self.probe {
                            // A full probe channel only loses a latency reading.
                            let _ = p.try_send(Stamp {
                                end: c.sent,
                                oldest: c.oldest,
                            });
                        }
                    }
                }
            }
        }
    }

    /// The device went away or came back: say so.
    fn status(&mut self, ev: SourceEvent) {
        match ev {
            SourceEvent::Samples { .. } => {}
            SourceEvent::Lost { why, retry_in } => {
                self.totals.lost += 1;
                say!(
                    "  {} serial device lost ({why}): retrying in {} ms",
                    warn("serial"),
                    retry_in.as_millis()
                );
            }
            SourceEvent::RetryFailed { why, retry_in } => {
                self.totals.retries += 1;
                if self.verbose {
                    say!(
                        "  {} reopen failed ({why}): retrying in {} ms",
                        dim("serial"),
                        retry_in.as_millis()
                    );
                }
            }
            SourceEvent::Back => say!("  {} serial device back: forwarding again", warn("serial")),
        }
    }
}

impl Streamer {
    /// Bytes from a stamped client: whole frames are acted on, a partial one is kept
    /// (bounded), anything that can never be a frame closes the client.
    fn stamped_request(&mut self, ctx: &mut Ctx, conn: Token, data: &[u8]) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.inbound.len() + data.len() > MAX_CLIENT_INBOUND {
            if self.verbose {
                say!("  {} client {} sent too much: closed", warn("bad"), c.peer);
            }
            ctx.abort(conn);
            return;
        }
        c.inbound.extend_from_slice(data);
        loop {
            let len = match stamped::decode(&c.inbound) {
                Decoded::Incomplete => return,
                Decoded::Frame(len) => len,
                Decoded::Invalid(e) => {
                    if self.verbose {
                        say!(
                            "  {} client {} does not speak the stamped framing ({e}): closed (leave out --framing for raw clients)",
                            warn("bad"),
                            c.peer
                        );
                    }
                    ctx.abort(conn);
                    return;
                }
            };
            let f = Frame::new_unchecked(&c.inbound[..len]);
            match f.kind() {
                // A subscription: `seq` samples per buffer (0: the server's --buffer).
                // The stream starts now, from an empty buffer, like a new client's.
                Some(Kind::Subscribe) => {
                    let asked = f.seq() as usize;
                    if asked > stamped::MAX_SAMPLES {
                        if self.verbose {
                            say!(
                                "  {} client {} asked for {asked} samples per buffer (at most 65535): closed",
                                warn("bad"),
                                c.peer
                            );
                        }
                        ctx.abort(conn);
                        return;
                    }
                    c.buffer = if asked == 0 { self.buffer } else { asked };
                    c.subscribed = true;
                    c.since = Instant::now();
                    c.pending.clear();
                    c.seq = 0;
                    if self.verbose {
                        let theirs = f.period_ns();
                        let note = if theirs != 0
                            && theirs.abs_diff(self.period_ns) > self.period_ns / 100
                        {
                            format!(
                                " (it expects {:.0} samples/s; ours come at {:.0}, and the frames say so)",
                                1e9 / f64::from(theirs),
                                1e9 / f64::from(self.period_ns)
                            )
                        } else {
                            String::new()
                        };
                        say!(
                            "  client {} subscribed: stamped buffers of {} samples{note}",
                            c.peer,
                            c.buffer
                        );
                    }
                }
                // A clock probe: answer with our wall clock, so a client on another
                // machine can estimate the offset between its clock and ours.
                Some(Kind::ClockRequest) => {
                    let reply = stamped::Repr {
                        kind: Kind::ClockReply,
                        seq: f.seq(),
                        t0_ns: WallClock::now().ns,
                        period_ns: 0,
                        samples: Vec::new(),
                    };
                    // A client too far behind to take 22 bytes loses its answer only.
                    let _ = ctx.send(conn, &reply.to_bytes());
                }
                // Samples or clock replies are ours to send, not to receive: ignored.
                _ => {}
            }
            c.inbound.drain(..len);
        }
    }
}

/// Sends one buffer to a client, or skips it when the client is too far behind. A
/// skipped buffer is lost for that client only: the others and the serial reading go
/// on. Returns true if skipped.
fn send_or_skip(
    ctx: &mut Ctx,
    token: Token,
    c: &mut Client,
    frame: &[u8],
    max_queued: usize,
    verbose: bool,
) -> bool {
    let behind = ctx.queued(token) + frame.len() > max_queued;
    let result = if behind {
        Err(())
    } else {
        match ctx.send(token, frame) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => Err(()),
            // Closing: on_closed will tell us; nothing to count.
            Err(SendError::Gone) => return false,
        }
    };
    match result {
        Ok(()) => {
            c.sent += frame.len() as u64;
            if c.lagging {
                c.lagging = false;
                if verbose {
                    say!(
                        "  client {} caught up ({} samples skipped so far)",
                        c.peer,
                        c.skipped
                    );
                }
            }
            false
        }
        Err(()) => {
            if !c.lagging {
                c.lagging = true;
                if verbose {
                    say!(
                        "  {} client {} is not keeping up ({} bytes queued): skipping buffers",
                        warn("slow"),
                        c.peer,
                        ctx.queued(token)
                    );
                }
            }
            true
        }
    }
}

impl Handler for Streamer {
    // A client connected: it gets samples read from now on, in buffers of N.
    fn on_accept(&mut self, ctx: &mut Ctx, _l: Token, conn: Token, peer: SocketAddr) {
        if self.nodelay {
            let _ = ctx.set_nodelay(conn, true);
        }
        self.totals.clients += 1;
        let probed = self.probe.is_some() && self.totals.clients == 1;
        self.clients.insert(
            conn,
            Client {
                peer,
                since: Instant::now(),
                buffer: self.buffer,
                subscribed: self.framing == Framing::Raw,
                inbound: Vec::new(),
                pending: Vec::with_capacity(self.buffer),
                oldest: Instant::now(),
                seq: 0,
                sent: 0,
                skipped: 0,
                lagging: false,
                probed,
            },
        );
        if self.verbose {
            say!("  client {peer} connected ({} open)", self.clients.len());
        }
    }

    // accept() failed (EMFILE...): the core retries shortly.
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: Token, err: &io::Error) {
        say!("  {} accept() failed: {err} (retrying)", warn("note"));
    }

    // The client shut down its sending side (`nc` does when its stdin ends). It may
    // still be reading: keep streaming. When it closes for good, the next send fails
    // and on_closed tells us.
    fn on_eof(&mut self, _ctx: &mut Ctx, _conn: Token) {}

    // Raw clients have nothing to say: whatever they send is ignored (the core reads it
    // and we drop it, so it cannot pile up). Stamped clients subscribe and sync clocks.
    fn on_data(&mut self, ctx: &mut Ctx, conn: Token, data: &[u8]) {
        if self.framing == Framing::Stamped {
            self.stamped_request(ctx, conn, data);
        }
    }

    // The client left: forget it.
    fn on_closed(&mut self, _ctx: &mut Ctx, conn: Token, why: Closed) {
        if let Some(c) = self.clients.remove(&conn) {
            if self.verbose {
                let how = match why {
                    Closed::Error(e) => format!(", {e}"),
                    _ => String::new(),
                };
                say!(
                    "  client {} left ({} bytes sent, {} samples skipped{how}; {} open)",
                    c.peer,
                    c.sent,
                    c.skipped,
                    self.clients.len()
                );
            }
        }
    }

    // The source thread has news (or the demo asks us to stop).
    fn on_wake(&mut self, ctx: &mut Ctx) {
        if self.stop.load(Ordering::SeqCst) {
            ctx.stop();
            return;
        }
        // The channel is bounded, so this loop is too.
        loop {
            match self.source.rx.try_recv() {
                Ok(SourceEvent::Samples { data, at }) => self.forward(ctx, &data, at),
                Ok(ev) => self.status(ev),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    say!("  {} the source stopped", warn("serial"));
                    ctx.stop();
                    break;
                }
            }
        }
    }
}

/// Starts the source and binds the listener; the loop is ready to run.
fn start_server(args: &Args, bind: SocketAddr) -> Result<(EventLoop, Streamer, SocketAddr)> {
    let mut ev = EventLoop::new()?;
    let listener = ev
        .ctx()
        .listen(bind, BACKLOG)
        .map_err(|e| bind_error(bind, e, "--bind"))?;
    let local = ev
        .ctx()
        .local_addr(listener)
        .context("listener has no address")?;
    let source = source::start(&source_spec(args), ev.ctx().waker())?;
    Ok((ev, Streamer::new(source, args), local))
}

/// `--role server`.
fn serve(args: &Args) -> Result<()> {
    let _ = crate::sys::raise_nofile_limit(65_536);
    let spec = source_spec(args);
    let (ev, mut server, local) = start_server(args, args.bind)?;
    let mut ev = ev.with_signals()?;
    say!(
        "07-serial-stream server listening on {} (buffers of {} samples{}; Ctrl-C stops)",
        bold(local),
        args.buffer,
        if args.nodelay { ", TCP_NODELAY" } else { "" }
    );
    say!("  source: {}", spec.describe());
    match args.framing {
        Framing::Raw => say!(
            "  try: {}",
            code(format!("lab run 07 --role client --connect {local}"))
        ),
        Framing::Stamped => say!(
            "  stamped frames (each client picks its buffer size); measure: {}",
            code(format!(
                "lab latency --mode stream --connect {local} --rate {}",
                args.rate
            ))
        ),
    }
    match duration_limit(args.duration) {
        Some(d) => ev.run_for(&mut server, d)?,
        None => ev.run(&mut server)?,
    }
    let t = &server.totals;
    let dropped = server.source.dropped.load(Ordering::Relaxed);
    say!(
        "server stopped: {} samples read, {} clients served, {} samples skipped for slow clients, {} read with no client, device lost {} times ({} failed reopens), {} chunks dropped by the reader",
        t.samples, t.clients, t.skipped, t.unwatched, t.lost, t.retries, dropped
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The client: blocking recv calls, as the course's Python client does.
// ---------------------------------------------------------------------------------------

/// What the client shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// A live scope on a terminal; a summary per second elsewhere.
    Plot,
    /// Each recv as a line of numbers.
    Print,
    /// The bytes, unchanged.
    Raw,
}

/// How [`receive`] runs.
struct ReceiveOpts {
    /// What to show.
    show: Show,
    /// Stop after this many samples.
    count: Option<u64>,
    /// Stop after this long.
    duration: Option<Duration>,
    /// The buffer size the server uses, for the display (the client cannot know it).
    buffer: Option<usize>,
    /// Rate of the source, for the display's theoretical wait.
    rate: Option<f64>,
    /// Latency stamps from an in-process server (the demo), if any.
    stamps: Option<Receiver<Stamp>>,
}

/// What [`receive`] measured.
#[derive(Debug)]
struct Received {
    /// Samples received.
    samples: u64,
    /// From the first byte to the end.
    elapsed: Duration,
    /// Latency of each buffer's oldest sample, in microseconds (demo only).
    latency: Histogram<u64>,
}

/// `--role client`.
fn client(args: &Args) -> Result<()> {
    let addr = resolve(&args.connect)?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| connect_error(addr, e))?;
    let show = if args.print {
        Show::Print
    } else if args.raw {
        Show::Raw
    } else {
        Show::Plot
    };
    if show != Show::Raw {
        eprintln!(
            "{}",
            dim(format!("connected to {addr} from {}", stream.local_addr()?))
        );
    }
    let got = receive(
        stream,
        ReceiveOpts {
            show,
            count: args.count,
            duration: duration_limit(args.duration),
            buffer: None,
            rate: None,
            stamps: None,
        },
    )?;
    if show != Show::Raw {
        eprintln!("{}", dim(totals_line(&got)));
        if got.samples == 0 {
            // The likeliest cause on a live server: it speaks the stamped framing,
            // which sends nothing until a client subscribes (as `lab latency` does).
            eprintln!(
                "{}",
                dim("no samples: if the server runs with --framing stamped, it only serves `lab latency --mode stream`; restart it without --framing for this client")
            );
        }
    }
    Ok(())
}

/// HOST:PORT to an address; a bad one is a usage error.
fn resolve(s: &str) -> Result<SocketAddr> {
    let fix = || "write it as HOST:PORT, for example 127.0.0.1:1234 or raspberrypi.local:1234";
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| LabError::usage(format!("cannot resolve {s:?}: {e}")).fix(fix()))?;
    addrs.next().ok_or_else(|| {
        LabError::usage(format!("{s:?} has no address"))
            .fix(fix())
            .into()
    })
}

fn totals_line(got: &Received) -> String {
    let secs = got.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        got.samples as f64 / secs
    } else {
        0.0
    };
    format!(
        "received {} samples in {secs:.1} s ({rate:.1} samples/s)",
        got.samples
    )
}

/// Reads samples until EOF, `count` or `duration`, showing them as asked.
fn receive(mut stream: TcpStream, opts: ReceiveOpts) -> Result<Received> {
    // Wake up regularly even when nothing arrives, to redraw and to check the clock.
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let end = opts.duration.map(|d| start + d);
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples: u64 = 0;
    let mut first: Option<Instant> = None;
    // 1 us to 60 s, 3 significant digits: ample for per-buffer latency.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let mut window = Window::new(start);
    let mut stamps = Stamps::default();
    let mut screen = Screen::new(opts.show == Show::Plot && interactive());
    if opts.show == Show::Plot && !screen.live {
        say!("{}", summary_header(&opts));
    }
    let stdout = io::stdout();
    loop {
        if end.is_some_and(|e| Instant::now() >= e) || opts.count.is_some_and(|c| samples >= c) {
            break;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                if opts.show != Show::Raw {
                    eprintln!("{}", dim("the server closed the connection"));
                }
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                0
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("receiving samples"),
        };
        let now = Instant::now();
        // Never show more than --count samples.
        let n = opts.count.map_or(n as u64, |c| (n as u64).min(c - samples)) as usize;
        let data = &buf[..n];
        if n > 0 {
            first.get_or_insert(now);
            samples += n as u64;
            window.add(data, now);
            stamps.arrived(samples, now);
        }
        if let Some(rx) = &opts.stamps {
            stamps.collect(rx, |lat| {
                let us = lat.as_micros().clamp(1, 60_000_000) as u64;
                let _ = latency.record(us);
                if window.latency.len() < Window::MAX_LATENCIES {
                    window.latency.push(us);
                }
            });
        }
        match opts.show {
            Show::Raw => {
                let mut out = stdout.lock();
                if let Err(e) = out.write_all(data).and_then(|_| out.flush()) {
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        break;
                    }
                    return Err(e).context("writing to stdout");
                }
            }
            Show::Print => {
                if n > 0 {
                    let line: Vec<String> = data.iter().map(|v| v.to_string()).collect();
                    say!("{}", line.join(" "));
                }
            }
            Show::Plot => {
                screen.scope.push(data);
                if screen.live {
                    if now.duration_since(screen.drawn) >= Duration::from_millis(50) {
                        screen.draw(&window, &opts, now);
                    }
                } else if now.duration_since(window.since) >= Duration::from_secs(1) {
                    say!("{}", window.summary(now, start));
                }
            }
        }
        if now.duration_since(window.since) >= Duration::from_secs(1) {
            window.reset(now);
        }
    }
    if screen.live {
        screen.draw(&window, &opts, Instant::now());
    }
    Ok(Received {
        samples,
        elapsed: first.map_or(Duration::ZERO, |f| f.elapsed()),
        latency,
    })
}

/// The last second of samples: rate, range and latency.
struct Window {
    /// Start of the window.
    since: Instant,
    /// Samples in it.
    samples: u64,
    /// Smallest value seen.
    min: u8,
    /// Largest value seen.
    max: u8,
    /// Sum of the values, for the mean.
    sum: u64,
    /// Latencies measured in it (demo only), microseconds; at most
    /// [`Window::MAX_LATENCIES`] (one per buffer, so only tiny buffers at huge rates
    /// reach it; the whole-run histogram still sees every one).
    latency: Vec<u64>,
    /// The rate measured over the previous full window, for the live display.
    last_rate: f64,
}

impl Window {
    /// Latencies kept per window for its percentiles: 100,000 is 800 KB at most.
    const MAX_LATENCIES: usize = 100_000;

    fn new(now: Instant) -> Window {
        Window {
            since: now,
            samples: 0,
            min: u8::MAX,
            max: 0,
            sum: 0,
            latency: Vec::new(),
            last_rate: 0.0,
        }
    }

    fn add(&mut self, data: &[u8], _now: Instant) {
        self.samples += data.len() as u64;
        for &v in data {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v as u64;
        }
    }

    fn rate(&self, now: Instant) -> f64 {
        let secs = now.duration_since(self.since).as_secs_f64();
        if secs > 0.0 {
            self.samples as f64 / secs
        } else {
            0.0
        }
    }

    fn reset(&mut self, now: Instant) {
        let last_rate = self.rate(now);
        *self = Window::new(now);
        self.last_rate = last_rate;
    }

    /// "p50 / p99 / max" of this window's latencies, or why there are none.
    fn latency_text(&self) -> String {
        if self.latency.is_empty() {
            return "latency n/a (raw bytes carry no timestamps)".into();
        }
        let mut v = self.latency.clone();
        v.sort_unstable();
        let pick = |q: f64| ms(v[((v.len() - 1) as f64 * q).round() as usize]);
        format!(
            "latency p50 {}  p99 {}  max {}",
            pick(0.5),
            pick(0.99),
            pick(1.0)
        )
    }

    /// One line for the off-terminal summary.
    fn summary(&self, now: Instant, start: Instant) -> String {
        let mean = self.sum.checked_div(self.samples).unwrap_or(0);
        let range = if self.samples > 0 {
            format!("values {}..{} mean {mean}", self.min, self.max)
        } else {
            "no samples".into()
        };
        format!(
            "t={:>5.1} s  {:>6} samples  {:>8.1} samples/s  {range}  {}",
            now.duration_since(start).as_secs_f64(),
            self.samples,
            self.rate(now),
            self.latency_text()
        )
    }
}

/// Microseconds as milliseconds, with the precision that matters at that size.
fn ms(us: u64) -> String {
    if us < 1000 {
        format!("{:.3} ms", us as f64 / 1000.0)
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

fn summary_header(opts: &ReceiveOpts) -> String {
    match (opts.buffer, opts.rate) {
        (Some(b), Some(r)) => format!(
            "(not a terminal: a summary each second instead of the plot; buffers of {b} samples at {r} samples/s wait up to {:.1} ms for their first sample)",
            (b.saturating_sub(1)) as f64 / r * 1000.0
        ),
        _ => "(not a terminal: a summary each second instead of the plot)".into(),
    }
}

/// Matches the demo's stamps ("the buffer ending at byte E was read at T") with the
/// reads that completed those bytes. A stamp can arrive before or after its bytes.
#[derive(Default)]
struct Stamps {
    /// Stamps whose bytes have not all arrived yet, in order.
    waiting: VecDeque<Stamp>,
    /// Recent reads: total bytes after the read, and when it returned. Bounded.
    reads: VecDeque<(u64, Instant)>,
}

impl Stamps {
    /// Reads to remember for late stamps: far more than arrive between two checks.
    const KEEP: usize = 1024;

    fn arrived(&mut self, total: u64, at: Instant) {
        if self.reads.len() == Self::KEEP {
            self.reads.pop_front();
        }
        self.reads.push_back((total, at));
    }

    /// Takes new stamps from `rx` and reports the latency of every buffer now complete.
    fn collect(&mut self, rx: &Receiver<Stamp>, mut report: impl FnMut(Duration)) {
        while let Ok(s) = rx.try_recv() {
            if self.waiting.len() < PROBE_STAMPS {
                self.waiting.push_back(s);
            }
        }
        while let Some(s) = self.waiting.front().copied() {
            // Reads that ended before this buffer's last byte are of no further use.
            while self.reads.front().is_some_and(|(t, _)| *t < s.end) {
                self.reads.pop_front();
            }
            let Some(&(_, at)) = self.reads.front() else {
                break;
            };
            report(at.saturating_duration_since(s.oldest));
            self.waiting.pop_front();
        }
    }
}

/// The live plot on a terminal, redrawn in place.
struct Screen {
    /// Drawing on a terminal (else the summary lines are printed).
    live: bool,
    /// The trace.
    scope: Scope,
    /// Lines drawn last time, to move the cursor back up over them.
    lines: usize,
    /// When it was last drawn (at most 20 redraws a second).
    drawn: Instant,
}

/// Rows of the plot: 12 characters = 48 dot rows, enough to see 256 levels' shape.
const PLOT_ROWS: usize = 12;

impl Screen {
    fn new(live: bool) -> Screen {
        // Room for the 5-character axis; at most 120 columns (240 samples) across.
        let cols = if live {
            (console::Term::stdout().size().1 as usize)
                .saturating_sub(6)
                .clamp(20, 120)
        } else {
            60
        };
        Screen {
            live,
            scope: Scope::new(cols, PLOT_ROWS),
            lines: 0,
            drawn: Instant::now() - Duration::from_secs(1),
        }
    }

    fn draw(&mut self, w: &Window, opts: &ReceiveOpts, now: Instant) {
        let mut text = String::new();
        if self.lines > 0 {
            // Back to the top of the previous frame: redraw in place, like a scope.
            text.push_str(&format!("\x1b[{}A", self.lines));
        }
        let rate = if w.last_rate > 0.0 {
            w.last_rate
        } else {
            w.rate(now)
        };
        let mut lines = vec![format!(
            "{}  {:.1} samples/s{}",
            bold("07-serial-stream"),
            rate,
            opts.buffer
                .map(|b| format!("  buffers of {b}"))
                .unwrap_or_default()
        )];
        lines.extend(self.scope.render());
        lines.push(format!("{}  {}", w.latency_text(), dim("Ctrl-C stops")));
        for (i, l) in lines.iter().enumerate() {
            text.push_str("\r\x1b[2K");
            text.push_str(l);
            if i + 1 < lines.len() {
                text.push('\n');
            }
        }
        say!("{text}");
        self.lines = lines.len();
        self.drawn = now;
    }
}

// ---------------------------------------------------------------------------------------
// The demo: the whole chain on loopback.
// ---------------------------------------------------------------------------------------

fn demo(args: &Args) -> Result<()> {
    let spec = source_spec(args);
    say!(
        "{}",
        bold("07-serial-stream: Arduino -> serial -> TCP server -> client, on loopback")
    );
    say!("  source: {}", spec.describe());
    let (mut ev, mut server, addr) = start_server(args, "127.0.0.1:0".parse()?)?;
    server.verbose = false;
    let (tx, rx) = sync_channel(PROBE_STAMPS);
    server.probe = Some(tx);
    let stop = Arc::clone(&server.stop);
    let waker = ev.ctx().waker();
    say!(
        "  server: {addr}, buffers of {} samples{}",
        args.buffer,
        if args.nodelay {
            ", TCP_NODELAY"
        } else {
            " (Nagle on; try --nodelay)"
        }
    );
    let handle = thread::spawn(move || -> io::Result<Streamer> {
        ev.run(&mut server)?;
        Ok(server)
    });
    let rate = match spec {
        SourceSpec::Sim { rate, .. } => Some(rate),
        SourceSpec::Port { .. } => Some(ARDUINO_RATE),
    };
    let duration = duration_limit(Some(args.duration.unwrap_or(10.0)));
    let result = TcpStream::connect(addr)
        .map_err(|e| anyhow::Error::from(connect_error(addr, e)))
        .and_then(|s| {
            receive(
                s,
                ReceiveOpts {
                    show: Show::Plot,
                    count: args.count,
                    duration,
                    buffer: Some(args.buffer as usize),
                    rate,
                    stamps: Some(rx),
                },
            )
        });
    stop.store(true, Ordering::SeqCst);
    waker.wake()?;
    let server = handle
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    let got = result?;
    say!();
    say!("{}", bold("What you saw"));
    say!("  - {}", totals_line(&got));
    let b = args.buffer as f64;
    let r = rate.unwrap_or(ARDUINO_RATE);
    if got.latency.is_empty() {
        say!(
            "  - no buffer completed, so no latency was measured (a buffer of {} needs {:.1} s)",
            args.buffer,
            b / r
        );
    } else {
        say!(
            "  - latency of each buffer's first sample: p50 {}, p99 {}, max {} ({} buffers)",
            ms(got.latency.value_at_quantile(0.5)),
            ms(got.latency.value_at_quantile(0.99)),
            ms(got.latency.max()),
            got.latency.len()
        );
    }
    say!(
        "  - the floor: a buffer of {} samples at {r} samples/s holds its first sample {:.1} ms",
        args.buffer,
        (b - 1.0) / r * 1000.0
    );
    say!(
        "    before it can be sent. Try {} and {}.",
        code("lab run 07 --buffer 1"),
        code("--buffer 256")
    );
    say!(
        "  - {} samples skipped for slow clients (a slow client skips; it never slows the others)",
        server.totals.skipped
    );
    say!();
    say!(
        "Two machines, as in the course: on the Pi {}",
        code("lab run 07 --role server --serial /dev/ttyACM0 --bind 0.0.0.0:1234")
    );
    say!(
        "and on the PC {}",
        code("lab run 07 --role client --connect raspberrypi.local:1234")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// `lab serial ...`
// ---------------------------------------------------------------------------------------

/// `lab serial` subcommands.
#[derive(Debug, Subcommand)]
pub enum SerialCommand {
    /// List the serial ports this machine has (an Arduino is usually /dev/ttyACM0).
    List,
}

/// Runs a `lab serial` subcommand.
pub fn serial_command(cmd: SerialCommand) -> Result<()> {
    match cmd {
        SerialCommand::List => list_ports(),
    }
}

/// The serial ports of this machine (also used by `lab doctor`).
pub fn available_ports() -> Vec<serialport::SerialPortInfo> {
    // serialport scans /sys/class/tty (no libudev); it panics if that is missing, as in
    // some containers, so look first.
    if std::path::Path::new("/sys/class/tty").is_dir() {
        serialport::available_ports().unwrap_or_default()
    } else {
        Vec::new()
    }
}

fn list_ports() -> Result<()> {
    let ports = available_ports();
    if ports.is_empty() {
        say!("No serial ports found.");
        say!("  Plug in the Arduino (USB) and run this again; it shows up as /dev/ttyACM0 or /dev/ttyUSB0.");
        say!(
            "  Without one, {} uses a simulated Arduino.",
            code("lab run 07")
        );
        return Ok(());
    }
    for p in ports {
        let what = match p.port_type {
            serialport::SerialPortType::UsbPort(u) => format!(
                "USB {:04x}:{:04x} {} {}",
                u.vid,
                u.pid,
                u.manufacturer.unwrap_or_default(),
                u.product.unwrap_or_default()
            ),
            serialport::SerialPortType::PciPort => "PCI".into(),
            serialport::SerialPortType::BluetoothPort => "Bluetooth".into(),
            serialport::SerialPortType::Unknown => "built-in or unknown".into(),
        };
        say!("{}  {}", bold(&p.port_name), dim(what.trim()));
    }
    say!();
    say!(
        "Use one with {}",
        code("lab run 07 --role server --serial PATH")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_match_reads_in_either_order() {
        let (tx, rx) = sync_channel(8);
        let t0 = Instant::now();
        let mut s = Stamps::default();
        let mut got = Vec::new();
        // Bytes first (16 then 16 more), stamps later.
        s.arrived(16, t0 + Duration::from_millis(20));
        s.arrived(32, t0 + Duration::from_millis(40));
        tx.send(Stamp {
            end: 16,
            oldest: t0,
        })
        .unwrap();
        tx.send(Stamp {
            end: 32,
            oldest: t0 + Duration::from_millis(18),
        })
        .unwrap();
        // A stamp whose bytes have not come yet waits.
        tx.send(Stamp {
            end: 48,
            oldest: t0 + Duration::from_millis(36),
        })
        .unwrap();
        s.collect(&rx, |d| got.push(d.as_millis()));
        assert_eq!(got, [20, 22]);
        s.arrived(48, t0 + Duration::from_millis(60));
        s.collect(&rx, |d| got.push(d.as_millis()));
        assert_eq!(got, [20, 22, 24]);
    }

    /// A buffer whose first sample was born 5 ms before a wall-clock reading of
    /// 1 000 000 000 ns: 995 000 000 ns.
    fn buffer_time() -> (BufferTime, WallClock) {
        let now = WallClock {
            at: Instant::now(),
            ns: 1_000_000_000,
        };
        let time = BufferTime {
            oldest: now.at - Duration::from_millis(5),
            seq: 32,
            period_ns: 1_116_071,
        };
        (time, now)
    }

    #[test]
    fn raw_framing_is_the_bytes() {
        let (time, now) = buffer_time();
        let mut out = Vec::new();
        Framing::Raw.encode(&[1, 2, 3], time, now, &mut out);
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn stamped_framing_dates_the_first_sample_on_the_wall_clock() {
        let (time, now) = buffer_time();
        let mut out = vec![9]; // appended after what is already there
        Framing::Stamped.encode(&[1, 2, 3], time, now, &mut out);
        assert_eq!(out[0], 9);
        let f = Frame::new_checked(&out[1..]).unwrap();
        assert_eq!(f.kind(), Some(Kind::Samples));
        assert_eq!((f.seq(), f.period_ns()), (32, 1_116_071));
        assert_eq!(f.t0_ns(), 995_000_000);
        assert_eq!(f.samples(), &[1, 2, 3]);
        assert_eq!(f.produced_ns(2), 995_000_000 + 2 * 1_116_071);
        assert_eq!(out.len(), 1 + stamped::HEADER_LEN + 3);
    }

    #[test]
    fn a_time_after_the_reading_counts_as_now() {
        let now = WallClock {
            at: Instant::now(),
            ns: 7,
        };
        assert_eq!(now.epoch_ns(now.at + Duration::from_secs(1)), 7);
        assert_eq!(now.epoch_ns(now.at), 7);
    }
}
