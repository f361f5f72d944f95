//! # 01-tcp-echo: a TCP server and client, every call narrated
//!
//! What you will learn: the life of a TCP connection (socket, bind, listen, accept,
//! connect, send, recv, shutdown, close), that a stream has no message boundaries, what
//! EOF looks like, what `connect_ex` returns when nobody listens, and why servers set
//! `SO_REUSEADDR`.
//!
//! Run `lab run 01` and read along: the server (on the event-loop core, in a thread)
//! and a blocking client (like the course's Python client) print each call as it
//! happens, with real addresses. `--role server` serves `nc 127.0.0.1 7001`;
//! `--role client` talks to any echo server.
//!
//! The protocol: each newline-terminated line L gets `Received: L` and a newline back.
//! Lines are capped at [`MAX_LINE`] bytes; a longer one gets one `Error:` reply and is
//! skipped up to its newline, so memory stays bounded whatever a client sends. Bytes are
//! echoed as received, UTF-8 or not.

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use mio::Token;
use socket2::{Domain, Socket, Type};

use crate::catalog::Lab;
use crate::core::{Closed, Ctx, EventLoop, Handler, SendError};
use crate::error::{bind_error, connect_error, LabError};
use crate::out::{aside, narrate, step};
use crate::out::{bold, code, dim, escape_bytes, warn};
use crate::say;
use crate::wire::lines::{Line, LineDecoder};

/// Longest line the server accepts, in bytes, without its newline. 64 KiB is far more
/// than any line a person types, and bounds what one client can make us hold.
pub const MAX_LINE: usize = 64 * 1024;

/// The documented default address of `--role server`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7001";

/// Backlog for `listen()`: connections the kernel completes and queues before we
/// `accept()` them. 1024 lets a thousand clients connect at once without retries (the
/// kernel caps it at net.core.somaxconn, 4096 on current Linux).
const BACKLOG: i32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Server and client in one process on loopback, every call narrated.
    Demo,
    /// Only the server: serves many clients until Ctrl-C.
    Server,
    /// Only the client: sends lines and prints the replies.
    Client,
}

/// Flags of `lab run 01-tcp-echo`.
#[derive(Debug, Parser)]
#[command(about = "TCP echo: a narrated server and client. Each line L gets `Received: L` back.")]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// Address the server listens on (`0.0.0.0:7001` to accept other machines).
    #[arg(long, default_value = DEFAULT_ADDR)]
    bind: SocketAddr,
    /// Address the client connects to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    connect: SocketAddr,
    /// Client: send this line instead of reading stdin (repeat for several lines).
    #[arg(long, short)]
    message: Vec<String>,
    /// Client: give up waiting for replies after this many seconds of silence.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Server: print only the address it listens on, not every connection.
    #[arg(long, short)]
    quiet: bool,
    /// Server: stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
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
// Narration: who did what, with which result.
// ---------------------------------------------------------------------------------------

/// How much the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verbosity {
    Quiet,
    Connections,
    Calls,
}

fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

// ---------------------------------------------------------------------------------------
// The server: one event loop, one `Client` per connection.
// ---------------------------------------------------------------------------------------

/// What the server keeps per connection.
struct Client {
    /// The client's address, for narration.
    peer: SocketAddr,
    /// Bytes of the line being received; bounded by [`MAX_LINE`].
    lines: LineDecoder,
}

