//! Exercise 03-udp-loss: a UDP receiver that counts loss, duplicates and reordering.
//!
//! The contract (what `lab check 03` tests): started as `udp-loss --port N`, bind UDP
//! 127.0.0.1:N and receive the lab's probe datagrams (a 32-byte big-endian header: magic
//! LAB3, version 1, kind 0 data / 1 end marker, 64-bit session id, 64-bit sequence
//! number, 64-bit send time). Keep to the session of the first data datagram, from its
//! sender's address (IP and port), and ignore everything else without crashing. Memory
//! must stay bounded however long the run: no datagram arrives more than 1,000 below the
//! highest sequence number received. When the first end marker of the session arrives
//! (its sequence field is the number of data datagrams sent), print ONE line of JSON and
//! exit 0:
//!
//!     {"received": R, "lost": L, "duplicates": D, "out_of_order": O}
//!
//! Read the lesson: `lab show 03`. Stuck? `lab hint 03`. Check: `lab check 03`.

use std::net::UdpSocket;

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

fn main() -> std::io::Result<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port_from_args()))?;
    let mut buf = vec![0u8; 65535];
    let (mut received, lost, duplicates, out_of_order) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let (n, _from) = sock.recv_from(&mut buf)?;
        let d = &buf[..n];
        // TODO: what if the datagram is shorter than 32 bytes, or not a probe at all?
        let kind = d[5];
        // TODO: read the session (bytes 8..16) and sequence (16..24) with
        // u64::from_be_bytes, and keep to the session (and sender) of the first data
        // datagram.
        if kind == 1 {
            // TODO: lost = the sender's count (the end marker's sequence) - received.
            println!("{{\"received\": {received}, \"lost\": {lost}, \"duplicates\": {duplicates}, \"out_of_order\": {out_of_order}}}");
            return Ok(());
        }
        // TODO: a sequence number seen before is a duplicate, not a new datagram; a new
        // one lower than the highest so far is out of order. Remember only recent
        // sequence numbers: a set of all of them grows with the run.
        received += 1;
    }
}
