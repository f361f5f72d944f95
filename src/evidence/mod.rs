//! `--evidence DIR`: what a student hands in to show that a lab works. Each
//! `lab run ID --evidence DIR` or `lab check ID --evidence DIR` adds a new dated entry,
//! never overwriting an old one:
//!
//! ```text
//! DIR/01-tcp-echo/2026-11-29T10-45-00Z-run/
//!   report.md        what ran, when, where (the machine facts `lab latency` records),
//!                    the capture's figures and plot, the transcript, what to look at
//!   transcript.txt   the narrated demo, or the check's full transcript
//!   capture.pcapng   the packets (when a capture was possible: see src/capture.rs)
//!   frames.svg       frames on the wire over time, from the capture
//!   record.json      the raw data: all of the above as data, and a check's report
//! ```
//!
//! The evidence folder is the index: `lab report` ([`report`]) finds entries by
//! walking `DIR/<lab id>/*/record.json` (default `DIR`: `evidence`), so entries can be
//! copied, deleted or committed with plain file tools and nothing else goes stale.

pub mod plot;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::capture::{self, Summary};
use crate::catalog::Lab;
use crate::error::LabError;
use crate::latency::result::Environment;
use crate::out;

/// The default evidence folder of `lab report` (relative to where it runs).
pub const DEFAULT_DIR: &str = "evidence";
/// File names inside an entry.
pub const CAPTURE: &str = "capture.pcapng";
pub const RECORD: &str = "record.json";
pub const REPORT: &str = "report.md";
pub const TRANSCRIPT: &str = "transcript.txt";
pub const FRAMES_SVG: &str = "frames.svg";

/// One entry's raw data (`record.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Lab id.
    pub lab: String,
    /// The lab's title.
    pub title: String,
    /// "run" (`lab run`) or "check" (`lab check`).
    pub kind: String,
    /// The command line as typed.
    pub command: Vec<String>,
    /// Start and end, UTC, RFC 3339 (`2026-11-29T10:45:00Z`).
    pub started: String,
    pub finished: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// "completed", or what went wrong (the error `lab` printed).
    pub outcome: String,
    /// The machine, as `lab latency` records it.
    pub machine: Environment,
    /// `lab`'s version.
    pub lab_version: String,
    /// The capture's summary when there is one.
    pub capture: Option<Summary>,
    /// Why there is no capture, or what to know about it.
    pub capture_note: String,
    /// Files in the entry, for links (relative to the entry).
    pub files: Vec<String>,
    /// `lab check`: the grader's report (score, checks, transcripts), as in
    /// `lab grade --format json`.
    pub check: Option<serde_json::Value>,
}

impl Record {
    /// The figures a demo drew (SVG files other than the capture's own plot).
    pub fn figures(&self) -> impl Iterator<Item = &String> {
        self.files
            .iter()
            .filter(|f| f.ends_with(".svg") && f.as_str() != FRAMES_SVG)
    }
}

/// A dated folder for one run or check.
pub struct Entry {
    /// The folder.
    pub dir: PathBuf,
    started: SystemTime,
}

impl Entry {
    /// Creates `root/<lab>/<UTC time>-<kind>/`; a second entry in the same second gets
    /// `-2`, `-3`, ...: never an existing folder.
    pub fn create(root: &Path, lab: &str, kind: &str) -> Result<Entry> {
        let started = SystemTime::now();
        let parent = root.join(lab);
        std::fs::create_dir_all(&parent).map_err(|e| {
            LabError::usage(format!("cannot create {}: {e}", parent.display()))
                .fix("give --evidence a folder you can write to")
        })?;
        let base = format!("{}-{kind}", folder_time(started));
        for n in 1..1000 {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Entry { dir, started }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", dir.display()))
                }
            }
        }
        Err(LabError::usage(format!(
            "{} holds 999 entries of this second",
            parent.display()
        ))
        .into())
    }
}

/// RFC 3339 UTC, to the second.
pub fn utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The same, safe in a file name on every system (no colons).
fn folder_time(t: SystemTime) -> String {
    utc(t).replace(':', "-")
}

/// (year, month, day, hour, minute, second) in UTC: Howard Hinnant's days-to-civil
/// algorithm (proleptic Gregorian calendar), so no date crate is needed.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// The command as typed, with `lab` for the program's path and quotes where a word
/// has spaces, so it can be typed again.
fn command_line() -> Vec<String> {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                "lab".to_string()
            } else if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a
            }
        })
        .collect()
}

/// The machine facts `lab latency` records (loopback: every lab runs there).
fn machine() -> Environment {
    crate::latency::env::detect(
        std::net::Ipv4Addr::LOCALHOST.into(),
        (None, None),
        "the kernel's CLOCK_REALTIME (capture timestamps are the kernel's, in ns)".into(),
    )
}

