//! Reference solution for 05-chat: a chat server, a thread per client.
//!
//! Run: cargo run --bin chat -- --port 7005   then, in several terminals:
//! nc 127.0.0.1 7005 (type a nickname first, then chat).
//!
//! Each client has a reader thread (its lines, broadcast to the others) and a writer
//! thread fed by a bounded channel. A broadcast never blocks: it only *offers* the line
//! to each writer's channel (`try_send`). A client that stops reading fills its channel
//! and is dropped, so it can never stall the others.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

/// Lines waiting for one client before it counts as not reading and is dropped.
const QUEUE: usize = 1024;
/// Longest line kept, in bytes: bounds what one client can make us hold.
const MAX_LINE: u64 = 4096;

/// A connected client, as the others see it.
struct Member {
    nick: Vec<u8>,
    /// Feeds the client's writer thread.
    tx: SyncSender<Arc<[u8]>>,
    /// To shut the connection down when we drop the client.
    sock: TcpStream,
}

/// Everyone connected, by id.
type Room = Arc<Mutex<HashMap<u64, Member>>>;

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

/// Offers `line` to every member but `from`; drops those that cannot take it.
fn broadcast(room: &Room, from: Option<u64>, line: &[u8]) {
    let line: Arc<[u8]> = line.into();
    let mut gone = Vec::new();
    {
        let members = room.lock().unwrap_or_else(|p| p.into_inner());
        for (&id, m) in members.iter() {
            // try_send never waits: a full channel means a client that is not reading,
            // a closed one a client whose writer failed (it vanished).
            if Some(id) != from && m.tx.try_send(Arc::clone(&line)).is_err() {
                gone.push(id);
            }
        }
    }
    for id in gone {
        leave(room, id);
    }
}

/// Removes a member (once) and tells the others.
fn leave(room: &Room, id: u64) {
    let member = room
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    if let Some(m) = member {
        // Wakes its reader thread (it reads EOF) and fails its writer's next write.
        let _ = m.sock.shutdown(Shutdown::Both);
        let mut line = b"* ".to_vec();
        line.extend_from_slice(&m.nick);
        line.extend_from_slice(b" left\n");
        broadcast(room, None, &line);
    }
}

/// Reads one line of at most MAX_LINE bytes; None at EOF or on an error.
fn read_line(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    match reader.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) if line.last() != Some(&b'\n') && line.len() as u64 <= MAX_LINE => None, // EOF mid-line
        Ok(_) => {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Some(line)
        }
    }
}

/// Serves one client from its own thread.
fn serve(room: Room, id: u64, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(nick) = read_line(&mut reader) else {
        return Ok(());
    };
    let (tx, rx) = sync_channel::<Arc<[u8]>>(QUEUE);
    let mut writer = stream.try_clone()?;
    std::thread::spawn(move || {
        // Ends when the member is dropped (the channel closes) or a write fails.
        for line in rx {
            if writer.write_all(&line).is_err() {
                return;
            }
        }
    });
    room.lock().unwrap_or_else(|p| p.into_inner()).insert(
        id,
        Member {
            nick: nick.clone(),
            tx,
            sock: stream,
        },
    );
    let mut joined = b"* ".to_vec();
    joined.extend_from_slice(&nick);
    joined.extend_from_slice(b" joined\n");
    broadcast(&room, Some(id), &joined);
    // Until EOF or an error (a reset): each line goes to everyone else.
    while let Some(line) = read_line(&mut reader) {
        let mut msg = b"<".to_vec();
        msg.extend_from_slice(&nick);
        msg.extend_from_slice(b"> ");
        msg.extend_from_slice(&line);
        msg.push(b'\n');
        broadcast(&room, Some(id), &msg);
    }
    leave(&room, id);
    Ok(())
}

fn main() -> std::io::Result<()> {
    // std's TcpListener::bind sets SO_REUSEADDR on Unix.
    let listener = TcpListener::bind(("127.0.0.1", port_from_args()))?;
    let room: Room = Arc::default();
    for (id, stream) in (0u64..).zip(listener.incoming()) {
        match stream {
            Ok(s) => {
                let room = Arc::clone(&room);
                std::thread::spawn(move || serve(room, id, s));
            }
            Err(e) => {
                // Out of descriptors or an aborted connection: keep serving, and do
                // not spin while descriptors are short.
                eprintln!("accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    Ok(())
}
