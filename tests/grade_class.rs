//! `lab grade --submissions DIR`, a whole class in one command, through the real binary:
//! a folder of students made from the embedded starters, the reference solutions, a
//! mutant, a folder without a workspace, a program that hangs and one that does not
//! build. The gradebook has exactly the right rows; a second run keeps what the first
//! wrote; `--force` grades again; `--jobs 2` and `--jobs 1` agree; bad input is refused
//! with a fix.
//!
//! Needs python3 and cargo (the starter and the broken student are Rust). Labs 01 and 02
//! only: they grade in seconds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lab() -> Command {
    let mut c = common::lab();
    c.stdin(Stdio::null());
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A student's workspace as `lab init` writes it.
fn init(dir: &Path) {
    let o = lab().arg("init").arg(dir).output().unwrap();
    assert!(o.status.success(), "lab init: {}", text(&o));
}

/// Copies the Python reference solutions of labs 01 and 02 into a workspace.
fn solve(ws: &Path) {
    for f in ["01-tcp-echo.py", "02-udp-echo.py"] {
        std::fs::copy(
            repo().join("solutions/python").join(f),
            ws.join("python").join(f),
        )
        .unwrap();
    }
}

/// `lab grade IDS --submissions DIR --out OUT EXTRA...`.
fn grade_class(ids: &[&str], dir: &Path, out: &Path, extra: &[&str]) -> Output {
    lab()
        .arg("grade")
        .args(ids)
        .arg("--submissions")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(["--seed", "4242"])
        .args(extra)
        .output()
        .unwrap()
}

fn gradebook(out: &Path) -> String {
    std::fs::read_to_string(out.join("gradebook.csv")).unwrap()
}

/// The class of the main test: every kind of submission but the hanging one (which
/// costs its whole timeout; see `a_hanging_program_is_stopped_...`).
fn class(root: &Path) -> PathBuf {
    let dir = root.join("submissions");
    // alice: the reference solutions.
    init(&dir.join("alice"));
    solve(&dir.join("alice"));
    // bob: the starter as `lab init` wrote it (Rust, built, fails all but `starts`).
    init(&dir.join("bob"));
    // carol: 02 solved, 01 a mutant that ignores send()'s count.
    init(&dir.join("carol"));
    solve(&dir.join("carol"));
    std::fs::copy(
        repo().join("tests/mutants/tcp_partial_send.py"),
        dir.join("carol/python/01-tcp-echo.py"),
    )
    .unwrap();
    // dave: handed in something that is not a workspace.
    std::fs::create_dir_all(dir.join("dave/notes")).unwrap();
    std::fs::write(dir.join("dave/README.md"), "my homework\n").unwrap();
    // erin: a clone of her repository, the workspace one folder down.
    let erin = dir.join("erin/lab-repo/exercises");
    init(&erin);
    solve(&erin);
    std::fs::create_dir_all(dir.join("erin/lab-repo/.git")).unwrap();
    // gina: Rust 01 that does not compile (02 left as the starter).
    init(&dir.join("gina"));
    std::fs::write(
        dir.join("gina/rust/01-tcp-echo.rs"),
        "fn main() { this is not rust }\n",
    )
    .unwrap();
    dir
}

/// How many checks lab 01 has.
fn n01() -> usize {
    lab::grade::checks::suite("01-tcp-echo")
        .expect("lab 01 has checks")
        .checks
        .len()
}

/// The gradebook the class must produce. Scores out of lab 01's check count, read from
/// the grader's own list so that adding a check to 01 does not break this test.
fn expected() -> String {
    let n = n01();
    let m = n - 1;
    format!(
        "student,lab,score,max_score,status\r\n\
alice,01-tcp-echo,{n},{n},pass\r\n\
alice,02-udp-echo,8,8,pass\r\n\
bob,01-tcp-echo,1,{n},fail\r\n\
bob,02-udp-echo,1,8,fail\r\n\
carol,01-tcp-echo,{m},{n},fail\r\n\
carol,02-udp-echo,8,8,pass\r\n\
dave,01-tcp-echo,0,{n},no workspace\r\n\
dave,02-udp-echo,0,8,no workspace\r\n\
erin,01-tcp-echo,{n},{n},pass\r\n\
erin,02-udp-echo,8,8,pass\r\n\
gina,01-tcp-echo,0,{n},build failed\r\n\
gina,02-udp-echo,1,8,fail\r\n"
    )
}

