//! The command line: clap definitions and one small function per command.
//!
//! Lab-specific flags are not declared here: `lab run ID ARGS...` hands ARGS to the lab,
//! which parses them with its own clap struct (so `lab run 01 --help` shows that lab's
//! flags).

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;

use crate::catalog::{Catalog, Lab, Status};
use crate::error::LabError;
use crate::out::{bold, dim, good, render_markdown, warn, width};
use crate::progress::Progress;
use crate::{doctor, labs, next, say};

const AFTER_HELP: &str = "\
Start with `lab` (where am I, what next), then `lab show 01` and `lab run 01`.
Lab ids may be written 03-udp-loss, 03, 3 or udp-loss.

Exit status: 0 success; 1 a lab or check ran and its expectation was not met;
2 usage or environment error (the message says how to fix it).
Colours only on a terminal; NO_COLOR=1 turns them off.";

/// A hands-on workbook for network sockets: TCP, UDP, raw sockets, a chat, JSON records,
/// an Arduino's serial stream, and latency you can see.
#[derive(Debug, Parser)]
#[command(name = "lab", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Folder of lab metadata and lessons that override the built-in ones
    /// (laid out like the repository's `labs/`: `<id>/lab.toml`, `<id>/lesson.md`).
    #[arg(
        long,
        global = true,
        env = "LAB_LABS",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub labs: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the labs, what each teaches, what it needs, and your progress.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a lab's lesson.
    Show {
        /// Lab id: 03-udp-loss, 03, 3 or udp-loss.
        id: String,
        /// Print the Markdown source instead of rendering it.
        #[arg(long)]
        raw: bool,
        /// Print the Arduino sketch instead (07-serial-stream: the code on the board, the
        /// repository's arduino/analog_stream/analog_stream.ino).
        #[arg(long)]
        sketch: bool,
    },
    /// Run a lab's demo (on loopback unless told otherwise). Flags after the id belong to
    /// the lab: `lab run 01 --help` lists them. Any lab also takes `--pcap FILE` (a
    /// packet capture of the run; needs CAP_NET_RAW) and `--evidence DIR` (a new dated
    /// folder with a report, the transcript, the capture and the raw data).
    // clap's own --help would answer `lab run 01 --help` with this generic help, before
    // the lab sees its flags; ours hands it to the lab when an id is given.
    #[command(disable_help_flag = true)]
    Run {
        /// Lab id: 03-udp-loss, 03, 3 or udp-loss.
        #[arg(required_unless_present = "help")]
        id: Option<String>,
        /// Print help: with a lab id, the lab's own flags (`lab run 01 --help`).
        #[arg(short, long)]
        help: bool,
        /// The lab's own flags, e.g. `--role server --bind 0.0.0.0:7001`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "LAB FLAGS"
        )]
        args: Vec<String>,
    },
    /// Show the next hint for a lab's exercise (one more each time).
    Hint {
        /// Lab id.
        id: String,
        /// Show every hint at once.
        #[arg(long)]
        all: bool,
    },
    /// Check this machine: loopback, raw-socket permission, serial ports, limits, tools.
    Doctor {
        /// Print JSON instead of a report.
        #[arg(long)]
        json: bool,
    },
    /// Serial ports for 07-serial-stream: `lab serial list` shows where an Arduino is.
    Serial {
        #[command(subcommand)]
        command: labs::serial_stream::SerialCommand,
    },
    /// A seeded UDP impairment relay: loss, duplication, reordering, delay and jitter
    /// between any UDP sender and receiver, with exact counts of what it did.
    Impair(crate::impair::ImpairArgs),
    /// Measure latency: round trips per message size (TCP, TCP with Nagle, UDP) or the age
    /// of streamed samples per buffer size, with percentiles, plots and a report
    /// (`--out DIR`); `lab latency compare A B` sets two runs side by side.
    Latency(Box<crate::latency::LatencyArgs>),
    /// Grader commands: init, check, reset, solution, watch, grade, classroom, dev.
    #[command(flatten)]
    Grade(crate::grade::cli::Commands),
    /// Write the skeleton of a write-up over the evidence collected so far
    /// (`--evidence` of `lab run` and `lab check`): per lab what was asked, what was done,
    /// the evidence, and headings for your observations and the lesson's questions.
    Report {
        /// Lab ids (default: every lab with evidence).
        ids: Vec<String>,
        /// Where to write report.md (and copies of the evidence it links to).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The evidence folder given to --evidence.
        #[arg(long, value_name = "DIR", default_value = crate::evidence::DEFAULT_DIR)]
        evidence: PathBuf,
        /// First run the demo (`lab run ID --evidence DIR`) of each named lab that has no
        /// evidence of a run yet.
        #[arg(long)]
        run_missing: bool,
    },
    /// Print a shell completion script (e.g. `lab completions bash > ~/.local/share/bash-completion/completions/lab`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Parses arguments and runs the command.
