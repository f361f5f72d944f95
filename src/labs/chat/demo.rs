//! The demo: a chat server on its event loop (in a thread) and three scripted clients
//! with plain blocking sockets, ann, bob and cat, in one process on loopback.
//!
//! The story, in order: the server listens; ann and bob connect and choose nicknames;
//! ann speaks and only bob hears it; bob types one byte at a time and the server waits
//! for the newline; cat connects and never reads while ann floods the room, so cat's
//! queue grows until the server drops it as `too slow` (bob, who reads, gets every
//! line); bob quits; ann's connection is reset. The server narrates each event its loop
//! handles (readable, writable, queue growth, drops).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::server::{ChatServer, Options, Verbosity, OUTBOUND_CAP};
use crate::core::LoopThread;
use crate::error::{connect_error, LabError};
use crate::out::{aside, bold, code, escape_bytes, narrate, step};
use crate::say;

/// Lines ann floods the room with, and their length: 200 x 4000 bytes = 800 KB, well
/// past what cat's small socket buffers plus its 256 KiB queue can hold.
const FLOOD_LINES: usize = 200;
const FLOOD_LEN: usize = 4000;

/// How long a scripted client waits for an expected line before the demo fails.
const WAIT: Duration = Duration::from_secs(10);

/// Runs the demo.
pub fn run() -> Result<()> {
    say!(
        "{}",
        bold("05-chat: one event loop, three clients, every event narrated")
    )?;

    step(1, "The server listens")?;
    let (mut ev, addr) = super::listen("127.0.0.1:0".parse()?)?;
    narrate(
        "server",
        &format!("listen({addr})"),
        "-> one thread, one loop: it sleeps in epoll until a socket is ready",
    )?;
    let mut server = ChatServer::new(Options {
        idle_timeout: None,
        keepalive: None,
        verbosity: Verbosity::Events,
    });
    server.start(ev.ctx());
    let handle = LoopThread::spawn("chat-server", ev, server)?;

    let story = clients_story(addr);
    handle.stop()?;
    let server = handle.join()?;
    story?;

    say!()?;
    say!("{}", bold("What you saw"))?;
    say!("  - One thread served every client: the loop only touched sockets that were ready.")?;
    say!("  - Nobody gets their own line back; everyone else gets `<nick> text`.")?;
    say!("  - Bytes that trickle in are held until the newline: framing is the server's job.")?;
    say!(
        "  - cat stopped reading: its queue grew to the cap ({} KiB) and it was dropped as",
        OUTBOUND_CAP / 1024
    )?;
    say!("    `too slow`, while bob, who reads, got all {FLOOD_LINES} lines. A blocking send to cat would")?;
    say!("    have frozen the whole room instead.")?;
    say!(
        "  - Departures are announced the moment the loop sees them: /quit, EOF, reset ({} lines delivered in all).",
        server.stats.delivered
    )?;
    say!()?;
    say!(
        "Next: {} to read the lesson, or chat for real:",
        code("lab show 05")
    )?;
    say!(
        "  {}   then in other terminals   {}",
        code("lab run 05 --role server"),
        code("nc 127.0.0.1 7005")
    )?;
    Ok(())
}

/// A scripted client: a blocking socket with a read timeout, and what it has read
/// that is not a whole line yet.
struct Person {
    name: &'static str,
    sock: TcpStream,
    pending: Vec<u8>,
}

impl Person {
    fn connect(name: &'static str, addr: SocketAddr) -> Result<Person> {
        let sock = TcpStream::connect(addr).map_err(|e| connect_error(addr, e))?;
        sock.set_read_timeout(Some(WAIT))?;
        sock.set_nodelay(true)?;
        narrate(name, &format!("connect({addr})"), "-> connected")?;
        Ok(Person {
            name,
            sock,
            pending: Vec::new(),
        })
    }

    fn say(&mut self, line: &str) -> Result<()> {
        narrate(
            self.name,
            &format!("send(\"{}\\n\")", escape_bytes(line.as_bytes(), 36)),
            "",
        )?;
        self.sock.write_all(format!("{line}\n").as_bytes())?;
        Ok(())
    }

