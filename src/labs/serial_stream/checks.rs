//! Checks for 07-serial-stream: the Pi's forwarder. The program is started as
//! `PROGRAM --serial PATH --port N --buffer K`; it reads one-byte samples from the
//! serial device at PATH and forwards them to every connected TCP client, K at a time.
//!
//! The grader plays the Arduino and the clients. PATH is a pseudo-terminal the grader
//! opened (in raw mode, so bytes pass unchanged) and writes seeded noise into at the
//! Arduino's 896 samples/s ([`device`]); every write is timed. Each client reads in a
//! thread of its own and times what it receives, so a check can say which samples a
//! client got (a contiguous run of the waveform, located exactly), whether any went
//! missing, how old the first one was when the client connected, and how long each
//! waited in the program. Deadlines are generous (a loaded 2-core machine passes a
//! correct program); they only catch a program that does not deliver at all.

mod client;
mod control;
mod device;

use std::time::{Duration, Instant};

use crate::grade::checks::{Check, Suite};
use crate::grade::harness::{Harness, Outcome, Transport, Unmet, Wait};
use crate::out::escape_bytes;
use client::Client;
use device::Device;

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "07-serial-stream",
    transport: Transport::Tcp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --serial PATH --port N --buffer K and listens on 127.0.0.1:N",
            mistake: "the forwarder must take its serial device, port and buffer size from the arguments",
            hint: "Parse --serial, --port and --buffer; open the device, then listen on 127.0.0.1 (or 0.0.0.0) on the port.",
            run: starts,
            prologue: None,
        },
        Check {
            name: "every_byte_in_order",
            description: "one client gets every sample, unchanged and in order, also when the device delivers a burst",
            mistake: "samples lost, changed or reordered: bytes beyond K dropped when one read returns more, or samples sent as text",
            hint: "Append everything a read returns to the buffer; while it holds K or more, send the first K and keep the rest. Send the raw bytes (`sock.sendall(bytes(buf))`), never str() of them.",
            run: every_byte_in_order,
            prologue: None,
        },
        Check {
            name: "two_clients",
            description: "two clients connected at once both get the stream",
            mistake: "one client at a time: the program serves the first client and never accepts (or never sends to) the second",
            hint: "Keep a list of connected clients and send each buffer to every one; accept new clients while forwarding (a thread for accept, or select over the listener and the device).",
            run: two_clients,
            prologue: None,
        },
        Check {
            name: "client_leaves",
            description: "a client that disconnects abruptly does not stop the stream to the others",
            mistake: "an error sending to a client that left (BrokenPipe, ConnectionReset) ended the program or its forwarding loop",
            hint: "Wrap each client's send in try/except OSError (match on the error in Rust): on error close that client and remove it from the list; keep going.",
            run: client_leaves,
            prologue: None,
        },
        Check {
            name: "late_client_fresh",
            description: "a client connecting after the stream started gets fresh samples, not a backlog",
            mistake: "a stale backlog: old samples (kept for new clients, or left unread in the device while no client was connected) sent to a client that just connected",
            hint: "Read the device all the time, clients or not, and start each client's buffer empty when it connects: a client gets samples read after it arrived.",
            run: late_client_fresh,
            prologue: None,
        },
        Check {
            name: "slow_client",
            description: "a client that stops reading does not stall the others",
            mistake: "a blocking send to a client that does not read: once its socket buffer is full, sendall() waits and every other client and the device reading wait with it",
            hint: "Use non-blocking sends (select/selectors, or a thread and a bounded queue per client); when a client's queue is full, skip its buffers or disconnect it.",
            run: slow_client,
            prologue: None,
        },
        Check {
            name: "buffers_of_k",
            description: "samples leave K at a time (--buffer K), not one by one",
            mistake: "--buffer ignored: each sample sent as soon as it was read (or a fixed buffer size instead of K)",
            hint: "Collect samples into a buffer and send only when it holds exactly K; use the number after --buffer, not a constant.",
            run: buffers_of_k,
            prologue: None,
        },
        Check {
            name: "sample_age",
            description: "no sample waits in the program much longer than K samples take to arrive",
            mistake: "extra latency: samples held longer than the buffer asks (a read that waits for a big block, like a buffered file's read(1024), or a sleep in the loop)",
            hint: "Read whatever the device has (os.read(fd, 4096) or an unbuffered file returns as soon as there is a byte) and send the moment the buffer is full; never sleep to wait for data.",
            run: sample_age,
            prologue: None,
        },
        Check {
            name: "quiet_serial_idle",
            description: "while the serial line is quiet the program sleeps in a read or select, not in a busy loop",
            mistake: "busy-waiting: polling a non-blocking device (or select with a zero timeout) in a loop burns a whole CPU while no byte arrives",
            hint: "Let the program block: a blocking read on the device in its own thread, or select()/poll() with no timeout over the device and the sockets.",
            run: quiet_serial_idle,
            prologue: None,
        },
    ],
};