/// The echo server's state: the handler the event loop calls.
struct EchoServer {
    /// Open connections, by token. Removed in `on_closed`.
    clients: HashMap<Token, Client>,
    verbosity: Verbosity,
    /// Set by another thread to ask the loop to stop (the demo's client does this).
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    fn new(verbosity: Verbosity) -> EchoServer {
        EchoServer {
            clients: HashMap::new(),
            verbosity,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Answers one complete line (or reports it too long) to `peer`. Returns false when the
/// client had to be dropped, so the rest of its lines are not answered.
fn answer(
    ctx: &mut Ctx,
    conn: Token,
    line: Line<'_>,
    verbosity: Verbosity,
    peer: SocketAddr,
) -> bool {
    let reply = match line {
        Line::Complete(l) => [b"Received: ", l, b"\n"].concat(),
        Line::TooLong => {
            format!("Error: line longer than {MAX_LINE} bytes, skipped\n").into_bytes()
        }
    };
    if verbosity >= Verbosity::Calls {
        narrate(
            "server",
            &format!("send(\"{}\")", escape_bytes(&reply, 40)),
            &format!("-> {} bytes", reply.len()),
        );
    }
    match ctx.send(conn, &reply) {
        Ok(()) => true,
        // The client sends lines but does not read the replies, and 4 MiB of them are
        // queued: it is broken or hostile. Drop it so it cannot hold our memory.
        Err(SendError::Full(_)) => {
            if verbosity >= Verbosity::Connections {
                say!(
                    "  {} {peer} does not read its replies: disconnected",
                    warn("drop")
                );
            }
            ctx.abort(conn);
            false
        }
        Err(SendError::Gone) => false,
    }
}

impl Handler for EchoServer {
    // A client connected: accept() gave us a new socket just for it.
    fn on_accept(&mut self, _ctx: &mut Ctx, _l: Token, conn: Token, peer: SocketAddr) {
        if self.verbosity >= Verbosity::Connections {
            narrate(
                "server",
                "accept()",
                &format!("-> new socket for {peer}; the listener keeps listening"),
            );
        }
        self.clients.insert(
            conn,
            Client {
                peer,
                lines: LineDecoder::new(MAX_LINE),
            },
        );
    }

    // accept() failed, typically EMFILE (out of file descriptors); the core retries.
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: Token, err: &io::Error) {
        if self.verbosity >= Verbosity::Connections {
            say!("  {} accept() failed: {err} (retrying)", warn("note"));
        }
    }

    // Some bytes of the stream: any piece of a line, or several lines.
    fn on_data(&mut self, ctx: &mut Ctx, conn: Token, data: &[u8]) {
        if self.verbosity >= Verbosity::Calls {
            narrate(
                "server",
                "recv()",
                &format!("-> {} \"{}\"", bytes(data.len()), escape_bytes(data, 40)),
            );
        }
        let verbosity = self.verbosity;
        let Some(client) = self.clients.get_mut(&conn) else {
            return;
        };
        let peer = client.peer;
        // Each line is answered as the decoder finds it, straight from the received
        // bytes; after a drop the remaining lines are skipped.
        let mut open = true;
        client.lines.push(data, |line| {
            if open {
                open = answer(ctx, conn, line, verbosity, peer);
            }
        });
    }

    // recv() returned 0: the client will send nothing more. A last line without a
    // newline is still answered (friendlier to `printf hi | nc`), then we close.
    fn on_eof(&mut self, ctx: &mut Ctx, conn: Token) {
        if self.verbosity >= Verbosity::Calls {
            narrate(
                "server",
                "recv()",
                "-> 0 bytes: EOF, the client closed its side",
            );
        }
        let verbosity = self.verbosity;
        if let Some(c) = self.clients.get_mut(&conn) {
            if let Some(last) = c.lines.take_partial() {
                answer(ctx, conn, Line::Complete(&last), verbosity, c.peer);
            }
        }
        if self.verbosity >= Verbosity::Calls {
            narrate("server", "close()", "-> after the last reply is sent");
        }
        ctx.close(conn);
    }

    // The connection is gone: forget the client.
    fn on_closed(&mut self, _ctx: &mut Ctx, conn: Token, why: Closed) {
        if let Some(c) = self.clients.remove(&conn) {
            if self.verbosity == Verbosity::Connections {
                let how = match why {
                    Closed::Error(e) => format!("error: {e}"),
                    Closed::PeerClosed => "closed by the client".into(),
                    Closed::ByUs => "closed".into(),
                };
                say!(
                    "  {} {} {how} ({} open)",
                    dim("bye"),
                    c.peer,
                    self.clients.len()
                );
            }
        }
    }

    // The demo's client asked us to stop.
    fn on_wake(&mut self, ctx: &mut Ctx) {
        if self.stop.load(Ordering::SeqCst) {
            ctx.stop();
        }
    }
}

/// Binds the server's listening socket on a new event loop.
fn listen(addr: SocketAddr) -> Result<(EventLoop, SocketAddr)> {
    let mut ev = EventLoop::new()?;
    let token = ev
        .ctx()
        .listen(addr, BACKLOG)
        .map_err(|e| bind_error(addr, e, "--bind"))?;
    let local = ev
        .ctx()
        .local_addr(token)
        .context("listener has no address")?;
    Ok((ev, local))
}

/// `--role server`.
fn serve(args: &Args) -> Result<()> {
    // A thousand clients need a thousand descriptors; the usual soft limit is 1024.
    let _ = crate::sys::raise_nofile_limit(65_536);
    let (ev, local) = listen(args.bind)?;
    let mut ev = ev.with_signals()?;
    say!(
        "01-tcp-echo server listening on {} (each line L gets \"Received: L\"; Ctrl-C stops)",
        bold(local)
    );
    say!(
        "  try: {}",
        code(format!("nc {} {}", local.ip(), local.port()))
    );
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Connections
    };
    let mut server = EchoServer::new(verbosity);
    match args.duration {
        Some(s) => ev.run_for(&mut server, Duration::from_secs_f64(s))?,
        None => ev.run(&mut server)?,
    }
    say!(
        "server stopped ({} clients were still connected)",
        server.clients.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The client: plain blocking calls, as a first socket program is written.
// ---------------------------------------------------------------------------------------

/// `--role client`: send lines, print whatever comes back, until the server closes or
/// stays silent for `--timeout` seconds.
fn client(args: &Args) -> Result<()> {
    let stream = TcpStream::connect_timeout(&args.connect, Duration::from_secs(5))
        .map_err(|e| connect_error(args.connect, e))?;
    let idle = Duration::from_secs_f64(args.timeout.max(0.01));
    stream.set_read_timeout(Some(idle))?;
    eprintln!(
        "{}",
        dim(format!(
            "connected to {} from {}",
            args.connect,
            stream.local_addr()?
        ))
    );
    let mut writer = stream.try_clone()?;
    let messages = args.message.clone();
    // A second thread sends, so replies are printed as they arrive even while the
    // user is still typing.
    let sender = thread::spawn(move || -> io::Result<()> {
        if messages.is_empty() {
            for line in io::stdin().lock().lines() {
                writer.write_all(format!("{}\n", line?).as_bytes())?;
            }
        } else {
            for m in messages {
                writer.write_all(format!("{m}\n").as_bytes())?;
            }
        }
        // Tell the server we are done: it reads EOF, answers what is left, and closes.
        writer.shutdown(Shutdown::Write)
    });
    let mut reader = stream;
    let mut buf = [0u8; 16 * 1024];
    let mut out = io::stdout();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                    break; // stdout closed (a pipe into `head`)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if sender.is_finished() {
                    eprintln!(
                        "{}",
                        dim(format!(
                            "no reply for {:.1} s: giving up",
                            idle.as_secs_f64()
                        ))
                    );
                    break;
                }
            }
            Err(e) => return Err(e).context("reading replies"),
        }
    }
    if sender.is_finished() {
        match sender.join() {
            Ok(Err(e)) if e.kind() != io::ErrorKind::NotConnected => {
                return Err(e).context("sending to the server")
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The demo: the story of a connection, in order.
// ---------------------------------------------------------------------------------------

fn demo() -> Result<()> {
    say!(
        "{}",
        bold("01-tcp-echo: one server, one client, every call narrated")
    );

    step(1, "The server sets up");
    narrate("server", "socket(AF_INET, SOCK_STREAM)", "-> a TCP socket");
    narrate(
        "server",
        "setsockopt(SO_REUSEADDR, 1)",
        "-> restarts may rebind the port (step 8)",
    );
    let (mut ev, addr) = listen("127.0.0.1:0".parse()?)?;
    narrate(
        "server",
        "bind(127.0.0.1:0)",
        &format!("-> {addr} (port 0: the kernel chose a free port)"),
    );
    narrate(
        "server",
        &format!("listen(backlog={BACKLOG})"),
        "-> waiting for connections",
    );
    let mut server = EchoServer::new(Verbosity::Calls);
    let stop = Arc::clone(&server.stop);
    let waker = ev.ctx().waker();
    let handle = thread::spawn(move || -> io::Result<EchoServer> {
        ev.run(&mut server)?;
        Ok(server)
        // `ev` is dropped here: every socket the server still holds is closed.
    });

    let result = client_story(addr);
    stop.store(true, Ordering::SeqCst);
    waker.wake()?;
    let mut b = result?;
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    reuseaddr_story(addr, &mut b)?;

    say!();
    say!("{}", bold("What you saw"));
    say!("  - accept() gives the server a new socket per client; the listener keeps listening.");
    say!("  - One write of three lines was one recv(); seven one-byte writes were several recvs.");
    say!("    TCP delivers a stream of bytes: the program finds the lines (the '\\n').");
    say!("  - recv() returning 0 bytes is EOF: the peer closed its side.");
    say!("  - connect() to a port nobody listens on fails at once with ECONNREFUSED.");
    say!("  - The side that closes first keeps the port in TIME_WAIT; SO_REUSEADDR lets a");
    say!("    restarted server bind it anyway.");
    say!();
    say!(
        "Next: {} to see the lesson, or serve real clients:",
        code("lab show 01")
    );
    say!(
        "  {}   and in another terminal   {}",
        code("lab run 01 --role server"),
        code("nc 127.0.0.1 7001")
    );
    Ok(())
}

/// Steps 2 to 7, from the client's side. Returns the connection kept open for step 8.
fn client_story(addr: SocketAddr) -> Result<TcpStream> {
    step(2, "A client connects");
    let mut c = TcpStream::connect(addr).map_err(|e| connect_error(addr, e))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    narrate(
        "client",
        &format!("socket() + connect({addr})"),
        &format!("-> connected from {} (an ephemeral port)", c.local_addr()?),
    );
    // Let the server's accept() line print before the next step's lines.
    thread::sleep(Duration::from_millis(50));

    step(3, "One line, one reply");
    send(&mut c, b"hello\n")?;
    expect_reply(&mut c, b"Received: hello\n")?;

    step(4, "Three lines in ONE write");
    send(&mut c, b"one\ntwo\nthree\n")?;
    expect_reply(&mut c, b"Received: one\nReceived: two\nReceived: three\n")?;
    aside("one send() of 14 bytes, three replies: the server split the stream at each '\\n'.");

    step(5, "One line, one byte per write");
    c.set_nodelay(true)?; // so each 1-byte write leaves at once instead of being batched
    narrate(
        "client",
        "setsockopt(TCP_NODELAY, 1)",
        "-> small writes are sent at once",
    );
    for b in b"slowly\n" {
        narrate(
            "client",
            &format!("send(\"{}\")", escape_bytes(&[*b], 4)),
            "-> 1 byte",
        );
        c.write_all(&[*b])?;
        // A pause between bytes, so each arrives on its own (as typed by a person).
        thread::sleep(Duration::from_millis(30));
    }
    expect_reply(&mut c, b"Received: slowly\n")?;
    aside("seven writes, one line: the server answered only when the '\\n' arrived.");

    step(6, "Closing: EOF");
    c.shutdown(Shutdown::Write)?;
    narrate(
        "client",
        "shutdown(SHUT_WR)",
        "-> \"I will send no more\"; the server reads EOF",
    );
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf)?;
    narrate(
        "client",
        "recv()",
        &format!("-> {n} bytes: the server closed too"),
    );
    if n != 0 {
        return Err(LabError::failed(format!("expected EOF, got {n} bytes")).into());
    }
    drop(c);
    narrate("client", "close()", "-> done");

    step(7, "Connecting to a port where nobody listens");
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
        // `l` is closed here, so nothing listens on this port any more.
    };
    match TcpStream::connect(closed_port) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => narrate(
            "client",
            &format!("connect_ex({closed_port})"),
            &format!(
                "-> {} (ECONNREFUSED): nothing listens there",
                e.raw_os_error().unwrap_or(111)
            ),
        ),
        Err(e) => narrate(
            "client",
            &format!("connect_ex({closed_port})"),
            &format!("-> {e}"),
        ),
        Ok(_) => narrate(
            "client",
            &format!("connect({closed_port})"),
            "-> connected?! something else took the port",
        ),
    }
    aside("Python's connect_ex() returns this errno instead of raising; connect() raises it.");

    step(8, "Restarting a server: TIME_WAIT and SO_REUSEADDR");
    let keep = TcpStream::connect(addr)?;
    keep.set_read_timeout(Some(Duration::from_secs(5)))?;
    narrate(
        "client",
        "connect()",
        &format!("-> a second client, {}", keep.local_addr()?),
    );
    thread::sleep(Duration::from_millis(50));
    narrate("server", "(stops, closing every socket first)", "");
    Ok(keep)
}

