//! Packet captures (`--pcap`): the files we write are read by tshark without a warning,
//! and what tshark decodes from them is what the labs sent.
//!
//! tshark is the judge: it is strict about block lengths, padding and options, and it
//! is what a student opens the file with. Missing tshark skips loudly (fails in CI).

mod common;

use std::path::Path;
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
