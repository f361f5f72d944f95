//! Exercise 04-raw-icmp: a mini ping on a raw socket.
//!
//! The contract (what `lab check 04` tests): started as
//! `raw-icmp --target ADDR --count N [--timeout S] [--size N]`, send N ICMP echo requests
//! (type 8, code 0, RFC 1071 checksum, one identifier, sequence 1..N, --size data bytes)
//! to ADDR, one per 0.2 s; for each echo reply that is yours print a line with
//! `seq=SEQ ttl=TTL time=MS ms`; stop --timeout seconds after the last request (or when
//! all are answered); print `N transmitted, M received`; exit 0, or 1 when nothing came
//! back.
//!
//! Rust's standard library has no raw sockets and this workspace uses no crates, so the
//! one C function needed, `socket(2)`, is declared below; the descriptor is wrapped in a
//! `UdpSocket`, whose `send_to`/`recv_from`/`set_read_timeout` are plain
//! sendto/recvfrom/SO_RCVTIMEO and work on a raw socket too.
//!
//! Read the lesson: `lab show 04`. Stuck? `lab hint 04`. Check: `lab check 04`.

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

/// RFC 1071: the ones' complement of the ones' complement sum of 16-bit words.
fn checksum(data: &[u8]) -> u16 {
    // TODO: sum the 16-bit big-endian words (an odd last byte is the HIGH half of a
    // word padded with zero), fold the carries back in, return the complement.
    let _ = data;
    0
}

fn echo_request(ident: u16, seq: u16, size: usize) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
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
    let target: Ipv4Addr = arg(&args, "--target")
        .and_then(|t| t.parse().ok())
        .unwrap_or(Ipv4Addr::LOCALHOST);
    let count: u16 = arg(&args, "--count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    let size: usize = arg(&args, "--size")
        .and_then(|c| c.parse().ok())
        .unwrap_or(56);

    // SAFETY: socket() takes three integers and returns a new descriptor or -1.
    let fd = unsafe { socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) };
    if fd < 0 {
        eprintln!("raw socket: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let ident = std::process::id() as u16;
    let received = 0;
    for seq in 1..=count {
        let _sent = Instant::now();
        let _ = sock.send_to(&echo_request(ident, seq, size), (target, 0));
        // TODO: receive until the reply to `seq` arrives or --timeout passes
        // (sock.set_read_timeout). What arrives starts with the IPv4 header: where does
        // the ICMP message start? Skip what is not your reply. For yours print e.g.
        //   println!("seq={seq} ttl={ttl} time={ms:.3} ms");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{count} transmitted, {received} received");
    std::process::exit(if received > 0 { 0 } else { 1 });
}