/// Samples per second the grader writes: the Arduino sketch's rate.
const RATE: f64 = super::ARDUINO_RATE;

/// Buffer sizes a check may ask for: none is the default 16, so a hard-coded 16 shows.
const BUFFERS: [usize; 4] = [8, 24, 32, 48];

/// Slack for "fresh": besides the K samples a buffer may hold from before a client
/// arrived, 2 s of samples read around the moment it connected (a reader thread
/// delayed on a loaded machine reads what queued up meanwhile: at load 30 a correct
/// program's first samples were 0.55-0.84 s older than the client; with two copies of
/// the suite and two busy loops, 1.37 s, of which the grader measured under 0.33 s as
/// the program's CPU queue and none as the pty's). A backlog is everything written
/// before the client came: [`FRESH_LEAD_SECS`] or more, which slack, K and the
/// CPU-queue allowance stay a second under.
const FRESH_SLACK_SECS: f64 = 2.0;

/// How long late_client_fresh streams before the first client comes: the backlog a
/// stale program hands it, a second over [`FRESH_SLACK_SECS`] +
/// [`FRESH_QUEUED_MIN_SECS`] + 48 samples (2.45 s).
const FRESH_LEAD_SECS: f64 = 3.5;

/// However loaded the machine, a sample that took longer than this from the grader's
/// write to client A's recv fails [`sample_age`]: the bound on what the machine's
/// delays may excuse. Two copies of the suite and two busy loops on 2 CPUs delayed a
/// correct program's sample 4.9 s, all of it measured as the machine's.
const AGE_WALL: Duration = Duration::from_secs(15);

/// Slack for "no extra latency": a sample may wait K samples' time in the buffer, plus
/// this much for what [`sample_age`] does not measure (a loopback send takes
/// microseconds; the kernel's pty and TCP work, and the grader's writer, on a busy
/// machine). Time the program and the grader's reader waited for a CPU comes on top.
const AGE_MARGIN: Duration = Duration::from_millis(400);

/// The slow-client burst: the most a send buffer may grow to (the kernel's tcp_wmem
/// maximum, 4 MiB by default; a blocking sender to a client that reads nothing was
/// measured absorbing 2.8 MiB before it stalled) plus 1 MiB for the client's receive
/// buffer, the pty and the program's own, at most 64 MiB.
fn burst_len() -> u64 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse::<u64>().ok())
        .unwrap_or(4 << 20);
    (wmem_max + (1 << 20)).min(64 << 20)
}

/// How long the device's writer may make no progress before the program counts as
/// stalled (it stopped reading the device).
const STALL: Duration = Duration::from_secs(3);

/// Opens the grader's device, picks K, starts the program and waits until it listens.
fn begin(ctx: &mut Harness) -> Outcome<(Device, usize)> {
    let k = BUFFERS[ctx.rng.range(0, BUFFERS.len())];
    let seed = ctx.rng.next_u64();
    let dev = Device::open(seed, RATE)
        .map_err(|e| Unmet::error(format!("the grader cannot open a pseudo-terminal: {e}")))?;
    ctx.step(format!(
        "the grader's Arduino is the pseudo-terminal {}: it will write seeded noise (every byte value 0-255), one byte per sample, {RATE} samples/s",
        dev.path
    ));
    if let Some(why) = dev.control_missing() {
        ctx.step(format!(
            "(the grader cannot open its control pty, {why}: the machine's own pty delay is not measured, so a loaded machine may look like a slow program)"
        ));
    }
    ctx.set_arg("serial", dev.path.clone());
    ctx.set_arg("buffer", k.to_string());
    ctx.start()?;
    Ok((dev, k))
}

/// Lets the stream run for `secs` (the clients read meanwhile).
fn stream(ctx: &mut Harness, dev: &Device, secs: f64) {
    dev.play();
    ctx.step(format!(
        "the Arduino streams for {secs} s (samples {} onwards)",
        dev.written()
    ));
    std::thread::sleep(Duration::from_secs_f64(secs));
}

