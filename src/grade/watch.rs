//! `lab watch`, for students: checks once at start, then re-runs `lab check` on the
//! exercise whose file was just saved, so the grader's verdict follows the editor.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::build::{exercise_of, workspace, Lang, Source};
use super::embedded::{self, ExerciseFiles};
use super::student::check;
use crate::catalog::{Catalog, Lab};
use crate::error::LabError;
use crate::out::{bad, bold, dim};
use crate::say;

/// `lab watch`: re-checks whenever an exercise file is saved. File-change events are
/// not portable (network file systems, containers), so this polls modification times
/// every `interval`, which works everywhere; pressing Enter re-checks at once.
pub fn watch(
    catalog: &Catalog,
    only: Option<&Lab>,
    src: &Source,
    interval: Duration,
    max_runs: Option<usize>,
) -> Result<()> {
    if let Some(lab) = only {
        // Otherwise it would watch nothing, silently, until Ctrl-C.
        exercise_of(lab)?;
    }
    let ws = workspace(src.dir.as_deref());
    if let Some(lab) = only {
        exercise_of(lab)?;
    }
    let exercises: Vec<&ExerciseFiles> = embedded::exercises()
        .filter(|e| only.is_none_or(|l| l.id == e.lab))
        .collect();
    // Outside a workspace no file would ever change and the watch would wait forever:
    // fail at once, with `lab check`'s words.
    let present = |e: &&ExerciseFiles| ws.join(e.rust).is_file() || ws.join(e.python).is_file();
    if src.cmd.is_none() && !exercises.iter().any(present) {
        let file = exercises.first().map_or(ws.clone(), |e| ws.join(e.rust));
        return Err(LabError::usage(format!("no {} here", file.display()))
            .fix("run `lab init` to write the exercises workspace (then `cd` into it), or pass --dir PATH")
            .into());
    }
    let mtime = |rel: &str| {
        std::fs::metadata(ws.join(rel))
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen: Vec<(Option<SystemTime>, Option<SystemTime>)> = exercises
        .iter()
        .map(|e| (mtime(e.rust), mtime(e.python)))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(()).is_err() {
                return;
            }
            line.clear();
        }
    });
    say!(
        "{} {} {}",
        bold("Watching"),
        ws.display(),
        dim("(polling every save; press Enter to re-check, Ctrl-C to stop)")
    )?;
    // The exercise checked first: the one asked for, else the one saved last.
    let newest = exercises
        .iter()
        .zip(&seen)
        .filter_map(|(e, (r, p))| {
            let lang = if p > r { Lang::Python } else { Lang::Rust };
            r.max(p).map(|t| (t, *e, lang))
        })
        .max_by_key(|(t, _, _)| *t)
        .map(|(_, e, lang)| (e, lang));
    let mut last: Option<(&ExerciseFiles, Lang)> = match only {
        Some(l) => embedded::exercise(&l.id).map(|e| (e, src.lang)),
        None => newest,
    }
    .map(|(e, lang)| {
        (
            e,
            if src.lang == Lang::Auto {
                lang
            } else {
                src.lang
            },
        )
    });
    let mut runs = 0;
    // One check at start: the verdict is on screen before the first save.
    let mut first = true;
    loop {
        let mut due = (std::mem::take(&mut first) || rx.try_recv().is_ok()) && last.is_some();
        for (i, e) in exercises.iter().enumerate() {
            let now = (mtime(e.rust), mtime(e.python));
            if now != seen[i] {
                let lang = if now.1 != seen[i].1 {
                    Lang::Python
                } else {
                    Lang::Rust
                };
                seen[i] = now;
                last = Some((
                    e,
                    if src.lang == Lang::Auto {
                        lang
                    } else {
                        src.lang
                    },
                ));
                due = true;
            }
        }
        if due {
            if let Some((e, lang)) = last {
                let lab = catalog.find(e.lab)?;
                let src = Source {
                    lang,
                    ..src.clone()
                };
                say!("{}", dim(format!("--- {} ({lang:?}) ---", e.lab)))?;
                if let Err(err) = check(lab, &src) {
                    say!("{}", bad(err))?;
                }
                runs += 1;
                if max_runs.is_some_and(|m| runs >= m) {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(interval);
    }
}
