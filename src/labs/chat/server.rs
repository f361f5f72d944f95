//! The chat server: one event loop, one [`Client`] per connection, every line a client
//! sends turned into lines for the others (the protocol is in [`crate::wire::chat`]).
//!
//! Read it in the order events happen: a client connects ([`Handler::on_accept`]), bytes
//! arrive ([`Handler::on_data`]) and are cut into lines, each line is a command whose
//! result is *queued* for its receivers ([`ChatServer::deliver`]), and a client goes
//! away by EOF, reset, `/quit`, idleness or slowness ([`ChatServer::depart`]). Plain
//! lines are gathered over a whole turn of the loop, from every sender, and each
//! receiver gets them in one send when the turn ends ([`Handler::on_turn_end`]).
//!
//! The one rule that makes a chat server hard: **never wait for one client**. A send to
//! a client that does not read would block, and with it everyone. Here the core queues
//! what the kernel cannot take yet, up to [`OUTBOUND_CAP`] per client; a client whose
//! queue is full has stopped reading and is dropped (`too slow`), so the others never
//! wait for it and memory stays bounded.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::{Closed, ConnId, Ctx, Handler, Limits, ListenerId, SendError, TimerId};
use crate::out::{aside, dim, narrate, warn, OrStopLater};
use crate::say;
use crate::wire::chat::{self, Command};
use crate::wire::lines::{Line, LineDecoder};

/// Most bytes waiting for one client. 256 KiB is thousands of chat lines: a client that
/// reads at all never gets near it, and a thousand stuck clients cost at most 256 MiB.
pub const OUTBOUND_CAP: usize = 256 * 1024;

/// The kernel send buffer of each client's socket. 64 KiB holds a screenful of chat
/// many times over; fixing it (instead of letting Linux grow it up to 4 MiB for a peer
/// that does not read) keeps a stuck client's cost at about 64 KiB of kernel memory
/// plus its queue, and makes the queue, which we can see and cap, take the overflow.
pub const SEND_BUFFER: usize = 64 * 1024;

/// The core's limits for a chat server: the outbound cap above, and reading paused
/// for a client that owes more than half of it (it is not reading our replies, so it
/// gets no more of its own lines served until it catches up or is dropped). The
/// turn's write budget covers a room of [`WRITES_PER_TURN`] clients.
pub fn limits() -> Limits {
    Limits {
        outbound_cap: OUTBOUND_CAP,
        high_water: OUTBOUND_CAP / 2,
        writes_per_turn: WRITES_PER_TURN,
        ..Limits::default()
    }
}

/// Writes made at once per turn (the core's default is 128). Lines are gathered over
/// a turn, so each client gets one send per turn: a budget below the room's size would
/// queue the rest and pay two `epoll_ctl` calls each (writable interest on, then off)
/// for the same bytes, tripling the system calls of a 1000-client room. 2048 sends of
/// a few microseconds each keep a turn within about 10 ms, so the loop still polls
/// often; a bigger room waits one poll for the rest, as before.
pub const WRITES_PER_TURN: usize = 2048;

/// Bytes of gathered lines that make the server send before the turn ends: a turn may
/// read up to 64 KiB from each of hundreds of senders, and the gathered lines are
/// held once, not per receiver, so 64 KiB bounds them while still making each send
/// carry hundreds of lines.
const GATHER_CAP: usize = 64 * 1024;

/// How much the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Only its address.
    Quiet,
    /// Joins, departures, drops, errors.
    Connections,
    /// Every event of the loop (readable, writable, queues): the demo.
    Events,
}

/// How the server behaves; set from the flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Disconnect a client silent for this long (`timeout`); `None` keeps it forever.
    pub idle_timeout: Option<Duration>,
    /// TCP keepalive idle time, so a peer whose machine vanished is noticed.
    pub keepalive: Option<Duration>,
    /// What to print.
    pub verbosity: Verbosity,
}

