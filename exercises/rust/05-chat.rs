//! Exercise 05-chat: a chat server.
//!
//! The contract (what `lab check 05` tests): started as `chat --port N`, listen on
//! 127.0.0.1:N.
//!   1. A client's first line is its nickname; the others then get `* NICK joined`.
//!   2. Every later line TEXT from NICK goes to every OTHER client as `<NICK> TEXT`.
//!   3. When a client disconnects (EOF or reset), the others get `* NICK left`.
//!   4. A client that stops reading must not delay the others (you may drop it).
//! Lines end in `\n`; send nothing else.
//!
//! Read the lesson: `lab show 05`. Stuck? `lab hint 05`.

use std::net::{TcpListener, TcpStream};

fn port_from_args() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: chat --port N");
            std::process::exit(2)
        })
}

/// Serves one client.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    // TODO: the first line is the nickname: tell the others `* NICK joined`.
    // TODO: every later line goes to every other client as `<NICK> TEXT\n`.
    // One read may hold half a line or several lines; a read of 0 bytes means the
    // client left: tell the others `* NICK left`. A write to a client that stopped
    // reading must not block everyone else (a writer thread per client with a bounded
    // channel, and `try_send`?). The others' sockets must be shared: Arc<Mutex<..>>.
    drop(stream);
    Ok(())
}

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port_from_args()))?;
    for stream in listener.incoming() {
        // TODO: serve every client at once (std::thread::spawn).
        serve(stream?)?;
    }
    Ok(())
}
