//! The receiver's file: append a batch, make it durable with one fsync, and on start
//! read it back, cutting a torn last line.
//!
//! Three facts about files drive this module:
//!
//! - `write()` returns once the bytes are in the kernel's page cache. A crash of the
//!   *process* (SIGKILL) loses nothing written; a crash of the *machine* (power, kernel
//!   panic) loses what the kernel had not yet put on the disk.
//! - `fsync()` (here `fdatasync`, [`std::fs::File::sync_data`]) returns once the disk
//!   has the bytes. It costs a disk round trip (tens of microseconds on an SSD with a
//!   write cache, milliseconds on a spinning disk), whatever the amount: one fsync for a
//!   batch of 1000 records costs about what one fsync for one record does. That is group
//!   commit.
//! - A write can stop part-way: the disk fills up, the file-size limit is reached, or
//!   the process dies in the middle. What is left is a *torn* record, a line without its
//!   newline. On failure the store cuts the file back to its last good length
//!   ([`Store::write`]); after a crash, [`Store::open`] cuts the torn line.
//!
//! The fsync runs in a helper thread ([`Syncer`]): while the disk works on one batch,
//! the event loop keeps reading and writing the next, and the next fsync covers all of
//! it. Without that, the loop would stop reading for every fsync and a sender could only
//! get one socket buffer's worth of records (~128 KiB) into each.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// What [`Store::open`] found in an existing file.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Complete lines kept.
    pub lines: u64,
    /// Bytes kept.
    pub bytes: u64,
    /// Bytes of a torn last line that were cut (0: the file ended cleanly).
    pub torn: u64,
    /// Line numbers (1-based, the first few) of complete lines that are not a record
    /// with `sender` and `seq`: kept as they are, since they are someone's data.
    pub foreign: Vec<u64>,
    /// Number of such lines.
    pub foreign_count: u64,
    /// The highest `seq` saved for each sender.
    pub highest: HashMap<String, u64>,
}

/// Foreign line numbers kept for the report; the count goes on.
const FOREIGN_SHOWN: usize = 5;

/// An append-only JSON Lines file with group commit.
#[derive(Debug)]
pub struct Store {
    /// Opened for reading and appending (`O_APPEND`: every write lands at the end).
    file: File,
    /// Where it is, for messages.
    path: PathBuf,
    /// Length of the file up to the last whole batch written: where a failed write is
    /// cut back to. Durable only once a sync up to it has returned.
    written: u64,
    /// Lines appended since the last commit, not yet written.
    batch: Vec<u8>,
    /// Records in `batch`.
    batch_records: usize,
}

/// What one [`Store::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Records written by this commit.
    pub records: usize,
    /// Bytes written.
    pub bytes: usize,
}

impl Store {
    /// Opens (or creates) the file, cuts a torn last line, and learns what it holds.
    pub fn open(path: &Path) -> io::Result<(Store, Recovery)> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut rec = Recovery::default();
        let mut reader = BufReader::with_capacity(1 << 16, &file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)? as u64;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                // The last line has no newline: a write that never finished. Its record
                // was never acknowledged (acks follow the fsync of whole lines), so the
                // sender still holds it and will send it again.
                rec.torn = n;
                break;
            }
            rec.lines += 1;
            rec.bytes += n;
            match identify(&line[..line.len() - 1]) {
                Some((sender, seq)) => {
                    let top = rec.highest.entry(sender).or_insert(seq);
                    *top = (*top).max(seq);
                }
                None => {
                    rec.foreign_count += 1;
                    if rec.foreign.len() < FOREIGN_SHOWN {
                        rec.foreign.push(rec.lines);
                    }
                }
            }
        }
        drop(reader);
        if rec.torn > 0 {
            file.set_len(rec.bytes)?;
            file.sync_data()?;
        }
        Ok((
            Store {
                file,
                path: path.to_path_buf(),
                written: rec.bytes,
                batch: Vec::new(),
                batch_records: 0,
            },
            rec,
        ))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written to the file (whole records; durable once synced).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// True when nothing is written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Records appended and not yet committed.
    pub fn pending(&self) -> usize {
        self.batch_records
    }

    /// Bytes appended and not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.batch.len()
    }

    /// Adds one record line (newline included) to the batch. Nothing touches the file
    /// until [`Store::commit`].
    pub fn append(&mut self, line: &[u8]) {
        debug_assert!(line.ends_with(b"\n"));
        self.batch.extend_from_slice(line);
        self.batch_records += 1;
    }

    /// Adds one record line given without its newline.
    pub fn append_line(&mut self, line: &[u8]) {
        self.batch.extend_from_slice(line);
        self.batch.push(b'\n');
        self.batch_records += 1;
    }

    /// Writes the batch into the kernel's page cache with one `write`. On failure (disk
    /// full, file-size limit) the file is cut back to the last whole batch, so no torn
    /// record stays behind, and the batch is dropped: none of its records may be
    /// acknowledged. Durable only after a sync ([`Store::commit`], or a [`Syncer`]).
    pub fn write(&mut self) -> io::Result<Commit> {
        let done = Commit {
            records: self.batch_records,
            bytes: self.batch.len(),
        };
        if self.batch.is_empty() {
            return Ok(done);
        }
        let result = (&self.file).write_all(&self.batch);
        self.batch.clear();
        self.batch_records = 0;
        match result {
            Ok(()) => {
                self.written += done.bytes as u64;
                Ok(done)
            }
            Err(e) => {
                // Part of the batch may be in the file: cut it off. If even that fails
                // the torn tail is cut at the next start (see `open`).
                let _ = self.file.set_len(self.written);
                let _ = (&self.file).seek(SeekFrom::End(0));
                Err(e)
            }
        }
    }

    /// Writes the batch and makes it durable, in this thread: `write` then `fdatasync`.
    pub fn commit(&mut self) -> io::Result<Commit> {
        let done = self.write()?;
        self.file.sync_data()?;
        Ok(done)
    }

    /// fdatasync in this thread (at shutdown).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A [`Syncer`] on this file: fdatasync in a thread of its own.
    pub fn syncer(&self, waker: crate::core::Waker) -> io::Result<Syncer> {
        Syncer::start(self.file.try_clone()?, waker)
    }
}

