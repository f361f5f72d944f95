//! The client: plain blocking `recv` calls, as the course's Python client makes, drawing
//! an oscilloscope ([`super::plot`]) or printing a summary; with an in-process server
//! (the demo) it also measures each buffer's latency from the server's stamps.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use super::plot::Scope;
use super::server::Stamp;
use super::{duration_limit, Args, PROBE_STAMPS};
use crate::error::{connect_error, LabError};
use crate::out::{bold, dim, duration_us, interactive};
use crate::say;

/// What the client shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Show {
    /// A live scope on a terminal; a summary per second elsewhere.
    Plot,
    /// Each recv as a line of numbers.
    Print,
    /// The bytes, unchanged.
    Raw,
}

/// How [`receive`] runs.
pub(super) struct ReceiveOpts {
    /// What to show.
    pub(super) show: Show,
    /// Stop after this many samples.
    pub(super) count: Option<u64>,
    /// Stop after this long.
    pub(super) duration: Option<Duration>,
    /// The buffer size the server uses, for the display (the client cannot know it).
    pub(super) buffer: Option<usize>,
    /// Rate of the source, for the display's theoretical wait.
    pub(super) rate: Option<f64>,
    /// Latency stamps from an in-process server (the demo), if any.
    pub(super) stamps: Option<Receiver<Stamp>>,
}

/// What [`receive`] measured.
#[derive(Debug)]
pub(super) struct Received {
    /// Samples received.
    pub(super) samples: u64,
    /// From the first read to the last: the span the rate is measured over.
    pub(super) span: Span,
    /// Latency of each buffer's oldest sample, in microseconds (demo only).
    pub(super) latency: Histogram<u64>,
}

/// `--role client`.
pub(super) fn client(args: &Args) -> Result<()> {
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

pub(super) fn totals_line(got: &Received) -> String {
    let rate = got
        .span
        .rate()
        .map_or("rate n/a: one read only".into(), |r| {
            format!("{r:.1} samples/s")
        });
    format!(
        "received {} samples in {:.1} s ({rate})",
        got.samples,
        got.span.seconds()
    )
}

/// When samples arrived, for a rate that is not fooled by buffering. A read brings a
/// whole buffer whose samples were produced *before* it arrived: counting the first
/// read's samples over "first read to last read" credits one buffer too many (256
/// samples at 896/s over 4 buffers read as 1195/s). So the span opens at a read and
/// counts only the samples that arrived after it: the last sample of the first read
/// and the last of the last read were both produced about when they were read.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span {
    /// The read that opened the span (its samples are not counted).
    first: Option<Instant>,
    /// Samples that arrived after `first`.
    after_first: u64,
    /// The latest read.
    last: Option<Instant>,
}

impl Span {
    /// A span opened at `t`, as if a read had happened then (a window boundary).
    fn opened_at(t: Instant) -> Span {
        Span {
            first: Some(t),
            after_first: 0,
            last: Some(t),
        }
    }

    /// A read of `n` samples at `now`.
    fn arrived(&mut self, n: u64, now: Instant) {
        if self.first.is_some() {
            self.after_first += n;
        } else {
            self.first = Some(now);
        }
        self.last = Some(now);
    }

