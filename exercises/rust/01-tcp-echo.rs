//! Exercise 01-tcp-echo: a TCP line echo server.
//!
//! The contract (what `lab check 01` tests): started as `tcp-echo --port N`, listen on
//! 127.0.0.1:N; for each newline-terminated line L a client sends, reply `Received: L`
//! and a newline; serve several clients at once. Lines are bytes, not text: every byte
//! comes back unchanged (bytes that are not UTF-8, NUL, a \r before the \n), lines may be
//! several MiB long, and every reply must arrive whole, however slowly the client reads.
//!
//! Read the lesson: `lab show 01`. Stuck? `lab hint 01`. Check: `lab check 01`.

use std::net::{TcpListener, TcpStream};

fn port_from_args() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: tcp-echo --port N");
            std::process::exit(2)
        })
}

/// Serves one client.
fn serve(stream: TcpStream) {
    // TODO: read bytes from `stream`; for every complete line (ending in b'\n') write
    // back b"Received: " + the line + b"\n". Remember: one read may hold half a line or
    // several lines, and a read of 0 bytes means the client closed its side.
    let _ = stream;
}

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port_from_args()))?;
    for stream in listener.incoming() {
        // TODO: several clients must be served at once (a thread per client?).
        serve(stream?);
    }
    Ok(())
}
