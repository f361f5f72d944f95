//! Unit tests of the core's slot bookkeeping and stopping, which integration tests cannot see.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A "UDP socket" that is really a regular file: epoll refuses to watch it (EPERM),
/// which is the one way to make `register` fail from outside. `listen` and
/// `adopt_udp_batched` cannot be fed such a thing (the first makes its own socket, the
/// second's setsockopt fails before a slot is taken), but all ways in share
/// `Ctx::register`, so this covers them.
fn not_a_socket() -> std::net::UdpSocket {
    let file = tempfile::tempfile().expect("temp file");
    std::net::UdpSocket::from(OwnedFd::from(file))
}

#[test]
fn a_failed_register_gives_its_slot_back() {
    let mut ev = EventLoop::new().unwrap();
    let ctx = ev.ctx();
    for _ in 0..3 {
        assert!(ctx.adopt_udp(not_a_socket(), 16).is_err());
    }
    assert_eq!(
        ctx.free.len(),
        ctx.slots.len(),
        "every slot taken is free again"
    );
    assert!(ctx.slots.len() <= 1, "failed registers reuse one slot");
}

#[test]
fn a_stale_handle_never_reaches_the_new_source_in_its_slot() {
    let mut ev = EventLoop::new().unwrap();
    let ctx = ev.ctx();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let old = ctx.bind_udp(any, 16).unwrap();
    let token = ctx.live(old.0).unwrap();
    ctx.drop_source(token, Closed::ByUs);
    let new = ctx.bind_udp(any, 16).unwrap();
    assert_eq!(old.0.index, new.0.index, "the slot is reused");
    assert_ne!(old, new);
    assert_eq!(ctx.local_addr(old), None);
    assert!(ctx.send_to(old, b"x", any).is_err());
    assert!(ctx.local_addr(new).is_some());
}

/// Counts `on_data` calls; on the first, it stops the loop one of two ways.
struct StopMidTurn {
    /// `Some`: set this flag, as [`LoopThread::stop`] does from another thread (its wake
    /// comes later); `None`: call [`Ctx::stop`], as a signal handler does.
    request: Option<Arc<AtomicBool>>,
    data_calls: usize,
    stop_calls: usize,
}

impl Handler for StopMidTurn {
    fn on_data(&mut self, ctx: &mut Ctx, _: ConnId, _: &[u8]) {
        self.data_calls += 1;
        match &self.request {
            Some(flag) => flag.store(true, Ordering::SeqCst),
            None => ctx.stop(),
        }
    }
    fn on_stop(&mut self, _: &mut Ctx) {
        self.stop_calls += 1;
    }
}

/// A handler that does nothing.
struct Quiet;
impl Handler for Quiet {}

/// A loop whose next turn has data on 20 connections, each more than one read's budget
/// (so the turn also has reruns): a turn that runs to its end calls `on_data` many times.
fn loop_with_a_busy_turn() -> (EventLoop, Vec<std::net::TcpStream>) {
    use std::io::Write;
    let limits = Limits {
        read_chunk: 1024,
        reads_per_turn: 2,
        ..Limits::default()
    };
    let mut ev = EventLoop::with_limits(limits).unwrap();
    let l = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 128)
        .unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let clients: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Accept them all (no data yet, so no on_data): bounded in turns and time.
    let end = Instant::now() + Duration::from_secs(20);
    while ev.ctx.slots.iter().flatten().count() < 21 {
        assert!(Instant::now() < end, "20 connections not accepted in 20 s");
        ev.run_for(&mut Quiet, Duration::from_millis(10)).unwrap();
    }
    for mut c in &clients {
        c.write_all(&[7; 16 * 1024]).unwrap();
    }
    (ev, clients)
}

/// Issue 18: Ctrl-C took 26 s with 300 clients flooding a server: the turn in which the
/// signal was heard ran to its end (every connection's read budget, then the reruns).
/// Rule 9: once stopped, the rest of the turn is left undone.
#[test]
fn a_stop_leaves_the_rest_of_the_turn_undone() {
    let (mut ev, _clients) = loop_with_a_busy_turn();
    let mut h = StopMidTurn {
        request: None,
        data_calls: 0,
        stop_calls: 0,
    };
    ev.run_for(&mut h, Duration::from_secs(20)).unwrap();
    assert!(ev.ctx().is_stopped());
    assert_eq!(h.data_calls, 1, "on_data ran after the loop was stopped");
}

/// The same for a stop request that arrives during a turn (LoopThread::stop from another
/// thread): heard before the next event, not at the next poll, and `on_stop` once.
#[test]
fn a_stop_request_during_a_turn_is_heard_before_the_next_event() {
    let (mut ev, _clients) = loop_with_a_busy_turn();
    let mut h = StopMidTurn {
        request: Some(Arc::clone(&ev.ctx().stop_request)),
        data_calls: 0,
        stop_calls: 0,
    };
    ev.run_for(&mut h, Duration::from_secs(20)).unwrap();
    assert!(ev.ctx().is_stopped(), "the stop request was never heard");
    assert_eq!(h.stop_calls, 1);
    assert_eq!(h.data_calls, 1, "on_data ran after the stop request");
}

/// Gathers what every connection sent during a turn and, at the turn's end, sends the
/// lot to every connection in one piece (what a chat does with its lines).
#[derive(Default)]
struct Gatherer {
    conns: Vec<ConnId>,
    gathered: Vec<u8>,
    /// "data" per on_data call and "end" per turn that had gathered something.
    log: Vec<&'static str>,
}

impl Handler for Gatherer {
    fn on_accept(&mut self, ctx: &mut Ctx, _l: ListenerId, conn: ConnId, _p: SocketAddr) {
        self.conns.push(conn);
        if self.conns.len() == 2 {
            ctx.stop();
        }
    }
    fn on_data(&mut self, _ctx: &mut Ctx, _conn: ConnId, data: &[u8]) {
        self.gathered.extend_from_slice(data);
        self.log.push("data");
    }
    fn on_turn_end(&mut self, ctx: &mut Ctx) {
        if self.gathered.is_empty() {
            return;
        }
        self.log.push("end");
        for &c in &self.conns {
            ctx.send_parts(c, &[&self.gathered[..1], &self.gathered[1..]])
                .unwrap();
        }
        self.gathered.clear();
        ctx.stop();
    }
}

#[test]
fn on_turn_end_runs_once_after_every_event_of_the_turn() {
    use std::io::{Read, Write};
    let mut ev = EventLoop::new().unwrap();
    let l = ev.ctx().listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let mut a = std::net::TcpStream::connect(addr).unwrap();
    let mut b = std::net::TcpStream::connect(addr).unwrap();
    let mut h = Gatherer::default();
    ev.run_for(&mut h, Duration::from_secs(10)).unwrap();
    assert_eq!(h.conns.len(), 2, "both accepted");
    // Both writes are in the server's sockets before the loop polls again (loopback
    // delivers during write), so one poll reports both: one turn, two reads.
    a.write_all(b"A").unwrap();
    b.write_all(b"B").unwrap();
    ev.ctx().stopped = false;
    ev.run_for(&mut h, Duration::from_secs(10)).unwrap();
    assert_eq!(h.log, ["data", "data", "end"], "one end, after both reads");
    for mut s in [a, b] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0; 2];
        s.read_exact(&mut got).unwrap();
        got.sort_unstable();
        assert_eq!(
            &got, b"AB",
            "the turn's bytes, sent in two parts, arrive whole"
        );
    }
}