pub fn main() -> Result<()> {
    let cli = Cli::try_parse().map_err(missing_id)?;
    let catalog = Catalog::load(cli.labs.as_deref())?;
    match cli.command {
        None => status(&catalog),
        Some(Command::List { json }) => list(&catalog, json),
        Some(Command::Show { id, raw, sketch }) => match sketch {
            true => show_sketch(catalog.find(&id)?),
            false => show(catalog.find(&id)?, raw),
        },
        Some(Command::Run { id, help, args }) => match id {
            // `lab run ID --help`: the lab prints its own help.
            Some(id) => {
                let mut args = args;
                if help {
                    args.insert(0, "--help".into());
                }
                run(catalog.find(&id)?, &args)
            }
            None => {
                let mut cmd = Cli::command();
                cmd.build();
                let help = cmd
                    .find_subcommand_mut("run")
                    .expect("the run subcommand")
                    .render_long_help();
                // Display is the plain text (colours would leak into pipes).
                say!("{}", help.to_string().trim_end())?;
                Ok(())
            }
        },
        Some(Command::Hint { id, all }) => hint(catalog.find(&id)?, all),
        Some(Command::Doctor { json }) => doctor::run(json),
        Some(Command::Serial { command }) => labs::serial_stream::serial_command(command),
        Some(Command::Impair(args)) => crate::impair::run(&args),
        Some(Command::Latency(args)) => crate::latency::main(*args),
        Some(Command::Grade(cmd)) => crate::grade::cli::run(&catalog, cmd),
        Some(Command::Report {
            ids,
            out,
            evidence,
            run_missing,
        }) => {
            if run_missing {
                crate::evidence::report::run_missing(&catalog, &ids, &evidence)?;
            }
            crate::evidence::report::write_up(&catalog, &ids, &out, &evidence)
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = completion_command(&catalog);
            clap_complete::generate(shell, &mut cmd, "lab", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// The command line as shell completions see it: every lab id offered where an id goes,
/// and `lab run` given one subcommand per lab holding that lab's own flags (the clap
/// struct its demo parses with, from the registry), so `lab run <TAB>` offers the ids and
/// `lab run 03-udp-loss --<TAB>` offers 03's flags. Parsing never uses this: it accepts
/// every form of an id (`03`, `3`, `udp-loss`), which a fixed list would refuse.
pub fn completion_command(catalog: &Catalog) -> clap::Command {
    use clap::builder::PossibleValue;
    let ids: Vec<PossibleValue> = catalog
        .labs
        .iter()
        .map(|l| PossibleValue::new(l.id.clone()).help(l.title.clone()))
        .collect();
    let mut cmd = Cli::command();
    for name in ["show", "hint", "check", "reset", "solution", "watch"] {
        cmd = cmd.mut_subcommand(name, |c| {
            c.mut_arg("id", |a| {
                a.value_parser(clap::builder::PossibleValuesParser::new(ids.clone()))
            })
        });
    }
    let labs: Vec<clap::Command> = catalog
        .labs
        .iter()
        .filter_map(|l| {
            let flags = labs::get(&l.id)?.flags?;
            Some(
                flags()
                    .name(l.id.clone())
                    .about(l.title.clone())
                    .alias(format!("{:02}", l.number()))
                    .alias(l.slug().to_string()),
            )
        })
        .collect();
    cmd.mut_subcommand("run", |run| {
        clap::Command::new("run")
            .about(run.get_about().cloned().unwrap_or_default())
            .disable_help_subcommand(true)
            .subcommands(labs)
    })
}

/// A command that needs a lab id and got none (`lab show`, `lab run`, `lab check`):
/// say so with the ids to choose from, instead of clap's bare "<ID> required".
/// Every other parse error (and `--help`) stays clap's own.
fn missing_id(e: clap::Error) -> anyhow::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let wants_id = e.kind() == ErrorKind::MissingRequiredArgument
        && matches!(e.get(ContextKind::InvalidArg),
            Some(ContextValue::Strings(v)) if v.iter().any(|a| a == "<ID>"));
    if !wants_id {
        return e.into();
    }
    // "Usage: lab show <ID>" -> "lab show".
    let command = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(u)) => u
            .to_string()
            .trim_start_matches("Usage: ")
            .split(" <ID>")
            .next()
            .unwrap_or("lab")
            .trim()
            .to_string(),
        _ => "this command".into(),
    };
    let ids = Catalog::load(None)
        .map(|c| {
            c.labs
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    LabError::usage(format!("`{command}` needs a lab id: one of {ids}"))
        .fix(format!(
            "name the lab, e.g. `{command} 01` (01-tcp-echo, 01, 1 and tcp-echo all work)"
        ))
        .into()
}

/// `lab` with no arguments: what this is, progress, and the next command to run.
fn status(catalog: &Catalog) -> Result<()> {
    let progress = Progress::load();
    let workspace = crate::progress::workspace();
    say!("{}", bold("lab: a hands-on workbook for network sockets"))?;
    say!("Each numbered lab has a lesson (`lab show`), a demo you run (`lab run`), and an")?;
    say!("exercise you write yourself (`lab init` writes the starters, `lab check` grades).")?;
    say!()?;
    for lab in &catalog.labs {
        say!(
            "  {} {:<18}{}",
            mark(lab, &progress),
            lab.id,
            dim(&lab.title)
        )?;
    }
    if let Some(legend) = legend(catalog, &progress) {
        say!("  {}", dim(legend))?;
    }
    say!()?;
    match next::next_step(catalog, &progress, workspace.as_deref()) {
        Some(step) => {
            say!("Next: {} ({})", step.lab.title, step.state.word(step.lab))?;
            step.say_commands()?;
        }
        None => say!("Every lab that is built so far is done. `lab list` shows them all.")?,
    }
    say!()?;
    let place = match &workspace {
        Some(ws) => format!("Your workspace: {}. ", ws.display()),
        None => "No exercises workspace yet: `lab init DIR` writes one. ".into(),
    };
    say!(
        "{}",
        dim(format!(
            "{place}Progress file: {}. `lab --help` lists every command.",
            progress.path.display()
        ))
    )?;
    Ok(())
}

/// What the marks in front of the labs mean (`lab` and `lab list`): only the marks
/// shown, so no mark is ever explained that nothing uses (and none when none is shown).
fn legend(catalog: &Catalog, progress: &Progress) -> Option<String> {
    let shown: Vec<String> = catalog.labs.iter().map(|l| mark(l, progress)).collect();
    let parts: Vec<&str> = [
        (good("✓"), "✓ passed"),
        (warn("~"), "~ started (demo run or exercise checked)"),
        (dim("·"), "· planned (not built yet)"),
    ]
    .into_iter()
    .filter(|(m, _)| shown.contains(m))
    .map(|(_, text)| text)
    .collect();
    (!parts.is_empty()).then(|| parts.join("  "))
}

fn mark(lab: &Lab, progress: &Progress) -> String {
    if lab.status == Status::Planned {
        return dim("·");
    }
    match next::State::of(lab, &progress.get(&lab.id)) {
        next::State::Done => good("✓"),
        next::State::DemoRun | next::State::Started => warn("~"),
        next::State::New | next::State::Read => " ".to_string(),
    }
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: &'a str,
    number: u32,
    title: &'a str,
    teaches: &'a str,
    status: Status,
    needs: &'a [String],
    read: bool,
    ran: bool,
    tried: bool,
    hints_shown: usize,
    hints_total: usize,
    passed: bool,
}

/// `lab list`.
fn list(catalog: &Catalog, json: bool) -> Result<()> {
    let progress = Progress::load();
    if json {
        let entries: Vec<ListEntry> = catalog
            .labs
            .iter()
            .map(|l| {
                let p = progress.get(&l.id);
                ListEntry {
                    id: &l.id,
                    number: l.number(),
                    title: &l.title,
                    teaches: &l.teaches,
                    status: l.status,
                    needs: &l.needs,
                    read: p.read,
                    ran: p.ran,
                    tried: p.tried,
                    hints_shown: p.hints,
                    hints_total: l.hints.len(),
                    passed: p.passed,
                }
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&entries)?)?;
        return Ok(());
    }
    let w = width();
    for lab in &catalog.labs {
        let state = match next::State::of(lab, &progress.get(&lab.id)) {
            _ if lab.status == Status::Planned => dim("planned"),
            s @ next::State::Done => good(s.word(lab)),
            s @ (next::State::DemoRun | next::State::Started) => warn(s.word(lab)),
            s => s.word(lab).to_string(),
        };
        say!(
            "{} {}  {}  [{}]",
            mark(lab, &progress),
            bold(&lab.id),
            lab.title,
            state
        )?;
        let teaches = render_markdown(&lab.teaches, w.saturating_sub(6));
        for line in teaches.lines() {
            say!("      {}", dim(line))?;
        }
        if !lab.needs.is_empty() {
            say!("      needs: {}", warn(lab.needs.join(", ")))?;
        }
    }
    if let Some(legend) = legend(catalog, &progress) {
        say!()?;
        say!("{}", dim(legend))?;
    }
    Ok(())
}

/// `lab show ID`: the lesson (recorded as read).
fn show(lab: &Lab, raw: bool) -> Result<()> {
    Progress::load().update(&lab.id, |e| e.read = true);
    if raw {
        say!("{}", lab.lesson.trim_end())?;
    } else {
        say!("{}", render_markdown(&lab.lesson, width()).trim_end())?;
        if lab.status == Status::Ready {
            say!()?;
            say!(
                "{}",
                dim(format!(
                    "Run the demo: lab run {}   Hints: lab hint {}",
                    lab.id, lab.id
                ))
            )?;
        }
    }
    Ok(())
}

/// `lab show ID --sketch`: the Arduino sketch, for the one lab that has a board.
fn show_sketch(lab: &Lab) -> Result<()> {
    if lab.id != "07-serial-stream" {
        return Err(LabError::usage(format!(
            "{} has no Arduino sketch: only 07-serial-stream uses a board",
            lab.id
        ))
        .fix("`lab show 07 --sketch` prints the sketch of 07-serial-stream")
        .into());
    }
    say!("{}", labs::serial_stream::SKETCH.trim_end())?;
    Ok(())
}

/// `lab run ID ...`.
fn run(lab: &Lab, args: &[String]) -> Result<()> {
    // Planned in its lab.toml (a course may hide a lab with --labs), or not built.
    let demo = labs::find(&lab.id).filter(|_| lab.status == Status::Ready);
    let Some(demo) = demo else {
        return Err(LabError::usage(format!("{} is not built yet: its demo is planned", lab.id))
            .fix(format!("read what it will teach with `lab show {}`; `lab list` shows the labs you can run", lab.id))
            .into());
    };
    // `--pcap FILE` and `--evidence DIR` belong to `lab`, not to the lab (issue 17).
    let result = crate::evidence::around_run(lab, args, |args| demo(lab, args));
    // The demo ran (even if it then reported an unmet expectation): record it.
    if !matches!(&result, Err(e) if e.downcast_ref::<clap::Error>().is_some()) {
        Progress::load().update(&lab.id, |e| e.ran = true);
    }
    result
}

/// `lab hint ID`.
fn hint(lab: &Lab, all: bool) -> Result<()> {
    if lab.hints.is_empty() {
        say!("{} has no hints yet.", lab.id)?;
        return Ok(());
    }
    let mut progress = Progress::load();
    let shown = progress.get(&lab.id).hints;
    let upto = if all {
        lab.hints.len()
    } else {
        (shown + 1).min(lab.hints.len())
    };
    let w = width();
    for (i, h) in lab.hints.iter().enumerate().take(upto) {
        let text = render_markdown(&format!("{}. {h}", i + 1), w);
        say!("{}", text.trim_end())?;
    }
    if upto < lab.hints.len() {
        say!(
            "{}",
            dim(format!(
                "({upto} of {} hints; run again for the next, or --all)",
                lab.hints.len()
            ))
        )?;
    } else if !all && shown >= lab.hints.len() {
        say!("{}", dim("(that was every hint)"))?;
    }
    progress.update(&lab.id, |e| e.hints = e.hints.max(upto));
    Ok(())
}
