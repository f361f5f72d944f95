//! The Markdown of the evidence: one `report.md` per entry, and `lab report [IDS]
//! --out DIR`, the skeleton of a write-up over every lab's latest evidence.
//!
//! Both render on GitHub: plain CommonMark, relative links only, the figure as an SVG
//! file next to the Markdown. `lab report` copies the entries it cites into
//! `DIR/evidence/`, so the write-up folder stands alone (commit it, zip it, hand it in).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{entries, utc, Record, CAPTURE, FRAMES_SVG, RECORD, REPORT, TRANSCRIPT};
use crate::catalog::{Catalog, Lab};
use crate::error::LabError;
use crate::say;

/// How to look at a lab's capture with tshark: (what it shows, the command with `{F}`
/// for the file). The lessons show the same commands.
pub fn look_commands(lab: &str) -> Vec<(&'static str, &'static str)> {
    let mut v = match lab.get(..2).unwrap_or("") {
        "01" => vec![
            ("the conversation as text, both directions", "tshark -r {F} -q -z follow,tcp,ascii,0"),
            (
                "the three-way handshake (SYN, SYN-ACK, ACK) and the closing FINs",
                "tshark -r {F} -Y \"tcp.flags.syn==1 || tcp.flags.fin==1 || tcp.flags.reset==1\"",
            ),
        ],
        "02" => vec![("every datagram and its echo", "tshark -r {F} -Y udp")],
        "03" => vec![
            (
                "datagrams per direction (sender -> relay, relay -> receiver)",
                "tshark -r {F} -q -z conv,udp",
            ),
            (
                "each data datagram's ports and sequence number (payload bytes 16-23): a number \
                 that reaches the relay but never the receiver is a loss",
                "tshark -r {F} -Y \"udp.payload[5]==00\" -T fields -e frame.time_relative -e udp.srcport -e udp.dstport -e udp.payload",
            ),
        ],
        "04" => vec![(
            "the ICMP fields: type, code, checksum, identifier, sequence",
            "tshark -r {F} -Y icmp -O icmp",
        )],
        _ => vec![],
    };
    v.push(("every frame, one line each", "tshark -r {F}"));
    v
}

/// The `report.md` of one entry (its links are files of the same folder).
pub fn entry_markdown(r: &Record, transcript: &str) -> String {
    let mut md = format!(
        "# {}: {} ({} at {})\n\n",
        r.lab,
        r.title,
        if r.kind == "check" {
            "lab check"
        } else {
            "lab run"
        },
        r.started
    );
    md.push_str("| | |\n|---|---|\n");
    md.push_str(&format!("| Command | `{}` |\n", r.command.join(" ")));
    md.push_str(&format!(
        "| When | {} to {} ({:.2} s) |\n",
        r.started,
        r.finished,
        r.duration_ms as f64 / 1000.0
    ));
    md.push_str(&format!("| Outcome | {} |\n", r.outcome));
    md.push_str(&format!("| Machine | {} |\n", machine_line(r)));
    md.push_str(&format!("| lab | {} |\n", r.lab_version));
    match &r.capture {
        Some(c) => md.push_str(&format!(
            "| Capture | [{CAPTURE}]({CAPTURE}): {} frames, {} bytes; kernel timestamps (ns). {} |\n",
            c.written.packets, c.written.bytes, r.capture_note
        )),
        None => md.push_str(&format!("| Capture | none: {} |\n", r.capture_note)),
    }
    md.push_str(&format!("| Raw data | [{RECORD}]({RECORD}) |\n\n"));
    if r.files.iter().any(|f| f == FRAMES_SVG) {
        md.push_str(&format!(
            "## Frames on the wire\n\n![Frames per time slice, from the capture]({FRAMES_SVG})\n\n"
        ));
    }
    let figures: Vec<&String> = r.figures().collect();
    if !figures.is_empty() {
        md.push_str("## Figures\n\n");
        for f in figures {
            md.push_str(&format!("![{f}]({f})\n\n"));
        }
    }
    if r.capture.is_some() {
        md.push_str("## Look at the capture yourself\n\n");
        for (what, cmd) in look_commands(&r.lab) {
            md.push_str(&format!(
                "- {what}:\n\n      {}\n\n",
                cmd.replace("{F}", CAPTURE)
            ));
        }
    }
    md.push_str(&format!(
        "## Transcript\n\n[{TRANSCRIPT}]({TRANSCRIPT})\n\n```text\n{}\n```\n",
        transcript.trim_end().replace("```", "'''")
    ));
    md
}

