//! The server's forwarding, driven by hand: a channel the test fills, one `on_wake` at
//! a time, real loopback clients. Counting turns, not milliseconds.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Parser;

use super::super::source::{SourceEvent, SourceHandle};
use super::super::Args;
use super::Streamer;
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

/// Issue 18: with 300 clients that never read, the loop fell behind the source and a
/// newcomer waited up to a second for its first sample: the samples born after it
/// connected sat behind a backlog the loop forwarded 8 chunks a turn. Now one wake-up
/// forwards everything the channel holds (cheaply for clients that are behind), so the
/// newcomer's first buffer goes out in the turn that finds its first sample.
#[test]
fn a_newcomer_gets_its_first_sample_in_the_turn_that_finds_it_whatever_the_backlog() {
    let args = Args::try_parse_from(["07", "--buffer", "16"]).unwrap();
    let (tx, source) = SourceHandle::manual();
    let mut ev = EventLoop::new().unwrap();
    let listener = ev
        .ctx()
        .listen("127.0.0.1:0".parse().unwrap(), 128)
        .unwrap();
    let addr = ev.ctx().local_addr(listener).unwrap();
    let mut server = Streamer::new(source, &args);

    // Clients that never read, already there.
    let silent: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
    run_until(&mut ev, &mut server, "50 clients accepted", |s| {
        s.clients.len() == 50
    });

    // A backlog born before the newcomer connects: 200 chunks of 50 samples (what a loop
    // that fell 200 ms behind at 50,000 samples/s finds), then one sample born after.
    let old = Instant::now();
    let mut newcomer = TcpStream::connect(addr).unwrap();
    run_until(&mut ev, &mut server, "the newcomer accepted", |s| {
        s.clients.len() == 51
    });
    for _ in 0..200 {
        tx.try_send(SourceEvent::Samples {
            data: vec![1; 50],
            at: old,
        })
        .unwrap();
    }
    tx.try_send(SourceEvent::Samples {
        data: vec![2; 16],
        at: Instant::now(),
    })
    .unwrap();

    // One wake-up: the newcomer's first buffer must be out, not 25 turns later.
    server.on_wake(ev.ctx());
    let me = newcomer.local_addr().unwrap();
    let sent = server
        .clients
        .values()
        .find(|c| c.peer == me)
        .map(|c| c.sent);
    assert_eq!(
        sent,
        Some(16),
        "the newcomer's first buffer waited behind the backlog"
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
        ev.run_for(&mut server, Duration::from_millis(10)).unwrap();
        let mut buf = [0u8; 64];
        match newcomer.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("newcomer: {e}"),
        }
    }
    assert_eq!(got, [2; 16]);
    // The others got the backlog in that same turn (or skipped it, counted).
    let old_ones = server.clients.values().filter(|c| c.peer != me);
    for c in old_ones {
        assert_eq!(
            c.seq,
            200 * 50 / 16 * 16 + 16,
            "{}: {} sent, {} skipped",
            c.peer,
            c.sent,
            c.skipped
        );
    }
    drop(silent);
}
