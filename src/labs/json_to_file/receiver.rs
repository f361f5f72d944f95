//! The receiver B: JSON Lines in, appended to a file, acknowledged once durable.
//!
//! In the order events happen:
//!
//! 1. **Start.** [`Store::open`] reads the file back, cuts a torn last line, and learns
//!    each sender's highest `seq`: that is how a resend is recognised across restarts.
//! 2. **Bytes arrive** ([`Handler::on_data`]). The line decoder frames them; each line
//!    is checked in one pass ([`jsonl::read`]). A bad line gets `error ...` and nothing
//!    else happens. A record whose seq is not above its sender's highest is a resend: it gets
//!    `ok SEQ` again and is not written. Any other record is added to the store's batch.
//!    Replies are *not* sent yet: they wait, in order, for the commit.
//! 3. **The loop turn ends** (a zero-delay timer fires after every event of this turn):
//!    [`Store::write`] puts the whole batch in the file with one `write`, and its replies
//!    queue behind the next fdatasync, which runs in a helper thread ([`Syncer`]) while
//!    the loop goes on reading. When it returns, every batch it covers gets its replies.
//!    One fsync covers every record written meanwhile, from every connection: group
//!    commit. The busier the receiver, the more records share each fsync. Replies stay
//!    in arrival order, so `ok 7` means 1 to 7 are on disk.
//! 4. **A write fails** (disk full, file-size limit): the store cuts the file back, the
//!    batch's records get `error SEQ not saved: ...` instead of `ok`, and their seqs are
//!    forgotten, so the sender's resend is saved later.
//! 5. **The disk is slow** (an fsync takes seconds): past [`MAX_UNSYNCED`] bytes not yet
//!    synced or [`MAX_PENDING`] replies owed, the receiver stops reading every connection
//!    ([`Ctx::hold_reading`]) until a sync returns. The senders wait in TCP, and the
//!    receiver's memory stays bounded however fast they send.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;

use std::time::{Duration, Instant};

use super::store::{Recovery, Store, Syncer};
use crate::core::{Closed, ConnId, Ctx, Handler, ListenerId, SendError, TimerId};
use crate::out::{dim, escape_bytes, narrate, warn, OrStopLater};
use crate::say;
use crate::wire::jsonl::{self, Ack, Parsed, Reject, MAX_RECORD};
use crate::wire::lines::{Line, LineDecoder};

/// Distinct senders remembered. Each costs its id and a number; 100,000 of them is a few
/// MiB, and a hostile peer inventing sender ids cannot make the table grow past it.
pub const MAX_SENDERS: usize = 100_000;

/// What the receiver prints.
#[derive(Debug, Clone, Copy)]
pub struct Talk {
    /// Print connections and commit failures (off: only the first line and totals).
    pub connections: bool,
    /// Narrate the calls (write, fdatasync, send) of this many commits, then go quiet.
    pub narrate_commits: u64,
}

/// Running totals, printed at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Records written and made durable.
    pub saved: u64,
    /// Resends acknowledged again and not written.
    pub duplicates: u64,
    /// Lines answered with `error`.
    pub rejected: u64,
    /// Commits (write + fdatasync) that succeeded.
    pub commits: u64,
    /// Commits that failed (disk full ...).
    pub failed_commits: u64,
}

/// One connection.
struct Client {
    /// Who, for narration and for `anon-<peer>`.
    peer: SocketAddr,
    /// Framing; bounded by [`MAX_RECORD`].
    lines: LineDecoder,
    /// The sender id given to records that have none: `anon-<peer addr>`.
    anon: String,
    /// The sender of this connection's last fast-path record and its slot in
    /// [`Senders`]: the next record, almost always from the same sender, skips the hash.
    last_sender: Option<(String, usize)>,
    /// The peer sent EOF: close once its replies are out.
    eof: bool,
    /// Replies owed to this peer that wait for a commit: it is closed after EOF only
    /// when this is 0, however busy other connections keep the receiver.
    owed: usize,
}

