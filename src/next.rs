//! The way through the labs: where each lab stands for this student (not read, lesson
//! read, demo run, exercise started, passed), and the first step not yet done, which
//! `lab` (no arguments) prints as "Next".
//!
//! A lab is done when its exercise passed, or, for a lab without an exercise, when its
//! demo ran. The next step is in the first lab not done, in the order a lab is meant to
//! be worked: read the lesson, run the demo, write the exercise, check it until it
//! passes. Steps are never demanded after the fact: a student who passed 01 without
//! reading its lesson is done with 01.

use std::path::Path;

use crate::catalog::{Catalog, Lab, Status};
use crate::progress::{Entry, Progress};

/// Where one lab stands, furthest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Nothing done yet.
    New,
    /// The lesson was shown.
    Read,
    /// The demo ran.
    DemoRun,
    /// The exercise was checked at least once, not passed yet.
    Started,
    /// The exercise passed (or, without an exercise, the demo ran).
    Done,
}

impl State {
    /// Of `lab` given its progress entry.
    pub fn of(lab: &Lab, e: &Entry) -> State {
        if e.passed || (!has_exercise(lab) && e.ran) {
            State::Done
        } else if e.tried {
            State::Started
        } else if e.ran {
            State::DemoRun
        } else if e.read {
            State::Read
        } else {
            State::New
        }
    }

    /// The word `lab list` shows.
    pub fn word(self, lab: &Lab) -> &'static str {
        match self {
            State::New => "new",
            State::Read => "lesson read",
            State::DemoRun => "demo run",
            State::Started => "exercise started",
            State::Done if has_exercise(lab) => "passed",
            State::Done => "done",
        }
    }
}

/// The lab has a graded exercise (`lab check` grades it).
pub fn has_exercise(lab: &Lab) -> bool {
    lab.exercise.is_some() && crate::grade::embedded::exercise(&lab.id).is_some()
}

/// The step to take next: the lab, and the commands with what each does.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    /// The first lab not done.
    pub lab: &'a Lab,
    /// Where that lab stands.
    pub state: State,
    /// (command, what it does), in the order to run them.
    pub commands: Vec<(String, String)>,
}

impl Step<'_> {
    /// Prints the commands, aligned, each with what it does (the first screen and
    /// `lab init` show a step the same way).
    pub fn say_commands(&self) -> std::io::Result<()> {
        let w = self
            .commands
            .iter()
            .map(|(c, _)| c.len())
            .max()
            .unwrap_or(0);
        for (command, what) in &self.commands {
            crate::say!(
                "  {}{}  {what}",
                crate::out::code(command),
                " ".repeat(w - command.len())
            )?;
        }
        Ok(())
    }
}

/// The first unfinished step, or None when every built lab is done. `workspace` is the
/// student's exercises folder, if `lab init` made one.
pub fn next_step<'a>(
    catalog: &'a Catalog,
    progress: &Progress,
    workspace: Option<&Path>,
) -> Option<Step<'a>> {
    let (lab, state) = catalog
        .labs
        .iter()
        .filter(|l| l.status == Status::Ready)
        .map(|l| (l, State::of(l, &progress.get(&l.id))))
        .find(|(_, s)| *s != State::Done)?;
    let id = &lab.id;
    let mut commands = Vec::new();
    let mut add = |c: String, what: &str| commands.push((c, what.to_string()));
    if state < State::Read {
        add(format!("lab show {id}"), "read the lesson");
    }
    if state < State::DemoRun {
        add(format!("lab run {id}"), "run the demo");
    }
    if has_exercise(lab) {
        let files = crate::grade::embedded::exercise(id).map(|e| (e.rust, e.python));
        if workspace.is_none() {
            add(
                "lab init ~/sockets".into(),
                "write the exercises workspace (starters in Rust and Python)",
            );
        }
        if state < State::Started {
            if let Some((rust, python)) = files {
                add(
                    format!("edit {rust} (or {python})"),
                    "write your program in the workspace",
                );
            }
            add(format!("lab check {id}"), "grade it");
        } else {
            add(
                format!("lab check {id}"),
                "grade it again after your changes",
            );
            add(format!("lab hint {id}"), "the next hint, when stuck");
        }
    }
    Some(Step {
        lab,
        state,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(lines: &str) -> Progress {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.txt");
        std::fs::write(&path, lines).unwrap();
        Progress::load_from(path)
    }

    fn first(step: &Step) -> String {
        step.commands[0].0.clone()
    }

    #[test]
    fn next_follows_each_labs_state() {
        let c = Catalog::load(None).unwrap();
        let ws = Some(Path::new("/ws"));
        let s = next_step(&c, &with(""), None).unwrap();
        assert_eq!(
            (s.lab.id.as_str(), first(&s)),
            ("01-tcp-echo", "lab show 01-tcp-echo".into())
        );
        assert!(
            s.commands.iter().any(|(c, _)| c.starts_with("lab init")),
            "{s:?}"
        );

        let s = next_step(&c, &with("01-tcp-echo read\n"), ws).unwrap();
        assert_eq!(first(&s), "lab run 01-tcp-echo");
        let s = next_step(&c, &with("01-tcp-echo read ran\n"), ws).unwrap();
        assert_eq!(
            first(&s),
            "edit rust/01-tcp-echo.rs (or python/01-tcp-echo.py)"
        );
        assert!(!s.commands.iter().any(|(c, _)| c.starts_with("lab init")));
        let s = next_step(&c, &with("01-tcp-echo read ran tried\n"), ws).unwrap();
        assert_eq!(
            (s.state, first(&s)),
            (State::Started, "lab check 01-tcp-echo".into())
        );

        // 01 to 03 passed (demos never run): Next is 04, not 01.
        let p = with("01-tcp-echo passed\n02-udp-echo passed\n03-udp-loss passed\n");
        let s = next_step(&c, &p, ws).unwrap();
        assert_eq!(s.lab.id, "04-raw-icmp");

        // A lab without an exercise is done once its demo ran.
        let all: String = c
            .labs
            .iter()
            .map(|l| format!("{} ran passed\n", l.id))
            .collect();
        assert!(next_step(&c, &with(&all), ws).is_none());
        let no_08 = all.replace("08-latency ran passed", "08-latency read");
        let s = next_step(&c, &with(&no_08), ws).unwrap();
        assert_eq!(s.commands.len(), 1, "{s:?}");
        assert_eq!(first(&s), "lab run 08-latency");
    }
}
