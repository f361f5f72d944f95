//! Exercise 02-udp-echo: a UDP echo server.
//!
//! The contract (what `lab check 02` tests): started as `udp-echo --port N`, bind UDP
//! 127.0.0.1:N; send every datagram (1 to 65507 bytes) back, unchanged, to the address
//! it came from.
//!
//! Read the lesson: `lab show 02`. Stuck? `lab hint 02`. Check: `lab check 02`.

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
    // TODO: is this buffer big enough for every datagram the contract allows?
    let mut buf = vec![0u8; 512];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        // TODO: send &buf[..n] back to `from`.
        let _ = (n, from);
    }
}
