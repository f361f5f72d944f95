//! 07-serial-stream with `--framing stamped`: the server speaks the latency harness's
//! stream protocol, so `lab latency --mode stream --connect` measures the age of the
//! samples it forwards. Real `lab` processes, real TCP on 127.0.0.1, the simulated
//! Arduino as the source.

mod common;
mod serial_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab::labs::serial_stream::source::Waveform;
use lab::wire::stamped::{self, Decoded, Frame, Kind, Repr};
use serial_support::*;

/// The simulated Arduino's default rate, and the period the frames must carry.
const RATE: f64 = 896.0;

fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn frame(kind: Kind, seq: u32, t0_ns: u64, period_ns: u32) -> Vec<u8> {
    Repr {
        kind,
        seq,
        t0_ns,
        period_ns,
        samples: Vec::new(),
    }
    .to_bytes()
}

/// Reads the next whole frame (at most `limit`), with the wall clock when it completed.
fn next_frame(s: &mut TcpStream, inbound: &mut Vec<u8>, limit: Duration) -> (Vec<u8>, u64) {
    let end = Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    loop {
        match stamped::decode(inbound) {
            Decoded::Frame(len) => return (inbound.drain(..len).collect(), epoch_ns()),
            Decoded::Invalid(e) => panic!("not a stamped frame: {e} in {inbound:?}"),
            Decoded::Incomplete => {}
        }
        assert!(Instant::now() < end, "no whole frame within {limit:?}");
        match s.read(&mut chunk) {
            Ok(0) => panic!("server closed the stream"),
            Ok(n) => inbound.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// The phase p (0..128) such that `v[j]` is sine sample p + j for every j, if any.
fn sine_phase(v: &[u8]) -> Option<u64> {
    let mut st = 1;
    (0..128).find(|&p| {
        v.iter()
            .enumerate()
            .all(|(j, &x)| Waveform::Sine.sample(p + j as u64, &mut st) == x)
    })
}

#[test]
fn a_subscriber_gets_stamped_buffers_of_its_size_with_the_waveform() {
    let mut server = Server::start(&["--framing", "stamped", "--waveform", "ramp"]);
    let mut s = connect(server.addr);
    let period_ns = (1e9 / RATE).round() as u32;
    // Asks for 8 per buffer although the server's --buffer is 16: the client's choice.
    s.write_all(&frame(Kind::Subscribe, 8, 0, period_ns))
        .unwrap();
    let mut inbound = Vec::new();
    let mut values = Vec::new();
    for k in 0..12u32 {
        let (bytes, arrived_ns) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.kind(), Some(Kind::Samples));
        assert_eq!(f.samples().len(), 8, "frame {k}");
        assert_eq!(
            f.seq(),
            8 * k,
            "frame {k}: seq counts samples since subscribing"
        );
        assert_eq!(f.period_ns(), period_ns);
        // Causality, not timing: the buffer's last sample was born before it could be
        // sent, so before it arrived (same machine, same clock).
        assert!(
            f.produced_ns(7) <= arrived_ns,
            "frame {k}: last sample born {} ns after its arrival",
            f.produced_ns(7) - arrived_ns
        );
        values.extend_from_slice(f.samples());
    }
    // The ramp, with no gap or repeat across 12 frames.
    assert_ramp(&values, "stamped samples");
    server.wait_for(
        "subscribed: stamped buffers of 8 samples",
        Duration::from_secs(5),
    );
    drop(s);
    let (status, _) = server.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn clock_probes_are_answered_before_any_sample() {
    let server = Server::start(&["--framing", "stamped"]);
    let mut s = connect(server.addr);
    let mut inbound = Vec::new();
    for i in 0..3u32 {
        let sent = epoch_ns();
        s.write_all(&frame(Kind::ClockRequest, i, sent, 0)).unwrap();
        let (bytes, got) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        // Not subscribed yet: the only thing it may send is the answer.
        assert_eq!(f.kind(), Some(Kind::ClockReply), "probe {i}");
        assert_eq!(f.seq(), i);
        // Same machine, same clock: the server read it between our send and receive.
        assert!(
            sent <= f.t0_ns() && f.t0_ns() <= got,
            "probe {i}: {sent} <= {} <= {got}",
            f.t0_ns()
        );
    }
    // Then a subscription with 0 per buffer gets the server's --buffer (16).
    s.write_all(&frame(Kind::Subscribe, 0, 0, 0)).unwrap();
    let (bytes, _) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
    let f = Frame::new_checked(&bytes[..]).unwrap();
    assert_eq!((f.kind(), f.samples().len()), (Some(Kind::Samples), 16));
    // The default waveform is the sine: the values are its, at some phase.
    let (more, _) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
    let mut v = f.samples().to_vec();
    v.extend_from_slice(Frame::new_checked(&more[..]).unwrap().samples());
    assert!(sine_phase(&v).is_some(), "not a stretch of the sine: {v:?}");
}

#[test]
fn a_peer_speaking_another_protocol_is_closed_and_others_carry_on() {
    let mut server = Server::start(&["--framing", "stamped", "--waveform", "ramp"]);
    let mut good = connect(server.addr);
    good.write_all(&frame(Kind::Subscribe, 4, 0, 0)).unwrap();
    let mut bad = connect(server.addr);
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    server.wait_for("does not speak the stamped framing", Duration::from_secs(5));
    // The bad peer reads EOF (or a reset), never samples.
    assert_closed(&mut bad, "a peer speaking HTTP");
    let mut inbound = Vec::new();
    let mut values = Vec::new();
    for _ in 0..8 {
        let (bytes, _) = next_frame(&mut good, &mut inbound, Duration::from_secs(5));
        values.extend_from_slice(Frame::new_checked(&bytes[..]).unwrap().samples());
    }
    assert_eq!(values.len(), 32);
    assert_ramp(&values, "the good client's samples");
}

/// Waits (at most 5 s) for the server to close `s`, failing if any byte arrives first.
fn assert_closed(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < end, "{what}: still open after 5 s");
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("{what}: got {n} bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(_) => {} // the 200 ms read timeout: look again
        }
    }
}

fn lab_run(args: &[&str]) -> Output {
    lab().args(args).output().expect("run lab")
}

/// The numbers of a row of `lab latency`'s table.
fn row(stdout: &str, label: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{stdout}"));
    // Skip the label ("stream 16 samples").
    figures(
        &line
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A table row's figures, in microseconds where a unit follows (`118.3 us`, `1.1 ms`:
/// the table prints durations with their unit).
fn figures(cells: &str) -> Vec<f64> {
    let words: Vec<&str> = cells.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if let Ok(v) = words[i].parse::<f64>() {
            match words.get(i + 1) {
                Some(&"us") => i += 1,
                Some(&"ms") => {
                    out.push(v * 1000.0);
                    i += 2;
                    continue;
                }
                _ => {}
            }
            out.push(v);
        }
        i += 1;
    }
    out
}

#[test]
fn lab_latency_stream_mode_measures_a_stamped_server() {
    let mut server = Server::start(&["--framing", "stamped"]);
    let addr = server.addr.to_string();
    let o = lab_run(&[
        "latency",
        "--mode",
        "stream",
        "--connect",
        &addr,
        "--buffer-sizes",
        "1,16",
        "--duration",
        "1",
        "--warmup",
        "32",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // The harness's subscriptions reached the server with their own buffer sizes.
    server.wait_for("stamped buffers of 1 samples", Duration::from_secs(5));
    server.wait_for("stamped buffers of 16 samples", Duration::from_secs(5));
    // Columns: count, min, p50, p90, p99, p99.9, max, mean, stdev, floor avg, floor max,
    // lost. A sample cannot leave before its buffer is full: on average it waits
    // (N-1)/rate/2, and the first of each buffer (N-1)/rate. Physical bounds, not timings.
    for n in [1.0f64, 16.0] {
        let c = row(&stdout, &format!("stream {n} samples"));
        let (count, max, mean, floor_avg, floor_max, lost) = (c[0], c[6], c[7], c[9], c[10], c[11]);
        // In us, rounded as the table prints it: 1 decimal of us below 1 ms, of ms above.
        let exact = (n - 1.0) / RATE / 2.0 * 1e6;
        let want_avg = if exact < 999.95 {
            (exact * 10.0).round() / 10.0
        } else {
            (exact / 100.0).round() * 100.0
        };
        assert_eq!(floor_avg, want_avg, "N={n}");
        assert!(count >= n * 10.0, "N={n}: only {count} samples");
        assert!(mean >= floor_avg, "N={n}: mean {mean} us under the floor");
        assert!(max >= floor_max, "N={n}: max {max} us under {floor_max}");
        assert_eq!(lost, 0.0, "N={n}");
    }
}

#[test]
fn lab_latency_against_a_raw_server_names_the_framing_fix() {
    let server = Server::start(&[]);
    let addr = server.addr.to_string();
    let o = lab_run(&[
        "latency",
        "--mode",
        "stream",
        "--connect",
        &addr,
        "--buffer-sizes",
        "4",
        "--duration",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--framing stamped"), "{stderr}");
}

#[test]
fn stamped_framing_outside_the_server_or_too_big_names_the_fix() {
    for (args, what) in [
        (
            &["run", "07", "--role", "client", "--framing", "stamped"][..],
            "is for --role server",
        ),
        (
            &["run", "07", "--framing", "stamped"][..],
            "is for --role server",
        ),
        (
            &[
                "run",
                "07",
                "--role",
                "server",
                "--framing",
                "stamped",
                "--buffer",
                "65536",
            ][..],
            "does not fit a stamped frame",
        ),
    ] {
        let o = lab_run(args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(what), "{args:?}: {stderr}");
        assert!(stderr.contains("fix:"), "{args:?}: no fix named: {stderr}");
    }
}

#[test]
fn a_pseudo_terminal_source_arrives_exactly_in_stamped_frames() {
    let seed = seed("stamped pty");
    // Close-on-exec from the start, so no other test's `lab` inherits our master.
    let (mut master, path) = lab::sys::open_pty().expect("a pty");
    let mut server = Server::start(&["--serial", &path, "--framing", "stamped"]);
    let mut s = connect(server.addr);
    s.write_all(&frame(Kind::Subscribe, 8, 0, 0)).unwrap();
    // Only bytes written after the subscription are this client's.
    server.wait_for("subscribed", Duration::from_secs(10));
    // Binary data, every byte value possible: the frames must carry it unchanged.
    let data = Rng::new(seed).bytes(8 * 64);
    master.write_all(&data).expect("writing to the pty");
    let mut inbound = Vec::new();
    let mut got = Vec::new();
    while got.len() < data.len() {
        let (bytes, arrived_ns) = next_frame(&mut s, &mut inbound, Duration::from_secs(10));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.seq() as usize, got.len(), "seq counts samples");
        assert_eq!(f.samples().len(), 8);
        // Dated no later than the read that delivered them: never after arrival.
        assert!(f.produced_ns(7) <= arrived_ns);
        got.extend_from_slice(f.samples());
    }
    assert!(
        got == data,
        "samples differ from the bytes written (first difference at {:?})",
        got.iter().zip(&data).position(|(a, b)| a != b)
    );
    drop(s);
    let (status, _) = server.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_subscription_too_big_for_a_frame_is_refused() {
    let mut server = Server::start(&["--framing", "stamped"]);
    let mut s = connect(server.addr);
    // 70 000 samples cannot fit the 16-bit length of one frame.
    s.write_all(&frame(Kind::Subscribe, 70_000, 0, 0)).unwrap();
    server.wait_for("asked for 70000 samples per buffer", Duration::from_secs(5));
    assert_closed(&mut s, "a refused subscription");
}

#[test]
fn samples_that_come_faster_than_the_rate_are_never_dated_after_their_arrival() {
    // A device catching up after a stall: 8 bytes in about 2 ms, where 896/s would
    // take 8 ms. One stamp per frame (t0 + i periods) must still not date any of
    // them after it arrived.
    let (mut master, path) = lab::sys::open_pty().expect("a pty");
    let mut server = Server::start(&["--serial", &path, "--framing", "stamped"]);
    let mut s = connect(server.addr);
    s.write_all(&frame(Kind::Subscribe, 8, 0, 0)).unwrap();
    server.wait_for("subscribed", Duration::from_secs(10));
    let mut inbound = Vec::new();
    for round in 0..5u8 {
        for i in 0..8u8 {
            master
                .write_all(&[round * 8 + i])
                .expect("writing to the pty");
            // Separate writes, so the reader is likely to get separate chunks.
            std::thread::sleep(Duration::from_micros(250));
        }
        let (bytes, arrived_ns) = next_frame(&mut s, &mut inbound, Duration::from_secs(10));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        let want: Vec<u8> = (round * 8..round * 8 + 8).collect();
        assert_eq!(f.samples(), &want[..]);
        for i in 0..8 {
            assert!(
                f.produced_ns(i) <= arrived_ns,
                "round {round}: sample {i} dated {} us after its frame arrived",
                (f.produced_ns(i) - arrived_ns) / 1000
            );
        }
    }
}

#[test]
fn the_plotting_client_against_a_stamped_server_says_why_it_gets_nothing() {
    let server = Server::start(&["--framing", "stamped"]);
    let addr = server.addr.to_string();
    let o = lab_run(&[
        "run",
        "07",
        "--role",
        "client",
        "--connect",
        &addr,
        "--print",
        "--duration",
        "0.5",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        o.stdout.is_empty(),
        "a stamped server sent a raw client samples"
    );
    assert!(stderr.contains("--framing stamped"), "{stderr}");
}

/// A client on another machine probes the clock before it subscribes (loopback runs
/// skip the probes): `lab latency --role server` answers them as lab 07's server does.
#[test]
fn the_latency_server_answers_clock_probes_before_a_subscription() {
    let server = common::latency_server(30);
    let mut s = connect(server.addr);
    let mut inbound = Vec::new();
    for i in 0..3u32 {
        let sent = epoch_ns();
        s.write_all(&frame(Kind::ClockRequest, i, sent, 0)).unwrap();
        let (bytes, got) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            (f.kind(), f.seq()),
            (Some(Kind::ClockReply), i),
            "probe {i}"
        );
        assert!(sent <= f.t0_ns() && f.t0_ns() <= got, "probe {i}");
    }
    // Then the subscription works as if the probes had not been there.
    s.write_all(&frame(Kind::Subscribe, 4, 0, 1_000_000))
        .unwrap();
    let (bytes, _) = next_frame(&mut s, &mut inbound, Duration::from_secs(5));
    let f = Frame::new_checked(&bytes[..]).unwrap();
    assert_eq!((f.kind(), f.samples().len()), (Some(Kind::Samples), 4));
}