/// Each sender's highest seq saved (or in the batch). The ids map, through the standard
/// keyed hash (SipHash with a random key: peers choose sender ids, so they must not be
/// able to aim them at one bucket), to a slot that never moves, so a connection can keep
/// its last sender's slot and skip the hash for the next record (~30 ns of ~300 per
/// record). A slot whose first batch failed keeps its place with `None`.
struct Senders {
    slot: HashMap<String, usize>,
    highest: Vec<Option<u64>>,
}

impl Senders {
    fn new(recovered: HashMap<String, u64>) -> Senders {
        let mut s = Senders {
            slot: HashMap::with_capacity(recovered.len()),
            highest: Vec::with_capacity(recovered.len()),
        };
        for (id, seq) in recovered {
            s.slot.insert(id, s.highest.len());
            s.highest.push(Some(seq));
        }
        s
    }

    /// The slot of a known sender.
    fn find(&self, sender: &str) -> Option<usize> {
        self.slot.get(sender).copied()
    }

    /// The slot of `sender`, made if new; `None` when [`MAX_SENDERS`] are known.
    fn slot_for(&mut self, sender: &str) -> Option<usize> {
        if let Some(slot) = self.find(sender) {
            return Some(slot);
        }
        if self.highest.len() >= MAX_SENDERS {
            return None;
        }
        self.slot.insert(sender.to_string(), self.highest.len());
        self.highest.push(None);
        Some(self.highest.len() - 1)
    }
}

/// Replies waiting for the commit. A sender's records mostly come with consecutive
/// seqs, so one entry stands for a run of them (`first`, and how many): a turn of
/// 30,000 records queues a handful of entries, not 30,000 (one per record cost 48 bytes
/// each, ~70 MB of fresh pages per 100 MB received, and their page faults).
#[derive(Debug)]
enum Reply {
    /// Records added to this batch (`first`, count): `ok` each if the commit succeeds,
    /// `error` if not.
    Saved(u64, u64),
    /// Saved earlier (resends, `first`, count): `ok` once everything before is durable.
    Again(u64, u64),
    /// A line that is not a record.
    Error(Option<u64>, String),
}

impl Reply {
    /// Replies (lines) this entry stands for.
    fn count(&self) -> u64 {
        match self {
            Reply::Saved(_, n) | Reply::Again(_, n) => *n,
            Reply::Error(..) => 1,
        }
    }
}

/// Queues `reply` (a single one, as `take_line` makes it) for `conn`, extending the last
/// entry when it continues that entry's run.
fn queue_reply(waiting: &mut Vec<(ConnId, Reply)>, conn: ConnId, reply: Reply) {
    if let Some((c, last)) = waiting.last_mut() {
        if *c == conn {
            match (last, &reply) {
                (Reply::Saved(first, n), Reply::Saved(seq, 1))
                | (Reply::Again(first, n), Reply::Again(seq, 1))
                    if first.checked_add(*n) == Some(*seq) =>
                {
                    *n += 1;
                    return;
                }
                _ => {}
            }
        }
    }
    waiting.push((conn, reply));
}

/// Reply lines the entries stand for.
fn lines_in(replies: &[(ConnId, Reply)]) -> usize {
    replies.iter().map(|(_, r)| r.count() as usize).sum()
}

/// Unsynced bytes (written or batched, not yet covered by an fdatasync) past which the
/// receiver stops reading from its connections until a sync returns: senders then wait
/// in TCP. Without it a slow disk and a fast sender grow the page cache's dirty data and
/// the reply queue without limit. 16 MiB is several fsyncs' worth on this lab's disks
/// (BENCHMARKS.md, 06: ~5 MB per fsync at full speed), so it does not cut the batches.
pub const MAX_UNSYNCED: u64 = 16 << 20;

/// Reply lines owed (waiting for a sync) past which reading stops likewise. It bounds
/// the reply queue (a run of consecutive seqs is one entry, but a peer that skips seqs
/// or sends bad lines makes one per line, ~50 bytes each: 128 Ki is ~6 MiB) and the acks
/// one sync releases at once (~1.5 MB of `ok SEQ`), which must fit the core's 4 MiB
/// per-connection queue when the peer reads slowly. At full speed a sync covers ~50,000.
pub const MAX_PENDING: usize = 128 << 10;

