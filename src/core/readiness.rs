//! The loop's reaction to readiness: accept, read, receive, flush, and the bookkeeping
//! around it (writable interest, back-pressure, closing, reporting to the handler).
//! Rules 1 to 5 of the module comment in `mod.rs` live here.

use std::cmp::Reverse;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::{
    AcceptBackoff, Closed, ConnId, Ctx, Datagram, EventLoop, Handler, ListenerId, Source, TimerId,
    TimerKind, UdpId,
};
use crate::sys;

impl EventLoop {
    pub(super) fn fire_timers<H: Handler>(&mut self, handler: &mut H) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.ctx.timers.peek().copied() {
            if at > now {
                break;
            }
            self.ctx.timers.pop();
            match self.ctx.timer_kinds.remove(&id) {
                Some(TimerKind::User) => handler.on_timer(&mut self.ctx, TimerId(id)),
                Some(TimerKind::RetryAccept(key)) => {
                    if let Some(b) = self.ctx.accept_backoff.get_mut(&key) {
                        b.waiting = false;
                    }
                    // Only if that listener is still there (not a new source in its slot).
                    if let Some(token) = self.ctx.live(key) {
                        self.on_readable(handler, token);
                    }
                }
                None => {} // cancelled
            }
            self.ctx.report(handler);
        }
    }

    pub(super) fn on_readable<H: Handler>(&mut self, handler: &mut H, token: Token) {
        match self.ctx.slots.get(token.0) {
            Some(Some(Source::Listener(_))) => self.accept_all(handler, token),
            Some(Some(Source::Stream(_))) => self.read_stream(handler, token),
            Some(Some(Source::Udp(_))) => self.recv_all(handler, token),
            _ => {} // closed meanwhile
        }
    }

    pub(super) fn accept_all<H: Handler>(&mut self, handler: &mut H, token: Token) {
        let key = self.ctx.key(token);
        let id = ListenerId(key);
        if self.ctx.accept_backoff.get(&key).is_some_and(|b| b.waiting) {
            // Backing off: the retry timer will try; a new arrival changes nothing.
            return;
        }
        // Rule 5b: a connect flood gets a budget like a reader does, then waits its turn.
        for _ in 0..self.ctx.limits.reads_per_turn * 4 {
            if self.stopping(handler) {
                return; // rule 9
            }
            let Some(Some(Source::Listener(l))) = self.ctx.slots.get(token.0) else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    // Accepting works (again): any back-off episode is over.
                    self.ctx.accept_backoff.remove(&key);
                    match self.ctx.add_stream(stream, false) {
                        Ok(conn) => handler.on_accept(&mut self.ctx, id, conn, peer),
                        // Accepted but not watchable: that connection is lost, not the
                        // listener, so no back-off.
                        Err(e) => handler.on_accept_error(&mut self.ctx, id, &e, 1),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection that was reset while it waited in the backlog: skip it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE and friends: the connection stays queued in the kernel. We
                    // would never hear of it again (edge-triggered), so retry later, on
                    // one timer, backing off while it keeps failing.
                    let b = self.ctx.accept_backoff.entry(key).or_insert(AcceptBackoff {
                        failures: 0,
                        delay: Duration::from_millis(50),
                        waiting: false,
                    });
                    b.failures += 1;
                    b.delay = (b.delay * 2).min(Duration::from_secs(1));
                    b.waiting = true;
                    let (failures, delay) = (b.failures, b.delay);
                    self.ctx.new_timer(delay, TimerKind::RetryAccept(key));
                    handler.on_accept_error(&mut self.ctx, id, &e, failures);
                    return;
                }
            }
        }
        self.ctx.rerun.push(token);
    }

    pub(super) fn read_stream<H: Handler>(&mut self, handler: &mut H, token: Token) {
        let id = ConnId(self.ctx.key(token));
        for _ in 0..self.ctx.limits.reads_per_turn {
            if self.stopping(handler) {
                return; // rule 9: not even the rest of this connection's budget
            }
            let Some(Some(Source::Stream(c))) = self.ctx.slots.get_mut(token.0) else {
                return;
            };
            if c.eof || c.paused || c.held || c.connecting {
                return;
            }
            let chunk = self.ctx.limits.read_chunk.min(self.scratch.len());
            match c.stream.read(&mut self.scratch[..chunk]) {
                Ok(0) => {
                    c.eof = true;
                    handler.on_eof(&mut self.ctx, id);
                    self.ctx.maybe_finish(token);
                    return;
                }
                Ok(n) => {
                    // A read shorter than asked emptied the socket (TCP hands over
                    // everything queued, up to the buffer's size). Linux's epoll reports
                    // every later arrival again, even edge-triggered, so unless the peer
                    // already closed (its FIN gives no further event) there is no need
                    // to pay for a read that returns WouldBlock: sockperf and tokio stop
                    // here too. It saves a system call per message, about 1 us of a
                    // 13 us loopback round trip (BENCHMARKS.md, Latency).
                    let drained = n < chunk && !c.read_closed;
                    handler.on_data(&mut self.ctx, id, &self.scratch[..n]);
                    self.ctx.apply_backpressure(token);
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.ctx.drop_source(token, Closed::Error(e));
                    return;
                }
            }
        }
        // Budget used up and maybe more to read: come back after the others.
        self.ctx.rerun.push(token);
    }

    pub(super) fn recv_all<H: Handler>(&mut self, handler: &mut H, token: Token) {
        if matches!(self.ctx.slots.get(token.0), Some(Some(Source::Udp(u))) if u.batch.is_some()) {
            return self.recv_batched(handler, token);
        }
        let id = UdpId(self.ctx.key(token));
        for _ in 0..self.ctx.limits.reads_per_turn * 4 {
            if self.stopping(handler) {
                return; // rule 9
            }
            let Some(Some(Source::Udp(u))) = self.ctx.slots.get(token.0) else {
                return;
            };
            let len = u.recv_len.min(self.scratch.len());
            match sys::recv_from_trunc(&u.sock, &mut self.scratch[..len]) {
                Ok(r) => handler.on_datagram(
                    &mut self.ctx,
                    id,
                    Datagram {
                        data: &self.scratch[..r.len],
                        from: r.from,
                        wire_len: r.wire_len,
                        arrival_ns: None,
                    },
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => handler.on_udp_error(&mut self.ctx, id, &e),
            }
        }
        self.ctx.rerun.push(token);
    }
}