/// What the server keeps per connection; lives from accept to departure.
struct Client {
    /// The current nickname (unique case-insensitively, see `nicks`).
    nick: String,
    /// Bytes of the unfinished line; bounded by [`chat::MAX_LINE`].
    lines: LineDecoder,
    /// When this client last sent anything, for the idle timeout.
    last_heard: Instant,
    /// Its address, for the log.
    peer: SocketAddr,
    /// The queue size last narrated, in steps of [`NARRATE_STEP`] (demo only), so a
    /// growing queue is told a few times, not once per line.
    shown_queue: usize,
}

/// The demo narrates a queue's growth each time it crosses another 64 KiB.
const NARRATE_STEP: usize = 64 * 1024;

/// Counters, for the demo's summary and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Lines queued for a receiver (one message to 10 others counts 10).
    pub delivered: u64,
    /// Clients dropped because their queue was full.
    pub too_slow: u64,
}

/// The chat server: the handler the event loop calls.
pub struct ChatServer {
    /// Connected clients by token; removed when they depart.
    clients: HashMap<ConnId, Client>,
    /// Lower-cased nickname -> its client, so `/msg` and uniqueness are one lookup.
    nicks: HashMap<String, ConnId>,
    /// The number in the next `guestN`.
    next_guest: u64,
    opts: Options,
    /// Clients whose queue overflowed during the current delivery; dropped right after
    /// it (not during: we are iterating over the clients).
    doomed: Vec<ConnId>,
    /// Plain lines said during the current turn, by everyone, not yet broadcast: what
    /// 10 senders said in one turn goes to each receiver in one send, not 10 (or one
    /// per line). Bounded by [`GATHER_CAP`]; see `flush_said`.
    said: Vec<u8>,
    /// Who said which bytes of `said`, in order: (sender, end offset, lines); a run of
    /// lines from one sender is one entry.
    said_by: Vec<(ConnId, usize, u64)>,
    /// True while accept() fails (EMFILE): logged once, not every retry.
    accept_failing: bool,
    /// The periodic idle sweep, when an idle timeout is set.
    sweep: Option<TimerId>,
    /// Counters.
    pub stats: Stats,
}

impl ChatServer {
    /// A server with no clients yet. Call [`ChatServer::start`] once the loop exists.
    pub fn new(opts: Options) -> ChatServer {
        ChatServer {
            clients: HashMap::new(),
            nicks: HashMap::new(),
            next_guest: 1,
            opts,
            doomed: Vec::new(),
            said: Vec::new(),
            said_by: Vec::new(),
            accept_failing: false,
            sweep: None,
            stats: Stats::default(),
        }
    }

