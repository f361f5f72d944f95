//! Exercise 07-serial-stream: the Pi's forwarder, serial samples to TCP clients.
//!
//! The contract (what `lab check 07` tests): started as
//! `serial-stream --serial PATH --port N --buffer K`, read one-byte samples from the
//! serial device at PATH and listen on 127.0.0.1:N. Every connected client gets every
//! sample read after it connected, unchanged and in order, K samples per send. Serve
//! several clients at once; a client that leaves or stops reading must not stop the
//! others; wait for data without spinning the CPU.
//!
//! The device is a file: `File::open(path)` and `read` return as soon as at least one
//! byte is there (the grader's pseudo-terminal is in raw mode already).
//!
//! Read the lesson: `lab show 07`. Stuck? `lab hint 07`. Check: `lab check 07`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;

fn arg(name: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| {
            eprintln!("usage: serial-stream --serial PATH --port N --buffer K");
            std::process::exit(2)
        })
}

fn main() -> std::io::Result<()> {
    let path = arg("--serial");
    let port: u16 = arg("--port").parse().expect("--port needs a number");
    let k: usize = arg("--buffer").parse().expect("--buffer needs a number");
    let mut dev = File::open(&path)?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    // TODO: serve every client, not just the first: read the device in a thread of its
    // own and keep a list of clients, each with its own buffer of samples.
    let (mut conn, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = dev.read(&mut buf)?;
        // TODO: collect samples until the buffer holds k of them, then send exactly k,
        // keeping the rest for the next buffer. (This sends text, one read at a time.)
        let _ = k;
        conn.write_all(format!("{:?}", &buf[..n]).as_bytes())?;
    }
}