impl Ctx {
    // ----- internals ------------------------------------------------------------

    pub(super) fn on_writable<H: Handler>(&mut self, _handler: &mut H, token: Token) {
        match self.slots.get_mut(token.0) {
            Some(Some(Source::Stream(c))) => {
                if c.connecting {
                    // The outcome of a non-blocking connect: an error, or a peer address.
                    let outcome = match c.stream.take_error() {
                        Ok(Some(e)) | Err(e) => Err(e),
                        Ok(None) => c.stream.peer_addr().map(|_| ()),
                    };
                    match outcome {
                        Ok(()) => {
                            c.connecting = false;
                            self.connected_pending.push(token);
                        }
                        // Not finished yet (a spurious wake-up): wait for the next event.
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                        Err(e) => {
                            self.drop_source(token, Closed::Error(e));
                            return;
                        }
                    }
                }
                let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) else {
                    return;
                };
                let had = !c.out.is_empty();
                if let Err(e) = c.out.flush_to(&mut c.stream) {
                    self.drop_source(token, Closed::Error(e));
                    return;
                }
                if had && c.out.is_empty() {
                    self.drained.push(token);
                }
                self.resume_if_drained(token);
                self.update_interest(token);
                self.maybe_finish(token);
            }
            Some(Some(Source::Udp(u))) => {
                while let Some((data, to)) = u.queue.front() {
                    match u.sock.send_to(data, *to) {
                        Ok(_) => {
                            u.queue.pop_front();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // A datagram the kernel refuses (too big, no route) is dropped.
                        Err(_) => {
                            u.queue.pop_front();
                        }
                    }
                }
                self.update_interest(token);
            }
            _ => {}
        }
    }

    /// Rule 4: writable interest exactly while there is something to write.
    pub(super) fn update_interest(&mut self, token: Token) {
        let registry = &self.registry;
        let result = match self.slots.get_mut(token.0) {
            Some(Some(Source::Stream(c))) => {
                let want = c.connecting || !c.out.is_empty();
                if want == c.writable {
                    return;
                }
                c.writable = want;
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                registry.reregister(&mut c.stream, token, interest)
            }
            Some(Some(Source::Udp(u))) => {
                let want = !u.queue.is_empty();
                if want == u.writable {
                    return;
                }
                u.writable = want;
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                registry.reregister(&mut u.sock, token, interest)
            }
            _ => return,
        };
        if let Err(e) = result {
            self.drop_source(token, Closed::Error(e));
        }
    }

    /// Rule 5: stop reading from a connection that owes too much.
    pub(super) fn apply_backpressure(&mut self, token: Token) {
        let high = self.limits.high_water;
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            if c.out.len() > high {
                c.paused = true;
            }
        }
    }

    pub(super) fn resume_if_drained(&mut self, token: Token) {
        let low = self.limits.high_water / 2;
        if let Some(Some(Source::Stream(c))) = self.slots.get_mut(token.0) {
            if c.paused && c.out.len() <= low {
                c.paused = false;
                // Data may have arrived while paused; no new edge will tell us.
                self.rerun.push(token);
            }
        }
    }

    /// Closes a connection that is closing and fully flushed, or that reached EOF with
    /// nothing left to say and the lab asked to close.
    pub(super) fn maybe_finish(&mut self, token: Token) {
        if let Some(Some(Source::Stream(c))) = self.slots.get(token.0) {
            if c.closing && c.out.is_empty() {
                let why = if c.eof {
                    Closed::PeerClosed
                } else {
                    Closed::ByUs
                };
                self.drop_source(token, why);
            }
        }
    }

    pub(super) fn drop_source(&mut self, token: Token, why: Closed) {
        if let Some(slot) = self.slots.get_mut(token.0) {
            if let Some(source) = slot.take() {
                match source {
                    Source::Listener(mut l) => {
                        let _ = self.registry.deregister(&mut l);
                        let key = self.key(token);
                        self.accept_backoff.remove(&key);
                    }
                    Source::Stream(mut c) => {
                        let _ = self.registry.deregister(&mut c.stream);
                        self.closed.push((token, why));
                        return; // the slot is freed after on_closed
                    }
                    Source::Udp(mut u) => {
                        let _ = self.registry.deregister(&mut u.sock);
                    }
                }
                self.free_slot(token);
            }
        }
    }

    /// Tells the handler about connects, closures and drained buffers decided since
    /// last time.
    pub(super) fn report<H: Handler>(&mut self, handler: &mut H) {
        loop {
            if let Some(token) = self.connected_pending.pop() {
                handler.on_connected(self, ConnId(self.key(token)));
            } else if let Some((token, why)) = self.closed.pop() {
                handler.on_closed(self, ConnId(self.key(token)), why);
                self.free_slot(token);
            } else if let Some(token) = self.drained.pop() {
                // Only if the connection is still there (it may have closed since).
                if matches!(self.slots.get(token.0), Some(Some(Source::Stream(_)))) {
                    handler.on_drained(self, ConnId(self.key(token)));
                }
            } else {
                break;
            }
        }
    }
}
