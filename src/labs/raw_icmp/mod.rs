//! # 04-raw-icmp: a ping built byte by byte on a raw socket
//!
//! What you will learn: a raw socket skips the transport layer. There is no port and
//! no connection; you write the ICMP message yourself (type, code, the RFC 1071
//! checksum, identifier, sequence number, data), the kernel wraps it in an IPv4 header,
//! and what you read back is the whole IPv4 packet, header first. You find where ICMP
//! starts with the header's IHL field, check both checksums, and decide which packets
//! are yours, because a raw socket sees every ICMP packet on the machine: your own
//! requests going out on loopback, other programs' pings, errors from routers.
//!
//! Run `lab run 04` and read along: three echo requests to 127.0.0.1, each request and
//! reply shown field by field with its checksum computed next to the one received,
//! then ping's summary. Compare with `ping -c 3 127.0.0.1`. Without root, lab enters a
//! user + network namespace of its own and says so (see [`privilege`]); `--target`
//! reaches other machines when you do have CAP_NET_RAW.
//!
//! The files, in the order a packet meets them: [`privilege`] (which socket we may
//! open), [`ping`] (build, send, receive), [`classify`] (is it ours?), [`summary`]
//! (ping's statistics), [`wait`] (spin or sleep between
//! requests, as ping decides), [`dump`] (the annotated
//! bytes), [`checks`] and [`tap`] (the grader's checks of your own mini ping). The byte formats
//! are in `crate::wire::{checksum, ipv4, icmp}`.

pub mod checks;
pub mod classify;
pub mod dump;
pub mod ping;
pub mod privilege;
pub mod summary;
pub mod tap;
pub mod wait;

use std::net::{Ipv4Addr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use crate::catalog::Lab;
use crate::error::LabError;
use crate::out::{bold, dim, warn, OrStopLater};
use crate::say;
use crate::units;

/// Flags of `lab run 04-raw-icmp`.
#[derive(Debug, Parser)]
#[command(about = "Ping with hand-built ICMP on a raw socket, every byte annotated.")]
pub(crate) struct Args {
    /// Host to ping: an IPv4 address or a name (only loopback works without CAP_NET_RAW).
    #[arg(long, default_value = "127.0.0.1")]
    target: String,
    /// Echo requests to send.
    #[arg(long, short, default_value_t = 3)]
    count: u32,
    /// Seconds between requests (at least 0.002, iputils ping's limit for root).
    #[arg(long, short, default_value = "1", value_name = "SECONDS", value_parser = units::seconds)]
    interval: Duration,
    /// Echo data bytes per request: 56 makes 64-byte ICMP messages, as ping does.
    #[arg(long, short, default_value_t = 56)]
    size: usize,
    /// IP time to live of the requests (1 makes the first router answer "time exceeded").
    #[arg(long, default_value_t = 64)]
    ttl: u8,
    /// Seconds to wait for each reply.
    #[arg(long, short = 'W', default_value = "2", value_name = "SECONDS", value_parser = units::seconds)]
    timeout: Duration,
    /// Between requests: auto spins (sched_yield + non-blocking recvmsg) when the next
    /// request is due within 10 ms and no reply is pending, else sleeps, as iputils
    /// ping does; a spinning CPU stays warm, so short intervals read shorter round
    /// trips. sleep: always sleep (ppoll). spin: spin at any interval (keeps a CPU busy).
    #[arg(long, value_enum, default_value_t = wait::Mode::Auto)]
    wait: wait::Mode,
    /// Only ping's lines, no annotated hex dump.
    #[arg(long, short)]
    quiet: bool,
}

/// Most requests one run may send: a day at the default interval; bounds the table of
/// requests awaiting replies.
const MAX_COUNT: u32 = 100_000;

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    let cfg = config(&args)?;
    // Before any thread exists: entering a user namespace needs a single-threaded process.
    let opened = privilege::open(cfg.target, &mut |text| {
        say!("{}", warn(text)).or_stop_later()
    })?;
    say!(
        "{} {}: {} data bytes, identifier 0x{:04x}, via {}",
        bold("PING"),
        cfg.target,
        cfg.size,
        cfg.ident,
        opened.access.describe()
    )?;
    if !args.quiet {
        say!(
            "{}",
            dim(
                "each request and reply is dumped field by field; --quiet prints only ping's lines"
            )
        )?;
    }
    let began = Instant::now();
    let stats = ping::run(&opened.socket, opened.access, &cfg)
        .map_err(|e| LabError::usage(format!("the raw socket failed: {e}")))?;
    summary::summary(&cfg, &stats, began.elapsed())?;
    if stats.received == 0 {
        return Err(LabError::failed(format!(
            "no reply from {} to {} requests",
            cfg.target, stats.transmitted
        ))
        .fix("is the host up and answering pings? (net.ipv4.icmp_echo_ignore_all=1 makes Linux stay silent; firewalls often drop ICMP)")
        .into());
    }
    Ok(())
}

/// Checks the flags and resolves the target.
fn config(a: &Args) -> Result<ping::Config, LabError> {
    let bad = |what: String, fix: &str| LabError::usage(what).fix(fix.to_string());
    if a.count == 0 || a.count > MAX_COUNT {
        return Err(bad(
            format!("--count {} is out of range", a.count),
            "use 1 to 100000",
        ));
    }
    if !(Duration::from_millis(2)..=Duration::from_secs(60)).contains(&a.interval) {
        return Err(bad(
            format!("--interval {:?} is out of range", a.interval),
            "use 0.002 to 60 seconds (faster is a flood, which iputils ping also refuses)",
        ));
    }
    if a.size > ping::MAX_SIZE {
        return Err(bad(
            format!("--size {} does not fit in an IPv4 packet", a.size),
            "at most 65507 data bytes (65535 - 20 IPv4 - 8 ICMP)",
        ));
    }
    if a.ttl == 0 {
        return Err(bad(
            "--ttl 0 would never leave the host".into(),
            "use 1 to 255",
        ));
    }
    if a.timeout > Duration::from_secs(60) {
        return Err(bad(
            format!("--timeout {:?} is out of range", a.timeout),
            "use a number of seconds above 0, at most 60",
        ));
    }
    Ok(ping::Config {
        target: resolve(&a.target)?,
        count: a.count,
        interval: a.interval,
        size: a.size,
        ttl: a.ttl,
        timeout: a.timeout,
        dump: !a.quiet,
        // ping's choice: the process id, cut to 16 bits.
        ident: std::process::id() as u16,
        wait: a.wait,
    })
}

/// An IPv4 address, or the first IPv4 address of a name.
fn resolve(target: &str) -> Result<Ipv4Addr, LabError> {
    if let Ok(a) = target.parse() {
        return Ok(a);
    }
    let found = (target, 0)
        .to_socket_addrs()
        .map_err(|e| {
            LabError::usage(format!("cannot resolve --target {target}: {e}"))
                .fix("give an IPv4 address such as 127.0.0.1")
        })?
        .find_map(|a| match a {
            std::net::SocketAddr::V4(v4) => Some(*v4.ip()),
            std::net::SocketAddr::V6(_) => None,
        });
    found.ok_or_else(|| {
        LabError::usage(format!(
            "{target} has no IPv4 address (this lab speaks ICMP for IPv4)"
        ))
        .fix("give an IPv4 address such as 127.0.0.1")
    })
}
