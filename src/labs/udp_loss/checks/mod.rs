//! Checks for 03-udp-loss: a receiver that reads the lab's probe datagrams (the 32-byte
//! header of [`crate::wire::probe`]) and, when its sender's first end marker arrives,
//! prints one JSON line `{"received", "lost", "duplicates", "out_of_order"}` and exits 0.
//!
//! The grader plays both the sender and the bad network. Each check builds its datagrams
//! with lab's own encoder, decides loss, duplication and reordering in-process from the
//! check's seed, and sends them in that order. Loopback keeps the order and loses
//! nothing as long as the receiver keeps up, which the grader makes sure of by pausing
//! every [`play::BATCH`] datagrams until the receiver's socket queue is empty. The expected
//! figures come from lab's own accounting ([`super::tally::Tally`]) run over exactly what was sent,
//! so they are known exactly, whatever the seed.

mod play;

use crate::grade::checks::{starts, Check, Suite};
use crate::grade::harness::{Harness, Outcome, Transport, Unmet, REPLY_TIMEOUT, SHOW_BYTES};
use crate::grade::sandbox::describe_status;
use crate::out::escape_bytes;
use crate::rng::Rng;
use crate::wire::probe::HEADER_LEN;
use play::{
    data, end, expect_report, expected, finish, from_stranger, list, pick, play, run, session,
    setup, Dgram, Who, END_GAP, END_MARKERS, SIZE,
};

mod long_run;
use long_run::bounded_memory;

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "03-udp-loss",
    transport: Transport::Udp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --port N and binds UDP 127.0.0.1:N",
            mistake: "the receiver must take its port from `--port N` and bind it",
            hint: "Parse the argument after --port and bind a UDP socket to 127.0.0.1 (or 0.0.0.0) on it.",
            run: starts,
            prologue: None,
        },
        Check {
            name: "clean_run",
            description: "100-200 datagrams in order, none lost, then the end marker: one JSON line with the counts",
            mistake: "the report must be ONE line of JSON with the four counts (Python's print(dict) writes single quotes: not JSON)",
            hint: "print(json.dumps({\"received\": r, \"lost\": l, \"duplicates\": d, \"out_of_order\": o}), flush=True)",
            run: clean_run,
            prologue: None,
        },
        Check {
            name: "loss",
            description: "200 datagrams with seeded loss, a burst of 3 among them: lost is exact",
            mistake: "counting gaps instead of missing datagrams (a burst of 3 is 3 losses), or not using the sender's count",
            hint: "lost = the end marker's count (its sequence field) - received.",
            run: loss,
            prologue: None,
        },
        Check {
            name: "duplicates",
            description: "as many duplicates as losses, some arriving late: counted apart, so no loss is hidden",
            mistake: "duplicates counted as received: each duplicate then hides one loss",
            hint: "Remember the sequence numbers received; a repeat counts in duplicates only, never in received or out_of_order.",
            run: duplicates,
            prologue: None,
        },
        Check {
            name: "reordering",
            description: "200 datagrams, some overtaken and some overtaking several others: out_of_order is exact",
            mistake: "out_of_order compared with the previous datagram (or counted from gaps) instead of the highest sequence received so far",
            hint: "A new sequence number lower than the HIGHEST received before it is out of order; keep the highest, not the last.",
            run: reordering,
            prologue: None,
        },
        Check {
            name: "foreign",
            description: "random bytes, short and malformed datagrams, another session's data and end marker, a previous run's straggler: all ignored",
            mistake: "no session filter (or no length/magic check): foreign datagrams were counted, ended the run early, or crashed the receiver",
            hint: "Lock onto the session id and address of the first data datagram; ignore anything shorter than 32 bytes, without LAB3, version 1 and kind 0/1, or of another session or sender.",
            run: foreign,
            prologue: None,
        },
        Check {
            name: "stranger_same_session",
            description: "strangers send data and an end marker of the sender's own session, from another port and from another address: all ignored",
            mistake: "locked onto the session id alone: anyone who sends that id (from another port or address) was counted, or ended the run with their end marker",
            hint: "Keep the address recvfrom() returned with the first data datagram, (IP, port) both; a datagram of the same session from any other address is foreign.",
            run: stranger_same_session,
            prologue: None,
        },
        Check {
            name: "bounded_memory",
            description: "a long run: 2^19 data datagrams, far from sequence 0; the receiver's memory may grow by at most 8 MiB",
            mistake: "memory grows with the run: every sequence number ever received is kept (a set), or a table is sized by the sequence numbers",
            hint: "Only recent sequence numbers can still arrive (never more than 1,000 below the highest): keep a window, e.g. a list of W slots where slot seq % W holds the last sequence number stored there (a repeat finds itself), or a bitmap.",
            run: bounded_memory,
            prologue: None,
        },
        Check {
            name: "near_u64_max",
            description: "sequence numbers just below 2^64 - 1 and the count u64::MAX: no 32-bit cut, no wrap",
            mistake: "a 32-bit (or signed) sequence number: 64-bit values are cut, wrap or turn negative",
            hint: "Read the session, sequence and time fields as unsigned 64-bit big-endian: struct's `Q`, or u64::from_be_bytes in Rust.",
            run: near_u64_max,
            prologue: None,
        },
        Check {
            name: "end_marker_repeated",
            description: "the end marker comes 5 times, 10 ms apart: one report after the first, then exit 0",
            mistake: "a report per end marker, or not exiting after the first (the sender repeats it only because it can be lost)",
            hint: "On the first end marker of your session: print the line, flush, and exit with status 0.",
            run: end_marker_repeated,
            prologue: None,
        },
        Check {
            name: "tail_loss",
            description: "the last 3-11 data datagrams are lost: counted from the sender's count",
            mistake: "loss counted up to the highest sequence seen (max + 1 - received) instead of from the sender's count: tail losses are invisible",
            hint: "lost = the end marker's count - received; nothing after the highest sequence reveals the datagrams lost behind it.",
            run: tail_loss,
            prologue: None,
        },
    ],
};

