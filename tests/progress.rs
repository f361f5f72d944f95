//! The progress file is the student's: a byte the parser does not understand must
//! never cost them their progress.

mod common;

use common::{lab, stderr};

#[test]
fn a_non_utf8_line_keeps_the_progress_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.txt");
    let mut file = b"01-tcp-echo ran hints=1 passed\n".to_vec();
    file.extend_from_slice(b"02-udp-echo ran caf\xe9\n");
    std::fs::write(&path, &file).unwrap();

    let o = lab()
        .env("LAB_PROGRESS", &path)
        .args(["hint", "03"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("line 2 of"),
        "the odd line is named: {}",
        stderr(&o)
    );

    let after = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&after);
    assert!(text.contains("01-tcp-echo ran hints=1 passed"), "{text}");
    assert!(text.contains("03-udp-loss hints=1"), "{text}");
    let kept: &[u8] = b"02-udp-echo ran caf\xe9";
    assert!(
        after.windows(kept.len()).any(|w| w == kept),
        "the odd line is kept byte for byte: {text}"
    );
}
