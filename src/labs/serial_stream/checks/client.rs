//! The grader's clients for 07's checks: each reads in a thread of its own and records
//! every byte and when each recv returned, so a check can locate what a client got in
//! the waveform and how long each sample waited, while it drives other clients.

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::device::Device;
use crate::grade::harness::{Harness, Outcome, Unmet};

/// Bytes a client keeps: over 8 MiB, a bound on memory whatever a program sends.
const CLIENT_CAP: usize = 8 << 20;

/// What one client's reader thread saw.
#[derive(Debug, Default)]
struct Rx {
    /// Every byte received, in order (up to [`CLIENT_CAP`]).
    data: Vec<u8>,
    /// The latest 16 bytes received, past the cap too.
    last: Vec<u8>,
    /// After each recv: (bytes received so far, when the recv returned).
    recvs: Vec<(usize, Instant)>,
    /// How the stream ended, if it did (EOF, reset).
    ended: Option<String>,
}

/// A client that reads in a thread of its own, timing each recv.
pub struct Client {
    /// Its name in the transcript (A, B, ...).
    pub name: String,
    /// Its socket (kept to reset it on purpose).
    sock: Option<TcpStream>,
    /// What it received.
    rx: Arc<Mutex<Rx>>,
    /// Set to stop the reader.
    stop: Arc<AtomicBool>,
    /// The reader, joined on drop.
    thread: Option<JoinHandle<()>>,
    /// Samples written when it connected.
    pub joined_at: u64,
}

impl Client {
    /// Connects and starts reading.
    pub fn connect(ctx: &mut Harness, dev: &Device, name: &str) -> Outcome<Client> {
        let s = ctx.connect(name)?;
        let joined_at = dev.written();
        Client::reading(name, s, joined_at)
    }

    fn reading(name: &str, s: TcpStream, joined_at: u64) -> Outcome<Client> {
        let mut r = s
            .try_clone()
            .map_err(|e| Unmet::error(format!("cannot clone a socket: {e}")))?;
        // Short timeouts only so the reader notices `stop`.
        let _ = r.set_read_timeout(Some(Duration::from_millis(50)));
        let rx = Arc::new(Mutex::new(Rx::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx2, stop2) = (Arc::clone(&rx), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop2.load(Ordering::SeqCst) {
                let got = r.read(&mut buf);
                let mut st = rx2.lock().unwrap_or_else(|p| p.into_inner());
                match got {
                    Ok(0) => {
                        st.ended = Some("the program closed the connection".into());
                        return;
                    }
                    Ok(n) => {
                        let room = CLIENT_CAP.saturating_sub(st.data.len()).min(n);
                        st.data.extend_from_slice(&buf[..room]);
                        st.last.extend_from_slice(&buf[n.saturating_sub(16)..n]);
                        let cut = st.last.len().saturating_sub(16);
                        st.last.drain(..cut);
                        let total = st.data.len();
                        st.recvs.push((total, Instant::now()));
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        st.ended = Some(format!("the connection failed: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Client {
            name: name.to_string(),
            sock: Some(s),
            rx,
            stop,
            thread: Some(thread),
            joined_at,
        })
    }

    /// A copy of what it received so far.
    pub fn received(&self) -> (Vec<u8>, Vec<(usize, Instant)>, Option<String>) {
        let st = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        (st.data.clone(), st.recvs.clone(), st.ended.clone())
    }

    /// The latest (up to) 16 bytes received.
    pub fn last(&self) -> Vec<u8> {
        self.rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last
            .clone()
    }

    /// Bytes received so far (up to the cap).
    pub fn count(&self) -> usize {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).data.len()
    }

    /// Leaves abruptly: SO_LINGER 0 then close sends a reset, like a killed client.
    pub fn reset(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(s) = self.sock.take() {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