fn clean_run(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = ctx.rng.range(100, 201) as u64;
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x} ({SIZE} bytes each), in order, none lost",
        n - 1
    ));
    let plan: Vec<Dgram> = (0..n).map(|s| data(sess, s)).collect();
    finish(ctx, &mut net, plan, sess, n)
}

fn loss(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 200u64;
    // About 5% lost at random, plus a burst of 3 in a row; never the last datagram
    // (tail loss has its own check).
    let k = ctx.rng.range(6, 12);
    let mut lost: Vec<u64> = pick(&mut ctx.rng, k, 1, n as usize - 1)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    let b = ctx.rng.range(20, n as usize - 20) as u64;
    lost.extend([b, b + 1, b + 2]);
    lost.sort_unstable();
    lost.dedup();
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}, but {} are lost on the way (seeded, with a burst of 3 at {b}): {}",
        n - 1,
        lost.len(),
        list(&lost)
    ));
    let plan: Vec<Dgram> = (0..n)
        .filter(|s| !lost.contains(s))
        .map(|s| data(sess, s))
        .collect();
    finish(ctx, &mut net, plan, sess, n)
}

fn duplicates(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 200u64;
    // As many duplicates as losses: "datagrams that arrived" equals the count sent, yet
    // k are missing. Never the last datagram lost.
    let k = ctx.rng.range(4, 9);
    let chosen = pick(&mut ctx.rng, 2 * k, 1, n as usize - 1);
    let (mut lost, mut dups): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
    for (j, &i) in chosen.iter().enumerate() {
        // Alternate so both kinds spread over the whole run.
        if j % 2 == 0 {
            lost.push(i as u64);
        } else {
            dups.push(i as u64);
        }
    }
    let mut order: Vec<u64> = (0..n).filter(|s| !lost.contains(s)).collect();
    let mut late = Vec::new();
    for &d in &dups {
        // The copy follows its original at once, or arrives after up to 5 later ones
        // (then it is lower than the highest, and still a duplicate, not out of order).
        let at = order.iter().position(|&s| s == d).unwrap_or(0);
        let delay = ctx.rng.range(0, 6);
        if delay > 0 {
            late.push(d);
        }
        let pos = (at + 1 + delay).min(order.len());
        order.insert(pos, d);
    }
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}; lost on the way (seeded): {}; sent twice: {} (the copies of {} arrive after later datagrams)",
        n - 1,
        list(&lost),
        list(&dups),
        if late.is_empty() { "none".to_string() } else { list(&late) }
    ));
    let plan: Vec<Dgram> = order.iter().map(|&s| data(sess, s)).collect();
    finish(ctx, &mut net, plan, sess, n)
}