/// Test-only: `MS` or `MS,N`: the [`Syncer`] sleeps MS milliseconds before each of its
/// first N fdatasyncs (every one without N), to stand for a slow or stalled disk. Read
/// once when the syncer starts; not for use outside tests.
pub const SLOW_SYNC_ENV: &str = "LAB_TEST_SLOW_FSYNC_MS";

/// [`SLOW_SYNC_ENV`] read: the sleep and how many syncs get it (0: none).
fn slow_sync_setting() -> (std::time::Duration, u64) {
    let Ok(v) = std::env::var(SLOW_SYNC_ENV) else {
        return (std::time::Duration::ZERO, 0);
    };
    let (ms, n) = v.split_once(',').unwrap_or((&v, ""));
    let ms = ms.trim().parse::<u64>().unwrap_or(0);
    let n = n.trim().parse::<u64>().unwrap_or(u64::MAX);
    (
        std::time::Duration::from_millis(ms),
        if ms == 0 { 0 } else { n },
    )
}

/// fdatasync in a helper thread, so the event loop keeps reading and writing while the
/// disk works: the next batch gathers during this one's sync (pipelined group commit).
/// One sync at a time; each covers everything written before it started.
#[derive(Debug)]
pub struct Syncer {
    /// Requests: sync the file, which is at least this long.
    ask: mpsc::Sender<u64>,
    /// Results: the length now durable, or the error.
    done: mpsc::Receiver<(u64, io::Result<()>)>,
}

impl Syncer {
    fn start(file: File, waker: crate::core::Waker) -> io::Result<Syncer> {
        // For tests only: a disk made slow for real, to exercise the receiver's bound on
        // what waits for a sync (tests/json_to_file.rs). Read once, here.
        let (delay, mut slow_syncs) = slow_sync_setting();
        let (ask, asked) = mpsc::channel::<u64>();
        let (tell, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("fdatasync".into())
            .spawn(move || {
                // Ends when the receiver drops its Syncer (the channel closes).
                while let Ok(end) = asked.recv() {
                    if slow_syncs > 0 {
                        slow_syncs -= 1;
                        std::thread::sleep(delay);
                    }
                    let r = file.sync_data();
                    if tell.send((end, r)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Syncer { ask, done })
    }

    /// Starts a sync covering the first `end` bytes.
    pub fn request(&self, end: u64) {
        let _ = self.ask.send(end);
    }

    /// The result of the sync in flight, if it has finished (never blocks).
    pub fn finished(&self) -> Option<(u64, io::Result<()>)> {
        self.done.try_recv().ok()
    }

    /// Waits for the sync in flight (at shutdown).
    pub fn wait(&self) -> Option<(u64, io::Result<()>)> {
        self.done.recv().ok()
    }
}

/// The `sender` and `seq` of a saved line, if it is such a record: one pass of the
/// receiver's own validator, which agrees with serde_json on every line.
fn identify(line: &[u8]) -> Option<(String, u64)> {
    let head = crate::wire::json_scan::scan(line).ok()?;
    Some((head.sender?.into_owned(), head.seq?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lab-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("r.jsonl")
    }

    #[test]
    fn commit_then_reopen_learns_each_senders_highest_seq() {
        let p = scratch("reopen");
        let (mut s, rec) = Store::open(&p).unwrap();
        assert_eq!(rec.lines, 0);
        s.append(b"{\"sender\":\"a\",\"seq\":1}\n");
        s.append(b"{\"sender\":\"a\",\"seq\":2}\n");
        s.append(b"{\"sender\":\"b\",\"seq\":7}\n");
        s.append(b"{\"plain\":true}\n");
        assert_eq!(s.commit().unwrap().records, 4);
        drop(s);
        let (s, rec) = Store::open(&p).unwrap();
        assert_eq!((rec.lines, rec.torn, rec.foreign_count), (4, 0, 1));
        assert_eq!(rec.foreign, vec![4]);
        assert_eq!(rec.highest["a"], 2);
        assert_eq!(rec.highest["b"], 7);
        assert_eq!(s.len(), std::fs::metadata(&p).unwrap().len());
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[test]
    fn a_torn_last_line_is_cut_at_every_offset() {
        let p = scratch("torn");
        let good = b"{\"sender\":\"a\",\"seq\":1}\n";
        let last = b"{\"sender\":\"a\",\"seq\":2,\"x\":\"\xc3\xa9\"}\n";
        for cut in 0..last.len() {
            std::fs::write(&p, [&good[..], &last[..cut]].concat()).unwrap();
            let (_, rec) = Store::open(&p).unwrap();
            assert_eq!(rec.torn, cut as u64, "cut at {cut}");
            assert_eq!(rec.highest["a"], 1);
            assert_eq!(std::fs::read(&p).unwrap(), good, "cut at {cut}");
        }
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