    /// Seconds from the first read to the last.
    pub(super) fn seconds(&self) -> f64 {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Samples per second, once two reads are at least a moment apart.
    pub(super) fn rate(&self) -> Option<f64> {
        let secs = self.seconds();
        (secs > 0.0 && self.after_first > 0).then(|| self.after_first as f64 / secs)
    }
}

/// Reads samples until EOF, `count` or `duration`, showing them as asked.
pub(super) fn receive(mut stream: TcpStream, opts: ReceiveOpts) -> Result<Received> {
    // Wake up regularly even when nothing arrives, to redraw and to check the clock.
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    let start = Instant::now();
    let end = opts.duration.map(|d| start + d);
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples: u64 = 0;
    let mut span = Span::default();
    // 1 us to 60 s, 3 significant digits: ample for per-buffer latency.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let mut window = Window::new(start);
    let mut stamps = Stamps::default();
    let mut screen = Screen::new(opts.show == Show::Plot && interactive());
    if opts.show == Show::Plot && !screen.live {
        say!("{}", summary_header(&opts))?;
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
            span.arrived(n as u64, now);
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
                    say!("{}", line.join(" "))?;
                }
            }
            Show::Plot => {
                screen.scope.push(data);
                if screen.live {
                    if now.duration_since(screen.drawn) >= Duration::from_millis(50) {
                        screen.draw(&window, &opts, now)?;
                    }
                } else if now.duration_since(window.since) >= Duration::from_secs(1) {
                    say!("{}", window.summary(now, start))?;
                }
            }
        }
        if now.duration_since(window.since) >= Duration::from_secs(1) {
            window.reset(now);
        }
    }
    if screen.live {
        screen.draw(&window, &opts, Instant::now())?;
    }
    Ok(Received {
        samples,
        span,
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
    /// When this window's samples arrived: its rate.
    span: Span,
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
            span: Span::default(),
            last_rate: 0.0,
        }
    }

    fn add(&mut self, data: &[u8], now: Instant) {
        self.samples += data.len() as u64;
        self.span.arrived(data.len() as u64, now);
        for &v in data {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.sum += v as u64;
        }
    }

    /// Samples per second over this window's reads (see [`Span`]), or the previous
    /// window's figure while this one has too few reads to tell.
    fn rate(&self) -> f64 {
        self.span.rate().unwrap_or(self.last_rate)
    }

    fn reset(&mut self, now: Instant) {
        let last_rate = self.rate();
        // The next window opens where this one's last read was: the samples of the
        // next read were produced after it.
        let boundary = self.span.last;
        *self = Window::new(now);
        if let Some(b) = boundary {
            self.span = Span::opened_at(b);
        }
        self.last_rate = last_rate;
    }

    /// "p50 / p99 / max" of this window's latencies, or why there are none.
    fn latency_text(&self) -> String {
        if self.latency.is_empty() {
            return "latency n/a (raw bytes carry no timestamps)".into();
        }
        let mut v = self.latency.clone();
        v.sort_unstable();
        let pick = |q: f64| duration_us(v[((v.len() - 1) as f64 * q).round() as usize] as f64);
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
            self.rate(),
            self.latency_text()
        )
    }
}

fn summary_header(opts: &ReceiveOpts) -> String {
    match (opts.buffer, opts.rate) {
        (Some(b), Some(r)) => format!(
            "(not a terminal: a summary each second instead of the plot; buffers of {b} samples at {r} samples/s wait up to {} for their first sample)",
            duration_us((b.saturating_sub(1)) as f64 / r * 1e6)
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

    fn draw(&mut self, w: &Window, opts: &ReceiveOpts, now: Instant) -> io::Result<()> {
        let mut text = String::new();
        if self.lines > 0 {
            // Back to the top of the previous frame: redraw in place, like a scope.
            text.push_str(&format!("\x1b[{}A", self.lines));
        }
        let rate = if w.last_rate > 0.0 {
            w.last_rate
        } else {
            w.rate()
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
        say!("{text}")?;
        self.lines = lines.len();
        self.drawn = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    #[test]
    fn rate_counts_from_the_first_sample_read_to_the_last() {
        // `lab run 07 --buffer 256` at 896 samples/s: a buffer every 256/896 s. The old
        // reckoning (all samples over first to last buffer) said 1195.
        let t0 = Instant::now();
        let every = Duration::from_secs_f64(256.0 / 896.0);
        let mut span = Span::default();
        for i in 0..4 {
            span.arrived(256, t0 + every * i);
        }
        let rate = span.rate().unwrap();
        assert!((rate - 896.0).abs() < 0.5, "{rate}");
        // A window opened at the previous window's last read counts every read it gets.
        let mut w = Span::opened_at(t0);
        w.arrived(256, t0 + every);
        assert!((w.rate().unwrap() - 896.0).abs() < 0.5);
        // One read alone gives no rate.
        let mut one = Span::default();
        one.arrived(256, t0);
        assert_eq!(one.rate(), None);
    }

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
}
