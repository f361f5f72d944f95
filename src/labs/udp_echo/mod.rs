//! # 02-udp-echo: datagrams, their boundaries, and what a small buffer does
//!
//! What you will learn: UDP has no connection, no listen and no accept; each `sendto`
//! is one datagram and each `recvfrom` returns exactly one, whole or cut short. A
//! receive buffer smaller than the datagram truncates it and the rest is gone. The
//! largest payload is 65507 bytes. Nothing tells an unconnected sender that nobody is
//! listening.
//!
//! Run `lab run 02` and read along. `--role server` echoes for any client (e.g.
//! `nc -u 127.0.0.1 7002`); `--role client` sends lines as datagrams.

pub mod checks;
use std::io::{self, BufRead};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::catalog::Lab;
use crate::core::LoopThread;
use crate::core::{Ctx, Datagram, EventLoop, Handler, UdpId, MAX_DATAGRAM};
use crate::error::{bind_error, LabError};
use crate::out::OrStopLater;
use crate::out::{aside, narrate, step};
use crate::out::{bold, code, dim, escape_bytes, warn};
use crate::{say, sys, units};

/// The documented default address of `--role server`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7002";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Server and client in one process on loopback, every call narrated.
    Demo,
    /// Only the server: echoes every datagram to its sender until Ctrl-C.
    Server,
    /// Only the client: sends each line as a datagram and prints the replies.
    Client,
}

/// Flags of `lab run 02-udp-echo`.
#[derive(Debug, Parser)]
#[command(about = "UDP echo: datagrams keep their boundaries; a small buffer truncates them.")]
pub(crate) struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Address the server binds (`0.0.0.0:7002` to serve other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Address the client sends to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    connect: SocketAddr,
    /// Client: send this datagram instead of reading stdin lines (repeatable).
    #[arg(long, short)]
    message: Vec<String>,
    /// Client: how long to wait for each reply: seconds (`2`) or with a unit (`500ms`).
    #[arg(long, default_value = "2", value_name = "SECONDS", value_parser = units::seconds)]
    timeout: Duration,
    /// Server: print only the address, not every datagram.
    #[arg(long, short)]
    quiet: bool,
    /// Server: stop after this long: seconds (`30`) or with a unit (`2m`); default: run
    /// until Ctrl-C.
    #[arg(long, value_name = "SECONDS", value_parser = units::seconds)]
    duration: Option<Duration>,
}

/// Entry point of the lab.
pub fn run(lab: &Lab, args: &[String]) -> Result<()> {
    let args: Args = super::parse_args(lab, args)?;
    match args.role {
        Role::Demo => demo(),
        Role::Server => serve(&args),
        Role::Client => client(&args),
    }
}

// ---------------------------------------------------------------------------------------
// The server: one UDP socket on the event loop, every datagram sent straight back.
// ---------------------------------------------------------------------------------------

struct EchoServer {
    /// Print each datagram.
    verbose: bool,
    /// Datagrams echoed so far.
    echoed: u64,
    /// The demo's turn to speak: the client holds it from its `sendto()` until that call
    /// is narrated, and the server takes it before narrating `recvfrom()`, so the story
    /// prints in the order things happen (the server's thread could otherwise print its
    /// receive before the client printed its send). `None` outside the demo.
    turn: Option<Turn>,
}

/// See [`EchoServer::turn`].
type Turn = Arc<Mutex<()>>;