#[test]
fn a_class_is_graded_into_a_gradebook_resumed_and_regraded_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = class(tmp.path());
    let out = tmp.path().join("grades");

    // 1. Two at a time: the gradebook is exactly right, and the run says where it went.
    let o = grade_class(&["01", "02"], &dir, &out, &["--jobs", "2"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert_eq!(gradebook(&out), expected(), "{said}");
    assert!(
        said.contains("6 students, 4 graded, 1 failed to build, 1 with no workspace")
            && said.contains("5 graded now, 0 kept"),
        "{said}"
    );
    assert!(
        said.contains(&out.join("gradebook.csv").display().to_string()),
        "{said}"
    );
    for s in ["alice", "bob", "carol", "erin", "gina"] {
        let folder = out.join("students").join(s);
        for f in ["report.txt", "report.json", "result.json"] {
            assert!(folder.join(f).is_file(), "{s}/{f} missing");
        }
    }
    assert!(!out.join("students/dave").exists());
    let carol = std::fs::read_to_string(out.join("students/carol/report.txt")).unwrap();
    assert!(
        carol.contains("01-tcp-echo") && carol.contains("fail"),
        "{carol}"
    );
    let gina = std::fs::read_to_string(out.join("students/gina/report.txt")).unwrap();
    assert!(gina.contains("cargo build"), "{gina}");

    // 2. Again without --force: nothing is graded again. Proof: a mark put into alice's
    //    stored result (a score the grader would never give) survives into the gradebook.
    let stored = out.join("students/alice/result.json");
    let mut alice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stored).unwrap()).unwrap();
    alice["reports"][0]["score"] = 7.0.into();
    std::fs::write(&stored, alice.to_string()).unwrap();
    let o = grade_class(&["01", "02"], &dir, &out, &["--jobs", "2"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("0 graded now, 5 kept"), "{said}");
    assert_eq!(
        gradebook(&out),
        expected().replace(
            &format!("alice,01-tcp-echo,{n},{n}", n = n01()),
            &format!("alice,01-tcp-echo,7,{n}", n = n01())
        ),
        "{said}"
    );

    // 3. --force, one at a time: everyone graded again, and the same gradebook as two
    //    at a time (the mark is gone).
    let o = grade_class(&["01", "02"], &dir, &out, &["--jobs", "1", "--force"]);
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("5 graded now, 0 kept"), "{said}");
    assert_eq!(gradebook(&out), expected(), "{said}");
}

/// Processes whose command line mentions `needle` (the test's temporary folder).
fn leftovers(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read_to_string(e.path().join("cmdline"))
            .unwrap_or_default()
            .replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("{name}: {cmd}"));
        }
    }
    found
}

#[test]
fn a_hanging_program_is_stopped_at_the_student_timeout_and_the_others_still_graded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("submissions");
    // Graded first (names are sorted, one job): its program never binds, and a ready
    // timeout of ten minutes makes its grading hang until the per-student cap.
    init(&dir.join("a-hangs"));
    std::fs::copy(
        repo().join("tests/programs/never_listens.py"),
        dir.join("a-hangs/python/02-udp-echo.py"),
    )
    .unwrap();
    init(&dir.join("b-solved"));
    solve(&dir.join("b-solved"));
    // Its Rust build never ends: a build script that sleeps.
    init(&dir.join("c-build-hangs"));
    std::fs::write(
        dir.join("c-build-hangs/build.rs"),
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(600)); }\n",
    )
    .unwrap();
    let out = tmp.path().join("grades");
    // The grader's temporary folder: a grading stopped at the cap runs no cleanup of its
    // own, and what it made there must not pile up over a class.
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let o = lab()
        .args(["grade", "02", "--submissions"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .args([
            "--jobs",
            "1",
            "--student-timeout",
            "20",
            "--format",
            "junit",
        ])
        .env("LAB_READY_TIMEOUT_MS", "600000")
        .env("TMPDIR", &tmpdir)
        .output()
        .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert_eq!(
        gradebook(&out),
        "student,lab,score,max_score,status\r\n\
         a-hangs,02-udp-echo,0,8,timeout\r\n\
         b-solved,02-udp-echo,8,8,pass\r\n\
         c-build-hangs,02-udp-echo,0,8,timeout\r\n",
        "{said}"
    );
    assert!(said.contains("2 timed out"), "{said}");
    // --format junit: one file per student; the stopped one says why.
    let junit = std::fs::read_to_string(out.join("students/a-hangs/junit.xml")).unwrap();
    assert!(junit.contains("--student-timeout"), "{junit}");
    assert!(out.join("students/b-solved/junit.xml").is_file());
    // The stopped gradings took their program and their build down with them.
    let needle = dir.display().to_string();
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = leftovers(&needle);
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = leftovers(&needle);
    }
    assert!(left.is_empty(), "left running: {left:#?}");
    let kept: Vec<_> = std::fs::read_dir(&tmpdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(kept.is_empty(), "left in TMPDIR: {kept:#?}");
}

#[test]
fn bad_input_is_refused_with_a_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grades");
    let refused = |o: Output, what: &str, fix: &str| {
        let said = text(&o);
        assert_eq!(o.status.code(), Some(2), "{said}");
        assert!(said.contains(what) && said.contains(fix), "{said}");
    };
    // No such folder.
    let missing = tmp.path().join("nope");
    refused(
        grade_class(&["01"], &missing, &out, &[]),
        "cannot read the submissions folder",
        "fix: pass the folder that holds one folder per student",
    );
    // A folder with no student folders (a file and a hidden folder do not count).
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join(".git")).unwrap();
    std::fs::write(empty.join("list.txt"), "ada\n").unwrap();
    refused(
        grade_class(&["01"], &empty, &out, &[]),
        "holds no student folders",
        "fix: pass the folder that holds one folder per student",
    );
    // Zero jobs.
    init(&empty.join("ada"));
    refused(
        grade_class(&["01"], &empty, &out, &["--jobs", "0"]),
        "0 jobs would grade no one",
        "give 1 or more",
    );
    // Class options without a class.
    refused(
        lab().args(["grade", "01", "--force"]).output().unwrap(),
        "--submissions",
        "required",
    );
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

