//! The README's tour, walked as a new student would: every command of "A tour" and of
//! "Exercises and grading", in the README's order, in a temporary HOME and folder, each
//! checked to end as documented. The commands are read from README.md, so the README
//! cannot drift from what works. Durations are bounded by flags added to some commands
//! (listed in `PLAN`, never changing what the command means); commands that serve
//! until Ctrl-C are started, seen running, and stopped.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, skip, Reaper};

/// How a command ends when it works.
#[derive(Debug, Clone, Copy)]
enum Ends {
    /// Exits with this status.
    Exit(i32),
    /// Runs until stopped (a server, a relay, a live plot).
    Serves,
    /// Starts a background program (`... &`) the next commands use.
    Background,
}

/// Every tour command as the README writes it, the flags added to bound it, and how it
/// ends. `lab grade --all` is left out: it builds and grades every lab (tests/grade.rs
/// does that); everything else runs.
const PLAN: &[(&str, &[&str], Ends)] = &[
    ("lab", &[], Ends::Exit(0)),
    ("lab list", &[], Ends::Exit(0)),
    ("lab show 01", &[], Ends::Exit(0)),
    ("lab run 01", &[], Ends::Exit(0)),
    // Port 0: another test may hold 7001; the command is the same server.
    (
        "lab run 01 --role server",
        &["--bind", "127.0.0.1:0"],
        Ends::Serves,
    ),
    ("lab run 01 --help", &[], Ends::Exit(0)),
    ("lab hint 01", &[], Ends::Exit(0)),
    ("lab doctor", &[], Ends::Exit(0)),
    ("lab run 03", &[], Ends::Exit(0)),
    (
        "lab impair --listen 127.0.0.1:7004 --forward 127.0.0.1:7003 --loss 5% --seed 1",
        &[],
        Ends::Serves,
    ),
    ("lab run 07", &[], Ends::Serves),
    ("lab serial list", &[], Ends::Exit(0)),
    (
        "lab latency --sizes 1,16,64,256,1024 --out report/",
        &["--count", "300", "--warmup", "20"],
        Ends::Exit(0),
    ),
    (
        "lab latency --sizes 1,16,64,256,1024 --busy-poll --out other/",
        &["--count", "300", "--warmup", "20"],
        Ends::Exit(0),
    ),
    ("lab latency compare report/ other/", &[], Ends::Exit(0)),
    (
        "lab latency --mode stream --buffer-sizes 1,4,16,64,256 --out stream/",
        &["--duration", "0.7", "--warmup", "1"],
        Ends::Exit(0),
    ),
    (
        "sockperf server -i 127.0.0.1 -p 11111 &",
        &[],
        Ends::Background,
    ),
    (
        "lab latency --connect 127.0.0.1:11111 --mode udp --peer sockperf",
        &["--count", "200", "--warmup", "10"],
        Ends::Exit(0),
    ),
    ("lab completions bash", &[], Ends::Exit(0)),
    ("lab init ~/sockets", &[], Ends::Exit(0)),
    // The Rust starter builds and fails its checks: a failed grade is exit 1.
    ("cd ~/sockets && lab check 01", &[], Ends::Exit(1)),
    (
        "lab check 01 --cmd \"python3 python/01-tcp-echo.py\"",
        &[],
        Ends::Exit(1),
    ),
    ("lab watch 01", &["--max-runs", "1"], Ends::Exit(0)),
    // "the reference, after a pass": before one, `lab solution` refuses (exit 1); it
    // is run again once the exercise passes (at the end).
    ("lab reset 01 / lab solution 01", &[], Ends::Exit(0)),
    (
        "lab classroom init --git https://github.com/YOU/lab",
        &[],
        Ends::Exit(0),
    ),
];