/// Checks that what `c` received is one contiguous run of the waveform; returns its
/// first sample's index and the index after its last.
fn contiguous(dev: &Device, c: &Client) -> Outcome<(u64, u64)> {
    let (got, _, ended) = c.received();
    let name = &c.name;
    let ended = ended.map(|e| format!(" ({e})")).unwrap_or_default();
    if got.is_empty() {
        return Err(Unmet::fail(format!(
            "client {name} received nothing while the grader wrote {} samples{ended}",
            dev.written().saturating_sub(c.joined_at)
        )));
    }
    let Some(first) = dev.locate(&got) else {
        return Err(Unmet::fail(format!(
            "the first bytes client {name} received, \"{}\", are not samples the grader wrote: forward the bytes read from the device unchanged (raw bytes, no text, no framing)",
            escape_bytes(&got, 24)
        )));
    };
    for (j, &b) in got.iter().enumerate() {
        let want = dev.sample(first + j as u64);
        if b == want {
            continue;
        }
        let at = first + j as u64;
        let msg = match dev.locate(&got[j..]) {
            Some(o) if o > at => format!(
                "client {name} received samples {first}..{at} in order, then sample {o}: the {} samples in between never arrived",
                o - at
            ),
            Some(o) => format!(
                "client {name} received samples {first}..{at} in order, then sample {o} again: {} samples were sent twice",
                at - o
            ),
            None => format!(
                "client {name} received samples {first}..{at} in order, then byte {b} where sample {at} is {want}: a byte the grader never wrote there"
            ),
        };
        return Err(Unmet::fail(msg));
    }
    Ok((first, first + got.len() as u64))
}

/// Checks that `c` got samples at least up to `written - k - slack`: nothing stuck.
fn up_to_date(c: &Client, end: u64, k: usize, written: u64) -> Outcome {
    // What may still be on its way: the buffer being filled, and 0.5 s of samples.
    let slack = k as u64 + (RATE * 0.5) as u64;
    if end + slack < written {
        let (_, _, ended) = c.received();
        return Err(Unmet::fail(format!(
            "client {} received samples up to {end}, but the grader had written {written}: the last {} never arrived{}",
            c.name,
            written - end,
            ended.map(|e| format!(" ({e})")).unwrap_or_default()
        )));
    }
    Ok(())
}

/// How long [`caught_up`] waits for a client to get the samples written so far, not
/// counting time the program or the client's reader waits for a CPU, or the machine
/// holds ptys up. A wait for a count, which a correct program reaches in milliseconds
/// on an idle machine and a stuck one never does: so it can be long, and costs only a
/// program that never gets there. A correct program's client was 1.2 s behind after
/// 1 s at load 30, and one got nothing in 3 s with two copies of the suite and two busy
/// loops running, beyond what the grader measured.
const CATCH_UP: Duration = Duration::from_secs(6);

