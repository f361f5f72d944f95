//! Reference solution of 04-raw-icmp: a mini ping on a raw socket, standard library only.
//!
//! Rust's standard library has no raw sockets, and the exercises build offline with no
//! crates, so this file declares the one C function it needs, `socket(2)`, itself (std
//! already links the C library). The descriptor is then wrapped in a `UdpSocket`: its
//! `send_to`, `recv_from` and `set_read_timeout` are exactly `sendto(2)`, `recvfrom(2)`
//! and SO_RCVTIMEO, which work on any datagram-like socket, raw ones included.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

// From <sys/socket.h> and <netinet/in.h> on Linux.
const AF_INET: i32 = 2;
const SOCK_RAW: i32 = 3;
const IPPROTO_ICMP: i32 = 1;

extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
}

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;

/// RFC 1071: the ones' complement of the ones' complement sum of 16-bit words.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in data.chunks(2) {
        // An odd last byte is the HIGH half of a word padded with zero.
        let word = u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16); // end-around carry
    }
    !(sum as u16)
}

fn echo_request(ident: u16, seq: u16, size: usize) -> Vec<u8> {
    let mut m = vec![ECHO_REQUEST, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend((0..size).map(|i| 0x10u8.wrapping_add(i as u8)));
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: raw-icmp --target ADDR --count N [--timeout S] [--size N]");
        std::process::exit(2)
    };
    let target: Ipv4Addr = arg(&args, "--target")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| usage());
    let count: u16 = arg(&args, "--count")
        .map_or(Some(3), |c| c.parse().ok())
        .unwrap_or_else(|| usage());
    let timeout: f64 = arg(&args, "--timeout")
        .map_or(Some(2.0), |c| c.parse().ok())
        .unwrap_or_else(|| usage());
    let size: usize = arg(&args, "--size")
        .map_or(Some(56), |c| c.parse().ok())
        .unwrap_or_else(|| usage());

    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let fd = unsafe { socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) };
    if fd < 0 {
        eprintln!(
            "raw socket: {} (needs CAP_NET_RAW: run it through `lab check`, or sudo)",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };

    let ident = std::process::id() as u16;
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_secs_f64(timeout);
    let mut sent: Vec<Instant> = Vec::new(); // index seq - 1
    let mut answered = vec![false; usize::from(count)];
    let mut received = 0u32;
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        if sent.len() < usize::from(count) && now >= next_send {
            let seq = sent.len() as u16 + 1;
            sent.push(Instant::now());
            if let Err(e) = sock.send_to(&echo_request(ident, seq, size), (target, 0)) {
                eprintln!("sendto: {e}");
            }
            next_send += interval;
            continue;
        }
        let all_sent = sent.len() == usize::from(count);
        let end = *sent.last().unwrap_or(&now) + timeout;
        if all_sent && (answered.iter().all(|a| *a) || now >= end) {
            break;
        }
        let wake = if all_sent { end } else { end.min(next_send) };
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).expect("SO_RCVTIMEO");
        let n = match sock.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(_) => continue, // timed out (or interrupted): back to the schedule
        };
        let got = Instant::now();
        let packet = &buf[..n];
        if packet.is_empty() {
            continue;
        }
        // The IPv4 header is IHL x 4 bytes: options may follow its fixed 20.
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        if n < ihl + 8 || ihl < 20 {
            continue;
        }
        let ttl = packet[8];
        let icmp = &packet[ihl..];
        if checksum(icmp) != 0 {
            continue; // damaged
        }
        let (kind, code) = (icmp[0], icmp[1]);
        let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
        let rseq = u16::from_be_bytes([icmp[6], icmp[7]]);
        // Our own requests come back on loopback (type 8); other pings have other ids.
        if kind != ECHO_REPLY
            || code != 0
            || rid != ident
            || rseq == 0
            || usize::from(rseq) > sent.len()
        {
            continue;
        }
        let i = usize::from(rseq) - 1;
        let ms = got.duration_since(sent[i]).as_secs_f64() * 1000.0;
        let dup = answered[i];
        if !dup {
            answered[i] = true;
            received += 1;
        }
        println!(
            "{} bytes from {target}: seq={rseq} ttl={ttl} time={ms:.3} ms{}",
            icmp.len(),
            if dup { " (DUP!)" } else { "" }
        );
    }
    println!("{count} transmitted, {received} received");
    std::process::exit(if received > 0 { 0 } else { 1 });
}
