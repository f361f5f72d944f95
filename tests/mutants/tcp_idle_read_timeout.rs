// lab: 01-tcp-echo
// caught-by: idle_client
// mistake: set_read_timeout(5 s) on each client: a person at nc who pauses 5 s is cut off
use std::io::{BufRead, BufReader, Write};
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

/// Serves one client until it closes; the socket closes when `stream` is dropped.
fn serve(stream: TcpStream) -> std::io::Result<()> {
    // BUG: a client quiet for 5 s makes read_until fail (WouldBlock) and is dropped.
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    // BufReader keeps the bytes after a newline for the next line: the framing.
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bytes, not text: a UTF-8 character split across reads stays intact.
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(()); // EOF: the client closed its side
        }
        line.pop();
        let mut reply = b"Received: ".to_vec();
        reply.extend_from_slice(&line);
        reply.push(b'\n');
        // write_all loops until every byte is sent (a write may take only part).
        writer.write_all(&reply)?;
    }
}

fn main() -> std::io::Result<()> {
    // std's TcpListener::bind sets SO_REUSEADDR on Unix, so restarts bind at once.
    let listener = TcpListener::bind(("127.0.0.1", port_from_args()))?;
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                std::thread::spawn(move || serve(s));
            }
            // Out of descriptors or an aborted connection: keep serving the others.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}