fn machine_line(r: &Record) -> String {
    let m = &r.machine;
    format!(
        "{} ({} CPUs, this process on CPUs {}), Linux {}{}",
        m.cpu,
        m.cpus,
        m.affinity,
        m.kernel,
        m.mtu
            .map(|x| format!(", loopback MTU {x}"))
            .unwrap_or_default()
    )
}

/// `lab report IDS --run-missing`: runs the demo of each named lab that has no run in
/// the evidence yet, as `lab run ID --evidence EVIDENCE` would (a child process of this
/// same binary, its output shown as it goes). A demo that fails is said and skipped:
/// the write-up then says how to collect that lab's evidence by hand.
pub fn run_missing(catalog: &Catalog, ids: &[String], evidence: &Path) -> Result<()> {
    if ids.is_empty() {
        return Err(LabError::usage("--run-missing needs the labs to run")
            .fix("name them: `lab report 01 02 03 --run-missing --out write-up`")
            .into());
    }
    let exe = std::env::current_exe().context("cannot find the lab binary to run demos")?;
    for id in ids {
        let lab = catalog.find(id)?;
        if entries(evidence, &lab.id)
            .iter()
            .any(|(_, r)| r.kind == "run")
        {
            continue;
        }
        say!(
            "lab report: no run of {} in {} yet: running `lab run {} --evidence {}`",
            lab.id,
            evidence.display(),
            lab.id,
            evidence.display()
        )?;
        let status = std::process::Command::new(&exe)
            .arg("run")
            .arg(&lab.id)
            .arg("--evidence")
            .arg(evidence)
            .stdin(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        if !status.success() {
            say!(
                "lab report: the demo of {} did not complete ({status}); its section says how to collect it",
                lab.id
            )?;
        }
    }
    Ok(())
}

/// `lab report [IDS] --out DIR [--evidence EVIDENCE]`.
pub fn write_up(catalog: &Catalog, ids: &[String], out: &Path, evidence: &Path) -> Result<()> {
    let labs: Vec<&Lab> = if ids.is_empty() {
        // Every lab with evidence; none at all is a usage error below.
        catalog
            .labs
            .iter()
            .filter(|l| !entries(evidence, &l.id).is_empty())
            .collect()
    } else {
        ids.iter()
            .map(|i| catalog.find(i))
            .collect::<Result<_, _>>()?
    };
    if labs.is_empty() {
        return Err(
            LabError::usage(format!("no evidence in {} yet", evidence.display()))
                .fix(format!(
            "collect some first: `lab run 01 --evidence {e}` and `lab check 01 --evidence {e}`, \
             or name the labs (`lab report 01 02 --out {o}`) for a skeleton without evidence",
            e = evidence.display(),
            o = out.display()
        ))
                .into(),
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut md = String::from("# Lab write-up\n\n");
    md.push_str(&format!(
        "Generated by `lab report` on {} from the evidence in `{}`. Every section below has \
         the lab's evidence (reports, transcripts, packet captures, figures) and headings for \
         your own observations and answers: replace the _italic_ prompts with your words.\n\n",
        utc(std::time::SystemTime::now()),
        evidence.display()
    ));
    md.push_str("Labs:\n\n");
    for lab in &labs {
        md.push_str(&format!("- {}: {}\n", lab.id, lab.title));
    }
    md.push('\n');
    for lab in &labs {
        md.push_str(&lab_section(lab, evidence, out)?);
    }
    let path = out.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("cannot write {}", path.display()))?;
    say!("wrote {}", path.display())?;
    say!("Open it on GitHub or in any Markdown viewer; the figures are the SVG files next to it.")?;
    Ok(())
}

/// One lab's section; copies the entries it cites under `out/evidence/`.
fn lab_section(lab: &Lab, evidence: &Path, out: &Path) -> Result<String> {
    let mut md = format!(
        "## {}: {}\n\n### What was asked\n\n{}\n\n",
        lab.id,
        lab.title,
        lab.summary.trim()
    );
    if let Some(ex) = &lab.exercise {
        md.push_str(&format!("The exercise: {}\n\n", ex.contract.trim()));
    }
    let found = entries(evidence, &lab.id);
    md.push_str("### What was done\n\n");
    if found.is_empty() {
        md.push_str(&format!(
            "_No evidence yet: run `lab run {id} --evidence {e}` (and `lab check {id} --evidence {e}` \
             for the exercise), then `lab report` again._\n\n",
            id = lab.id,
            e = evidence.display()
        ));
    } else {
        md.push_str("| When (UTC) | What | Command | Outcome |\n|---|---|---|---|\n");
        for (_, r) in &found {
            md.push_str(&format!(
                "| {} | {} | `{}` | {} |\n",
                r.started,
                r.kind,
                r.command.join(" ").replace('|', "\\|"),
                r.outcome.replace('|', "\\|")
            ));
        }
        md.push('\n');
    }
    md.push_str("### Evidence\n\n");
    if found.is_empty() {
        md.push_str("_None yet._\n\n");
    }
    // The latest of each kind: what the write-up points at.
    for kind in ["run", "check"] {
        let Some((dir, r)) = found.iter().rev().find(|(_, r)| r.kind == kind) else {
            continue;
        };
        let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
        let rel = Path::new("evidence").join(&lab.id).join(&name);
        copy_entry(dir, &out.join(&rel))?;
        let link = |f: &str| format!("{}/{f}", rel.display());
        let what = if kind == "run" {
            "The demo"
        } else {
            "The check of my exercise"
        };
        md.push_str(&format!(
            "- {what} ({}, {}): [report]({}), [transcript]({}), [raw data]({})",
            r.started,
            r.outcome,
            link(REPORT),
            link(TRANSCRIPT),
            link(RECORD)
        ));
        if let Some(c) = &r.capture {
            md.push_str(&format!(
                ", [packet capture]({}) ({} frames)",
                link(CAPTURE),
                c.written.packets
            ));
        }
        md.push_str("\n\n");
        for f in r.figures() {
            md.push_str(&format!("  ![{f}]({})\n\n", link(f)));
        }
        if r.files.iter().any(|f| f == FRAMES_SVG) {
            md.push_str(&format!(
                "  ![Frames on the wire during {}]({})\n\n",
                what.to_lowercase(),
                link(FRAMES_SVG)
            ));
        }
        if r.capture.is_some() {
            for (what, cmd) in look_commands(&lab.id).into_iter().take(2) {
                md.push_str(&format!(
                    "  {what}:\n\n      {}\n\n",
                    cmd.replace("{F}", &link(CAPTURE))
                ));
            }
        }
    }
    md.push_str(
        "### My observations\n\n_What did you see, and why? Point at the evidence: a frame number \
         in the capture, a line of the transcript, a bar of the figure._\n\n",
    );
    let questions = lesson_questions(&lab.lesson);
    if !questions.is_empty() {
        md.push_str("### Answers to the lesson's questions\n\n");
        for (i, q) in questions.iter().enumerate() {
            md.push_str(&format!("#### {}. {q}\n\n_Your answer._\n\n", i + 1));
        }
    }
    Ok(md)
}

/// The numbered items under a lesson's "Questions" heading.
fn lesson_questions(lesson: &str) -> Vec<String> {
    let mut inside = false;
    let mut qs = Vec::new();
    for line in lesson.lines() {
        if line.starts_with("## ") {
            inside = line.to_lowercase().contains("question");
            continue;
        }
        if !inside {
            continue;
        }
        let t = line.trim_start();
        match t.split_once(". ") {
            Some((n, q)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                qs.push(q.trim().to_string())
            }
            // A question's continuation line.
            _ if !t.is_empty() && line.starts_with("   ") => {
                if let Some(last) = qs.last_mut() {
                    last.push(' ');
                    last.push_str(t);
                }
            }
            _ => {}
        }
    }
    qs
}

/// Copies an entry's files (flat: entries have no sub-folders).
fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_come_from_the_lessons_questions_section() {
        let lesson = "# T\n\n## Run it\n\n1. Not a question.\n\n## Questions to try\n\n\
                      1. Why?\n2. What happens\n   when it breaks?\n\n## Next\n\n3. No.\n";
        assert_eq!(
            lesson_questions(lesson),
            vec![
                "Why?".to_string(),
                "What happens when it breaks?".to_string()
            ]
        );
    }
}