/// One loop turn's work: written (or failed), waiting for the sync that covers `end`.
struct Batch {
    /// File length after this batch: its replies go once a sync reached it.
    end: u64,
    /// Replies in arrival order.
    replies: Vec<(ConnId, Reply)>,
    /// Reply lines they stand for.
    lines: usize,
    /// Why the write failed: every `Saved` becomes `error SEQ not saved: ...`.
    failure: Option<String>,
    /// Narrate its sync and acks.
    narrate: bool,
}

/// The receiver's handler.
pub struct Receiver {
    /// The file.
    store: Store,
    /// Highest seq saved (or in the batch) per sender.
    senders: Senders,
    /// How to undo this batch's changes to the senders' highest seqs if the commit
    /// fails: the slots touched by the batch, each with its value before, oldest first.
    undo: Vec<(usize, Option<u64>)>,
    /// Open connections. Removed in `on_closed`.
    clients: HashMap<ConnId, Client>,
    /// Replies in arrival order, sent after the next commit.
    waiting: Vec<(ConnId, Reply)>,
    /// Reply lines owed in `waiting` and `queue` (see [`MAX_PENDING`]).
    pending: usize,
    /// Reading from every connection is stopped until a sync returns (back-pressure:
    /// [`MAX_UNSYNCED`], [`MAX_PENDING`]).
    holding: bool,
    /// Per-connection reply buffers, kept across batches so sending acks allocates
    /// (and page-faults) nothing in the steady state.
    spare: Vec<Vec<u8>>,
    /// The end-of-turn timer, while one is set.
    commit_timer: Option<TimerId>,
    /// True while writes fail, so the failure is reported once, not per batch.
    failing: bool,
    /// Batches written (or failed), oldest first, whose replies wait for a sync.
    queue: VecDeque<Batch>,
    /// The fdatasync thread.
    syncer: Syncer,
    /// A sync is in flight.
    syncing: bool,
    /// When the sync in flight began, for narration.
    sync_began: Instant,
    /// Bytes of the file known durable.
    synced: u64,
    /// Batches narrated so far.
    narrated: u64,
    /// A sync failed: stopped, nothing more is acknowledged.
    fatal: bool,
    talk: Talk,
    /// Totals so far.
    pub totals: Totals,
}

impl Receiver {
    /// A receiver on an opened store and what was recovered from it; `waker` is the
    /// loop's, for the sync thread to report back.
    pub fn new(
        store: Store,
        recovered: Recovery,
        talk: Talk,
        waker: crate::core::Waker,
    ) -> io::Result<Receiver> {
        let syncer = store.syncer(waker)?;
        let synced = store.len();
        Ok(Receiver {
            store,
            senders: Senders::new(recovered.highest),
            undo: Vec::new(),
            clients: HashMap::new(),
            waiting: Vec::new(),
            pending: 0,
            holding: false,
            spare: Vec::new(),
            commit_timer: None,
            failing: false,
            queue: VecDeque::new(),
            syncer,
            syncing: false,
            sync_began: Instant::now(),
            synced,
            narrated: 0,
            fatal: false,
            talk,
            totals: Totals::default(),
        })
    }