fn reordering(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 200u64;
    let mut order: Vec<u64> = (0..n).collect();
    // Some datagrams are held back (overtaken by 1-6 later ones), some jump ahead of 2-6
    // earlier ones: after a jump, every datagram it overtook is out of order, which is
    // where "compared with the previous datagram" goes wrong.
    let k = ctx.rng.range(10, 17);
    let moved = pick(&mut ctx.rng, k, 10, n as usize - 10);
    let mut held = Vec::new();
    let mut jumped = Vec::new();
    for (j, &i) in moved.iter().enumerate() {
        let s = i as u64;
        let Some(at) = order.iter().position(|&x| x == s) else {
            continue;
        };
        order.remove(at);
        if j % 2 == 0 {
            let to = at.saturating_sub(ctx.rng.range(2, 7));
            order.insert(to, s);
            jumped.push(s);
        } else {
            let to = (at + ctx.rng.range(1, 7)).min(order.len());
            order.insert(to, s);
            held.push(s);
        }
    }
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}, none lost, reordered (seeded): {} held back, {} sent ahead of 2-6 earlier ones",
        n - 1,
        list(&held),
        list(&jumped)
    ));
    let shown: Vec<u64> = order.iter().take(40).copied().collect();
    ctx.step(format!("the order begins: {}", {
        let v: Vec<String> = shown.iter().map(u64::to_string).collect();
        v.join(" ")
    }));
    let plan: Vec<Dgram> = order.iter().map(|&s| data(sess, s)).collect();
    finish(ctx, &mut net, plan, sess, n)
}

fn foreign(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let other = session(ctx);
    let previous = session(ctx);
    let n = 120u64;
    let mut plan = Vec::new();
    // Before the session starts: bytes that are not probes must not start a session.
    let len = ctx.rng.range(40, 100);
    let noise = ctx.rng.bytes(len);
    plan.push(Dgram {
        who: Who::Stranger,
        bytes: noise,
    });
    plan.push(Dgram {
        who: Who::Stranger,
        bytes: b"hello".to_vec(),
    });
    ctx.step(format!(
        "X sends {len} random bytes and a 5-byte \"hello\" (not probes)"
    ));
    // Malformed probes of the real session: too short, bad magic, version, kind.
    let mut short = data(sess, 3).bytes;
    short.truncate(HEADER_LEN - 1);
    let mut magic = data(sess, 4).bytes;
    magic[..4].copy_from_slice(b"LAB4");
    let mut version = data(sess, 5).bytes;
    version[4] = 2;
    let mut kind = data(sess, 6).bytes;
    kind[5] = 7;
    let mut bad_end = end(sess, 3).bytes;
    bad_end[0..4].copy_from_slice(b"BAL3");
    // The first two from S's own address: not a probe is foreign whoever sends it.
    let strange: Vec<Dgram> = [short, magic, version, kind, bad_end]
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| Dgram {
            who: if i < 2 { Who::Sender } else { Who::Stranger },
            bytes,
        })
        .collect();
    // The session, with foreign datagrams mixed in at seeded places: X's data of another
    // session (the same sequence numbers: counted, they would look like duplicates),
    // the malformed ones, a straggler of S's previous run, then X's end marker of the
    // other session before S's own.
    let mut session: Vec<Dgram> = (0..n).map(|s| data(sess, s)).collect();
    let mut extra: Vec<Dgram> = (0..10).map(|i| from_stranger(data(other, i * 7))).collect();
    extra.extend(strange);
    extra.push(data(previous, 57));
    extra.push(data(previous, 58));
    mix_in(&mut ctx.rng, &mut session, extra);
    let at = ctx.rng.range(session.len() / 2, session.len());
    session.insert(at, from_stranger(end(other, 1000)));
    plan.extend(session);
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}, none lost; mixed in (seeded places): X's data 0, 7, ..., 63 of session {other:#018x}, copies of datagrams 3-6 spoiled (from S: cut to 31 bytes, magic LAB4; from X: version 2, kind 7), X's end marker with magic BAL3, S's stragglers 57 and 58 of a previous session {previous:#018x}, and X's end marker of session {other:#018x} (count 1000)",
        n - 1
    ));
    finish(ctx, &mut net, plan, sess, n)
}