/// Waits for the turn to speak (a panicked holder still leaves a usable lock: it
/// guards no data, only the order of lines).
fn take(turn: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    turn.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handler for EchoServer {
    // One recvfrom(): one whole datagram and who sent it. Send it back to that address.
    fn on_datagram(&mut self, ctx: &mut Ctx, sock: UdpId, d: Datagram<'_>) {
        if self.verbose {
            let _turn = self.turn.as_deref().map(take);
            narrate(
                "server",
                "recvfrom()",
                &format!(
                    "-> {} bytes from {} \"{}\"",
                    d.data.len(),
                    d.from,
                    escape_bytes(d.data, 24)
                ),
            )
            .or_stop_later();
        }
        match ctx.send_to(sock, d.data, d.from) {
            Ok(true) => self.echoed += 1,
            // The socket's queue is full: UDP may drop, and so do we.
            Ok(false) => {}
            Err(e) => {
                if self.verbose {
                    say!("  {} sendto({}) failed: {e}", warn("note"), d.from).or_stop_later();
                }
            }
        }
    }

    // E.g. ECONNREFUSED reported late for an earlier sendto(): nothing to do for a server.
    fn on_udp_error(&mut self, _ctx: &mut Ctx, _sock: UdpId, err: &io::Error) {
        if self.verbose {
            say!("  {} {err}", dim("note")).or_stop_later();
        }
    }
}

fn bind(addr: SocketAddr) -> Result<(EventLoop, SocketAddr)> {
    let mut ev = EventLoop::new()?;
    let token = ev
        .ctx()
        .bind_udp(addr, MAX_DATAGRAM)
        .map_err(|e| bind_error(addr, e, "--bind"))?;
    let local = ev
        .ctx()
        .local_addr(token)
        .context("socket has no address")?;
    Ok((ev, local))
}

/// `--role server`.
fn serve(args: &Args) -> Result<()> {
    let (ev, local) = bind(args.bind)?;
    let mut ev = ev.with_signals()?;
    say!(
        "02-udp-echo server on {} (every datagram is sent back; Ctrl-C stops)",
        bold(local)
    )?;
    say!(
        "  try: {}",
        code(format!("nc -u {} {}", local.ip(), local.port()))
    )?;
    let mut server = EchoServer {
        verbose: !args.quiet,
        echoed: 0,
        turn: None,
    };
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    let limit = args.duration;
    crate::out::run_while_stdout_open(&mut ev, &mut server, limit)?;
    say!("server stopped after echoing {} datagrams", server.echoed)?;
    Ok(())
}

/// `--role client`: one datagram per line; prints each reply.
fn client(args: &Args) -> Result<()> {
    let local: SocketAddr = if args.connect.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()?;
    let sock = UdpSocket::bind(local)?;
    // At least 1 ms (see `units::seconds`): a zero timeout would be refused.
    sock.set_read_timeout(Some(args.timeout))?;
    let lines: Box<dyn Iterator<Item = io::Result<String>>> = if args.message.is_empty() {
        Box::new(io::stdin().lock().lines())
    } else {
        Box::new(args.message.clone().into_iter().map(Ok))
    };
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut missing = 0;
    for line in lines {
        let line = line?;
        sock.send_to(line.as_bytes(), args.connect)
            .with_context(|| format!("sendto {}", args.connect))?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => say!("{}", String::from_utf8_lossy(&buf[..n]))?,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                missing += 1;
                eprintln!(
                    "{}",
                    dim(format!(
                        "no reply within {} s (UDP gives no error: lost, or nobody listens)",
                        args.timeout.as_secs_f64()
                    ))
                );
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(LabError::usage(format!(
                    "{} refused the datagram: nothing listens there",
                    args.connect
                ))
                .fix("start the server first: `lab run 02 --role server`")
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if missing > 0 {
        return Err(LabError::failed(format!("{missing} datagram(s) got no reply")).into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The demo.
// ---------------------------------------------------------------------------------------

fn demo() -> Result<()> {
    say!("{}", bold("02-udp-echo: datagrams, narrated"))?;

    step(1, "The server binds; there is no listen() and no accept()")?;
    let (ev, addr) = bind("127.0.0.1:0".parse()?)?;
    narrate("server", "socket(AF_INET, SOCK_DGRAM)", "-> a UDP socket")?;
    narrate(
        "server",
        "bind(127.0.0.1:0)",
        &format!("-> {addr}; now recvfrom() in a loop"),
    )?;
    let turn = Turn::default();
    let server = EchoServer {
        verbose: true,
        echoed: 0,
        turn: Some(Arc::clone(&turn)),
    };
    let server = LoopThread::spawn("udp-echo-server", ev, server)?;

    let story = client_story(addr, &turn);
    server.stop()?;
    let echoed = server.join()?.echoed;
    story?;

    say!()?;
    say!("{}", bold("What you saw"))?;
    say!("  - Three sendto() calls were three recvfrom() results: UDP keeps message boundaries.")?;
    say!("  - A buffer smaller than the datagram truncated it, and the rest was gone for good.")?;
    say!("  - 65507 bytes is the largest UDP payload over IPv4; 65508 is refused at sendto().")?;
    say!(
        "  - An unconnected sendto() to a silent port succeeds: nobody tells you it went nowhere."
    )?;
    say!("  The server echoed {echoed} datagrams and never knew a \"connection\".")?;
    say!()?;
    say!(
        "Next: {}, or {} and {}",
        code("lab show 02"),
        code("lab run 02 --role server"),
        code("nc -u 127.0.0.1 7002")
    )?;
    Ok(())
}

/// Sends one datagram to the demo's server and narrates it before the server may
/// narrate receiving it (see [`EchoServer::turn`]).
fn send_told(
    turn: &Mutex<()>,
    c: &UdpSocket,
    data: &[u8],
    server: SocketAddr,
    call: &str,
    result: &str,
) -> Result<()> {
    let _turn = take(turn);
    c.send_to(data, server)?;
    narrate("client", call, result)?;
    Ok(())
}

fn client_story(server: SocketAddr, turn: &Mutex<()>) -> Result<()> {
    let c = UdpSocket::bind("127.0.0.1:0")?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let me = c.local_addr()?;

    step(2, "Three datagrams, three receives")?;
    for m in [&b"one"[..], b"two", b"three"] {
        send_told(
            turn,
            &c,
            m,
            server,
            &format!("sendto(\"{}\", {server})", escape_bytes(m, 10)),
            &format!("-> {} bytes from {me}", m.len()),
        )?;
    }
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    for want in [&b"one"[..], b"two", b"three"] {
        let (n, from) = c.recv_from(&mut buf).context("waiting for an echo")?;
        narrate(
            "client",
            "recvfrom()",
            &format!(
                "-> {n} bytes \"{}\" from {from}",
                escape_bytes(&buf[..n], 10)
            ),
        )?;
        if &buf[..n] != want {
            return Err(
                LabError::failed(format!("expected {:?}", String::from_utf8_lossy(want))).into(),
            );
        }
    }
    aside("compare 01-tcp-echo: there, one write of three lines was one recv.")?;

    step(3, "A receive buffer that is too small")?;
    let big = vec![b'x'; 100];
    send_told(turn, &c, &big, server, "sendto(100 bytes)", "-> sent")?;
    let mut small = [0u8; 16];
    let r = sys::recv_from_trunc(&c, &mut small).context("waiting for the 100-byte echo")?;
    narrate(
        "client",
        "recvfrom(buffer of 16 bytes, MSG_TRUNC)",
        &format!("-> {} bytes copied; the datagram had {}", r.len, r.wire_len),
    )?;
    if r.wire_len > r.len {
        aside(&format!(
            "truncated: the other {} bytes are discarded by the kernel; no later recv returns them.",
            r.wire_len - r.len
        ))?;
    }
    c.set_read_timeout(Some(Duration::from_millis(200)))?;
    match c.recv_from(&mut buf) {
        Ok((n, _)) => narrate(
            "client",
            "recvfrom()",
            &format!("-> {n} bytes?! (unexpected)"),
        )?,
        Err(_) => narrate(
            "client",
            "recvfrom() again",
            "-> nothing: the rest of that datagram is gone",
        )?,
    }
    c.set_read_timeout(Some(Duration::from_secs(2)))?;

    step(4, "Sizes up to the maximum")?;
    for size in [1usize, 1472, 8000, MAX_DATAGRAM] {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        send_told(
            turn,
            &c,
            &data,
            server,
            &format!("sendto({size} bytes)"),
            "-> sent",
        )?;
        let (n, _) = c
            .recv_from(&mut buf)
            .with_context(|| format!("waiting for the {size}-byte echo"))?;
        let same = buf[..n] == data[..];
        let note = match size {
            1472 => " (fits one 1500-byte Ethernet frame: 1472 + 8 UDP + 20 IP)",
            8000 => " (bigger than Ethernet: IP fragments it; loopback's MTU is 65536)",
            MAX_DATAGRAM => " (the maximum: 65535 - 20 IP header - 8 UDP header)",
            _ => "",
        };
        narrate(
            "client",
            "recvfrom()",
            &format!(
                "-> {n} bytes back{}{note}",
                if same { ", identical" } else { ", DIFFERENT" }
            ),
        )?;
        if !same {
            return Err(LabError::failed(format!("the {size}-byte echo differs")).into());
        }
    }
    match c.send_to(&vec![0u8; MAX_DATAGRAM + 1], server) {
        Err(e) => narrate(
            "client",
            "sendto(65508 bytes)",
            &format!("-> {} ({e})", warn("refused")),
        )?,
        Ok(n) => narrate(
            "client",
            "sendto(65508 bytes)",
            &format!("-> {n}?! (unexpected)"),
        )?,
    }

    step(5, "Nobody listening")?;
    let silent = {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.local_addr()?
        // closed here: nothing is bound to this port now
    };
    c.send_to(b"anyone?", silent)?;
    narrate(
        "client",
        &format!("sendto(\"anyone?\", {silent})"),
        "-> 7 bytes: \"sent\", no error",
    )?;
    c.set_read_timeout(Some(Duration::from_millis(300)))?;
    match c.recv_from(&mut buf) {
        Ok((n, from)) => narrate("client", "recvfrom()", &format!("-> {n} bytes from {from}"))?,
        Err(_) => narrate(
            "client",
            "recvfrom() for 0.3 s",
            "-> nothing: no reply, and no error either",
        )?,
    }
    let connected = UdpSocket::bind("127.0.0.1:0")?;
    connected.connect(silent)?;
    connected.set_read_timeout(Some(Duration::from_millis(300)))?;
    connected.send(b"anyone?")?;
    narrate("client", &format!("connect({silent}) + send()"), "-> sent")?;
    match connected.recv(&mut buf) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => narrate(
            "client",
            "recv()",
            "-> ECONNREFUSED: a connected UDP socket hears the ICMP \"port unreachable\"",
        )?,
        Err(e) => narrate("client", "recv()", &format!("-> {e}"))?,
        Ok(n) => narrate("client", "recv()", &format!("-> {n} bytes?!"))?,
    }
    Ok(())
}
