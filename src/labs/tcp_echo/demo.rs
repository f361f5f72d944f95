//! The demo: the story of a connection, in order, every call narrated with its
//! addresses: connect, send, a reply split by the stream, EOF, then `SO_REUSEADDR`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Socket, Type};

use super::server::{listen, EchoServer};
use super::{Verbosity, BACKLOG};
use crate::core::LoopThread;
use crate::error::{connect_error, LabError};
use crate::out::{aside, narrate, step};
use crate::out::{bold, code, escape_bytes, warn};
use crate::say;

pub(super) fn demo() -> Result<()> {
    say!(
        "{}",
        bold("01-tcp-echo: one server, one client, every call narrated")
    )?;

    step(1, "The server sets up")?;
    narrate("server", "socket(AF_INET, SOCK_STREAM)", "-> a TCP socket")?;
    narrate(
        "server",
        "setsockopt(SO_REUSEADDR, 1)",
        "-> restarts may rebind the port (step 8)",
    )?;
    let (ev, addr) = listen("127.0.0.1:0".parse()?)?;
    narrate(
        "server",
        "bind(127.0.0.1:0)",
        &format!("-> {addr} (port 0: the kernel chose a free port)"),
    )?;
    narrate(
        "server",
        &format!("listen(backlog={BACKLOG})"),
        "-> waiting for connections",
    )?;
    let server = EchoServer::new(Verbosity::Calls);
    // When the loop ends, its sockets close with it (the story below relies on that).
    let server = LoopThread::spawn("echo-server", ev, server)?;

    let result = client_story(addr);
    server.stop()?;
    let mut b = result?;
    server.join()?;
    reuseaddr_story(addr, &mut b)?;

    say!()?;
    say!("{}", bold("What you saw"))?;
    say!("  - accept() gives the server a new socket per client; the listener keeps listening.")?;
    say!("  - One write of three lines was one recv(); seven one-byte writes were several recvs.")?;
    say!("    TCP delivers a stream of bytes: the program finds the lines (the '\\n').")?;
    say!("  - recv() returning 0 bytes is EOF: the peer closed its side.")?;
    say!("  - connect() to a port nobody listens on fails at once with ECONNREFUSED.")?;
    say!("  - The side that closes first keeps the port in TIME_WAIT; SO_REUSEADDR lets a")?;
    say!("    restarted server bind it anyway.")?;
    say!()?;
    say!(
        "Next: {} to see the lesson, or serve real clients:",
        code("lab show 01")
    )?;
    say!(
        "  {}   and in another terminal   {}",
        code("lab run 01 --role server"),
        code("nc 127.0.0.1 7001")
    )?;
    Ok(())
}

/// Steps 2 to 7, from the client's side. Returns the connection kept open for step 8.
fn client_story(addr: SocketAddr) -> Result<TcpStream> {
    step(2, "A client connects")?;
    let mut c = TcpStream::connect(addr).map_err(|e| connect_error(addr, e))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    narrate(
        "client",
        &format!("socket() + connect({addr})"),
        &format!("-> connected from {} (an ephemeral port)", c.local_addr()?),
    )?;
    // Let the server's accept() line print before the next step's lines.
    thread::sleep(Duration::from_millis(50));

    step(3, "One line, one reply")?;
    send(&mut c, b"hello\n")?;
    expect_reply(&mut c, b"Received: hello\n")?;

    step(4, "Three lines in ONE write")?;
    send(&mut c, b"one\ntwo\nthree\n")?;
    expect_reply(&mut c, b"Received: one\nReceived: two\nReceived: three\n")?;
    aside("one send() of 14 bytes, three replies: the server split the stream at each '\\n'.")?;

    step(5, "One line, one byte per write")?;
    c.set_nodelay(true)?; // so each 1-byte write leaves at once instead of being batched
    narrate(
        "client",
        "setsockopt(TCP_NODELAY, 1)",
        "-> small writes are sent at once",
    )?;
    for b in b"slowly\n" {
        narrate(
            "client",
            &format!("send(\"{}\")", escape_bytes(&[*b], 4)),
            "-> 1 byte",
        )?;
        c.write_all(&[*b])?;
        // A pause between bytes, so each arrives on its own (as typed by a person).
        thread::sleep(Duration::from_millis(30));
    }
    expect_reply(&mut c, b"Received: slowly\n")?;
    aside("seven writes, one line: the server answered only when the '\\n' arrived.")?;

    step(6, "Closing: EOF")?;
    c.shutdown(Shutdown::Write)?;
    narrate(
        "client",
        "shutdown(SHUT_WR)",
        "-> \"I will send no more\"; the server reads EOF",
    )?;
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf)?;
    narrate(
        "client",
        "recv()",
        &format!("-> {n} bytes: the server closed too"),
    )?;
    if n != 0 {
        return Err(LabError::failed(format!("expected EOF, got {n} bytes")).into());
    }
    drop(c);
    narrate("client", "close()", "-> done")?;

    step(7, "Connecting to a port where nobody listens")?;
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
        )?,
        Err(e) => narrate(
            "client",
            &format!("connect_ex({closed_port})"),
            &format!("-> {e}"),
        )?,
        Ok(_) => narrate(
            "client",
            &format!("connect({closed_port})"),
            "-> connected?! something else took the port",
        )?,
    }
    aside("Python's connect_ex() returns this errno instead of raising; connect() raises it.")?;

    step(8, "Restarting a server: TIME_WAIT and SO_REUSEADDR")?;
    let keep = TcpStream::connect(addr)?;
    keep.set_read_timeout(Some(Duration::from_secs(5)))?;
    narrate(
        "client",
        "connect()",
        &format!("-> a second client, {}", keep.local_addr()?),
    )?;
    thread::sleep(Duration::from_millis(50));
    narrate("server", "(stops, closing every socket first)", "")?;
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
    )?;
    // Closing our side lets the server's side finish into TIME_WAIT.
    keep.shutdown(Shutdown::Both).ok();
    thread::sleep(Duration::from_millis(50));
    let plain = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    match plain.bind(&addr.into()) {
        Err(e) => narrate(
            "server",
            &format!("bind({addr}) without SO_REUSEADDR"),
            &format!("-> {} ({e})", warn("fails")),
        )?,
        Ok(()) => narrate(
            "server",
            &format!("bind({addr}) without SO_REUSEADDR"),
            "-> worked this time (the kernel had nothing in TIME_WAIT)",
        )?,
    }
    drop(plain);
    let reuse = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    reuse.set_reuse_address(true)?;
    match reuse.bind(&addr.into()) {
        Ok(()) => narrate(
            "server",
            &format!("bind({addr}) with SO_REUSEADDR"),
            "-> ok: the restarted server can listen",
        )?,
        Err(e) => narrate(
            "server",
            &format!("bind({addr}) with SO_REUSEADDR"),
            &format!("-> {e}"),
        )?,
    }
    Ok(())
}

pub(super) fn send(c: &mut TcpStream, data: &[u8]) -> Result<()> {
    // Narrate first: once the bytes are out, the server may print before we do.
    narrate(
        "client",
        &format!("send(\"{}\")", escape_bytes(data, 40)),
        &format!("-> {} bytes in one call", data.len()),
    )?;
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
        )?;
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
