//! The server's forwarding, driven by hand: a channel the test fills, one `on_wake` at
//! a time, real loopback clients. Counting wake-ups and bytes, not milliseconds.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use clap::Parser;

use super::super::source::{SourceEvent, SourceHandle};
use super::super::Args;
use super::{Streamer, FRAME_COST, TURN_BUDGET};
use crate::core::{EventLoop, Handler};

/// Runs the loop in short slices until `done` holds (bounded: 20 s on a loaded machine).
fn run_until(
    ev: &mut EventLoop,
    server: &mut Streamer,
    what: &str,
    done: impl Fn(&Streamer) -> bool,
) {
    let end = Instant::now() + Duration::from_secs(20);
    while !done(server) {
        assert!(Instant::now() < end, "{what}: not within 20 s");
        ev.run_for(server, Duration::from_millis(10)).unwrap();
    }
}

/// A server fed by hand with `clients` connected (none of them reading).
struct Setup {
    ev: EventLoop,
    server: Streamer,
    tx: SyncSender<SourceEvent>,
    addr: SocketAddr,
    clients: Vec<TcpStream>,
}

fn setup(buffer: u32, clients: usize) -> Setup {
    let args = Args::try_parse_from(["07", "--quiet", "--buffer", &buffer.to_string()]).unwrap();
    let (tx, source) = SourceHandle::manual();
    let mut ev = EventLoop::new().unwrap();
    let listener = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 128)
        .unwrap();
    let addr = ev.ctx().local_addr(listener).unwrap();
    let mut server = Streamer::new(source, &args);
    let held: Vec<TcpStream> = (0..clients)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    run_until(&mut ev, &mut server, "the clients accepted", |s| {
        s.clients.len() == clients
    });
    Setup {
        ev,
        server,
        tx,
        addr,
        clients: held,
    }
}

/// Samples consumed so far (sent or skipped) by each client, in connection order.
fn progress(s: &Streamer) -> Vec<u64> {
    s.order.iter().map(|t| s.clients[t].seq).collect()
}

/// Issue 18: when the loop was behind (300 silent clients at 50,000 samples/s, or a
/// stall), a client that had just connected waited up to a second for its first sample:
/// the samples born after it connected sat behind a backlog the loop took 8 chunks a
/// turn. Now every wake-up stages the whole channel and serves each client from its own
/// position: the newcomer's first buffer goes out in the first wake-up, however much
/// the others still have to get, and that wake-up stays within the turn's budget.
#[test]
fn a_newcomer_is_served_in_the_first_wake_up_whatever_the_backlog() {
    let mut t = setup(16, 50);
    let mut newcomer = TcpStream::connect(t.addr).unwrap();
    run_until(&mut t.ev, &mut t.server, "the newcomer accepted", |s| {
        s.clients.len() == 51
    });
    let me = newcomer.local_addr().unwrap();
    let since = t
        .server
        .clients
        .values()
        .find(|c| c.peer == me)
        .unwrap()
        .since;
    // A backlog born after the others connected and just before the newcomer did: 1000
    // chunks of 50 samples (what a loop that fell a second behind at 50,000 samples/s
    // finds), then 16 samples born after it connected.
    let before = since.checked_sub(Duration::from_nanos(1)).unwrap();
    for _ in 0..1000 {
        t.tx.try_send(SourceEvent::Samples {
            data: vec![1; 50],
            at: before,
        })
        .unwrap();
    }
    t.tx.try_send(SourceEvent::Samples {
        data: vec![2; 16],
        at: Instant::now(),
    })
    .unwrap();

    t.server.on_wake(t.ev.ctx());
    let sent: u64 = t.server.clients.values().map(|c| c.sent).sum();
    let newcomer_sent = t
        .server
        .clients
        .values()
        .find(|c| c.peer == me)
        .map(|c| c.sent);
    assert_eq!(
        newcomer_sent,
        Some(16),
        "the newcomer's first buffer waited behind the backlog"
    );
    // All 50 others have 50,000 samples to get (3,125 frames each): one wake-up may not
    // send them all (18867f6 did: a turn of millions of sends with 1-sample buffers).
    assert!(
        sent <= TURN_BUDGET as u64,
        "one wake-up handed {sent} bytes to sockets: over the turn's budget of {TURN_BUDGET}"
    );
    // And it is the fresh samples, not the backlog (born before it connected). The
    // loop flushes what the turn's write budget left queued.
    newcomer.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while got.len() < 16 {
        assert!(
            Instant::now() < end,
            "the newcomer's buffer not delivered in 20 s"
        );
        t.ev.run_for(&mut t.server, Duration::from_millis(10))
            .unwrap();
        let mut buf = [0u8; 64];
        match newcomer.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("newcomer: {e}"),
        }
    }
    assert_eq!(got, [2; 16]);
    drop(t.clients);
}

/// With 1-sample buffers a backlog is a frame per sample per client: one wake-up
/// serves every client an equal share of the turn's budget, and no more.
#[test]
fn one_wake_up_is_bounded_and_shared_equally() {
    let mut t = setup(1, 20);
    let at = Instant::now();
    for _ in 0..1000 {
        t.tx.try_send(SourceEvent::Samples {
            data: vec![3; 64],
            at,
        })
        .unwrap();
    }
    t.server.on_wake(t.ev.ctx());
    let got = progress(&t.server);
    let share = (TURN_BUDGET / 20 / (1 + FRAME_COST)) as u64;
    let total: u64 = got.iter().sum();
    assert!(
        total * (1 + FRAME_COST as u64) <= TURN_BUDGET as u64,
        "{total} frames in one wake-up: over the budget"
    );
    for (i, g) in got.iter().enumerate() {
        assert!(
            *g + 1 >= share && *g <= share,
            "client {i} got {g} samples, its share is {share}: {got:?}"
        );
    }
    // What is left waits for the next wake-up, which the server asked for.
    assert!(got.iter().all(|&g| g < 64_000));
    drop(t.clients);
}

/// When a turn's budget covers only some clients (buffers of 65,536 samples: four
/// frames a turn), the next turn starts where the last one stopped, so nobody waits
/// more than a round.
#[test]
fn a_budget_smaller_than_a_round_rotates_over_the_clients() {
    let mut t = setup(65_536, 10);
    let at = Instant::now();
    for _ in 0..2 {
        t.tx.try_send(SourceEvent::Samples {
            data: vec![4; 65_536],
            at,
        })
        .unwrap();
    }
    let per_turn = TURN_BUDGET.div_ceil(65_536 + FRAME_COST);
    let turns = 10usize.div_ceil(per_turn);
    for _ in 0..turns {
        t.server.on_wake(t.ev.ctx());
    }
    let got = progress(&t.server);
    assert!(
        got.iter().all(|&g| g >= 65_536),
        "after {turns} wake-ups of {per_turn} frames some client had none: {got:?}"
    );
    drop(t.clients);
}
