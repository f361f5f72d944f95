//! A new student's path with the installed binary alone, in a temporary HOME with no
//! `LAB_PROGRESS`: the first screen, the lesson, the demo (before any workspace), `lab
//! init`, a failing check, a passing one, and at each step the "Next" of `lab` pointing
//! at the first unfinished step. It checks the one record of progress: the demo run
//! before `lab init` still counts after it, and commands run outside the workspace count
//! in it too.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{have, skip, stderr, stdout};

/// `lab ARGS` as the student runs it: their HOME, in folder `cwd`, nothing else set.
fn lab_in(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    let mut c: Command = common::lab();
    c.env_remove("LAB_PROGRESS")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null());
    c.output().expect("run lab")
}

/// The "Next:" part of the first screen: its heading and the command lines under it.
fn next_of(o: &Output) -> String {
    let s = stdout(o);
    let start = s.find("Next:").unwrap_or_else(|| panic!("no Next in\n{s}"));
    s[start..].split("\n\n").next().unwrap().to_string()
}

#[test]
fn a_new_student_walks_from_the_first_screen_to_the_second_lab() {
    if !have("python3") {
        skip("the student's path grades a Python exercise: python3 is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // The first screen: what this is, and the way in, `lab init` included.
    let o = lab_in(&home, &home, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let next = next_of(&o);
    assert!(next.starts_with("Next: TCP echo (new)"), "{next}");
    assert!(next.contains("lab show 01-tcp-echo"), "{next}");
    assert!(next.contains("lab init"), "{next}");

    // The lesson, then the demo, both before any workspace exists.
    let o = lab_in(&home, &home, &["show", "01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let next = next_of(&lab_in(&home, &home, &[]));
    assert!(next.contains("(lesson read)"), "{next}");
    assert!(!next.contains("lab show 01"), "the lesson is read: {next}");
    let o = lab_in(&home, &home, &["run", "01"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let next = next_of(&lab_in(&home, &home, &[]));
    assert!(next.contains("(demo run)"), "{next}");
    assert!(next.contains("lab init"), "no workspace yet: {next}");

    // `lab init`: the demo run before it still counts, in the workspace's file.
    let o = lab_in(&home, &home, &["init", "sockets"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Its own "Next" already knows the lesson was read and the demo ran.
    let said = next_of(&o);
    assert!(said.contains("edit rust/01-tcp-echo.rs"), "{said}");
    assert!(!said.contains("lab run 01"), "{said}");
    let ws = home.join("sockets");
    let record = std::fs::read_to_string(ws.join("lab-progress.txt")).unwrap();
    assert!(record.contains("01-tcp-echo read ran"), "{record}");
    let o = lab_in(&home, &ws, &[]);
    let next = next_of(&o);
    assert!(next.contains("(demo run)"), "{next}");
    assert!(!next.contains("lab init"), "the workspace exists: {next}");
    assert!(next.contains("edit rust/01-tcp-echo.rs"), "{next}");

    // The starter fails its check (exit 1, the first failure named); the exercise is
    // started, and Next says to check again and where the hints are.
    let py = ["check", "01", "--cmd", "python3 python/01-tcp-echo.py"];
    let o = lab_in(&home, &ws, &py);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("did not pass"), "{}", stderr(&o));
    let next = next_of(&lab_in(&home, &ws, &[]));
    assert!(next.contains("(exercise started)"), "{next}");
    assert!(next.contains("lab hint 01-tcp-echo"), "{next}");

    // A program that does what the contract says passes.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python/01-tcp-echo.py"),
        ws.join("python/01-tcp-echo.py"),
    )
    .unwrap();
    let o = lab_in(&home, &ws, &py);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("Passed."), "{}", stdout(&o));

    // The next step is the next lab, seen from inside the workspace and from HOME alike:
    // one record, wherever the student stands.
    for cwd in [&ws, &home] {
        let o = lab_in(&home, cwd, &[]);
        let next = next_of(&o);
        assert!(next.starts_with("Next: UDP echo (new)"), "{next}");
        assert!(next.contains("lab show 02-udp-echo"), "{next}");
        assert!(stdout(&o).contains("✓ passed"), "{}", stdout(&o));
    }
    // A demo run from HOME counts in the workspace's record.
    let o = lab_in(&home, &home, &["run", "02"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let record = std::fs::read_to_string(ws.join("lab-progress.txt")).unwrap();
    assert!(record.contains("02-udp-echo ran"), "{record}");
    let o = lab_in(&home, &ws, &["list"]);
    assert!(stdout(&o).contains("[passed]"), "{}", stdout(&o));
    assert!(stdout(&o).contains("[demo run]"), "{}", stdout(&o));
    // The solution opens now that the exercise passed.
    let o = lab_in(&home, &ws, &["solution", "01"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
