//! `--role client`: a chat client with the keyboard and the socket on one loop.
//!
//! A chat client waits for two things at once: a line you type, and a line someone
//! else says. Blocking on either would miss the other. Here the socket is on the event
//! loop, and stdin is read by a thread of its own (a terminal or a pipe cannot be made
//! non-blocking portably) that hands each chunk to the loop through a bounded channel
//! and the loop's waker. stdin need not be a terminal: `printf 'hi\n' | lab run 05
//! --role client` works, so a client can be scripted.
//!
//! When stdin ends, the client shuts down its sending side; the server announces the
//! departure, flushes what it owes us and closes, and the client exits.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread;
use std::time::Duration;

use anyhow::Result;

use crate::core::{Closed, ConnId, Ctx, EventLoop, Handler};
use crate::error::connect_error;
use crate::out::dim;

/// Chunks from stdin waiting for the loop. 64 chunks of up to 8 KiB: a paste of half a
/// megabyte; beyond that the reading thread waits, so memory stays bounded.
const STDIN_QUEUE: usize = 64;

/// What the stdin thread hands over: bytes, or the end of input.
enum Input {
    Bytes(Vec<u8>),
    End,
}

/// The client's state: the connection and the stdin channel.
struct ChatClient {
    /// The connection to the server.
    conn: ConnId,
    /// Chunks read from stdin by the reading thread.
    input: Receiver<Input>,
    /// stdin ended while bytes were still queued: shut down once they are sent.
    end_pending: bool,
}

/// Connects, asks for `nick`, and relays stdin and the socket until either ends.
pub fn run(addr: SocketAddr, nick: Option<&str>) -> Result<()> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| connect_error(addr, e))?;
    eprintln!(
        "{}",
        dim(format!(
            "connected to {addr} from {}; type lines, /help for commands, Ctrl-D to leave",
            stream.local_addr()?
        ))
    );
    let _ = stream.set_nodelay(true);
    let mut ev = EventLoop::new()?.with_signals()?;
    let conn = ev.ctx().adopt(stream)?;
    if let Some(n) = nick {
        let _ = ev.ctx().send(conn, format!("/nick {n}\n").as_bytes());
    }
    let (tx, rx) = sync_channel(STDIN_QUEUE);
    let waker = ev.ctx().waker();
    // Blocking reads of stdin, in their own thread; when the loop ends, the process
    // exits and this thread with it.
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 8192];
        loop {
            let item = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => Input::End,
                Ok(n) => Input::Bytes(buf[..n].to_vec()),
            };
            let end = matches!(item, Input::End);
            if tx.send(item).is_err() || waker.wake().is_err() || end {
                return;
            }
        }
    });
    let mut client = ChatClient {
        conn,
        input: rx,
        end_pending: false,
    };
    ev.run(&mut client)?;
    Ok(())
}

impl Handler for ChatClient {
    // Lines from the server (or pieces of them): straight to stdout.
    fn on_data(&mut self, ctx: &mut Ctx, _conn: ConnId, data: &[u8]) {
        let mut out = io::stdout().lock();
        if out.write_all(data).and_then(|_| out.flush()).is_err() {
            ctx.stop(); // stdout closed (a pipe into `head`): nothing left to do
        }
    }

    // The server closed the connection (after our EOF, a /quit, or a drop).
    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        ctx.close(conn);
        ctx.stop();
    }

    fn on_closed(&mut self, ctx: &mut Ctx, _conn: ConnId, why: Closed) {
        if let Closed::Error(e) = why {
            eprintln!("{}", dim(format!("connection lost: {e}")));
        }
        ctx.stop();
    }

    // Everything we typed has been sent; if stdin had ended meanwhile, say so now.
    fn on_drained(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if self.end_pending {
            self.end_pending = false;
            let _ = ctx.shutdown_write(conn);
        }
    }

    // The stdin thread has something for us.
    fn on_wake(&mut self, ctx: &mut Ctx) {
        while let Ok(item) = self.input.try_recv() {
            match item {
                Input::Bytes(b) => {
                    if let Err(e) = ctx.send(self.conn, &b) {
                        eprintln!("{}", dim(format!("cannot send: {e}")));
                        ctx.stop();
                        return;
                    }
                }
                // No more input: tell the server (it reads EOF and says we left).
                // (After what is still queued: shutting down now would cut it off.)
                Input::End if ctx.queued(self.conn) > 0 => self.end_pending = true,
                Input::End => {
                    let _ = ctx.shutdown_write(self.conn);
                }
            }
        }
    }
}