fn stranger_same_session(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 120u64;
    let mut plan: Vec<Dgram> = (0..n).map(|s| data(sess, s)).collect();
    // X and Y know S's session id. Counted, their copies of sequence numbers S also
    // sends look like duplicates (or take the place of S's own), and those past S's
    // count make received exceed it.
    let mut extra = Vec::new();
    for who in [Who::Stranger, Who::Elsewhere] {
        for _ in 0..5 {
            let seq = ctx.rng.range(1, n as usize) as u64;
            extra.push(Dgram {
                who,
                ..data(sess, seq)
            });
        }
        for i in 0..3 {
            extra.push(Dgram {
                who,
                ..data(sess, n + 10 + i)
            });
        }
    }
    mix_in(&mut ctx.rng, &mut plan, extra);
    // Their end markers of S's session come before S's own: taken, the run ends early.
    for who in [Who::Stranger, Who::Elsewhere] {
        let at = ctx.rng.range(plan.len() / 2, plan.len());
        plan.insert(
            at,
            Dgram {
                who,
                ..end(sess, 7)
            },
        );
    }
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}, none lost; mixed in (seeded places), with S's session id: from X (another port) and from Y (another address) 5 copies of S's sequence numbers, 3 beyond S's count, and an end marker with count 7 each",
        n - 1
    ));
    finish(ctx, &mut net, plan, sess, n)
}

/// Puts each of `extra`, in turn, at a seeded place in `plan` after its first datagram
/// (S's first, which starts the session).
fn mix_in(rng: &mut Rng, plan: &mut Vec<Dgram>, extra: Vec<Dgram>) {
    for d in extra {
        let at = rng.range(1, plan.len());
        plan.insert(at, d);
    }
}

fn near_u64_max(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 64u64;
    // The last n sequence numbers a sender can use: u64::MAX - n to u64::MAX - 1, with
    // the count u64::MAX (as if it had sent 0 to u64::MAX - 1 and only these arrived).
    let first = u64::MAX - n;
    let mut order: Vec<u64> = (first..u64::MAX).collect();
    let lost = pick(&mut ctx.rng, 3, 1, n as usize - 1);
    let lost: Vec<u64> = lost.into_iter().map(|i| first + i as u64).collect();
    order.retain(|s| !lost.contains(s));
    // One datagram overtaken by the next, and one sent twice.
    let i = ctx.rng.range(5, order.len() - 5);
    order.swap(i, i + 1);
    let dup = order[ctx.rng.range(5, order.len() - 5)];
    let at = order.iter().position(|&s| s == dup).unwrap_or(0);
    order.insert(at + 1, dup);
    ctx.step(format!(
        "S sends data datagrams u64::MAX - {n} to u64::MAX - 1 ({first} to {}) of session {sess:#018x}; lost: {}; {} overtaken by {}; {dup} sent twice",
        u64::MAX - 1,
        lost.iter()
            .map(|s| format!("u64::MAX - {}", u64::MAX - s))
            .collect::<Vec<_>>()
            .join(", "),
        order[i + 1],
        order[i],
    ));
    let mut plan: Vec<Dgram> = order.iter().map(|&s| data(sess, s)).collect();
    ctx.step(format!(
        "S sends the end marker: count u64::MAX ({})",
        u64::MAX
    ));
    plan.push(end(sess, u64::MAX));
    run(ctx, &mut net, &plan)
}

