//! The event-loop core against real sockets on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lab::core::{
    Closed, ConnId, Ctx, EventLoop, Handler, Limits, ListenerId, SendError, TimerId, UdpId,
};

/// Echoes every byte back and records what happened.
#[derive(Default)]
struct Echo {
    accepted: usize,
    closed: Vec<String>,
    full: usize,
}

impl Handler for Echo {
    fn on_accept(&mut self, _: &mut Ctx, _: ListenerId, _: ConnId, _: SocketAddr) {
        self.accepted += 1;
    }
    fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        if let Err(SendError::Full(_)) = ctx.send(conn, data) {
            self.full += 1;
            ctx.abort(conn);
        }
    }
    fn on_closed(&mut self, ctx: &mut Ctx, _: ConnId, why: Closed) {
        self.closed.push(format!("{why:?}"));
        if self.closed.len() == self.accepted && self.accepted > 0 {
            ctx.stop();
        }
    }
}

fn echo_server(limits: Limits) -> (SocketAddr, thread::JoinHandle<Echo>) {
    let mut ev = EventLoop::with_limits(limits).unwrap();
    let l = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 128)
        .unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let h = thread::spawn(move || {
        let mut e = Echo::default();
        ev.run_for(&mut e, Duration::from_secs(30)).unwrap();
        e
    });
    (addr, h)
}

#[test]
fn echoes_a_large_stream_in_order_through_short_writes() {
    let (addr, h) = echo_server(Limits::default());
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // 8 MiB: more than the socket buffers hold, so the server meets WouldBlock on
    // write, queues, and pauses reading (back-pressure) while we are still sending.
    let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "echo differs");
    let e = h.join().unwrap();
    assert_eq!(
        e.full, 0,
        "back-pressure should have kept the buffer under its cap"
    );
    assert_eq!(e.closed, vec!["PeerClosed".to_string()]);
}

