//! A bounded outbound byte buffer: the bytes a connection still owes its peer.
//!
//! A non-blocking `write` may take only part of what we offer (a *short write*), or
//! nothing at all (`WouldBlock`) when the kernel's send buffer is full because the peer
//! reads slowly. The rest must wait here until the socket is writable again. The buffer
//! has a hard cap so a peer that never reads cannot make us grow without bound; what to
//! do when it is full (drop the peer, skip data, stop reading) is the lab's decision.

use std::io::{self, Write};

/// Capacity a drained buffer keeps for the next short write; more is freed.
const KEEP_AFTER_DRAIN: usize = 4096;

/// Bytes queued for one connection, consumed from the front as the socket takes them.
#[derive(Debug)]
pub struct OutBuf {
    /// Queued bytes; `buf[start..]` are still unsent. Compacted lazily so that sending
    /// from the front is O(1) and the allocation is reused.
    buf: Vec<u8>,
    /// Index of the first unsent byte in `buf`.
    start: usize,
    /// The most bytes this buffer will ever hold.
    cap: usize,
}

/// The buffer cannot take the bytes without exceeding its cap; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// Bytes already queued when the offer was refused.
    pub queued: usize,
    /// Bytes that were offered.
    pub offered: usize,
}

impl OutBuf {
    /// An empty buffer that will refuse to hold more than `cap` bytes.
    pub fn new(cap: usize) -> OutBuf {
        OutBuf {
            buf: Vec::new(),
            start: 0,
            cap,
        }
    }

    /// Unsent bytes.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// True when nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        self.cap - self.len()
    }

    /// Queues the bytes of `parts` (one after another) past the first `skip` of them
    /// (those the kernel already took), all or none.
    pub fn push_parts(&mut self, parts: &[&[u8]], mut skip: usize) -> Result<(), Full> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let offered = total.saturating_sub(skip);
        if offered > self.room() {
            return Err(Full {
                queued: self.len(),
                offered,
            });
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            // Reclaim the consumed front once it is at least half the vector, so the
            // copy is amortised over the bytes already sent.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        for p in parts {
            let from = skip.min(p.len());
            skip -= from;
            self.buf.extend_from_slice(&p[from..]);
        }
        Ok(())
    }

    /// Writes queued bytes to `w` until it is empty or `w` would block.
    ///
    /// Returns the number of bytes written. `WouldBlock` is not an error here: the
    /// caller waits for the next writable event. `Interrupted` is retried.
    pub fn flush_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut written = 0;
        while self.start < self.buf.len() {
            match w.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.start += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > KEEP_AFTER_DRAIN {
                // A burst once needed a large buffer; give the memory back. A queue
                // only fills while the kernel refuses bytes, so refilling it is rare,
                // and a room of idle peers must not keep every burst's capacity (1000
                // chat clients each keeping a 256 KiB queue would be 256 MiB).
                self.buf = Vec::new();
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl OutBuf {
        fn push(&mut self, data: &[u8]) -> Result<(), Full> {
            self.push_parts(&[data], 0)
        }
    }

    /// A writer that accepts at most `per_call` bytes per write and then blocks after
    /// `budget` bytes in total, like a socket whose send buffer fills up.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.per_call).min(self.budget);
            self.got.extend_from_slice(&b[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_drained_buffer_gives_a_bursts_memory_back() {
        let mut b = OutBuf::new(256 * 1024);
        b.push(&vec![7u8; 200 * 1024]).unwrap();
        let mut w = Trickle {
            got: vec![],
            per_call: usize::MAX,
            budget: usize::MAX,
        };
        b.flush_to(&mut w).unwrap();
        assert_eq!(w.got.len(), 200 * 1024);
        assert!(
            b.buf.capacity() <= 4096,
            "an idle peer keeps {} bytes of queue (at most 4 KiB)",
            b.buf.capacity()
        );
        // A small queue keeps its allocation for the next short write.
        b.push(b"hello").unwrap();
        w.budget = 0;
        b.flush_to(&mut w).unwrap();
        w.budget = usize::MAX;
        b.flush_to(&mut w).unwrap();
        assert!(b.buf.capacity() >= 5);
    }

    #[test]
    fn refuses_what_does_not_fit_and_keeps_what_it_has() {
        let mut b = OutBuf::new(10);
        b.push(b"12345678").unwrap();
        assert_eq!(
            b.push(b"abc"),
            Err(Full {
                queued: 8,
                offered: 3
            })
        );
        assert_eq!(b.len(), 8);
        b.push(b"ab").unwrap();
        assert_eq!(b.room(), 0);
    }

    #[test]
    fn parts_are_queued_whole_past_what_was_already_sent() {
        let mut b = OutBuf::new(8);
        assert_eq!(
            b.push_parts(&[b"abcd", b"efgh", b"ij"], 1),
            Err(Full {
                queued: 0,
                offered: 9
            })
        );
        b.push_parts(&[b"abcd", b"efgh", b"ij"], 5).unwrap();
        let mut w = Trickle {
            got: vec![],
            per_call: 3,
            budget: usize::MAX,
        };
        b.flush_to(&mut w).unwrap();
        assert_eq!(w.got, b"fghij");
    }

    #[test]
    fn short_writes_and_would_block_keep_order() {
        let mut b = OutBuf::new(1000);
        let data: Vec<u8> = (0..=255).collect();
        b.push(&data).unwrap();
        let mut w = Trickle {
            got: vec![],
            per_call: 7,
            budget: 100,
        };
        assert_eq!(b.flush_to(&mut w).unwrap(), 100);
        assert_eq!(b.len(), 156);
        b.push(b"tail").unwrap();
        w.budget = usize::MAX;
        b.flush_to(&mut w).unwrap();
        assert!(b.is_empty());
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(w.got, want);
    }
}