    /// Arms the idle sweep, if an idle timeout is set.
    pub fn start(&mut self, ctx: &mut Ctx) {
        if let Some(t) = self.opts.idle_timeout {
            self.sweep = Some(ctx.timer_after(sweep_every(t)));
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    fn events(&self) -> bool {
        self.opts.verbosity >= Verbosity::Events
    }

    fn log(&self) -> bool {
        self.opts.verbosity >= Verbosity::Connections
    }

    // ----- delivering lines ------------------------------------------------------

    /// Queues `lines` (complete lines, `count` of them, possibly in pieces) for `to`.
    /// A full queue dooms the client.
    fn deliver(&mut self, ctx: &mut Ctx, to: ConnId, lines: &[&[u8]], count: u64) {
        match ctx.send_parts(to, lines) {
            Ok(()) => {
                self.stats.delivered += count;
                if self.events() {
                    let queued = ctx.queued(to);
                    if let Some(c) = self.clients.get_mut(&to) {
                        if queued / NARRATE_STEP > c.shown_queue / NARRATE_STEP {
                            c.shown_queue = queued;
                            narrate(
                                "server",
                                &format!("queue of {} grows", c.nick),
                                &format!(
                                    "-> {queued} bytes wait (the cap is {OUTBOUND_CAP}): its socket buffer is full"
                                ),
                            ).or_stop_later();
                        } else if queued == 0 {
                            c.shown_queue = 0;
                        }
                    }
                }
            }
            // Its queue is full: it stopped reading. Never wait for it: drop it after
            // this delivery round, whatever it still had coming.
            Err(SendError::Full(_)) => {
                if !self.doomed.contains(&to) {
                    self.doomed.push(to);
                }
            }
            // Already closed; its departure is being handled.
            Err(SendError::Gone) => {}
        }
    }

    /// Sends `line` to one client (after the lines said before it).
    fn reply(&mut self, ctx: &mut Ctx, to: ConnId, line: &str) {
        self.flush_said(ctx);
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.deliver(ctx, to, &[&bytes], 1);
    }

    /// Sends `line` to every client but `except` (after the lines said before it).
    fn broadcast(&mut self, ctx: &mut Ctx, except: Option<ConnId>, line: &str) {
        self.flush_said(ctx);
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.broadcast_bytes(ctx, except, &bytes, 1);
    }

    /// The bytes are built once; each receiver's copy goes to its socket now (one
    /// write) or to its queue.
    fn broadcast_bytes(&mut self, ctx: &mut Ctx, except: Option<ConnId>, bytes: &[u8], n: u64) {
        let receivers: Vec<ConnId> = self
            .clients
            .keys()
            .copied()
            .filter(|&t| Some(t) != except)
            .collect();
        for to in receivers {
            self.deliver(ctx, to, &[bytes], n);
        }
    }

    /// A plain line from `from`, to everyone else: gathered with every line said in
    /// the same turn (by anyone), so a receiver costs one system call per turn however
    /// many lines and senders the turn had. Anything else the server sends flushes the
    /// gathered lines first, so the order is kept.
    fn say(&mut self, ctx: &mut Ctx, from: ConnId, line: &str) {
        self.said.extend_from_slice(line.as_bytes());
        self.said.push(b'\n');
        let end = self.said.len();
        match self.said_by.last_mut() {
            Some((t, e, n)) if *t == from => {
                *e = end;
                *n += 1;
            }
            _ => self.said_by.push((from, end, 1)),
        }
        if self.said.len() >= GATHER_CAP {
            self.flush_said(ctx);
        }
    }

    /// Broadcasts the gathered lines: each client gets, in one send, every gathered
    /// line but its own. Per-sender order holds because the bytes keep the order they
    /// were said in; a client that said nothing gets the whole buffer as it is, a
    /// sender gets the pieces around its own lines (sent as one, with `writev`).
    fn flush_said(&mut self, ctx: &mut Ctx) {
        if self.said_by.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.said);
        let by = std::mem::take(&mut self.said_by);
        let total: u64 = by.iter().map(|&(_, _, n)| n).sum();
        // Each sender's own runs: (start, end, lines).
        let mut own: HashMap<ConnId, Vec<(usize, usize, u64)>> = HashMap::new();
        let mut start = 0;
        for &(t, end, n) in &by {
            own.entry(t).or_default().push((start, end, n));
            start = end;
        }
        let receivers: Vec<ConnId> = self.clients.keys().copied().collect();
        let mut parts: Vec<&[u8]> = Vec::new();
        for to in receivers {
            match own.get(&to) {
                None => self.deliver(ctx, to, &[&bytes], total),
                Some(runs) => {
                    parts.clear();
                    let mut at = 0;
                    let mut mine = 0;
                    for &(s, e, n) in runs {
                        if s > at {
                            parts.push(&bytes[at..s]);
                        }
                        at = e;
                        mine += n;
                    }
                    if at < bytes.len() {
                        parts.push(&bytes[at..]);
                    }
                    if mine < total {
                        self.deliver(ctx, to, &parts, total - mine);
                    }
                }
            }
        }
        drop(parts);
        // Keep the allocations for the next turn.
        self.said = bytes;
        self.said.clear();
        self.said_by = by;
        self.said_by.clear();
    }

    /// The end of every event: clients whose queue overflowed meanwhile are dropped.
    /// (Gathered lines wait for the end of the turn.)
    fn settle(&mut self, ctx: &mut Ctx) {
        self.drop_doomed(ctx);
    }

    /// Drops every client whose queue overflowed. Their departures are news that may
    /// overflow more queues, hence the loop; it ends because each turn removes a client.
    fn drop_doomed(&mut self, ctx: &mut Ctx) {
        while let Some(t) = self.doomed.pop() {
            if let Some(c) = self.clients.get(&t) {
                self.stats.too_slow += 1;
                if self.log() {
                    say!(
                        "  {} {} ({}) stopped reading: {} bytes waited, the cap is {}; dropped",
                        warn("slow"),
                        c.nick,
                        c.peer,
                        ctx.queued(t),
                        OUTBOUND_CAP
                    )
                    .or_stop_later();
                }
                self.depart(ctx, t, Some("too slow"), Ending::Abort);
            }
        }
    }

    fn nick_of(&self, t: ConnId) -> String {
        self.clients
            .get(&t)
            .map_or_else(|| "?".into(), |c| c.nick.clone())
    }

    // ----- arrivals and departures -----------------------------------------------

    /// A fresh `guestN` nobody holds (someone may have chosen `guest7` by hand).
    fn guest_nick(&mut self) -> String {
        loop {
            let n = format!("guest{}", self.next_guest);
            self.next_guest += 1;
            if !self.nicks.contains_key(&chat::nick_key(&n)) {
                return n;
            }
        }
    }

    /// A client leaves: its nick is free at once, the others are told, and its
    /// connection is closed (after flushing, or at once for a client we give up on).
    fn depart(&mut self, ctx: &mut Ctx, t: ConnId, reason: Option<&str>, ending: Ending) {
        // Lines said before the departure go out first (the leaver's included).
        self.flush_said(ctx);
        let Some(c) = self.clients.remove(&t) else {
            return;
        };
        self.nicks.remove(&chat::nick_key(&c.nick));
        if self.log() {
            say!(
                "  {} {} ({}) left{} ({} online)",
                dim("bye"),
                c.nick,
                c.peer,
                reason.map(|r| format!(": {r}")).unwrap_or_default(),
                self.clients.len()
            )
            .or_stop_later();
        }
        match ending {
            Ending::Close => ctx.close(t),
            Ending::Abort => ctx.abort(t),
            Ending::Gone => {}
        }
        self.broadcast(ctx, None, &chat::left(&c.nick, reason));
    }

    // ----- one line from a client --------------------------------------------------

    /// Acts on one line from `from`.
    fn on_line(&mut self, ctx: &mut Ctx, from: ConnId, line: Line<'_>) {
        let Some(c) = self.clients.get(&from) else {
            return; // it left (/quit) earlier in the same read: ignore the rest
        };
        let nick = c.nick.clone();
        let bytes = match line {
            Line::Complete(b) => b,
            Line::TooLong => {
                if self.events() {
                    aside(&format!(
                        "{nick} sent a line over {} bytes: refused, its bytes skipped up to the next newline",
                        chat::MAX_LINE
                    )).or_stop_later();
                }
                return self.reply(ctx, from, chat::TOO_LONG);
            }
        };
        let text = chat::text(bytes);
        match chat::parse(&text) {
            Command::Empty => {}
            Command::Say(t) => self.say(ctx, from, &chat::said(&nick, t)),
            Command::Me(t) => self.broadcast(ctx, Some(from), &chat::action(&nick, t)),
            Command::Nick(new) => self.rename(ctx, from, &nick, new),
            Command::Who => {
                let mut all: Vec<&str> = self.clients.values().map(|c| c.nick.as_str()).collect();
                all.sort_by_key(|n| n.to_ascii_lowercase());
                let line = chat::online(all);
                self.reply(ctx, from, &line);
            }
            Command::Msg { to, text } => match self.nicks.get(&chat::nick_key(to)).copied() {
                Some(t) => self.reply(ctx, t, &chat::private(&nick, text)),
                None => self.reply(ctx, from, chat::NO_SUCH_NICK),
            },
            Command::Quit(reason) => {
                let why = reason.map_or_else(|| "quit".to_string(), |r| format!("quit: {r}"));
                self.depart(ctx, from, Some(&why), Ending::Close);
            }
            Command::Help => self.reply(ctx, from, chat::HELP),
            Command::Usage(u) => self.reply(ctx, from, u),
            Command::Unknown(cmd) => {
                let line = chat::unknown_command(cmd);
                self.reply(ctx, from, &line);
            }
        }
    }

    /// `/nick NEW` from the client now called `old`.
    fn rename(&mut self, ctx: &mut Ctx, from: ConnId, old: &str, new: &str) {
        if !chat::valid_nick(new) {
            return self.reply(ctx, from, chat::INVALID_NICK);
        }
        let key = chat::nick_key(new);
        if self.nicks.get(&key).is_some_and(|&t| t != from) {
            return self.reply(ctx, from, &chat::nick_taken(new));
        }
        self.nicks.remove(&chat::nick_key(old));
        self.nicks.insert(key, from);
        if let Some(c) = self.clients.get_mut(&from) {
            c.nick = new.to_string();
        }
        let line = chat::renamed(old, new);
        self.reply(ctx, from, &line);
        self.broadcast(ctx, Some(from), &line);
    }

    /// Disconnects clients silent for longer than the idle timeout.
    fn sweep_idle(&mut self, ctx: &mut Ctx, timeout: Duration) {
        let now = Instant::now();
        let idle: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| now.duration_since(c.last_heard) > timeout)
            .map(|(&t, _)| t)
            .collect();
        for t in idle {
            let line = format!("! idle for {} s: disconnected", timeout.as_secs_f64());
            self.reply(ctx, t, &line);
            self.depart(ctx, t, Some("timeout"), Ending::Close);
        }
    }
}

