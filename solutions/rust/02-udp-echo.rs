//! Reference solution for 02-udp-echo: every datagram goes back to its sender.
//!
//! Run: cargo run --bin udp-echo -- --port 7002   then: nc -u 127.0.0.1 7002

use std::net::UdpSocket;

fn port_from_args() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: udp-echo --port N");
            std::process::exit(2)
        })
}

fn main() -> std::io::Result<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port_from_args()))?;
    // 65535 bytes holds any datagram; the largest UDP payload over IPv4 is 65507.
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("recv_from: {e}");
                continue;
            }
        };
        // Back to the address this datagram came from, unchanged.
        if let Err(e) = sock.send_to(&buf[..n], from) {
            eprintln!("send_to {from}: {e}");
        }
    }
}