    /// Decides what one line is and what it gets (the record, if new, joins the batch).
    fn take_line(
        &mut self,
        last: &mut Option<(String, usize)>,
        anon: &str,
        line: Line<'_>,
    ) -> Reply {
        let bytes = match line {
            Line::Complete(b) => b,
            Line::TooLong => return Reply::Error(None, Reject::TooLong.to_string()),
        };
        let mut rec = match jsonl::read(bytes) {
            Ok(Parsed::AsIs { sender, seq }) => {
                // The fast path: already a compact record with sender and seq, checked
                // in one pass; it goes to the file byte for byte, with no allocation
                // unless the sender is new, and no hashing when this connection's last
                // record had the same sender (almost always).
                let slot = match last {
                    Some((name, slot)) if **name == *sender => *slot,
                    _ => {
                        let Some(slot) = self.senders.slot_for(&sender) else {
                            return too_many(seq);
                        };
                        let name = last.get_or_insert_with(|| (String::new(), slot));
                        name.0.clear();
                        name.0.push_str(&sender);
                        name.1 = slot;
                        slot
                    }
                };
                let prev = self.senders.highest[slot];
                if prev.is_some_and(|h| seq <= h) {
                    return Reply::Again(seq, 1);
                }
                self.senders.highest[slot] = Some(seq);
                self.store.append_line(bytes);
                self.remember_undo(slot, prev);
                return Reply::Saved(seq, 1);
            }
            Ok(Parsed::Rewrite(r)) => r,
            Err((seq, why)) => return Reply::Error(seq, why.to_string()),
        };
        if rec.sender.is_some() && rec.seq.is_none() {
            return Reply::Error(None, Reject::MissingSeq.to_string());
        }
        let sender = rec.sender.clone().unwrap_or_else(|| anon.to_string());
        let known = self.senders.find(&sender);
        let prev = known.and_then(|slot| self.senders.highest[slot]);
        // A plain record (no sender, no seq: a line typed into nc) gets the next seq of
        // its `anon-<peer>` sender: receiver-side numbering.
        let seq = rec.seq.unwrap_or(prev.map_or(1, |h| h + 1));
        if prev.is_some_and(|h| seq <= h) {
            // Saved before: this is a resend whose ack was lost. Acknowledge, do not save.
            return Reply::Again(seq, 1);
        }
        let Some(slot) = known.or_else(|| self.senders.slot_for(&sender)) else {
            return too_many(seq);
        };
        if rec.sender.is_none() || rec.seq.is_none() {
            rec.stamp(&sender, seq);
        }
        self.store.append(&rec.to_line());
        self.senders.highest[slot] = Some(seq);
        self.remember_undo(slot, prev);
        Reply::Saved(seq, 1)
    }

    /// Notes `sender`'s highest before this batch. A batch usually holds few senders, so
    /// a look at the last entries skips almost every repeat; a repeat that slips through
    /// is harmless, since the undo log is replayed newest first and the oldest entry of
    /// each sender is applied last.
    fn remember_undo(&mut self, slot: usize, prev: Option<u64>) {
        if !self.undo.iter().rev().take(8).any(|&(s, _)| s == slot) {
            self.undo.push((slot, prev));
        }
    }

