//! Exporters: one small file per output format, each a pure function from the result
//! model to text. [`OutDir`] writes them: it checks the folder before measuring, creates
//! every file up front, and rewrites them all after each size, so an interrupted run
//! keeps what it measured.

pub mod csv;
pub mod hgrm;
pub mod intervals;
pub mod json;
pub mod report;
pub mod svg;
pub mod table;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::LabError;

use super::result::{Measured, Run, NS_PER_US};

/// The `--out` folder.
#[derive(Debug, Clone)]
pub struct OutDir {
    /// Where the files go.
    pub dir: PathBuf,
}

impl OutDir {
    /// Creates the folder if needed and proves it is writable by writing a file, before
    /// any measuring starts (finding out after a ten-minute run would be cruel).
    pub fn prepare(dir: &Path) -> Result<OutDir> {
        let fail = |e: io::Error| {
            LabError::usage(format!("cannot write the report to {}: {e}", dir.display())).fix(
                "choose a folder you can write with --out DIR (it is created if missing), \
                 or fix its permissions",
            )
        };
        fs::create_dir_all(dir).map_err(fail)?;
        let probe = dir.join(".lab-write-test");
        fs::write(&probe, b"ok").map_err(fail)?;
        let _ = fs::remove_file(&probe);
        Ok(OutDir {
            dir: dir.to_path_buf(),
        })
    }

    /// Writes `name` atomically: a temporary file renamed over the old one, so a reader
    /// (or a Ctrl-C) never sees half a file.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes (or rewrites) every file for the series measured so far.
    pub fn write(&self, run: &Run, measured: &[Measured]) -> Result<()> {
        for m in measured {
            self.put(
                &format!("{}.hgrm", m.series.slug()),
                hgrm::render(&m.hist, NS_PER_US).as_bytes(),
            )?;
        }
        self.put(
            "intervals.hlog",
            &intervals::render(run.started_unix, measured)?,
        )?;
        self.put("summary.csv", csv::render(run).as_bytes())?;
        self.put("summary.json", json::render(run)?.as_bytes())?;
        self.put(
            "percentiles.svg",
            svg::percentiles(run, measured).as_bytes(),
        )?;
        self.put("by_size.svg", svg::by_size(run).as_bytes())?;
        self.put("report.md", report::render(run).as_bytes())?;
        Ok(())
    }
}
