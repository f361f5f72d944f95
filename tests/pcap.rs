//! Packet captures (`--pcap`): the files we write are read by tshark without a warning,
//! and what tshark decodes from them is what the labs sent.
//!
//! tshark is the judge: it is strict about block lengths, padding and options, and it
//! is what a student opens the file with. Missing tshark skips loudly (fails in CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{have, skip};
use lab::wire::checksum::checksum;
use lab::wire::pcapng::{Interface, Section, Writer, LINKTYPE_ETHERNET};

/// Runs `tshark -r FILE ARGS` and returns (exit ok, stdout, stderr without the notice
/// tshark prints when it runs as root, which says nothing about the file).
pub fn tshark(file: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    let err = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user \"root\""))
        .collect::<Vec<_>>()
        .join("\n");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        err,
    )
}

/// An Ethernet + IPv4 + UDP frame from 127.0.0.1:src to 127.0.0.1:dst, as `lo` shows it
/// (zero MAC addresses), with a correct IPv4 checksum and UDP checksum 0 (none).
fn udp_frame(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]); // EtherType IPv4
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.to_be_bytes());
    f.extend_from_slice(&dst.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn tshark_reads_a_written_file_without_warnings() {
    if !have("tshark") {
        return skip("tshark is not installed (apt-get install tshark)");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcapng");
    let section = Section {
        comment: "lab run 03-udp-loss --seed 42".into(),
        os: "Linux".into(),
        application: "lab test".into(),
    };
    let iface = Interface {
        name: "lo".into(),
        linktype: LINKTYPE_ETHERNET,
        snaplen: 64,
    };
    let file = std::fs::File::create(&path).unwrap();
    let mut w = Writer::new(file, &section, &iface, 1 << 20).unwrap();
    // Odd payload sizes exercise the padding; the last one is cut by the snap length.
    let stamp = 1_700_000_000_123_456_789u64;
    for (i, len) in [1usize, 2, 3, 4, 5, 200].into_iter().enumerate() {
        let f = udp_frame(40000, 7003, &vec![b'x'; len]);
        assert!(w.packet(stamp + i as u64, &f, f.len() as u32).unwrap());
    }
    w.finish().unwrap();

    let (ok, out, err) = tshark(&path, &[]);
    assert!(ok, "tshark failed: {err}");
    assert!(err.is_empty(), "tshark warned: {err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(
        out.contains("40000 → 7003") || out.contains("40000 -> 7003"),
        "{out}"
    );

    // Nanosecond timestamps survive (if_tsresol), and the cut packet keeps its length.
    let (_, fields, _) = tshark(
        &path,
        &[
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ],
    );
    let first = fields.lines().next().unwrap();
    assert!(first.starts_with("1700000000.123456789\t"), "{fields}");
    assert_eq!(
        fields
            .lines()
            .last()
            .unwrap()
            .split('\t')
            .collect::<Vec<_>>()[1..],
        ["242", "64"]
    );

    // The section comment names the run (capinfos shows it, as does Wireshark).
    if have("capinfos") {
        let o = Command::new("capinfos").arg(&path).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("lab run 03-udp-loss --seed 42"), "{text}");
    }
}

/// True when `unshare -Urn` works here: a user + network namespace of our own, where
/// `lab` holds CAP_NET_RAW over a private `lo`. The demos run there in these tests, so
/// other programs' traffic on the machine's `lo` cannot mix in.
fn own_namespace() -> bool {
    Command::new("unshare")
        .args(["-Urn", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// `lab ARGS` inside `unshare -Urn` (isolated as every test's `lab`).
fn lab_in_namespace(args: &[&str]) -> std::process::Output {
    let mut c = Command::new("unshare");
    c.args(["-Urn", "--", env!("CARGO_BIN_EXE_lab")]).args(args);
    common::isolate(&mut c);
    c.stdin(Stdio::null()).output().expect("run unshare")
}

/// The two directions of a TCP stream as tshark follows it (`follow,tcp,raw,N`): the
/// first node's bytes are printed flush left, the second node's indented by a tab.
fn follow_raw(file: &Path, stream: u32) -> (Vec<u8>, Vec<u8>) {
    let (ok, out, err) = tshark(file, &["-q", "-z", &format!("follow,tcp,raw,{stream}")]);
    assert!(ok && err.is_empty(), "tshark: {err}");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let body = out.split("Node 1:").nth(1).expect("a followed stream");
    for line in body.lines().skip(1) {
        if line.starts_with("====") {
            break;
        }
        let (to, hex) = match line.strip_prefix('\t') {
            Some(h) => (&mut b, h),
            None => (&mut a, line),
        };
        for i in (0..hex.len()).step_by(2) {
            to.push(u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"));
        }
    }
    (a, b)
}

#[test]
fn lab_01s_capture_holds_the_stream_the_client_sent_and_got() {
    if !have("tshark") || !own_namespace() {
        return skip("needs tshark and `unshare -Urn` (user namespaces)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("01.pcapng");
    let o = lab_in_namespace(&["run", "01", "--pcap", file.to_str().unwrap()]);
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("frames"), "the run says what it wrote: {err}");
    let (ok, _, warn) = tshark(&file, &[]);
    assert!(ok && warn.is_empty(), "tshark: {warn}");
    // Stream 0 is the demo's first client (steps 2-6): what it sent, and what came back,
    // byte for byte as the demo narrates them.
    let (sent, got) = follow_raw(&file, 0);
    assert_eq!(
        String::from_utf8_lossy(&sent),
        "hello\none\ntwo\nthree\nslowly\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        "Received: hello\nReceived: one\nReceived: two\nReceived: three\nReceived: slowly\n"
    );
    // The handshake and the closing are there too: SYN, SYN-ACK, two FINs.
    let (_, flags, _) = tshark(
        &file,
        &["-Y", "tcp.stream==0", "-T", "fields", "-e", "tcp.flags.str"],
    );
    let syns = flags.lines().filter(|f| f.contains('S')).count();
    let fins = flags.lines().filter(|f| f.contains('F')).count();
    assert_eq!((syns, fins), (2, 2), "{flags}");
}

#[test]
fn lab_03s_capture_counts_what_the_sender_sent() {
    if !have("tshark") || !own_namespace() {
        return skip("needs tshark and `unshare -Urn` (user namespaces)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("03.pcapng");
    let o = lab_in_namespace(&[
        "run",
        "03",
        "--count",
        "700",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    let out = common::stdout(&o);
    assert!(o.status.success(), "{out}{}", common::stderr(&o));
    // "  sender   -> 127.0.0.1:PORT: 700 datagrams of 64 bytes at ..."
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("sender"))
        .expect(&out);
    let to = line
        .split("-> ")
        .nth(1)
        .unwrap()
        .split(": ")
        .next()
        .unwrap();
    let port = to.rsplit(':').next().unwrap();
    let sent: u64 = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (ok, data, warn) = tshark(
        &file,
        // Kind 0 (data) at payload byte 5 of the probe header; kind 1 are end markers.
        &["-Y", &format!("udp.dstport=={port} && udp.payload[5]==00")],
    );
    assert!(ok && warn.is_empty(), "tshark: {warn}");
    assert_eq!(data.lines().count() as u64, sent, "datagrams toward {to}");
}

#[test]
fn without_cap_net_raw_lab_run_says_why_and_completes() {
    if !have("setpriv") {
        return skip("needs setpriv (util-linux)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("none.pcapng");
    let mut c = Command::new("setpriv");
    c.args(["--inh-caps=-net_raw", "--bounding-set=-net_raw", "--"])
        .arg(env!("CARGO_BIN_EXE_lab"))
        .args(["run", "02", "--pcap", file.to_str().unwrap()]);
    common::isolate(&mut c);
    let o = c.stdin(Stdio::null()).output().unwrap();
    let err = common::stderr(&o);
    assert!(o.status.success(), "the run completes: {err}");
    assert!(
        common::stdout(&o).contains("What you saw"),
        "the whole demo ran"
    );
    assert!(err.contains("needs CAP_NET_RAW"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw+ep") && err.contains("unshare -Urn"),
        "{err}"
    );
    assert!(!file.exists(), "no empty capture left behind");
}

/// `lab check 01 --pcap` with the reference solution, as we are or (`as_nobody`) as
/// nobody, in a mount namespace where nobody reaches the lab binary and the solution
/// even in a private folder (CI's 0700 /root); the capture is taken inside the
/// grader's namespace.
fn check_01_captures(dir: &Path, as_nobody: bool) {
    let file = dir.join("check.pcapng");
    let solution = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python/01-tcp-echo.py");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_lab"));
    let mut _stage = None;
    let mut c = if as_nobody {
        let (mut c, stage) = common::as_nobody_reaching(&[bin.clone(), solution.clone()])
            .unwrap_or_else(|why| panic!("cannot run lab as nobody here: {why}"));
        _stage = Some(stage);
        c.arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    c.args([
        "check",
        "01",
        "--seed",
        "17",
        "--pcap",
        file.to_str().unwrap(),
        "--cmd",
    ])
    .arg(format!("python3 {}", solution.display()))
    .current_dir(dir);
    common::isolate(&mut c);
    if as_nobody {
        // Progress and HOME where `nobody` may write.
        c.env("LAB_PROGRESS", dir.join("progress.txt"))
            .env("HOME", dir);
    }
    let o = c.stdin(Stdio::null()).output().unwrap();
    let err = common::stderr(&o);
    assert!(o.status.success(), "{}{err}", common::stdout(&o));
    assert!(
        err.contains("frames") && err.contains("check.pcapng"),
        "{err}"
    );
    let (ok, _, warn) = tshark(&file, &[]);
    assert!(ok && warn.is_empty(), "tshark: {warn}");
    // The grader's lines and the program's replies are in it.
    let (_, payloads, _) = tshark(
        &file,
        &["-Y", "tcp.len>0", "-T", "fields", "-e", "tcp.payload"],
    );
    let text: Vec<u8> = payloads
        .lines()
        .flat_map(|h| {
            (0..h.len() / 2).map(move |i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        })
        .collect();
    assert!(
        String::from_utf8_lossy(&text).contains("Received: "),
        "no replies captured"
    );
}

#[test]
fn lab_check_captures_inside_the_namespace_as_root_and_as_nobody() {
    if !have("tshark") || !have("python3") || !own_namespace() {
        return skip("needs tshark, python3 and user namespaces");
    }
    let dir = tempfile::tempdir().unwrap();
    check_01_captures(dir.path(), false);
    // As an unprivileged user: only possible when we are root to switch to one.
    if let Err(why) = common::as_nobody_reaching(&[]) {
        return skip(&format!("the unprivileged half: {why}"));
    }
    let nobody = tempfile::tempdir().unwrap();
    // `nobody` must be able to write the capture and the progress file here.
    Command::new("chmod")
        .arg("777")
        .arg(nobody.path())
        .status()
        .unwrap();
    check_01_captures(nobody.path(), true);
}

#[test]
fn lab_04s_capture_decodes_as_echo_requests_and_replies() {
    if !have("tshark") || !own_namespace() {
        return skip("needs tshark and `unshare -Urn` (user namespaces)");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("04.pcapng");
    let o = lab_in_namespace(&["run", "04", "--pcap", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let (ok, fields, warn) = tshark(
        &file,
        &[
            "-Y",
            "icmp",
            "-T",
            "fields",
            "-e",
            "icmp.type",
            "-e",
            "icmp.checksum.status",
        ],
    );
    assert!(ok && warn.is_empty(), "tshark: {warn}");
    let requests = fields.lines().filter(|l| l.starts_with("8\t")).count();
    let replies = fields.lines().filter(|l| l.starts_with("0\t")).count();
    assert!(requests >= 1 && requests == replies, "{fields}");
    assert!(
        fields.lines().all(|l| l.ends_with("\t1")),
        "checksums good: {fields}"
    );
}

#[test]
fn lab_grade_writes_one_capture_per_lab() {
    if !have("tshark") || !have("python3") || !own_namespace() {
        return skip("needs tshark, python3 and user namespaces");
    }
    let dir = tempfile::tempdir().unwrap();
    let solutions = Path::new(env!("CARGO_MANIFEST_DIR")).join("solutions/python");
    let o = common::lab()
        .args(["grade", "02", "03", "--seed", "3", "--pcap"])
        .arg(dir.path().join("g.pcapng"))
        .arg("--cmd")
        .arg(format!("python3 {}/{{lab}}.py", solutions.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        common::stdout(&o),
        common::stderr(&o)
    );
    for (lab, filter) in [
        ("02-udp-echo", "udp"),
        ("03-udp-loss", "udp.payload[5]==00"),
    ] {
        let file = dir.path().join(format!("g-{lab}.pcapng"));
        let (ok, out, warn) = tshark(&file, &["-Y", filter]);
        assert!(ok && warn.is_empty(), "{lab}: {warn}");
        assert!(out.lines().count() > 10, "{lab}: {out}");
        let o = Command::new("capinfos").arg(&file).output().unwrap();
        let info = String::from_utf8_lossy(&o.stdout);
        assert!(
            info.contains(&format!("lab {lab}")) && info.contains("seed 3"),
            "{info}"
        );
    }
}