#[test]
fn ctrl_c_keeps_finished_students_and_the_next_run_resumes() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("submissions");
    init(&dir.join("a-solved"));
    solve(&dir.join("a-solved"));
    // Hangs until stopped (ten-minute ready timeout, default student timeout).
    init(&dir.join("b-hangs"));
    std::fs::copy(
        repo().join("tests/programs/never_listens.py"),
        dir.join("b-hangs/python/02-udp-echo.py"),
    )
    .unwrap();
    let out = tmp.path().join("grades");
    let mut child = lab()
        .args(["grade", "02", "--submissions"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "1"])
        .env("LAB_READY_TIMEOUT_MS", "600000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Once the first student is done (the second is then hanging), Ctrl-C.
    let first = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("no line about the first student within 120 s");
    assert!(
        first.contains("a-solved") && first.contains("8/8 pass"),
        "{first}"
    );
    lab::sys::send_signal(child.id(), libc::SIGINT).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("lab did not stop within 30 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("run the same command again"), "{said}");
    assert_eq!(
        gradebook(&out),
        "student,lab,score,max_score,status\r\n\
         a-solved,02-udp-echo,8,8,pass\r\n\
         b-hangs,02-udp-echo,0,8,not graded\r\n"
    );
    assert!(!out.join("students/b-hangs/result.json").exists());
    let needle = dir.display().to_string();
    let until = Instant::now() + Duration::from_secs(5);
    let mut left = leftovers(&needle);
    while !left.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        left = leftovers(&needle);
    }
    assert!(left.is_empty(), "left running after Ctrl-C: {left:#?}");

    // The same command again (with a cap, so the hang ends): only b-hangs is graded.
    let o = lab()
        .args(["grade", "02", "--submissions"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "1", "--student-timeout", "5"])
        .env("LAB_READY_TIMEOUT_MS", "600000")
        .output()
        .unwrap();
    let said = text(&o);
    assert!(o.status.success(), "{said}");
    assert!(said.contains("1 graded now, 1 kept"), "{said}");
    assert!(
        gradebook(&out).contains("b-hangs,02-udp-echo,0,8,timeout"),
        "{said}"
    );
}

/// A target folder shared by every build (`CARGO_TARGET_DIR` set for the grader, as
/// many Rust users have it): cargo judges freshness by file times, and two students'
/// workspaces are the same package, so a student whose Rust does not compile (written
/// before the other student's build) was graded with the other student's binary.
#[test]
fn a_shared_target_folder_never_hands_one_student_another_students_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let (bob, gina) = (tmp.path().join("bob"), tmp.path().join("gina"));
    init(&bob);
    init(&gina);
    std::fs::write(
        gina.join("rust/01-tcp-echo.rs"),
        "fn main() { this is not rust }\n",
    )
    .unwrap();
    let shared = tmp.path().join("shared-target");
    let grade = |ws: &Path| {
        let o = lab()
            .args(["grade", "01", "--format", "json", "--seed", "4242", "--dir"])
            .arg(ws)
            .env("CARGO_TARGET_DIR", &shared)
            .output()
            .unwrap();
        let r: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", text(&o)));
        r
    };
    let b = grade(&bob);
    assert!(
        !b["tests"].as_array().unwrap().is_empty(),
        "bob's starter builds and runs: {b:#}"
    );
    let g = grade(&gina);
    assert!(
        g["tests"].as_array().unwrap().is_empty()
            && g["message"].as_str().unwrap().contains("cargo build"),
        "gina's Rust does not compile, so nothing of hers runs: {g:#}"
    );
}