    /// Reads lines until one equals `want`, narrating each; fails after [`WAIT`].
    fn hears(&mut self, want: &str) -> Result<()> {
        let until = Instant::now() + WAIT;
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line[..i]).to_string();
                narrate(
                    self.name,
                    "recv()",
                    &format!("-> \"{}\"", escape_bytes(line.as_bytes(), 60)),
                )?;
                if line == want {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                return Err(
                    LabError::failed(format!("{} never heard \"{want}\"", self.name)).into(),
                );
            }
            let mut buf = [0u8; 4096];
            let n = self
                .sock
                .read(&mut buf)
                .with_context(|| format!("{} waiting for \"{want}\"", self.name))?;
            if n == 0 {
                return Err(LabError::failed(format!(
                    "{}: the server closed before \"{want}\"",
                    self.name
                ))
                .into());
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

fn clients_story(addr: SocketAddr) -> Result<()> {
    step(2, "ann and bob connect and choose nicknames")?;
    let mut ann = Person::connect("ann", addr)?;
    ann.hears("* welcome, you are guest1; /nick NAME to change, /help for commands")?;
    ann.say("/nick ann")?;
    ann.hears("* guest1 is now ann")?;
    let mut bob = Person::connect("bob", addr)?;
    bob.hears("* welcome, you are guest2; /nick NAME to change, /help for commands")?;
    ann.hears("* guest2 joined")?;
    bob.say("/nick bob")?;
    ann.hears("* guest2 is now bob")?;
    aside("accept() made a socket per client; each join is news for everyone else.")?;

    step(3, "ann speaks: everyone else hears it, ann does not")?;
    ann.say("hello, bob")?;
    bob.hears("<ann> hello, bob")?;
    bob.say("/who")?;
    bob.hears("* online: ann, bob")?;

    step(4, "bob types one byte at a time")?;
    for b in b"slow typist\n" {
        bob.sock.write_all(&[*b])?;
        // As typed by a person: each byte leaves, and is read, on its own.
        thread::sleep(Duration::from_millis(25));
    }
    ann.hears("<bob> slow typist")?;
    aside("twelve reads of one byte, one line: the server kept the bytes until the '\\n'.")?;

    step(5, "cat connects and never reads while ann floods the room")?;
    let cat = {
        // A small receive buffer, so cat's side fills after a few KiB.
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.set_recv_buffer_size(4096)?;
        s.connect(&addr.into())
            .map_err(|e| connect_error(addr, e))?;
        narrate(
            "cat",
            &format!("connect({addr})"),
            "-> connected, and will never recv()",
        )?;
        TcpStream::from(s)
    };
    ann.hears("* guest3 joined")?;
    // bob reads in a thread of his own, as fast as lines come.
    let bob_reader = {
        let mut sock = bob.sock.try_clone()?;
        let pending = std::mem::take(&mut bob.pending);
        thread::spawn(move || -> Result<usize> {
            let mut got = pending;
            let mut seen = 0;
            let mut buf = vec![0u8; 64 * 1024];
            let until = Instant::now() + WAIT * 3;
            while seen < FLOOD_LINES && Instant::now() < until {
                let n = sock.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                seen = got
                    .split(|&b| b == b'\n')
                    .filter(|l| l.starts_with(b"<ann> flood "))
                    .count();
            }
            Ok(seen)
        })
    };
    narrate(
        "ann",
        &format!("send() x {FLOOD_LINES}"),
        &format!("-> {} bytes of lines", FLOOD_LINES * (FLOOD_LEN + 1)),
    )?;
    for i in 0..FLOOD_LINES {
        let mut line = format!("flood {i:04} ").into_bytes();
        line.resize(FLOOD_LEN, b'~');
        line.push(b'\n');
        ann.sock.write_all(&line)?;
    }
    ann.hears("* guest3 left (too slow)")?;
    let bob_got = bob_reader
        .join()
        .map_err(|_| anyhow::anyhow!("bob's reader panicked"))??;
    narrate(
        "bob",
        "recv() ...",
        &format!("-> all {bob_got} flood lines, in order"),
    )?;
    drop(cat);
    aside("cat's queue hit the cap and cat was dropped; bob never waited for cat.")?;

    step(6, "bob quits; ann's connection is reset")?;
    // bob's stream may still hold the tail of the flood and the drop notice.
    bob.say("/quit see you")?;
    ann.hears("* bob left (quit: see you)")?;
    bob.sock.shutdown(Shutdown::Both).ok();
    let _ = socket2::SockRef::from(&ann.sock).set_linger(Some(Duration::ZERO));
    narrate(
        "ann",
        "close() with SO_LINGER 0",
        "-> an RST: the server hears `reset`",
    )?;
    drop(ann);
    // Let the server narrate the reset before the summary.
    thread::sleep(Duration::from_millis(100));
    Ok(())
}
