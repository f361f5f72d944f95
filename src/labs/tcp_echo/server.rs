//! The server: one event loop, one `Client` per connection; each complete line gets
//! `Received: L` back, a line over [`super::MAX_LINE`] one `Error:` reply.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use anyhow::{Context, Result};

use super::{bytes, Args, Verbosity, BACKLOG, MAX_LINE};
use crate::core::{Closed, ConnId, Ctx, EventLoop, Handler, ListenerId, SendError};
use crate::error::bind_error;
use crate::out::narrate;
use crate::out::OrStopLater;
use crate::out::{bold, code, dim, escape_bytes, warn};
use crate::say;
use crate::wire::lines::{Line, LineDecoder};

/// What the server keeps per connection.
pub(super) struct Client {
    /// The client's address, for narration.
    peer: SocketAddr,
    /// Bytes of the line being received; bounded by [`MAX_LINE`].
    lines: LineDecoder,
}

/// The echo server's state: the handler the event loop calls.
pub(super) struct EchoServer {
    /// Open connections, by token. Removed in `on_closed`.
    clients: HashMap<ConnId, Client>,
    verbosity: Verbosity,
}

impl EchoServer {
    pub(super) fn new(verbosity: Verbosity) -> EchoServer {
        EchoServer {
            clients: HashMap::new(),
            verbosity,
        }
    }
}

/// Answers one complete line (or reports it too long) to `peer`. Returns false when the
/// client had to be dropped, so the rest of its lines are not answered.
fn answer(
    ctx: &mut Ctx,
    conn: ConnId,
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
        )
        .or_stop_later();
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
                )
                .or_stop_later();
            }
            ctx.abort(conn);
            false
        }
        Err(SendError::Gone) => false,
    }
}

impl Handler for EchoServer {
    // A client connected: accept() gave us a new socket just for it.
    fn on_accept(&mut self, _ctx: &mut Ctx, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        if self.verbosity >= Verbosity::Connections {
            narrate(
                "server",
                "accept()",
                &format!("-> new socket for {peer}; the listener keeps listening"),
            )
            .or_stop_later();
        }
        self.clients.insert(
            conn,
            Client {
                peer,
                lines: LineDecoder::new(MAX_LINE),
            },
        );
    }

    // accept() failed, typically EMFILE (out of file descriptors); the core retries,
    // backing off, and calls this once per attempt: one line per back-off period.
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: ListenerId, err: &io::Error, n: u64) {
        if self.verbosity >= Verbosity::Connections {
            say!(
                "  {} accept() failed: {err} ({n} in a row; new clients wait in the backlog, retrying within 1 s)",
                warn("note")
            )
            .or_stop_later();
        }
    }

    // Some bytes of the stream: any piece of a line, or several lines.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        if self.verbosity >= Verbosity::Calls {
            narrate(
                "server",
                "recv()",
                &format!("-> {} \"{}\"", bytes(data.len()), escape_bytes(data, 40)),
            )
            .or_stop_later();
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
    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if self.verbosity >= Verbosity::Calls {
            narrate(
                "server",
                "recv()",
                "-> 0 bytes: EOF, the client closed its side",
            )
            .or_stop_later();
        }
        let verbosity = self.verbosity;
        if let Some(c) = self.clients.get_mut(&conn) {
            if let Some(last) = c.lines.take_partial() {
                answer(ctx, conn, Line::Complete(&last), verbosity, c.peer);
            }
        }
        if self.verbosity >= Verbosity::Calls {
            narrate("server", "close()", "-> after the last reply is sent").or_stop_later();
        }
        ctx.close(conn);
    }

    // The connection is gone: forget the client.
    fn on_closed(&mut self, _ctx: &mut Ctx, conn: ConnId, why: Closed) {
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
                )
                .or_stop_later();
            }
        }
    }
}

/// Binds the server's listening socket on a new event loop.
pub(super) fn listen(addr: SocketAddr) -> Result<(EventLoop, SocketAddr)> {
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
pub(super) fn serve(args: &Args) -> Result<()> {
    // A thousand clients need a thousand descriptors; the usual soft limit is 1024.
    let _ = crate::sys::raise_nofile_limit(65_536);
    let (ev, local) = listen(args.bind)?;
    let mut ev = ev.with_signals()?;
    say!(
        "01-tcp-echo server listening on {} (each line L gets \"Received: L\"; Ctrl-C stops)",
        bold(local)
    )?;
    say!(
        "  try: {}",
        code(format!("nc {} {}", local.ip(), local.port()))
    )?;
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Connections
    };
    let mut server = EchoServer::new(verbosity);
    // Also ends when stdout closes (`| head`), with that error: see `out`.
    let limit = args.duration;
    crate::out::run_while_stdout_open(&mut ev, &mut server, limit)?;
    say!(
        "server stopped ({} clients were still connected)",
        server.clients.len()
    )?;
    Ok(())
}