fn end_marker_repeated(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 100u64;
    let k = ctx.rng.range(2, 6);
    let lost: Vec<u64> = pick(&mut ctx.rng, k, 1, n as usize - 1)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}; lost (seeded): {}",
        n - 1,
        list(&lost)
    ));
    let mut plan: Vec<Dgram> = (0..n)
        .filter(|s| !lost.contains(s))
        .map(|s| data(sess, s))
        .collect();
    ctx.step(format!("S sends the end marker: count {n}"));
    plan.push(end(sess, n));
    let (want, _) = expected(&plan)
        .ok_or_else(|| Unmet::error("the check's plan has no end marker (a bug in lab)"))?;
    play(ctx, &mut net, &plan)?;
    expect_report(ctx, &net, want)?;
    ctx.step(format!(
        "S sends the end marker {} more times, {} ms apart, as the lab's sender does",
        END_MARKERS - 1,
        END_GAP.as_millis()
    ));
    for _ in 1..END_MARKERS {
        std::thread::sleep(END_GAP);
        // The receiver may be gone already: nothing listens, and that is fine.
        let _ = net.s.send_to(&end(sess, n).bytes, ctx.addr());
    }
    ctx.step(format!(
        "the grader expects the program to exit with status 0 within {} s of the repeated end markers (not counting time it waited for a CPU)",
        REPLY_TIMEOUT.as_secs()
    ));
    let Some(p) = ctx.program() else {
        return Err(Unmet::error("no program is running"));
    };
    // A correct receiver exits microseconds after its report; one that keeps listening
    // sleeps in recv and is judged after the limit. On a loaded machine the exit itself
    // can wait seconds for a CPU, which is the machine's time, not the program's.
    let ended = p.wait_exit(REPLY_TIMEOUT);
    if ended.is_some() {
        // Everything it wrote before exiting, drained from the pipe.
        p.settle_readers();
    }
    let out = p.stdout_kept();
    let lines = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    match ended {
        None => Err(Unmet::fail(format!(
            "the program printed its report but was still running {} s after the end markers{}: it must exit (status 0) after the first one",
            REPLY_TIMEOUT.as_secs(),
            if lines > 1 {
                format!(", having printed {lines} lines")
            } else {
                String::new()
            }
        ))),
        Some(e) if !e.status.success() => Err(Unmet::fail(format!(
            "the program {} after its report: expected exit status 0",
            describe_status(e.status)
        ))),
        Some(_) if lines != 1 => Err(Unmet::fail(format!(
            "the program printed {lines} lines on stdout, expected exactly one (the report): \"{}\"",
            escape_bytes(&out, 2 * SHOW_BYTES)
        ))),
        Some(_) => Ok(()),
    }
}

fn tail_loss(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = session(ctx);
    let n = 150u64;
    let tail = ctx.rng.range(3, 12) as u64;
    let k = ctx.rng.range(1, 4);
    let mut lost: Vec<u64> = pick(&mut ctx.rng, k, 1, (n - tail) as usize - 1)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    lost.extend(n - tail..n);
    ctx.step(format!(
        "S sends data datagrams 0 to {} of session {sess:#018x}; lost (seeded): {}, including the last {tail}",
        n - 1,
        list(&lost)
    ));
    let mut plan: Vec<Dgram> = (0..n)
        .filter(|s| !lost.contains(s))
        .map(|s| data(sess, s))
        .collect();
    ctx.step(format!(
        "S sends the end marker: count {n} (the highest sequence that arrived is {})",
        n - tail - 1
    ));
    plan.push(end(sess, n));
    run(ctx, &mut net, &plan)
}