    /// Feeds one connection's bytes through its framing and queues the replies.
    fn take_bytes(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8], eof: bool) {
        let Some(mut client) = self.clients.remove(&conn) else {
            return;
        };
        // The client is out of the map for the moment, so its decoder and `self` can
        // both be borrowed: each line is handled straight from the received bytes.
        let mut lines = 0;
        let (anon, last) = (&client.anon, &mut client.last_sender);
        client.lines.push(data, |line| {
            let reply = self.take_line(last, anon, line);
            queue_reply(&mut self.waiting, conn, reply);
            lines += 1;
        });
        if eof {
            // A last line without its newline (`printf '{...}' | nc`) still counts.
            if let Some(last) = client.lines.take_partial() {
                let reply =
                    self.take_line(&mut client.last_sender, &client.anon, Line::Complete(&last));
                queue_reply(&mut self.waiting, conn, reply);
                lines += 1;
            }
            client.eof = true;
        }
        client.owed += lines;
        self.pending += lines;
        self.clients.insert(conn, client);
        if !self.holding && self.over_cap() {
            // Back-pressure: stop reading everyone until a sync returns (`advance`).
            self.holding = true;
            for &c in self.clients.keys() {
                ctx.hold_reading(c, true);
            }
        }
        if !self.waiting.is_empty() && self.commit_timer.is_none() {
            // Zero delay: it fires at the end of this loop turn, after every connection
            // that had data this turn has been read. That is the whole group-commit
            // window: no added latency when idle, bigger batches when busy.
            self.commit_timer = Some(ctx.timer_after(Duration::ZERO));
        }
    }

    /// The end of a loop turn (step 3): write this turn's batch, queue its replies
    /// behind the sync that will cover it, and move the pipeline along.
    fn end_turn(&mut self, ctx: &mut Ctx) {
        self.commit_timer = None;
        let narrate_now = self.narrated < self.talk.narrate_commits && self.store.pending() > 0;
        let failure = match self.store.write() {
            Ok(done) => {
                if narrate_now {
                    self.narrated += 1;
                    narrate(
                        "receiver",
                        &format!(
                            "write(fd, {} record{}, {} bytes)",
                            done.records,
                            if done.records == 1 { "" } else { "s" },
                            done.bytes
                        ),
                        "-> in the kernel's page cache (a crash of the machine could still lose it)",
                    ).or_stop_later();
                }
                if self.failing && self.talk.connections {
                    say!("  {} writing works again", dim("note")).or_stop_later();
                }
                self.failing = false;
                self.undo.clear();
                None
            }
            Err(e) => {
                self.totals.failed_commits += 1;
                // Forget the batch's seqs, newest first, so the resends are saved later.
                for (slot, prev) in self.undo.drain(..).rev() {
                    self.senders.highest[slot] = prev;
                }
                if !self.failing {
                    eprintln!(
                        "{} cannot write {}: {e}. No record of this batch was acknowledged and the file was cut back to its last good length ({} bytes); senders will resend.\n{} free space on that disk, or raise the file size limit (`ulimit -f`); the receiver keeps running and saves resends once writing works",
                        warn("lab: error:"),
                        self.store.path().display(),
                        self.store.len(),
                        warn("fix:"),
                    );
                }
                self.failing = true;
                Some(format!("not saved: {e}"))
            }
        };
        self.queue.push_back(Batch {
            end: self.store.len(),
            lines: lines_in(&self.waiting),
            replies: std::mem::take(&mut self.waiting),
            failure,
            narrate: narrate_now,
        });
        self.advance(ctx);
    }

    /// Collects a finished sync, sends the replies it made durable, and starts the next
    /// sync if anything was written since. Called after each write and on each wake-up.
    fn advance(&mut self, ctx: &mut Ctx) {
        if self.syncing {
            if let Some((end, result)) = self.syncer.finished() {
                self.synced(ctx, end, result);
            }
        }
        self.release(ctx);
        if !self.syncing && self.store.len() > self.synced {
            self.syncing = true;
            self.sync_began = Instant::now();
            self.syncer.request(self.store.len());
        }
        // Resume below half the caps, so one sync's worth of room is there to fill
        // before the next hold (no stop-start per read).
        if self.holding && !self.fatal && self.under_half_cap() {
            self.holding = false;
            for &c in self.clients.keys() {
                ctx.hold_reading(c, false);
            }
        }
    }

    /// Bytes received and saved (in the batch or the file) that no sync covers yet.
    fn unsynced(&self) -> u64 {
        (self.store.len() + self.store.pending_bytes() as u64).saturating_sub(self.synced)
    }

    /// Past a cap: stop reading ([`MAX_UNSYNCED`], [`MAX_PENDING`]).
    fn over_cap(&self) -> bool {
        self.unsynced() > MAX_UNSYNCED || self.pending > MAX_PENDING
    }

    /// Room again: resume reading.
    fn under_half_cap(&self) -> bool {
        self.unsynced() <= MAX_UNSYNCED / 2 && self.pending <= MAX_PENDING / 2
    }

    /// A sync returned.
    fn synced(&mut self, ctx: &mut Ctx, end: u64, result: io::Result<()>) {
        self.syncing = false;
        match result {
            Ok(()) => {
                self.synced = self.synced.max(end);
                self.totals.commits += 1;
                if self.queue.iter().any(|b| b.narrate && b.end <= end) {
                    narrate(
                        "receiver",
                        "fdatasync(fd)",
                        &format!(
                            "-> on the disk after {:.2} ms (in a helper thread: the loop kept reading); now it may be acknowledged",
                            self.sync_began.elapsed().as_secs_f64() * 1e3
                        ),
                    ).or_stop_later();
                }
            }
            Err(e) => {
                // After a failed fsync the kernel may have dropped the dirty pages and
                // marked them clean: a retry can "succeed" without the data (PostgreSQL
                // learned this in 2018). The only safe answer is to stop, unacknowledged.
                eprintln!(
                    "{} fdatasync of {} failed: {e}. What was written since the last sync may not be on disk; nothing of it was acknowledged and the receiver stops (retrying a failed fsync is not safe).\n{} check the disk (dmesg), then restart: the file is read back and senders resend",
                    warn("lab: error:"),
                    self.store.path().display(),
                    warn("fix:")
                );
                self.fatal = true;
                self.queue.clear();
                self.pending = lines_in(&self.waiting);
                ctx.stop();
            }
        }
    }

    /// Sends the replies of every batch at the front that is now durable, in order.
    fn release(&mut self, ctx: &mut Ctx) {
        while self.queue.front().is_some_and(|b| b.end <= self.synced) {
            let Some(batch) = self.queue.pop_front() else {
                break;
            };
            self.pending -= batch.lines;
            self.send_replies(ctx, batch);
        }
    }

    /// Writes, syncs and answers everything still pending, in this thread (at the end).
    pub fn finish(&mut self, ctx: &mut Ctx) {
        if !self.waiting.is_empty() || self.store.pending() > 0 {
            self.end_turn(ctx);
        }
        if self.syncing {
            if let Some((end, result)) = self.syncer.wait() {
                self.synced(ctx, end, result);
            }
        }
        if !self.fatal && self.store.len() > self.synced {
            let end = self.store.len();
            let r = self.store.sync();
            self.synced(ctx, end, r);
        }
        self.release(ctx);
    }

    /// True when a sync failed and the receiver stopped.
    pub fn failed_fatally(&self) -> bool {
        self.fatal
    }

    /// Sends one batch's replies, one `send` per connection.
    fn send_replies(&mut self, ctx: &mut Ctx, batch: Batch) {
        // Per connection: the reply bytes and how many replies they hold. The buffers
        // come from `spare` and go back to it.
        let mut out: Vec<(ConnId, Vec<u8>, usize)> = Vec::new();
        for (conn, reply) in batch.replies {
            let at = match out.iter().position(|(c, _, _)| *c == conn) {
                Some(i) => i,
                None => {
                    out.push((conn, self.spare.pop().unwrap_or_default(), 0));
                    out.len() - 1
                }
            };
            out[at].2 += reply.count() as usize;
            let buf = &mut out[at].1;
            // Written straight into the connection's buffer: no string per ack.
            match reply {
                Reply::Saved(first, n) => match &batch.failure {
                    None => {
                        self.totals.saved += n;
                        ok_lines(buf, first, n);
                    }
                    Some(why) => {
                        for seq in first..first + n {
                            let line = Ack::Error(Some(seq), why.clone()).to_line();
                            buf.extend_from_slice(line.as_bytes());
                        }
                    }
                },
                Reply::Again(first, n) => {
                    self.totals.duplicates += n;
                    ok_lines(buf, first, n);
                }
                Reply::Error(seq, why) => {
                    self.totals.rejected += 1;
                    buf.extend_from_slice(Ack::Error(seq, why).to_line().as_bytes());
                }
            }
        }
        for (conn, mut bytes, n) in out {
            if batch.narrate {
                narrate(
                    "receiver",
                    &format!("send(\"{}\")", escape_bytes(&bytes, 40)),
                    "-> the acknowledgements, only now",
                )
                .or_stop_later();
            }
            match ctx.send(conn, &bytes) {
                Ok(()) | Err(SendError::Gone) => {}
                // 4 MiB of acks unread: the peer is not reading; drop it.
                Err(SendError::Full(_)) => {
                    if self.talk.connections {
                        if let Some(c) = self.clients.get(&conn) {
                            say!(
                                "  {} {} does not read its acknowledgements: disconnected",
                                warn("drop"),
                                c.peer
                            )
                            .or_stop_later();
                        }
                    }
                    ctx.abort(conn);
                }
            }
            // A peer that finished sending gets its last replies, then we close.
            if let Some(c) = self.clients.get_mut(&conn) {
                c.owed = c.owed.saturating_sub(n);
                if c.eof && c.owed == 0 {
                    ctx.close(conn);
                }
            }
            // Kept for the next batch unless a burst made it large (then let it go).
            if bytes.capacity() <= 4 << 20 && self.spare.len() < 16 {
                bytes.clear();
                self.spare.push(bytes);
            }
        }
    }
}