/// Waits until client `c` has received something and is within `k` samples and 0.5 s
/// of samples of `written` (a count, which a stuck program never reaches), for
/// [`CATCH_UP`] of the program's and the client's reader's own time; returns what it
/// got, located, for [`up_to_date`]. Nothing received is never caught up: after a
/// short stream (0.5 s, client_leaves' C) the slack alone covers every sample written,
/// and a client a correct program serves a moment later (on a loaded machine, or one
/// that welcomes newcomers after a pause) was judged as getting nothing.
fn caught_up(dev: &Device, c: &Client, k: usize, written: u64) -> Outcome<(u64, u64)> {
    let slack = k as u64 + (RATE * 0.5) as u64;
    // Time the program or the client's reader waited for a CPU is not charged: on a
    // loaded machine the samples can sit in the client's socket while its reader waits
    // its turn. Judged before looking, so a look delayed by a busy machine still counts.
    let wait = Wait::start(CATCH_UP, c.queued_now());
    loop {
        let over = wait.over(|| c.queued_now());
        let got = c.count() as u64;
        let behind = got == 0 || c.joined_at + got + slack < written;
        if !behind || over {
            return contiguous(dev, c);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn starts(ctx: &mut Harness) -> Outcome {
    begin(ctx).map(|_| ())
}

fn every_byte_in_order(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let a = Client::connect(ctx, &dev, "A")?;
    stream(ctx, &dev, 1.0);
    // A serial driver hands over what queued up while the reader was busy: reads then
    // return many bytes at once, which a forwarder must not lose.
    ctx.step("the Arduino writes 4096 samples (what a pty holds) as fast as the pty takes them, so reads return many bytes at once, then streams on");
    dev.burst(4096);
    stream(ctx, &dev, 1.0);
    let written = dev.written();
    let (first, end) = caught_up(&dev, &a, k, written)?;
    ctx.step(format!(
        "client A received samples {first}..{end}, unchanged and in order"
    ));
    up_to_date(&a, end, k, written)
}

fn two_clients(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let a = Client::connect(ctx, &dev, "A")?;
    let b = Client::connect(ctx, &dev, "B")?;
    stream(ctx, &dev, 1.5);
    let written = dev.written();
    for c in [&b, &a] {
        let (first, end) = caught_up(&dev, c, k, written)?;
        ctx.step(format!("client {} received samples {first}..{end}", c.name));
        up_to_date(c, end, k, written)?;
    }
    Ok(())
}

fn client_leaves(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let mut a = Client::connect(ctx, &dev, "A")?;
    let b = Client::connect(ctx, &dev, "B")?;
    stream(ctx, &dev, 0.5);
    ctx.step("client A leaves abruptly (SO_LINGER 0 then close: a reset)");
    a.reset();
    drop(a);
    let left_at = dev.written();
    stream(ctx, &dev, 1.0);
    let written = dev.written();
    let (first, end) = caught_up(&dev, &b, k, written)
        .map_err(|u| Unmet::fail(format!("after client A left: {}", u.message)))?;
    ctx.step(format!("client B received samples {first}..{end}"));
    up_to_date(&b, end, k, written)
        .map_err(|u| Unmet::fail(format!("{} (client A left at sample {left_at})", u.message)))?;
    let c = Client::connect(ctx, &dev, "C")?;
    stream(ctx, &dev, 0.5);
    // Waited for, not looked at once: at load 30 C had received nothing yet.
    let (first, end) = caught_up(&dev, &c, k, dev.written())?;
    ctx.step(format!("client C received samples {first}..{end}"));
    Ok(())
}

/// What [`fresh`] may add to its slack for time the program waited for a CPU (its
/// reader, starved, then reads what queued up in the pty meanwhile), at least: with the
/// slack and K at most 48, 2.45 s, under the [`FRESH_LEAD_SECS`] backlog of the mistake
/// it catches. When more had streamed before the client came (a loaded machine makes
/// the lead wait longer), up to all of it but [`FRESH_SLACK_SECS`], K and one second:
/// a stale program hands over the whole stream (from sample 0), a correct one only
/// what it was behind, which at two copies of the suite plus two busy loops was 1.9 s.
const FRESH_QUEUED_MIN_SECS: f64 = 0.4;

/// The program's CPU-queue time so far, for [`fresh`]'s allowance.
fn program_queued(ctx: &mut Harness) -> f64 {
    ctx.program().map_or(0.0, |p| p.queued_seconds())
}

/// Checks that client `c`'s first sample was read around or after it connected;
/// `queued_since` is [`program_queued`] before the stream that led up to it. "When it
/// connected" is the samples the machine had handed to the device's reader side by
/// then ([`Client::joined_delivered`]): a sample the machine still held in the pty
/// when the client came reaches a correct program only after, and is fresh.
fn fresh(ctx: &mut Harness, dev: &Device, c: &Client, k: usize, queued_since: f64) -> Outcome {
    let (first, end) = caught_up(dev, c, k, dev.written())?;
    let joined = c.joined_delivered;
    let cap = (joined as f64 / RATE - FRESH_SLACK_SECS - k as f64 / RATE - 1.0)
        .max(FRESH_QUEUED_MIN_SECS);
    let queued = (program_queued(ctx) - queued_since).clamp(0.0, cap);
    let slack = k as u64 + (RATE * (FRESH_SLACK_SECS + queued)) as u64;
    // A few samples are always in flight (the heartbeat goes out each millisecond).
    let held = match c.joined_at - joined {
        n if n < (RATE * 0.05) as u64 => String::new(),
        n => format!(
            " ({n} of them still held in the pty by a busy machine, so sample {joined} counts as its arrival)"
        ),
    };
    ctx.step(format!(
        "client {} connected when sample {} was being written{held}; it received samples {first}..{end} (allowed: {slack} samples older, {:.0} ms of them for time the program waited for a CPU)",
        c.name,
        c.joined_at,
        queued * 1000.0
    ));
    if first + slack < joined {
        let old = joined - first;
        return Err(Unmet::fail(format!(
            "client {} connected at sample {joined}, but its first sample was sample {first}: {old} samples ({:.2} s) older than the client",
            c.name,
            old as f64 / RATE
        )));
    }
    Ok(())
}

fn late_client_fresh(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    ctx.step("no client is connected yet");
    let q = program_queued(ctx);
    stream(ctx, &dev, FRESH_LEAD_SECS);
    // The lead is a count of samples that reached the device's reader side: a writer
    // thread starved on a loaded machine writes late, a held pty delivers late, and the
    // backlog a stale program hands the client is what it could have read. Bounded.
    let lead = (RATE * FRESH_LEAD_SECS) as u64;
    let until = Instant::now() + Duration::from_secs(10);
    while dev.delivered() < lead && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let a = Client::connect(ctx, &dev, "A")?;
    stream(ctx, &dev, 0.7);
    fresh(ctx, &dev, &a, k, q)?;
    let q = program_queued(ctx);
    let b = Client::connect(ctx, &dev, "B")?;
    stream(ctx, &dev, 0.7);
    fresh(ctx, &dev, &b, k, q)
}

fn slow_client(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let slow = ctx.connect_small_window("S (reads nothing, ever)", 4096)?;
    let b = Client::connect(ctx, &dev, "B")?;
    stream(ctx, &dev, 0.3);
    let burst = burst_len();
    ctx.step(format!(
        "the Arduino writes {burst} samples as fast as the pty takes them: more than client S's socket buffers hold"
    ));
    let goal = dev.written() + burst;
    dev.burst(burst);
    // The pty only takes bytes as fast as the program reads them: a program stuck in a
    // send to S stops reading, and the writer stops making progress. 3 s without any
    // progress is a stall; time the program spent waiting for a CPU, or the machine
    // held ptys up, is not charged (a program stuck in a send sleeps, it does not queue
    // for a CPU, and the control pty keeps flowing).
    let queued = |ctx: &mut Harness| program_queued(ctx) + dev.held();
    let mut last = (dev.written(), Wait::start(STALL, queued(ctx)));
    while dev.written() < goal && !last.1.over(|| queued(ctx)) {
        std::thread::sleep(Duration::from_millis(20));
        let now = dev.written();
        if now != last.0 {
            last = (now, Wait::start(STALL, queued(ctx)));
        }
    }
    let written = dev.written();
    if written < goal {
        drop(slow);
        return Err(Unmet::fail(format!(
            "the program stopped reading the device after {written} samples ({} s without reading a byte) while client S read nothing; client B got {} bytes and then nothing more",
            STALL.as_secs(),
            b.count()
        )));
    }
    ctx.step("the program read the whole burst");
    // B may skip buffers during the burst (faster than any client is served), but once
    // the stream is back to the Arduino's pace it must be up to date again.
    stream(ctx, &dev, 1.0);
    let written = dev.written();
    let slack = k as u64 + (RATE * 0.5) as u64;
    // Waited for, as a count (S still connected, reading nothing): B caught up, or the
    // wait is over. A program stuck in a send to S never gets B there; a correct one
    // on a loaded machine does (B was 0.9 s behind after 1 s, with two copies of the
    // suite and two busy loops running). Looked for among recent samples only.
    let wait = Wait::start(CATCH_UP, b.queued_now());
    loop {
        let over = wait.over(|| b.queued_now());
        let tail = b.last();
        let recent = written.saturating_sub(slack + tail.len() as u64);
        if dev.locate_since(&tail, recent).is_some() || over {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(slow);
    let (_, _, ended) = b.received();
    let tail = &b.last();
    let end = dev.locate(tail).map(|o| o + tail.len() as u64);
    match end {
        Some(end) if end + slack >= written => {
            ctx.step(format!(
                "client B's latest sample is {}, of {written} written",
                end - 1
            ));
            Ok(())
        }
        _ => Err(Unmet::fail(format!(
            "client B fell behind while client S read nothing: {}, while the grader had written {written} samples{}",
            match end {
                Some(end) => format!("its latest sample is {}", end - 1),
                None => format!("its last bytes, \"{}\", are not recent samples", escape_bytes(tail, 24)),
            },
            ended.map(|e| format!(" ({e})")).unwrap_or_default()
        ))),
    }
}

fn buffers_of_k(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let a = Client::connect(ctx, &dev, "A")?;
    stream(ctx, &dev, 1.5);
    // Received something (or fails saying so), waited for with the load in mind.
    caught_up(&dev, &a, k, dev.written())?;
    let (_, recvs, _) = a.received();
    let sizes: Vec<usize> = recvs
        .iter()
        .scan(0, |prev, &(total, _)| {
            let n = total - *prev;
            *prev = total;
            Some(n)
        })
        .collect();
    ctx.step(format!(
        "client A's reads returned {} bytes, {} reads in all",
        sizes
            .iter()
            .take(8)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        sizes.len()
    ));
    if let Some(i) = recvs.iter().position(|&(total, _)| total % k != 0) {
        return Err(Unmet::fail(format!(
            "with --buffer {k} every send carries {k} samples, so client A's reads add up to multiples of {k}; after read {} it had {} bytes (read sizes: {})",
            i + 1,
            recvs[i].0,
            sizes
                .iter()
                .take(i + 1)
                .rev()
                .take(8)
                .rev()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

fn sample_age(ctx: &mut Harness) -> Outcome {
    let (dev, k) = begin(ctx)?;
    let a = Client::connect(ctx, &dev, "A")?;
    stream(ctx, &dev, 2.0);
    dev.pause();
    let written = dev.written();
    let buffer = Duration::from_secs_f64(k as f64 / RATE);
    // The samples of the last, unfinished buffer may stay; older ones must come, however
    // long a loaded machine takes to run the program: a count, not a time. A program
    // that holds samples back never sends them (it waits for more), so waiting longer
    // does not let it pass (a program that sleeps in its loop does deliver, and the
    // ages below judge it). So the wait is as long as any catch-up's, [`CATCH_UP`],
    // charging only time the machine held nothing up: a correct program's samples
    // were 560 behind after 1 s of a 0.4 s wait with two copies of the suite running.
    let due = written.saturating_sub(k as u64);
    ctx.step(format!(
        "the Arduino stops at sample {written}; client A must get every sample up to {due} (all but the last buffer's {k})"
    ));
    let wait = Wait::start(CATCH_UP, a.queued_now());
    let (first, end) = loop {
        // Judged before looking, so a look delayed by a busy machine still counts.
        let over = wait.over(|| a.queued_now());
        let (first, end) = contiguous(&dev, &a)?;
        if end >= due || over {
            break (first, end);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if end < due && dev.written_at(end).is_some() {
        return Err(Unmet::fail(format!(
            "client A received samples up to {end}, but sample {end} was written {} ms ago and is still not there (the grader stopped writing at {written}, so only the last {k} may wait for a full buffer)",
            dev.written_at(end)
                .map(|w| w.elapsed().as_millis())
                .unwrap_or(0)
        )));
    }
    // Each sample's wait, from the grader writing it to client A's recv returning it,
    // minus what the machine added: the time the program and A's reader spent waiting
    // for a CPU in between, and the time the machine held ptys up (the control pty's,
    // see `control`), all in A's timeline. On a machine running 30 jobs on 2 CPUs a
    // correct program's samples arrive a second or more late, all of it time the
    // scheduler withheld. A program holding samples back sleeps in a read (or in a
    // sleep) meanwhile, never queued, while the control delivers at once, so it is
    // charged the whole wait unless the machine was as slow at that very moment. Per
    // sample, not over the whole check, so the queueing of one moment cannot excuse a
    // hold at another.
    let limit = buffer + AGE_MARGIN;
    let (_, recvs, _) = a.received();
    let timeline = a.queued();
    let mut ages: Vec<Age> = Vec::with_capacity(recvs.len());
    let mut at = 0usize;
    for (r, &(total, t)) in recvs.iter().enumerate() {
        // Samples first+at..first+total arrived at t; the oldest waited longest.
        let i = first + at as u64;
        at = total;
        let Some(w) = dev.written_at(i) else { continue };
        let waited = t.saturating_duration_since(w);
        // The program's and the reader's queue time from the last note at or before
        // the write (the reader's start, or an earlier recv) to this recv.
        let before = timeline
            .iter()
            .take(r + 1)
            .rev()
            .find(|(when, _)| *when <= w)
            .or(timeline.first())
            .map_or(0.0, |&(_, q)| q);
        let after = timeline.get(r + 1).map_or(before, |&(_, q)| q);
        let queued = (after - before).max(0.0);
        let excused = Duration::try_from_secs_f64(queued)
            .unwrap_or(waited)
            .min(waited);
        ages.push(Age {
            sample: i,
            waited,
            charged: waited - excused,
            failed: waited - excused > limit || waited > AGE_WALL,
        });
    }
    // The typical recv is judged, not the worst: a program that holds samples back
    // holds every buffer (a read(1024) makes every recv's oldest sample ~0.6 s old on
    // average, as its own count check above also shows), while a loaded machine
    // delays a moment's worth. At load 30 the kernel's pty work was seen holding a
    // correct program's samples 0.5-1 s (samples 408-608, in three runs), with
    // neither the program nor any reader queued and a second pty unaffected: nothing
    // the grader can measure to excuse. Any sample over the wall cap still fails. The
    // price: a loop that sleeps between reads passes when its sleep is under about
    // twice the limit (its recvs' ages spread evenly from the sleep down to 0).
    ages.sort_by_key(|a| (a.failed, a.charged));
    let Some(worst) = ages
        .iter()
        .rev()
        .find(|a| a.waited > AGE_WALL)
        .or(ages.get(ages.len() / 2))
    else {
        return Ok(());
    };
    ctx.step(format!(
        "client A received samples {first}..{end} in {} reads; the median read's oldest sample waited {} ms (sample {}), {} ms of it while the pty, the program or the grader's reader waited for a CPU, against a limit of {} ms ({k} samples' time, {} ms, plus {} ms; time spent waiting for a CPU is not counted; any sample over {} s fails)",
        ages.len(),
        worst.waited.as_millis(),
        worst.sample,
        (worst.waited - worst.charged).as_millis(),
        limit.as_millis(),
        buffer.as_millis(),
        AGE_MARGIN.as_millis(),
        AGE_WALL.as_secs()
    ));
    if worst.waited > AGE_WALL {
        return Err(Unmet::fail(format!(
            "sample {} took {} ms from the grader writing it to client A receiving it, over the {} s any sample may take however busy the machine is",
            worst.sample,
            worst.waited.as_millis(),
            AGE_WALL.as_secs()
        )));
    }
    if worst.failed {
        return Err(Unmet::fail(format!(
            "samples are held back: half of client A's reads brought a sample that had waited {} ms or more (sample {} waited {} ms between the grader writing it and client A receiving it, {} ms of it while the machine was not holding it up); with --buffer {k} a sample waits at most {} ms ({k} samples at {RATE}/s) plus {} ms of margin",
            worst.charged.as_millis(),
            worst.sample,
            worst.waited.as_millis(),
            worst.charged.as_millis(),
            buffer.as_millis(),
            AGE_MARGIN.as_millis()
        )));
    }
    Ok(())
}

/// One sample's wait in [`sample_age`].
struct Age {
    /// Its index in the waveform.
    sample: u64,
    /// From the grader writing it to client A's recv returning it.
    waited: Duration,
    /// `waited` less what the machine added (the pty's delay, and the time the program
    /// and A's reader waited for a CPU meanwhile).
    charged: Duration,
    /// Whether that is over the limit (or the wall-time cap).
    failed: bool,
}

fn quiet_serial_idle(ctx: &mut Harness) -> Outcome {
    let (dev, _k) = begin(ctx)?;
    let a = Client::connect(ctx, &dev, "A")?;
    stream(ctx, &dev, 0.3);
    dev.pause();
    ctx.step("the serial line goes quiet: the Arduino writes nothing");
    std::thread::sleep(Duration::from_millis(100));
    // Time runnable, which a busy loop fills and a blocked program leaves near 0.
    const WINDOW: Duration = Duration::from_millis(500);
    ctx.step(format!(
        "the grader measures how busy the program is over {} ms of silence",
        WINDOW.as_millis()
    ));
    let share = ctx.busy_share(WINDOW)?;
    ctx.step(format!(
        "the program was busy {:.0}% of the time",
        share * 100.0
    ));
    // A spinning thread is runnable ~100% of the time; a blocked one ~0%.
    if share > 0.5 {
        return Err(Unmet::fail(format!(
            "the program kept a CPU busy {:.0}% of the time while no byte arrived on the serial line",
            share * 100.0
        )));
    }
    drop(a);
    Ok(())
}
