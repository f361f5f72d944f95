// lab: 01-tcp-echo
// caught-by: slow_reader
// mistake: write() with its count ignored (it returns early when a signal interrupts it)
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        line.pop();
        let mut reply = b"Received: ".to_vec();
        reply.extend_from_slice(&line);
        reply.push(b'\n');
        #[allow(clippy::unused_io_amount)]
        writer.write(&reply)?; // BUG: write() may take only part of the reply
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