#[test]
fn a_peer_that_never_reads_is_bounded_by_the_cap() {
    // Small cap and no back-pressure pause before the cap: the server must refuse.
    let limits = Limits {
        outbound_cap: 64 * 1024,
        high_water: usize::MAX,
        ..Limits::default()
    };
    let (addr, h) = echo_server(limits);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // Write without ever reading until the server gives up on us.
    let chunk = vec![b'x'; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    let e = h.join().unwrap();
    assert_eq!(
        e.full, 1,
        "the send that overflowed the cap is refused once"
    );
    assert_eq!(e.closed, vec!["ByUs".to_string()]);
}

#[test]
fn connect_to_a_closed_port_reports_refused() {
    struct C(Option<String>);
    impl Handler for C {
        fn on_connected(&mut self, ctx: &mut Ctx, _: ConnId) {
            self.0 = Some("connected".into());
            ctx.stop();
        }
        fn on_closed(&mut self, ctx: &mut Ctx, _: ConnId, why: Closed) {
            if let Closed::Error(e) = why {
                self.0 = Some(format!("{:?}", e.kind()));
            }
            ctx.stop();
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut ev = EventLoop::new().unwrap();
    ev.ctx().connect(port).unwrap();
    let mut c = C(None);
    ev.run_for(&mut c, Duration::from_secs(5)).unwrap();
    assert_eq!(c.0.as_deref(), Some("ConnectionRefused"));
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_ones_do_not() {
    struct T(Vec<TimerId>, Option<TimerId>);
    impl Handler for T {
        fn on_timer(&mut self, ctx: &mut Ctx, t: TimerId) {
            self.0.push(t);
            if Some(t) == self.1 {
                ctx.stop();
            }
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let c = ev.ctx().timer_after(Duration::from_millis(30));
    let a = ev.ctx().timer_after(Duration::from_millis(10));
    let b = ev.ctx().timer_after(Duration::from_millis(20));
    let x = ev.ctx().timer_after(Duration::from_millis(15));
    ev.ctx().cancel_timer(x);
    let mut t = T(vec![], Some(c));
    ev.run_for(&mut t, Duration::from_secs(5)).unwrap();
    assert_eq!(t.0, vec![a, b, c]);
}

#[test]
fn another_thread_wakes_the_loop() {
    struct W(Arc<AtomicUsize>);
    impl Handler for W {
        fn on_wake(&mut self, ctx: &mut Ctx) {
            self.0.fetch_add(1, Ordering::SeqCst);
            ctx.stop();
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let waker = ev.ctx().waker();
    let n = Arc::new(AtomicUsize::new(0));
    let mut w = W(Arc::clone(&n));
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        waker.wake().unwrap();
    });
    ev.run_for(&mut w, Duration::from_secs(5)).unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[test]
fn udp_truncation_is_reported_with_the_wire_length() {
    struct U(Option<(usize, usize)>);
    impl Handler for U {
        fn on_datagram(&mut self, ctx: &mut Ctx, _: UdpId, d: lab::core::Datagram<'_>) {
            self.0 = Some((d.data.len(), d.wire_len));
            ctx.stop();
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let s = ev
        .ctx()
        .bind_udp("127.0.0.1:0".parse().unwrap(), 10)
        .unwrap();
    let addr = ev.ctx().local_addr(s).unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(&[1u8; 300], addr).unwrap();
    let mut u = U(None);
    ev.run_for(&mut u, Duration::from_secs(5)).unwrap();
    assert_eq!(u.0, Some((10, 300)));
}

#[test]
fn data_and_eof_arriving_together_are_both_seen() {
    // A short read normally ends a turn without a failing read; when the FIN arrived in
    // the same event the core must keep reading, or the EOF would never be noticed.
    struct Count {
        bytes: usize,
        eofs: usize,
        want: usize,
    }
    impl Handler for Count {
        fn on_data(&mut self, _: &mut Ctx, _: ConnId, data: &[u8]) {
            self.bytes += data.len();
        }
        fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
            self.eofs += 1;
            ctx.close(conn);
            if self.eofs == self.want {
                ctx.stop();
            }
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let l = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 1024)
        .unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let n = 300;
    let clients = thread::spawn(move || {
        for i in 0..n {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(format!("message {i}").as_bytes()).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
        }
    });
    let mut h = Count {
        bytes: 0,
        eofs: 0,
        want: n,
    };
    ev.run_for(&mut h, Duration::from_secs(30)).unwrap();
    clients.join().unwrap();
    assert_eq!(h.eofs, n, "every EOF seen");
    let want: usize = (0..n).map(|i| format!("message {i}").len()).sum();
    assert_eq!(h.bytes, want);
}

/// Rule 5b: once a turn's write budget is spent, `send` queues instead of writing, and
/// the writable event delivers it; every byte still arrives.
#[test]
fn sends_past_the_turn_write_budget_wait_for_the_writable_event() {
    const PEERS: usize = 10;
    struct Burst {
        conns: Vec<ConnId>,
        /// `ctx.queued` right after each send of the burst, in order.
        queued_after_send: Vec<usize>,
    }
    impl Handler for Burst {
        fn on_accept(&mut self, ctx: &mut Ctx, _: ListenerId, conn: ConnId, _: SocketAddr) {
            self.conns.push(conn);
            if self.conns.len() == PEERS {
                ctx.timer_after(Duration::ZERO);
            }
        }
        // One turn's burst: a byte to each peer.
        fn on_timer(&mut self, ctx: &mut Ctx, _: TimerId) {
            for &c in &self.conns {
                ctx.send(c, b"x").unwrap();
                self.queued_after_send.push(ctx.queued(c));
            }
        }
    }
    let limits = Limits {
        writes_per_turn: 4,
        ..Limits::default()
    };
    let mut ev = EventLoop::with_limits(limits).unwrap();
    let l = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 128)
        .unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let clients: Vec<TcpStream> = (0..PEERS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut b = Burst {
        conns: vec![],
        queued_after_send: vec![],
    };
    let reader = thread::spawn(move || {
        for mut c in clients {
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut one = [0u8; 1];
            c.read_exact(&mut one).expect("every peer gets its byte");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        ev.run_for(&mut b, Duration::from_millis(50)).unwrap();
    }
    reader.join().unwrap();
    assert_eq!(
        b.queued_after_send,
        [0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
        "four writes at once, the rest queued for the writable event"
    );
}

/// Rule 5b never makes a reader "full": past the budget, a send that finds the buffer
/// at its cap writes first, so a peer whose kernel buffer has room takes every byte of
/// a burst ten times the cap; a peer that never reads still meets `Full`, bounded.
#[test]
fn the_write_budget_never_makes_a_peer_with_room_full() {
    const CHUNK: usize = 1000;
    struct Burst {
        conn: Option<ConnId>,
        sends: usize,
        ok: usize,
        full: usize,
    }
    impl Handler for Burst {
        fn on_accept(&mut self, ctx: &mut Ctx, _: ListenerId, conn: ConnId, _: SocketAddr) {
            self.conn = Some(conn);
            ctx.timer_after(Duration::ZERO);
        }
        // One turn: `sends` sends of 1000 bytes against a 10 000-byte cap, budget 1.
        fn on_timer(&mut self, ctx: &mut Ctx, _: TimerId) {
            let c = self.conn.unwrap();
            for _ in 0..self.sends {
                match ctx.send(c, &[b'y'; CHUNK]) {
                    Ok(()) => self.ok += 1,
                    Err(SendError::Full(_)) => self.full += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
            ctx.stop();
        }
    }
    let limits = Limits {
        writes_per_turn: 1,
        outbound_cap: 10 * CHUNK,
        ..Limits::default()
    };
    let run = |sends: usize| {
        let mut ev = EventLoop::with_limits(limits).unwrap();
        let l = ev.ctx().listen("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        let addr = ev.ctx().local_addr(l).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let mut b = Burst {
            conn: None,
            sends,
            ok: 0,
            full: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.ok + b.full < sends && Instant::now() < deadline {
            ev.run_for(&mut b, Duration::from_millis(50)).unwrap();
        }
        drop(client);
        (b.ok, b.full)
    };
    // 100 kB fits in a fresh loopback socket's send and receive buffers: the peer has
    // room for all of it without reading yet.
    assert_eq!(run(100), (100, 0), "a peer with room got Full");
    // 20 MB does not: the peer never reads, so sends meet Full and memory stays bounded.
    let (ok, full) = run(20_000);
    assert!(full > 0 && ok < 20_000, "ok {ok}, full {full}");
}

/// Rule 5b for accepts: a backlog of 200 connections is not emptied in one turn (a
/// timer due at once fires at the end of the first turn and sees how many were taken),
/// yet all of them are accepted in the end.
#[test]
fn a_connect_flood_is_accepted_over_several_turns() {
    const FLOOD: usize = 200;
    struct Count {
        accepted: usize,
        at_first_timer: Option<usize>,
    }
    impl Handler for Count {
        fn on_accept(&mut self, ctx: &mut Ctx, _: ListenerId, _: ConnId, _: SocketAddr) {
            self.accepted += 1;
            if self.accepted == FLOOD {
                ctx.stop();
            }
        }
        fn on_timer(&mut self, _: &mut Ctx, _: TimerId) {
            self.at_first_timer.get_or_insert(self.accepted);
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let l = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 512)
        .unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let _clients: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    ev.ctx().timer_after(Duration::ZERO);
    let mut c = Count {
        accepted: 0,
        at_first_timer: None,
    };
    ev.run_for(&mut c, Duration::from_secs(30)).unwrap();
    assert_eq!(c.accepted, FLOOD, "every connection accepted in the end");
    let first = c.at_first_timer.expect("the timer fired");
    assert!(
        first > 0 && first < FLOOD,
        "the first turn accepted {first} of {FLOOD}: a budget, not all at once"
    );
}

/// `hold_reading`: once held, a connection gets no `on_data` however much its peer
/// sends (the bytes wait in the kernel); once released, everything arrives, in order,
/// and then the EOF, though no new readiness event came for the bytes that waited.
#[test]
fn a_held_connection_is_not_read_until_released_then_loses_nothing() {
    struct Hold {
        conn: Option<ConnId>,
        held: bool,
        released: Option<TimerId>,
        read_while_held: usize,
        got: Vec<u8>,
        eof: bool,
    }
    impl Handler for Hold {
        fn on_data(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
            if self.held {
                self.read_while_held += data.len();
            }
            self.got.extend_from_slice(data);
            if self.conn.is_none() {
                // The first bytes: hold for 300 ms while the peer sends the rest.
                self.conn = Some(conn);
                self.held = true;
                ctx.hold_reading(conn, true);
                self.released = Some(ctx.timer_after(Duration::from_millis(300)));
            }
        }
        fn on_timer(&mut self, ctx: &mut Ctx, timer: TimerId) {
            if Some(timer) == self.released {
                self.held = false;
                if let Some(c) = self.conn {
                    ctx.hold_reading(c, false);
                }
            }
        }
        fn on_eof(&mut self, ctx: &mut Ctx, conn: ConnId) {
            self.eof = true;
            ctx.close(conn);
            ctx.stop();
        }
    }
    let mut ev = EventLoop::new().unwrap();
    let l = ev.ctx().listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
    let addr = ev.ctx().local_addr(l).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let client = thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&sent[..10]).unwrap();
        thread::sleep(Duration::from_millis(50));
        c.write_all(&sent[10..]).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut h = Hold {
        conn: None,
        held: false,
        released: None,
        read_while_held: 0,
        got: Vec::new(),
        eof: false,
    };
    ev.run_for(&mut h, Duration::from_secs(30)).unwrap();
    client.join().unwrap();
    assert_eq!(h.read_while_held, 0, "bytes were read while held");
    assert!(h.eof, "no EOF after release");
    assert_eq!(h.got.len(), data.len());
    assert!(h.got == data, "bytes out of order or changed");
}
