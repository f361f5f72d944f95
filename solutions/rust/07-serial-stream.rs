//! Reference solution for 07-serial-stream: the Pi's forwarder, a thread per job.
//!
//! Run: cargo run --bin serial-stream -- --serial /dev/ttyACM0 --port 1234 --buffer 16
//! then: lab run 07 --role client --connect 127.0.0.1:1234
//! (On a real port first `stty -F /dev/ttyACM0 115200 raw -echo`: std cannot set
//! terminal modes; the grader's pseudo-terminal is raw already.)

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Samples queued for one client before it skips buffers: 64 KiB is over a minute of
/// samples at 896/s, so only a client that stopped reading skips any, and it costs at
/// most this much memory.
const MAX_QUEUED_BYTES: usize = 64 * 1024;

/// One connected client, as the device reader sees it.
struct Client {
    /// Samples read since it connected that do not fill a buffer yet: it starts empty,
    /// so a client only ever gets samples read after it arrived.
    buf: Vec<u8>,
    /// Full buffers for its sender thread; bounded, so a slow client costs no memory.
    out: SyncSender<Vec<u8>>,
}

type Clients = Arc<Mutex<Vec<Client>>>;

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

fn number<T: std::str::FromStr>(name: &str) -> T {
    arg(name).parse().unwrap_or_else(|_| {
        eprintln!("{name} needs a number");
        std::process::exit(2)
    })
}

/// Reads samples for ever; hands each client a buffer whenever it holds `k`.
fn read_device(path: String, k: usize, clients: Clients) {
    let mut wait = Duration::from_millis(100);
    let mut buf = vec![0u8; 4096];
    loop {
        let mut dev = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                // Unplugged (or not there yet): retry with a growing delay, never spin.
                eprintln!("cannot open {path}: {e}; retrying in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        wait = Duration::from_millis(100);
        loop {
            // Blocks until at least one byte is there: no busy loop.
            let n = match dev.read(&mut buf) {
                Ok(0) | Err(_) => break, // the device went away: reopen it
                Ok(n) => n,
            };
            let mut list = clients.lock().unwrap_or_else(|p| p.into_inner());
            list.retain_mut(|c| {
                // Everything the read returned: no byte is dropped here.
                c.buf.extend_from_slice(&buf[..n]);
                while c.buf.len() >= k {
                    let full: Vec<u8> = c.buf.drain(..k).collect();
                    match c.out.try_send(full) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {} // far behind: skip a buffer
                        Err(TrySendError::Disconnected(_)) => return false, // it left
                    }
                }
                true
            });
        }
        std::thread::sleep(wait);
    }
}

/// Sends one client's buffers; a slow client only ever blocks this thread. Returning
/// drops the receiver, which tells the reader to forget this client.
fn send_loop(mut conn: TcpStream, rx: Receiver<Vec<u8>>) {
    for data in rx {
        if conn.write_all(&data).is_err() {
            return; // the client left (reset, broken pipe)
        }
    }
}

fn main() -> std::io::Result<()> {
    let (path, port, k) = (arg("--serial"), number::<u16>("--port"), number::<usize>("--buffer"));
    let k = k.max(1);
    let clients: Clients = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&clients);
    std::thread::spawn(move || read_device(path, k, shared));
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        // Small buffers must leave at once, not wait for the previous one's ACK (Nagle).
        let _ = conn.set_nodelay(true);
        let (tx, rx) = sync_channel((MAX_QUEUED_BYTES / k).max(2));
        clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Client { buf: Vec::new(), out: tx });
        std::thread::spawn(move || send_loop(conn, rx));
    }
    Ok(())
}