/// The README's command lines: indented lines of the tour and exercises blocks that
/// start a command (not the `# comment` continuation lines).
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme.find("## A tour").expect("README has \"## A tour\"");
    let end = readme[start..]
        .find("The grader is black box")
        .map_or(readme.len(), |e| start + e);
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with('#'))
        .map(|l| {
            // The command ends where its comment starts (two spaces and a #).
            let l = l.trim();
            l.split("  #").next().unwrap().trim().to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Splits a command line into words, honouring double quotes, with `~` as `home`.
fn words(line: &str, home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
        .map(|w| match w.strip_prefix("~/") {
            Some(rest) => home.join(rest).to_string_lossy().into_owned(),
            None => w,
        })
        .collect()
}

#[test]
fn the_readme_tour_works_as_written() {
    let readme = readme_commands();
    let written: Vec<&str> = PLAN.iter().map(|(c, _, _)| *c).collect();
    let readme_without_grade: Vec<&str> = readme
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("lab grade --all"))
        .collect();
    assert_eq!(
        readme_without_grade, written,
        "the README's tour and this test's plan differ: update both together"
    );
    if !have("python3") || !have("sockperf") || !have("cargo") {
        skip("the tour needs python3, cargo and sockperf (apt-get install sockperf)");
        return;
    }
    // The README's ports are the machine's: a second copy of the suite waits its turn.
    let _turn = common::machine_turn("readme-tour");

    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let here = tmp.path().join("here");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&here).unwrap();
    let mut background: Vec<Reaper> = Vec::new();
    let mut cwd = here.clone();

    for &(line, extra, ends) in PLAN {
        // `lab reset 01 / lab solution 01`: two commands on one line.
        for part in line.split(" / ") {
            let mut argv = words(part, &home);
            if argv[0] == "cd" {
                // `cd DIR && lab ...`
                cwd = argv[1].clone().into();
                argv.drain(..3);
            }
            let background_cmd = argv.last().is_some_and(|w| w == "&");
            if background_cmd {
                argv.pop();
            }
            let mut cmd = if argv[0] == "lab" {
                let mut c = common::lab();
                c.args(&argv[1..]);
                c
            } else {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            };
            cmd.args(extra)
                .current_dir(&cwd)
                .env("HOME", &home)
                .env("LAB_PROGRESS", home.join("progress.txt"))
                .env("XDG_STATE_HOME", home.join(".local/state"))
                .stdin(Stdio::null())
                // Files, not pipes: a chatty command cannot block on a full pipe.
                .stdout(std::fs::File::create(tmp.path().join("stdout")).unwrap())
                .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap());
            let shown = format!("{part} {}", extra.join(" "));
            let ends = match ends {
                Ends::Exit(_) if part.starts_with("lab solution") => Ends::Exit(1),
                e => e,
            };
            match ends {
                Ends::Background => {
                    assert!(background_cmd, "{line}");
                    background.push(Reaper(cmd.spawn().unwrap()));
                    // Give it a moment to bind before the next command uses it.
                    std::thread::sleep(Duration::from_millis(500));
                }
                Ends::Serves => {
                    let mut child = Reaper(cmd.spawn().unwrap());
                    std::thread::sleep(Duration::from_millis(1500));
                    let status = child.0.try_wait().unwrap();
                    assert!(
                        status.is_none(),
                        "`{shown}` should keep serving, but ended with {status:?}"
                    );
                }
                Ends::Exit(code) => {
                    let mut child = Reaper(cmd.spawn().unwrap());
                    let until = Instant::now() + Duration::from_secs(300);
                    while child.0.try_wait().unwrap().is_none() {
                        assert!(
                            Instant::now() < until,
                            "`{shown}` still running after 300 s"
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
                    let out = (
                        child.0.wait().unwrap().code(),
                        read("stdout"),
                        read("stderr"),
                    );
                    assert_eq!(
                        out.0,
                        Some(code),
                        "`{shown}` in {}:\nstdout:\n{}\nstderr:\n{}",
                        cwd.display(),
                        out.1,
                        out.2
                    );
                }
            }
        }
    }

    // The student's next step: a passing program, then `lab` points onwards.
    let ws = home.join("sockets");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python/01-tcp-echo.py"),
        ws.join("python/01-tcp-echo.py"),
    )
    .unwrap();
    let o = common::lab()
        .args(["check", "01", "--cmd", "python3 python/01-tcp-echo.py"])
        .current_dir(&ws)
        .env("HOME", &home)
        .env("LAB_PROGRESS", home.join("progress.txt"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = common::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}\n{}", common::stderr(&o));
    assert!(text.contains("Passed."), "{text}");
    let o = common::lab()
        .args(["solution", "01"])
        .current_dir(&ws)
        .env("HOME", &home)
        .env("LAB_PROGRESS", home.join("progress.txt"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let o = common::lab()
        .current_dir(&ws)
        .env("HOME", &home)
        .env("LAB_PROGRESS", home.join("progress.txt"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        common::stdout(&o).contains("Next:"),
        "{}",
        common::stdout(&o)
    );
    drop(background);
}
