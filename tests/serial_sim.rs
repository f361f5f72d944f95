//! The Arduino sketch itself, end to end without an Arduino: build
//! arduino/analog_stream for an Uno with avr-gcc and Debian's Arduino core, run it in
//! simavr (arduino/sim/uno_sim.c) with its UART on a pseudo-terminal and a ramp (then a
//! sine) on A0, have `lab` read that pty through `serialport` and forward it over TCP,
//! and check that a TCP client receives exactly the waveform the ADC was fed.
//!
//! Needs gcc-avr, avr-libc, arduino-core-avr, simavr, libsimavr-dev and make (all in
//! .ci/apt-packages). Without them the test says so and skips; CI installs them.

mod common;
mod serial_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serial_support::*;

/// What the harness needs, and the package that provides it.
const NEEDS: &[(&str, &str)] = &[
    ("/usr/bin/avr-gcc", "gcc-avr"),
    ("/usr/lib/avr/include/avr/io.h", "avr-libc"),
    (
        "/usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h",
        "arduino-core-avr",
    ),
    ("/usr/include/simavr/sim_avr.h", "libsimavr-dev"),
];

/// The simulator process; stopped (SIGTERM, then killed) when dropped.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = lab::sys::send_signal(self.0.id(), libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_sketch_in_simavr_streams_the_adc_ramp_over_tcp() {
    let missing: Vec<&str> = NEEDS
        .iter()
        .filter(|(p, _)| !Path::new(p).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    let have_make = Command::new("make")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !missing.is_empty() || !have_make {
        common::skip(&format!(
            "the simulated-firmware test needs {} (apt-get install -y gcc-avr avr-libc arduino-core-avr simavr libsimavr-dev make)",
            if have_make { missing.join(", ") } else { "make".into() }
        ));
        return;
    }

    // Build the sketch and the harness out of tree.
    let build = tempfile::tempdir().unwrap();
    let sim_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("arduino/sim");
    let out = Command::new("make")
        .arg("-C")
        .arg(&sim_dir)
        .arg(format!("BUILD={}", build.path().display()))
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "building the sketch failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The ramp: sample n reads back n mod 256.
    let got = run_sketch(build.path(), "ramp", 3200);
    assert_ramp(&got, "ramp from the simulated Uno");

    // The sine: sample n is round(127.5 + 127.5 sin(2 pi n / 128)); the stream starts at
    // an unknown n (samples from before lab opened the port are discarded), so find the
    // phase from the first bytes and then require every byte to follow it.
    let sine = |n: usize| {
        (127.5 + 127.5 * (std::f64::consts::TAU * (n % 128) as f64 / 128.0).sin()).round() as u8
    };
    let got = run_sketch(build.path(), "sine", 1600);
    let phase = (0..128)
        .find(|&k| (0..8).all(|i| got[i] == sine(k + i)))
        .unwrap_or_else(|| panic!("the first bytes are no sine: {:?}", &got[..8]));
    for (i, &v) in got.iter().enumerate() {
        assert_eq!(v, sine(phase + i), "sine byte {i} (phase {phase})");
    }
}

/// Runs the built sketch in uno_sim with `waveform` on A0, has `lab` forward its pty,
/// and returns the first `n` bytes a TCP client receives.
fn run_sketch(build: &Path, waveform: &str, n: usize) -> Vec<u8> {
    // 60 simulated seconds at most, at twice a real board's speed (about 1800 samples a
    // wall-clock second).
    let pty_file = build.join(format!("uart0-pty-{waveform}"));
    let _sim = Sim(Command::new(build.join("uno_sim"))
        .arg(build.join("analog_stream.elf"))
        .arg(&pty_file)
        .args(["60", waveform, "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start uno_sim"));
    let end = Instant::now() + Duration::from_secs(10);
    let pty = loop {
        if let Ok(p) = std::fs::read_to_string(&pty_file) {
            if p.ends_with('\n') {
                break p.trim().to_string();
            }
        }
        assert!(Instant::now() < end, "uno_sim did not write its pty path");
        thread::sleep(Duration::from_millis(10));
    };

    // lab reads the pty as it would /dev/ttyACM0 and forwards over TCP.
    let server = Server::start(&["--serial", &pty, "--baud", "115200", "--buffer", "16"]);
    let mut c = connect(server.addr);
    let got = read_n(&mut c, n, Duration::from_secs(30));
    drop(c);
    let (status, summary) = server.stop();
    assert!(status.success());
    assert_eq!(
        number_before(&summary, "times"),
        0,
        "the device was never lost: {summary}"
    );
    got
}