/// Appends `ok SEQ\n` for `n` consecutive seqs from `first`.
fn ok_lines(buf: &mut Vec<u8>, first: u64, n: u64) {
    for seq in first..first.saturating_add(n) {
        ok_line(buf, seq);
    }
}

/// Appends `ok SEQ\n` to `buf` without going through `fmt`: one per record, so at a
/// million records a second the formatting machinery was a few percent of the time.
fn ok_line(buf: &mut Vec<u8>, seq: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut at = digits.len();
    let mut n = seq;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(b"ok ");
    buf.extend_from_slice(&digits[at..]);
    buf.push(b'\n');
}

/// The reply when the sender table is full.
fn too_many(seq: u64) -> Reply {
    Reply::Error(
        Some(seq),
        format!("too many senders (this receiver remembers {MAX_SENDERS})"),
    )
}

impl Handler for Receiver {
    // A sender connected.
    fn on_accept(&mut self, ctx: &mut Ctx, _l: ListenerId, conn: ConnId, peer: SocketAddr) {
        if self.talk.connections {
            say!("  {} {peer}", dim("connected")).or_stop_later();
        }
        // Acks are small and each one lets the sender forget records: send them at once.
        let _ = ctx.set_nodelay(conn, true);
        self.clients.insert(
            conn,
            Client {
                peer,
                lines: LineDecoder::new(MAX_RECORD),
                anon: format!("anon-{peer}"),
                last_sender: None,
                eof: false,
                owed: 0,
            },
        );
        // Accepted while the receiver holds back: it waits like the others.
        if self.holding {
            ctx.hold_reading(conn, true);
        }
    }