/// Step 8: the server closed first, so its port is in TIME_WAIT; try to bind it again.
fn reuseaddr_story(addr: SocketAddr, keep: &mut TcpStream) -> Result<()> {
    let mut buf = [0u8; 16];
    let n = keep.read(&mut buf).unwrap_or(0);
    narrate(
        "client",
        "recv()",
        &format!("-> {n} bytes: EOF, the server closed first"),
    );
    // Closing our side lets the server's side finish into TIME_WAIT.
    keep.shutdown(Shutdown::Both).ok();
    thread::sleep(Duration::from_millis(50));
    let plain = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    match plain.bind(&addr.into()) {
        Err(e) => narrate(
            "server",
            &format!("bind({addr}) without SO_REUSEADDR"),
            &format!("-> {} ({e})", warn("fails")),
        ),
        Ok(()) => narrate(
            "server",
            &format!("bind({addr}) without SO_REUSEADDR"),
            "-> worked this time (the kernel had nothing in TIME_WAIT)",
        ),
    }
    drop(plain);
    let reuse = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    reuse.set_reuse_address(true)?;
    match reuse.bind(&addr.into()) {
        Ok(()) => narrate(
            "server",
            &format!("bind({addr}) with SO_REUSEADDR"),
            "-> ok: the restarted server can listen",
        ),
        Err(e) => narrate(
            "server",
            &format!("bind({addr}) with SO_REUSEADDR"),
            &format!("-> {e}"),
        ),
    }
    Ok(())
}

fn send(c: &mut TcpStream, data: &[u8]) -> Result<()> {
    // Narrate first: once the bytes are out, the server may print before we do.
    narrate(
        "client",
        &format!("send(\"{}\")", escape_bytes(data, 40)),
        &format!("-> {} bytes in one call", data.len()),
    );
    c.write_all(data)?;
    Ok(())
}

/// Reads until `want` has arrived, narrating each recv; anything else fails the demo.
fn expect_reply(c: &mut TcpStream, want: &[u8]) -> Result<()> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want.len() {
        let n = c.read(&mut buf).context("waiting for the server's reply")?;
        if n == 0 {
            break;
        }
        narrate(
            "client",
            "recv()",
            &format!("-> {} bytes \"{}\"", n, escape_bytes(&buf[..n], 48)),
        );
        got.extend_from_slice(&buf[..n]);
    }
    if got != want {
        return Err(LabError::failed(format!(
            "expected \"{}\", got \"{}\"",
            escape_bytes(want, 80),
            escape_bytes(&got, 80)
        ))
        .into());
    }
    Ok(())
}
