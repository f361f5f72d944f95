//! `lab latency compare A B`: two runs side by side, per series and percentile, with the
//! ratio B/A (below 1: B is faster).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error::LabError;
use crate::out::duration_us;
use crate::say;

use super::export::json;
use super::result::Run;

/// The statistics compared, in order.
const STATS: [&str; 6] = ["min", "p50", "p90", "p99", "p99.9", "max"];

/// Loads a run from its `--out` folder or its `summary.json`.
pub fn load(path: &Path) -> Result<Run> {
    let file: PathBuf = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        LabError::usage(format!("cannot read {}: {e}", file.display()))
            .fix("give the folder a `lab latency --out DIR` run wrote, or its summary.json")
    })?;
    json::parse(&text).map_err(|e| {
        LabError::usage(format!(
            "{} is not a lab latency summary: {e}",
            file.display()
        ))
        .fix("compare the summary.json files written by `lab latency --out DIR`")
        .into()
    })
}

/// Renders the comparison as text.
pub fn render(a: &Run, b: &Run) -> String {
    let mut out = format!(
        "{:<20} {:<6} {:>10} {:>10} {:>7}\n",
        "series", "stat", "A", "B", "B/A"
    );
    for sa in &a.series {
        let Some(sb) = b
            .series
            .iter()
            .find(|s| s.mode == sa.mode && s.size == sa.size)
        else {
            out.push_str(&format!("{:<20} only in A\n", sa.label()));
            continue;
        };
        for stat in STATS {
            let (va, vb) = (
                sa.stats.get(stat).unwrap_or(0.0),
                sb.stats.get(stat).unwrap_or(0.0),
            );
            let ratio = if va > 0.0 {
                format!("{:.2}", vb / va)
            } else {
                "-".into()
            };
            out.push_str(&format!(
                "{:<20} {:<6} {:>10} {:>10} {:>7}\n",
                sa.label(),
                stat,
                duration_us(va),
                duration_us(vb),
                ratio
            ));
        }
    }
    for sb in &b.series {
        if !a
            .series
            .iter()
            .any(|s| s.mode == sb.mode && s.size == sb.size)
        {
            out.push_str(&format!("{:<20} only in B\n", sb.label()));
        }
    }
    out
}

/// The subcommand.
pub fn run(a: &Path, b: &Path) -> Result<()> {
    let (ra, rb) = (load(a)?, load(b)?);
    let common = ra.series.iter().any(|sa| {
        rb.series
            .iter()
            .any(|sb| sb.mode == sa.mode && sb.size == sa.size)
    });
    say!("A: {} ({})", a.display(), ra.params.target)?;
    say!("B: {} ({})", b.display(), rb.params.target)?;
    for line in render(&ra, &rb).lines() {
        say!("{line}")?;
    }
    if !common {
        // Nothing was compared: exit 1, so a script (or a student) does not take the
        // listing above for a comparison.
        let names = |r: &Run| {
            r.series
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(LabError::failed(format!(
            "the two runs have no series in common (A: {}; B: {})",
            names(&ra),
            names(&rb)
        ))
        .fix("compare runs measured with the same --mode and the same --sizes (or --buffer-sizes for stream)")
        .into());
    }
    Ok(())
}