/// `lab run ID [--pcap F] [--evidence DIR] ...`: flags of `lab` itself, taken out of the
/// lab's flags, around the lab's demo (or role). The one call `src/cli.rs` makes.
pub fn around_run(
    lab: &Lab,
    args: &[String],
    demo: impl FnOnce(&[String]) -> Result<()>,
) -> Result<()> {
    let mut args = args.to_vec();
    let pcap = capture::take_flag(&mut args, "--pcap")?;
    let evidence = capture::take_flag(&mut args, "--evidence")?;
    let entry = evidence
        .map(|d| Entry::create(&d, &lab.id, "run"))
        .transpose()?;
    let path = pcap
        .clone()
        .or_else(|| entry.as_ref().map(|e| e.dir.join(CAPTURE)));
    let mut note = String::new();
    let running = path.as_ref().and_then(|p| {
        let defaults = capture::default_ports(&lab.defaults);
        let req = capture::run_request(p, &lab.id, &args, &defaults);
        note = if req.ports.is_empty() {
            "Everything on `lo` while the run lasted.".into()
        } else {
            format!("Only ports {:?} (and ICMP).", req.ports)
        };
        capture::start(&req)
            .map_err(|e| {
                capture::explain(&e);
                note = format!("no capture: {}", e.what);
            })
            .ok()
    });
    // A demo that writes its own figures and data when given `--out` (08's sweep) writes
    // them into the entry, so the evidence has the plots the lab has.
    let figures = entry
        .as_ref()
        .filter(|_| FIGURE_DEMOS.contains(&lab.id.as_str()))
        .filter(|_| !args.iter().any(|a| a == "--out" || a.starts_with("--out=")))
        .map(|e| e.dir.join(FIGURES_DIR));
    if let Some(d) = &figures {
        args.push("--out".into());
        args.push(d.display().to_string());
    }
    if entry.is_some() {
        out::record_start();
    }
    let result = demo(&args);
    let summary = running.and_then(|c| {
        let p = path.clone().unwrap_or_default();
        match c.stop() {
            Ok(s) => {
                eprintln!("{}", capture::describe(&p, &s));
                Some(s)
            }
            Err(e) => {
                eprintln!("{} writing {} failed: {e}", capture::NOTE, p.display());
                note = format!("the capture failed: {e}");
                None
            }
        }
    });
    if let Some(entry) = entry {
        let transcript = out::record_take();
        // A --pcap elsewhere: keep a copy with the rest of the evidence.
        if let (Some(p), Some(_)) = (&pcap, &summary) {
            let _ = std::fs::copy(p, entry.dir.join(CAPTURE));
        }
        let outcome = match &result {
            Ok(()) => "completed".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let extra = match &figures {
            Some(d) => flatten_figures(d, &entry.dir)?,
            None => Vec::new(),
        };
        finish(
            entry,
            lab,
            "run",
            &transcript,
            outcome,
            summary,
            note,
            None,
            extra,
        )?;
    }
    result
}

/// The report of the last `lab check` in this process, for `--evidence`
/// (`grade::student::check` leaves it here: one call there).
static LAST_CHECK: std::sync::Mutex<Option<crate::grade::model::LabReport>> =
    std::sync::Mutex::new(None);

/// Called by `lab check` with its report.
pub fn note_check(report: &crate::grade::model::LabReport) {
    if let Ok(mut l) = LAST_CHECK.lock() {
        *l = Some(report.clone());
    }
}

/// `lab check ID --evidence DIR`: the check as usual, captured (inside the grader's
/// namespace) into a new entry, with its full transcript and report.
pub fn around_check(
    lab: &Lab,
    src: &crate::grade::build::Source,
    dir: &Path,
    check: impl FnOnce(&crate::grade::build::Source) -> Result<()>,
) -> Result<()> {
    let entry = Entry::create(dir, &lab.id, "check")?;
    let mut src = src.clone();
    let pcap = src.pcap.clone();
    if src.pcap.is_none() {
        src.pcap = Some(entry.dir.join(CAPTURE));
    }
    if let Ok(mut l) = LAST_CHECK.lock() {
        *l = None;
    }
    out::record_start();
    let result = check(&src);
    let printed = out::record_take();
    let report = LAST_CHECK.lock().ok().and_then(|mut l| l.take());
    if let Some(p) = &pcap {
        let _ = std::fs::copy(p, entry.dir.join(CAPTURE));
    }
    let transcript = match &report {
        // Every check's transcript, passing ones too: that is the evidence.
        Some(r) => crate::grade::export::human::render_with(std::slice::from_ref(r), true),
        None => printed,
    };
    let outcome = match (&result, &report) {
        (_, Some(r)) => format!(
            "{:?}: {}/{}, seed {}",
            r.status, r.score, r.max_score, r.seed
        )
        .to_lowercase(),
        (Ok(()), None) => "completed".into(),
        (Err(e), None) => format!("failed: {e}"),
    };
    let json = report.as_ref().and_then(|r| serde_json::to_value(r).ok());
    let captured = entry.dir.join(CAPTURE);
    let summary = std::fs::read(&captured)
        .ok()
        .and_then(|b| crate::wire::pcapng::packets(&b).ok().map(|p| (p, b.len())))
        .map(|(p, bytes)| Summary {
            written: capture::WrittenSummary {
                packets: p.len() as u64,
                bytes: bytes as u64,
                skipped: 0,
            },
            ..Summary::default()
        });
    let note = if summary.is_some() {
        "taken inside the grader's own network namespace: only the grading's traffic".into()
    } else {
        "no capture (see the messages of the check)".into()
    };
    finish(
        entry,
        lab,
        "check",
        &transcript,
        outcome,
        summary,
        note,
        json,
        Vec::new(),
    )?;
    result
}

/// Labs whose demo takes `--out DIR` for its figures and data (see `around_run`).
const FIGURE_DEMOS: &[&str] = &["08-latency"];

/// Where such a demo writes inside the entry, before `flatten_figures`.
const FIGURES_DIR: &str = "figures";

/// Moves what a demo wrote under `from` (one folder per step: `1-sizes/by_size.svg`)
/// into the entry, flat (`figures-1-sizes-by_size.svg`), since an entry is one folder
/// that a write-up copies whole. Its own report.md files are left out: their links
/// point into the folder they came from. Returns the names, in order.
fn flatten_figures(from: &Path, entry: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut stack = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(path);
                continue;
            }
            if !t.is_file() || path.extension().is_some_and(|x| x == "md") {
                continue;
            }
            let rel = path.strip_prefix(from).unwrap_or(&path);
            let name = format!(
                "{FIGURES_DIR}-{}",
                rel.to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "-")
            );
            std::fs::copy(&path, entry.join(&name))
                .with_context(|| format!("cannot copy {}", path.display()))?;
            names.push(name);
        }
    }
    let _ = std::fs::remove_dir_all(from);
    names.sort();
    Ok(names)
}

