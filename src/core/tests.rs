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
