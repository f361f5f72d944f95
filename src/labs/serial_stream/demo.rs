//! The demo: source, server and client on loopback in one process; the client plots
//! live and measures each buffer's latency from the server's stamps.

use std::net::TcpStream;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use anyhow::Result;

use super::client::{receive, totals_line, ReceiveOpts, Show};
use super::server::start_server;
use super::source::SourceSpec;
use super::{duration_limit, source_spec, Args, ARDUINO_RATE, PROBE_STAMPS};
use crate::core::LoopThread;
use crate::error::connect_error;
use crate::out::{bold, code, duration_us};
use crate::say;

pub(super) fn demo(args: &Args) -> Result<()> {
    let spec = source_spec(args);
    say!(
        "{}",
        bold("07-serial-stream: Arduino -> serial -> TCP server -> client, on loopback")
    )?;
    say!("  source: {}", spec.describe())?;
    let (ev, mut server, addr) = start_server(args, "127.0.0.1:0".parse()?)?;
    server.verbose = false;
    let (tx, rx) = sync_channel(PROBE_STAMPS);
    server.probe = Some(tx);
    say!(
        "  server: {addr}, buffers of {} samples{}",
        args.buffer,
        if args.nodelay {
            ", TCP_NODELAY"
        } else {
            " (Nagle on; try --nodelay)"
        }
    )?;
    let handle = LoopThread::spawn("serial-server", ev, server)?;
    let rate = match spec {
        SourceSpec::Sim { rate, .. } => Some(rate),
        SourceSpec::Port { .. } => Some(ARDUINO_RATE),
    };
    let duration = duration_limit(Some(args.duration.unwrap_or(Duration::from_secs(10))));
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
    handle.stop()?;
    let server = handle.join()?;
    let got = result?;
    say!()?;
    say!("{}", bold("What you saw"))?;
    say!("  - {}", totals_line(&got))?;
    let b = args.buffer as f64;
    let r = rate.unwrap_or(ARDUINO_RATE);
    if got.latency.is_empty() {
        say!(
            "  - no buffer completed, so no latency was measured (a buffer of {} needs {:.1} s)",
            args.buffer,
            b / r
        )?;
    } else {
        say!(
            "  - latency of each buffer's first sample: p50 {}, p99 {}, max {} ({} buffers)",
            duration_us(got.latency.value_at_quantile(0.5) as f64),
            duration_us(got.latency.value_at_quantile(0.99) as f64),
            duration_us(got.latency.max() as f64),
            got.latency.len()
        )?;
    }
    say!(
        "  - the floor: a buffer of {} samples at {r} samples/s holds its first sample {}",
        args.buffer,
        duration_us((b - 1.0) / r * 1e6)
    )?;
    say!(
        "    before it can be sent. Try {} and {}.",
        code("lab run 07 --buffer 1"),
        code("--buffer 256")
    )?;
    say!(
        "  - {} samples skipped for slow clients (a slow client skips; it never slows the others)",
        server.totals.skipped
    )?;
    say!()?;
    say!(
        "Two machines, as in the course: on the Pi {}",
        code("lab run 07 --role server --serial /dev/ttyACM0 --bind 0.0.0.0:1234")
    )?;
    say!(
        "and on the PC {}",
        code("lab run 07 --role client --connect raspberrypi.local:1234")
    )?;
    Ok(())
}