/// How a departing client's connection ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Flush what it is owed, then close (`/quit`, EOF, timeout).
    Close,
    /// Close now, discarding its queue (too slow).
    Abort,
    /// The connection is already gone (reset).
    Gone,
}

/// How often to look for idle clients: a quarter of the timeout, so one is noticed at
/// most 25% late, but not more often than every 100 ms.
fn sweep_every(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(100))
}

impl Handler for ChatServer {
    // A client connected: it gets a guest name and the others hear of it.
    fn on_accept(&mut self, ctx: &mut Ctx, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        if self.accept_failing {
            self.accept_failing = false;
            if self.log() {
                say!("  {} accepting again", dim("note")).or_stop_later();
            }
        }
        let _ = ctx.set_send_buffer(conn, SEND_BUFFER);
        if let Some(idle) = self.opts.keepalive {
            let _ = ctx.set_keepalive(conn, idle);
        }
        let nick = self.guest_nick();
        if self.events() {
            narrate(
                "server",
                "listener readable -> accept()",
                &format!("-> {peer}, now called {nick}"),
            )
            .or_stop_later();
        } else if self.log() {
            say!(
                "  {} {nick} from {peer} ({} online)",
                dim("join"),
                self.clients.len() + 1
            )
            .or_stop_later();
        }
        self.nicks.insert(chat::nick_key(&nick), conn);
        self.clients.insert(
            conn,
            Client {
                nick: nick.clone(),
                lines: LineDecoder::new(chat::MAX_LINE),
                last_heard: Instant::now(),
                peer,
                shown_queue: 0,
            },
        );
        self.reply(ctx, conn, &chat::welcome(&nick));
        self.broadcast(ctx, Some(conn), &chat::joined(&nick));
        self.settle(ctx);
    }