/// Writes the entry's files and says where they are.
#[allow(clippy::too_many_arguments)]
fn finish(
    entry: Entry,
    lab: &Lab,
    kind: &str,
    transcript: &str,
    outcome: String,
    capture: Option<Summary>,
    capture_note: String,
    check: Option<serde_json::Value>,
    extra: Vec<String>,
) -> Result<()> {
    let finished = SystemTime::now();
    let dir = &entry.dir;
    let mut files = vec![REPORT.to_string(), TRANSCRIPT.to_string()];
    std::fs::write(dir.join(TRANSCRIPT), transcript)?;
    let capture = capture.filter(|_| dir.join(CAPTURE).is_file());
    if capture.is_some() {
        files.push(CAPTURE.into());
        let stamps = std::fs::read(dir.join(CAPTURE))
            .ok()
            .and_then(|b| crate::wire::pcapng::packets(&b).ok())
            .unwrap_or_default();
        if !stamps.is_empty() {
            std::fs::write(dir.join(FRAMES_SVG), plot::frames_svg(&stamps))?;
            files.push(FRAMES_SVG.into());
        }
    }
    files.extend(extra);
    files.push(RECORD.into());
    let record = Record {
        lab: lab.id.clone(),
        title: lab.title.clone(),
        kind: kind.into(),
        command: command_line(),
        started: utc(entry.started),
        finished: utc(finished),
        duration_ms: finished
            .duration_since(entry.started)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64,
        outcome,
        machine: machine(),
        lab_version: env!("CARGO_PKG_VERSION").into(),
        capture,
        capture_note,
        files,
        check,
    };
    std::fs::write(dir.join(RECORD), serde_json::to_string_pretty(&record)?)?;
    std::fs::write(
        dir.join(REPORT),
        report::entry_markdown(&record, transcript),
    )?;
    eprintln!("lab: evidence: {}", dir.join(REPORT).display());
    Ok(())
}

/// Every entry under `root` for `lab`, oldest first (folder names sort by time).
pub fn entries(root: &Path, lab: &str) -> Vec<(PathBuf, Record)> {
    let mut found: Vec<(PathBuf, Record)> = std::fs::read_dir(root.join(lab))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
            let record: Record = serde_json::from_str(&text).ok()?;
            Some((dir, record))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_the_calendar_ones() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // a leap day
        assert_eq!(utc(t), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_948_245);
        assert_eq!(utc(t), "2026-11-29T10:30:45Z");
        assert_eq!(folder_time(t), "2026-11-29T10-30-45Z");
    }

    #[test]
    fn entries_never_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let a = Entry::create(root.path(), "01-tcp-echo", "run").unwrap();
        let b = Entry::create(root.path(), "01-tcp-echo", "run").unwrap();
        assert_ne!(a.dir, b.dir);
        assert!(a.dir.is_dir() && b.dir.is_dir());
    }
}
