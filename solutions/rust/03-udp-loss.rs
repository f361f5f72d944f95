//! Reference solution for 03-udp-loss: a UDP receiver that counts loss, duplicates and
//! reordering exactly, and reports when its sender's first end marker arrives.
//!
//! Run: cargo run --bin udp-loss -- --port 7003
//! then: lab run 03 --role sender --connect 127.0.0.1:7003 --count 1000 --rate 10000
//! (at full speed, the default, its socket buffer overflows and the kernel drops some)

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Bytes of the probe header.
const HEADER_LEN: usize = 32;

/// How far back a datagram can arrive: the contract says never more than 1,000 below the
/// highest sequence number received, so remembering the last 4,096 is enough, and the
/// memory stays the same however long the run.
const WINDOW: u64 = 4096;

fn port_from_args() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: udp-loss --port N");
            std::process::exit(2)
        })
}

/// A big-endian u64 from 8 bytes of the header.
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The header's kind, session and sequence, or None when the bytes are not a probe.
fn parse(d: &[u8]) -> Option<(u8, u64, u64)> {
    if d.len() < HEADER_LEN || &d[0..4] != b"LAB3" || d[4] != 1 || d[5] > 1 {
        return None;
    }
    Some((d[5], be64(&d[8..16]), be64(&d[16..24])))
}

fn main() -> std::io::Result<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port_from_args()))?;
    // A UDP receiver needs a timeout: nothing else says that the sender is gone.
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    // 65535 bytes holds any datagram: a smaller buffer would cut long ones.
    let mut buf = vec![0u8; 65535];
    let mut session: Option<(u64, SocketAddr)> = None;
    // slots[seq % WINDOW] is the last sequence number stored in that slot: a repeat finds
    // itself there. A set of every sequence number would grow with the run.
    let mut slots: Vec<Option<u64>> = vec![None; WINDOW as usize];
    let mut highest: Option<u64> = None;
    let (mut received, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64);
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                eprintln!("no end marker within 30 s: is the sender running?");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("recv_from: {e}");
                continue;
            }
        };
        let Some((kind, sess, seq)) = parse(&buf[..n]) else {
            continue; // foreign: not a probe
        };
        if session.is_none() {
            if kind != 0 {
                continue; // an end marker does not start a session
            }
            session = Some((sess, from));
        }
        if session != Some((sess, from)) {
            continue; // foreign: another session or another sender
        }
        if kind == 1 {
            // The end marker's sequence field is how many data datagrams were sent:
            // the only way to see losses at the tail.
            println!(
                "{{\"received\": {received}, \"lost\": {}, \"duplicates\": {duplicates}, \"out_of_order\": {out_of_order}}}",
                seq.saturating_sub(received)
            );
            return Ok(());
        }
        if highest.is_some_and(|h| h.saturating_sub(seq) >= WINDOW) {
            continue; // too old to tell a first copy from a repeat (never sent by the grader)
        }
        let slot = &mut slots[(seq % WINDOW) as usize];
        if *slot == Some(seq) {
            duplicates += 1; // counted apart: a duplicate must not hide a loss
            continue;
        }
        *slot = Some(seq);
        if highest.is_some_and(|h| seq < h) {
            out_of_order += 1; // lower than the highest so far, not just the previous
        }
        highest = Some(highest.map_or(seq, |h| h.max(seq)));
        received += 1;
    }
}