    // accept() failed: out of descriptors (EMFILE/ENFILE) is the usual reason. The
    // pending client waits in the kernel's backlog; the core retries after 100 ms,
    // backing off to 1 s, rather than at once (an immediate retry fails again: a busy
    // loop). Said once, not per retry.
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: ListenerId, err: &io::Error, _n: u64) {
        if !self.accept_failing {
            self.accept_failing = true;
            if self.opts.verbosity > Verbosity::Quiet {
                say!(
                    "  {} accept() failed: {err}; new clients wait in the backlog, retrying within 1 s (said once)",
                    warn("note")
                ).or_stop_later();
            }
        }
    }

    // The socket was readable and the core read these bytes: any piece of a line, or
    // several lines. Each complete line is acted on at once, in order.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        let events = self.events();
        let Some(c) = self.clients.get_mut(&conn) else {
            return; // departed, its connection still flushing: ignore
        };
        c.last_heard = Instant::now();
        // Take the decoder out so the lines it yields can use `self` freely.
        let mut lines = std::mem::replace(&mut c.lines, LineDecoder::new(0));
        if events {
            let nick = c.nick.clone();
            narrate(
                "server",
                &format!("{nick} readable -> read()"),
                &format!(
                    "-> {} bytes \"{}\"",
                    data.len(),
                    crate::out::escape_bytes(data, 30)
                ),
            )
            .or_stop_later();
        }
        lines.push(data, |line| self.on_line(ctx, conn, line));
        if let Some(c) = self.clients.get_mut(&conn) {
            c.lines = lines;
        }
        self.settle(ctx);
    }

    // The client closed its side (read returned 0). A last line without a newline is
    // still said (friendlier to `echo -n hi | nc`); then it departs at once.
    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let last = self
            .clients
            .get_mut(&conn)
            .and_then(|c| c.lines.take_partial());
        if let Some(last) = last {
            self.on_line(ctx, conn, Line::Complete(&last));
        }
        if self.events() && self.clients.contains_key(&conn) {
            let nick = self.nick_of(conn);
            narrate(
                "server",
                &format!("{nick} readable -> read()"),
                "-> 0 bytes: EOF",
            )
            .or_stop_later();
        }
        self.depart(ctx, conn, None, Ending::Close);
        ctx.close(conn);
        self.settle(ctx);
    }

    // The connection is gone. If the client had not departed yet, something broke it:
    // a reset (the peer's RST), or a failed write to a peer that vanished.
    fn on_closed(&mut self, ctx: &mut Ctx, conn: ConnId, why: Closed) {
        if self.clients.contains_key(&conn) {
            let reason = match &why {
                Closed::Error(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
                {
                    "reset".to_string()
                }
                Closed::Error(e) if e.kind() == io::ErrorKind::TimedOut => "timeout".into(),
                Closed::Error(e) => format!("error: {e}"),
                Closed::PeerClosed | Closed::ByUs => String::new(),
            };
            let reason = (!reason.is_empty()).then_some(reason);
            self.depart(ctx, conn, reason.as_deref(), Ending::Gone);
            self.settle(ctx);
        }
    }

    // A slow client's queue went out: the writable event let the core flush it.
    fn on_drained(&mut self, _ctx: &mut Ctx, conn: ConnId) {
        if self.events() {
            // Told only for a queue whose growth was told.
            if let Some(c) = self.clients.get_mut(&conn).filter(|c| c.shown_queue > 0) {
                c.shown_queue = 0;
                narrate(
                    "server",
                    &format!("{} writable -> write()", c.nick),
                    "-> its queue is empty again",
                )
                .or_stop_later();
            }
        }
    }

    // The idle sweep.
    fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {
        if Some(timer) != self.sweep {
            return;
        }
        if let Some(t) = self.opts.idle_timeout {
            self.sweep_idle(ctx, t);
            self.settle(ctx);
            self.sweep = Some(ctx.timer_after(sweep_every(t)));
        }
    }

    // Every event of this turn is handled: what was said during it goes out, one send
    // per receiver, and whoever that overflowed is dropped.
    fn on_turn_end(&mut self, ctx: &mut Ctx) {
        self.flush_said(ctx);
        self.drop_doomed(ctx);
    }
}
