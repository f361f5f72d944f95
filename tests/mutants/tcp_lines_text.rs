// lab: 01-tcp-echo
// caught-by: raw_bytes
// mistake: BufRead::lines() + writeln!: a line that is not UTF-8 panics the thread, and \r\n loses its \r
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn serve(stream: TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let reader = BufReader::new(stream);
    // BUG: lines() yields Strings: it fails on bytes that are not UTF-8 (unwrap panics)
    // and strips a \r before the \n.
    for line in reader.lines() {
        let line = line.unwrap();
        writeln!(writer, "Received: {line}").unwrap();
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[args.iter().position(|a| a == "--port").unwrap() + 1]
        .parse()
        .unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    Ok(())
}
