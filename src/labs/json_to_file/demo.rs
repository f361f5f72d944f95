//! The demo: A sends readings to B; B is killed (SIGKILL) midway and restarted; the file
//! is then checked line by line to prove every record is there exactly once.
//!
//! B runs as a real child process of `lab` (`lab run 06 --role receiver`), so the kill
//! is real: no destructor runs, no buffer is flushed, the process is simply gone. What
//! survives is what B wrote before, and what B acknowledged was fsync'd first.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::sender::{self, Options, Source};
use crate::error::LabError;
use crate::out::{aside, bad, bold, dim, good, narrate, step, OrStopLater};
use crate::say;

/// Pace of the demo's sender: slow enough to read the story, fast enough to batch.
const DEMO_RATE: f64 = 1000.0;
/// Commits B narrates after each start.
const NARRATED_COMMITS: &str = "2";

/// A receiver child process, its stdout relayed with a `B |` prefix.
struct ChildB {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ChildB {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lab run 06 --role receiver --bind BIND --out FILE` and waits for the line
/// naming its address.
fn start_b(file: &Path, bind: &str) -> Result<ChildB> {
    let exe = std::env::current_exe().context("cannot find the lab executable")?;
    let mut child = Command::new(exe)
        .args([
            "run",
            "06-json-to-file",
            "--role",
            "receiver",
            "--bind",
            bind,
        ])
        .arg("--out")
        .arg(file)
        .args(["--narrate", NARRATED_COMMITS])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the receiver")?;
    let out = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (i, line) in BufReader::new(out).lines().enumerate() {
            let Ok(line) = line else { break };
            if i == 0 {
                let _ = tx.send(line.clone());
            }
            say!("  {} {line}", dim("B |")).or_stop_later();
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| LabError::failed("the receiver did not start within 10 s"))?;
    let addr = first
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .ok_or_else(|| LabError::failed(format!("no address in the receiver's line {first:?}")))?;
    Ok(ChildB { child, addr })
}

/// Runs the demo with `count` records; the file goes to `out` or a temporary folder.
pub fn run(count: u64, out: Option<PathBuf>, seed: Option<u64>) -> Result<()> {
    let seed = seed.unwrap_or_else(crate::grade::fresh_seed);
    let count = count.max(10);
    let (file, temp) = match out {
        Some(p) => (p, None),
        None => {
            let dir = std::env::temp_dir().join(format!("lab-06-demo-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            (dir.join("received.jsonl"), Some(dir))
        }
    };
    let result = story(count, &file, seed);
    if let Some(dir) = temp {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn story(count: u64, file: &Path, seed: u64) -> Result<()> {
    say!(
        "{} {}",
        bold("06-json-to-file: records from A saved at B, nothing lost, nothing twice"),
        dim(format!("seed {seed}"))
    )?;
    step(
        1,
        "B, the receiver, starts (a child process) and reads its file back",
    )?;
    let mut b = start_b(file, "127.0.0.1:0")?;
    let addr = b.addr;

    step(
        2,
        &format!(
            "A sends {count} readings at {DEMO_RATE:.0}/s; B writes, fsyncs, then acknowledges"
        ),
    )?;
    aside("each record carries sender and seq; A keeps it until `ok SEQ` comes back.")?;
    let acked = Arc::new(AtomicU64::new(0));
    let opts = Options {
        connect: addr,
        source: Source::Generate(count),
        rate: DEMO_RATE,
        sender: None,
        window: sender::DEFAULT_WINDOW,
        give_up: Duration::from_secs(20),
        seed,
        verbose: true,
    };
    let watch = Arc::clone(&acked);
    let a = std::thread::spawn(move || sender::run(&opts, Some(watch)));

    // Wait (bounded) until half the records are acknowledged.
    let until = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::Relaxed) < count / 2 && Instant::now() < until && !a.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    step(3, "B is killed with SIGKILL, mid-stream")?;
    b.child.kill().context("cannot kill the receiver")?;
    let _ = b.child.wait();
    let at_kill = acked.load(Ordering::Relaxed);
    let lines_now = std::fs::read(file).map(|d| d.iter().filter(|&&c| c == b'\n').count())?;
    narrate(
        "kernel",
        "kill(B, SIGKILL)",
        &format!(
            "-> B is gone; {at_kill} records were acknowledged, the file has {lines_now} lines"
        ),
    )?;
    aside("every acknowledged record is in the file; a few more may be there whose acks never left B. A still holds those: it will resend them.")?;
    std::thread::sleep(Duration::from_millis(300));

    step(4, "B restarts on the same file and port")?;
    let bind = addr.to_string();
    let b2 = start_b(file, &bind)?;
    aside("B learned each sender's highest seq from the file: resends of saved records are acknowledged, not saved again.")?;

    let totals = a
        .join()
        .map_err(|_| LabError::failed("the sender thread panicked"))??;
    say!("  {} {}", dim("A |"), totals.summary())?;
    drop(b2);

    step(5, "The proof: the file, line by line")?;
    let report = verify(file)?;
    for line in &report.lines {
        say!("  {line}")?;
    }
    let ok = report.ok && totals.unacked == 0 && report.records == count;
    if ok {
        say!(
            "{} {count} records sent, {count} in the file, each exactly once, despite the kill",
            good("exactly once:")
        )?;
        Ok(())
    } else {
        say!("{} see above", bad("not exactly once:"))?;
        Err(LabError::failed("the file does not hold every record exactly once").into())
    }
}

/// What the line-by-line check found.
struct Verified {
    /// Human-readable findings.
    lines: Vec<String>,
    /// Distinct records.
    records: u64,
    /// No duplicate, no gap, every line a record.
    ok: bool,
}

/// Reads the file back: every line must parse, and each sender's seqs must be 1..=N,
/// each exactly once.
fn verify(file: &Path) -> Result<Verified> {
    let data = std::fs::read(file)?;
    let mut per: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut bad_lines = 0u64;
    let mut n = 0u64;
    for line in data.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        n += 1;
        let v: Option<serde_json::Value> = serde_json::from_slice(line).ok();
        match v.as_ref().and_then(|v| {
            Some((
                v.get("sender")?.as_str()?.to_string(),
                v.get("seq")?.as_u64()?,
            ))
        }) {
            Some((s, q)) => per.entry(s).or_default().push(q),
            None => bad_lines += 1,
        }
    }
    let mut out = vec![format!(
        "{n} lines, {} of them not a record with sender and seq",
        bad_lines
    )];
    let mut ok = bad_lines == 0 && data.last().is_none_or(|&c| c == b'\n');
    let mut records = 0;
    for (sender, mut seqs) in per {
        let total = seqs.len();
        seqs.sort_unstable();
        seqs.dedup();
        let dups = total - seqs.len();
        let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
        let gaps = (last - first + 1) as usize - seqs.len();
        records += seqs.len() as u64;
        ok &= dups == 0 && gaps == 0 && first == 1;
        out.push(format!(
            "sender {sender}: seq {first}..{last}, {} distinct, {dups} duplicates, {gaps} missing",
            seqs.len()
        ));
    }
    Ok(Verified {
        lines: out,
        records,
        ok,
    })
}