    // Once per back-off period of the core's retries (see `Handler::on_accept_error`).
    fn on_accept_error(&mut self, _ctx: &mut Ctx, _l: ListenerId, err: &io::Error, n: u64) {
        if self.talk.connections {
            say!(
                "  {} accept() failed: {err} ({n} in a row; retrying within 1 s)",
                warn("note")
            )
            .or_stop_later();
        }
    }

    // Any piece of the stream: part of a line, or many lines.
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        self.take_bytes(ctx, conn, data, false);
    }

    // The sender is done: answer what it sent, then close (after the commit).
    fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
        self.take_bytes(ctx, conn, &[], true);
        if self.clients.get(&conn).is_some_and(|c| c.owed == 0) {
            ctx.close(conn);
        }
    }

    fn on_closed(&mut self, _ctx: &mut Ctx, conn: ConnId, why: Closed) {
        if let Some(c) = self.clients.remove(&conn) {
            if self.talk.connections {
                let how = match why {
                    Closed::Error(e) => format!("error: {e}"),
                    Closed::PeerClosed | Closed::ByUs => "closed".into(),
                };
                say!("  {} {} {how}", dim("bye"), c.peer).or_stop_later();
            }
        }
    }

    // The end of the loop turn: write the batch.
    fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {
        if self.commit_timer == Some(timer) {
            self.end_turn(ctx);
        }
    }

    // The sync thread finished: acknowledge what it made durable.
    fn on_wake(&mut self, ctx: &mut Ctx) {
        self.advance(ctx);
    }

    // Ctrl-C or SIGTERM: save and acknowledge what arrived, then stop.
    fn on_signal(&mut self, ctx: &mut Ctx, _signal: i32) {
        self.finish(ctx);
        ctx.stop();
    }
}
