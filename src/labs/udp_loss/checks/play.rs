//! The grader as lab 03's sender and bad network: plans of probe datagrams built with
//! lab's own encoder, the counts a correct receiver must report for them (from lab's
//! own [`Tally`]), and sending them paced so loopback drops nothing.

use std::net::UdpSocket;
use std::time::Duration;

use super::super::tally::Tally;
use crate::grade::harness::{Harness, Outcome, Rng, Unmet, Wait, REPLY_TIMEOUT, SHOW_BYTES};
use crate::out::escape_bytes;
use crate::wire::epoch_ns;
use crate::wire::probe::{Kind, Packet, Repr};

/// Bytes per probe datagram: the lab's default `--size`, the header plus 32 zero bytes.
pub(super) const SIZE: usize = 64;

/// Datagrams sent before the grader waits for the receiver to have read them all. The
/// kernel charges a 64-byte datagram about 1 KiB of receive buffer, so 16 take ~16 KiB
/// of the ~208 KiB default: even a slow receiver on a loaded machine drops nothing.
pub(super) const BATCH: usize = 16;

/// How long the grader waits for the receiver to empty its queue before it stops
/// pacing: a receiver that reads nothing for 1 s of its own time is not going to (its
/// report then shows what it missed, and the kernel's drop counter says so). Time the
/// receiver spends waiting for a CPU is not charged (see [`crate::grade::harness::deadline_passed`]): on a
/// loaded machine a correct receiver can go without one for longer than that, and a
/// grader that then sends on overflows its buffer.
pub(super) const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// Pause between repeated end markers: the lab's sender uses 10 ms.
pub(super) const END_GAP: Duration = Duration::from_millis(10);

/// How many end markers the lab's sender sends.
pub(super) const END_MARKERS: usize = 5;

/// Who sends a datagram: the check's sender, or a stranger on another port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    /// Client S, whose session the receiver must lock onto.
    Sender,
    /// Client X, on another port of 127.0.0.1, whose datagrams are all foreign.
    Stranger,
    /// Client Y, on S's port number but another address (127.0.0.2, where the machine
    /// allows it), whose datagrams are all foreign too.
    Elsewhere,
}

/// One datagram of a check's plan.
#[derive(Debug, Clone)]
pub(super) struct Dgram {
    /// The socket it leaves from.
    pub(super) who: Who,
    /// Its bytes.
    pub(super) bytes: Vec<u8>,
}

/// The four figures of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    /// Unique data datagrams.
    pub(super) received: u64,
    /// The sender's count - received.
    pub(super) lost: u64,
    /// Copies of sequence numbers already received.
    pub(super) duplicates: u64,
    /// New sequence numbers lower than the highest received before them.
    pub(super) out_of_order: u64,
}

/// The report's fields, in the contract's order.
pub(super) const FIELDS: [&str; 4] = ["received", "lost", "duplicates", "out_of_order"];

impl Counts {
    fn values(&self) -> [u64; 4] {
        [self.received, self.lost, self.duplicates, self.out_of_order]
    }

    /// The report as the contract spells it.
    fn json(&self) -> String {
        let v = self.values();
        format!(
            "{{\"received\": {}, \"lost\": {}, \"duplicates\": {}, \"out_of_order\": {}}}",
            v[0], v[1], v[2], v[3]
        )
    }
}

/// A probe datagram of [`SIZE`] bytes from S, built by lab's own encoder.
pub(super) fn probe(kind: Kind, session: u64, seq: u64) -> Dgram {
    let mut bytes = vec![0u8; SIZE];
    Repr {
        kind,
        session,
        seq,
        sent_ns: epoch_ns(),
    }
    .emit(&mut Packet::new_unchecked(&mut bytes[..]));
    Dgram {
        who: Who::Sender,
        bytes,
    }
}

pub(super) fn data(session: u64, seq: u64) -> Dgram {
    probe(Kind::Data, session, seq)
}

pub(super) fn end(session: u64, count: u64) -> Dgram {
    probe(Kind::End, session, count)
}

pub(super) fn from_stranger(mut d: Dgram) -> Dgram {
    d.who = Who::Stranger;
    d
}

/// What a correct receiver reports for `plan`, by the contract's definitions: lock onto
/// the session and sender of the first data datagram, account its data datagrams with
/// lab's [`Tally`], stop at its first end marker. Also returns that marker's index.
pub(super) fn expected(plan: &[Dgram]) -> Option<(Counts, usize)> {
    let mut lock: Option<(Who, u64)> = None;
    let mut t = Tally::new();
    for (i, d) in plan.iter().enumerate() {
        let Ok(h) = Repr::parse_bytes(&d.bytes) else {
            continue;
        };
        if lock.is_none() && h.kind == Kind::Data {
            lock = Some((d.who, h.session));
        }
        if lock != Some((d.who, h.session)) {
            continue;
        }
        match h.kind {
            Kind::Data => {
                t.data(&h, d.bytes.len(), 0);
            }
            Kind::End => {
                // Plans stay well inside the window, where Tally is exact like a set.
                debug_assert_eq!(t.late, 0);
                let c = Counts {
                    received: t.received,
                    lost: t.lost(Some(h.seq)),
                    duplicates: t.duplicates,
                    out_of_order: t.out_of_order,
                };
                return Some((c, i));
            }
        }
    }
    None
}

/// The grader's two client sockets and the pacing state.
pub(super) struct Net {
    /// Client S, the sender.
    pub(super) s: UdpSocket,
    /// Client X, a stranger.
    pub(super) x: UdpSocket,
    /// Client Y: S's port on 127.0.0.2, or another port of 127.0.0.1 where that
    /// address cannot be bound.
    pub(super) y: UdpSocket,
    /// False once the receiver failed to empty its queue within [`DRAIN_LIMIT`].
    pub(super) pacing: bool,
    /// Datagrams the kernel dropped at the receiver's socket (full buffer), last read.
    pub(super) drops: u64,
}

/// Starts the program and binds S and X.
pub(super) fn setup(ctx: &mut Harness) -> Outcome<Net> {
    ctx.start()?;
    let s = ctx.udp_client("S (the sender)")?;
    let x = ctx.udp_client("X (a stranger)")?;
    let y = elsewhere(ctx, &s)?;
    Ok(Net {
        s,
        x,
        y,
        pacing: true,
        drops: 0,
    })
}

/// Client Y: bound to S's port number on 127.0.0.2, so a receiver that compares only
/// ports (or only addresses) lets it in. The whole 127.0.0.0/8 is loopback on Linux;
/// where 127.0.0.2 cannot be bound, Y takes another port of 127.0.0.1.
fn elsewhere(ctx: &mut Harness, s: &UdpSocket) -> Outcome<UdpSocket> {
    let port = s.local_addr().map(|a| a.port()).unwrap_or(0);
    match UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, 2), port)) {
        Ok(y) => {
            ctx.step(format!("client Y (a stranger) binds 127.0.0.2:{port}"));
            Ok(y)
        }
        Err(_) => ctx.udp_client("Y (a stranger; 127.0.0.2 cannot be bound here)"),
    }
}

/// The receive queue (bytes) and drop counter of the UDP sockets bound to `port` on
/// 127.0.0.1 or 0.0.0.0, from /proc/net/udp (this network namespace's).
pub(super) fn udp_socket_state(port: u16) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let mut found = None;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some((ip, p)) = f.get(1).and_then(|a| a.split_once(':')) else {
            continue;
        };
        if u16::from_str_radix(p, 16).ok() != Some(port) || !(ip == "0100007F" || ip == "00000000")
        {
            continue;
        }
        let rx = f
            .get(4)
            .and_then(|q| q.split(':').nth(1))
            .and_then(|r| u64::from_str_radix(r, 16).ok())
            .unwrap_or(0);
        let drops = f.get(12).and_then(|d| d.parse().ok()).unwrap_or(0);
        let (q, d) = found.unwrap_or((0, 0));
        found = Some((q + rx, d + drops));
    }
    found
}

/// Waits until the receiver has read everything queued for it; false after
/// [`DRAIN_LIMIT`] of the receiver's own time (or when its socket is gone).
pub(super) fn drained(ctx: &mut Harness, net: &mut Net) -> bool {
    let port = ctx.port;
    let queued = |ctx: &mut Harness| ctx.program().map_or(0.0, |p| p.queued_seconds());
    // The program's CPU-queue time is a /proc walk over its threads: taken only once the
    // first look finds the queue not empty, so the common case (a batch already read)
    // costs none.
    let mut wait = None;
    loop {
        match udp_socket_state(port) {
            Some((0, drops)) => {
                net.drops = net.drops.max(drops);
                return true;
            }
            Some((_, drops)) => net.drops = net.drops.max(drops),
            None => return false,
        }
        let wait = *wait.get_or_insert_with(|| Wait::start(DRAIN_LIMIT, queued(ctx)));
        if wait.over(|| queued(ctx)) {
            return false;
        }
        // A receiver empties a batch in well under a millisecond: poll finely, so the
        // long run (thousands of waits) is paced by the receiver, not by this sleep.
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Sends `plan` in order, pacing in batches.
pub(super) fn play(ctx: &mut Harness, net: &mut Net, plan: &[Dgram]) -> Outcome {
    for (i, d) in plan.iter().enumerate() {
        if i > 0 && i % BATCH == 0 && net.pacing {
            net.pacing = drained(ctx, net);
        }
        let sock = match d.who {
            Who::Sender => &net.s,
            Who::Stranger => &net.x,
            Who::Elsewhere => &net.y,
        };
        sock.send_to(&d.bytes, ctx.addr())
            .map_err(|e| Unmet::error(format!("the grader could not send a datagram: {e}")))?;
    }
    Ok(())
}

/// Parses the report line: a JSON object with the four counts as whole numbers from 0
/// to 2^64 - 1 (other fields are allowed).
pub(super) fn parse_report(line: &str) -> Result<Counts, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("it is not JSON ({e})"))?;
    let obj = v.as_object().ok_or("it is JSON but not an object {...}")?;
    let mut out = [0u64; 4];
    for (slot, name) in out.iter_mut().zip(FIELDS) {
        let f = obj
            .get(name)
            .ok_or_else(|| format!("it has no \"{name}\" field"))?;
        *slot = f
            .as_u64()
            .ok_or_else(|| format!("\"{name}\" is {f}, not a whole number from 0 to 2^64 - 1"))?;
    }
    Ok(Counts {
        received: out[0],
        lost: out[1],
        duplicates: out[2],
        out_of_order: out[3],
    })
}

/// Waits for the report line and compares it with `want`.
pub(super) fn expect_report(ctx: &mut Harness, net: &Net, want: Counts) -> Outcome {
    let line = ctx.expect_stdout_line(&format!("the report {}", want.json()), REPLY_TIMEOUT)?;
    let got = parse_report(&line).map_err(|why| {
        Unmet::fail(format!(
            "expected {} but the first line of stdout was \"{}\": {why}",
            want.json(),
            escape_bytes(line.as_bytes(), 2 * SHOW_BYTES)
        ))
    })?;
    if got == want {
        return Ok(());
    }
    let wrong: Vec<String> = FIELDS
        .iter()
        .zip(got.values().iter().zip(want.values()))
        .filter(|(_, (g, w))| *g != w)
        .map(|(name, (g, w))| format!("{name} is {g}, not {w}"))
        .collect();
    let mut msg = format!(
        "expected {} but got {}: {}",
        want.json(),
        got.json(),
        wrong.join(", ")
    );
    if net.drops > 0 {
        // Not the program's behaviour that is in question: the grader's plan did not
        // arrive as sent, so it cannot judge.
        msg.push_str(&format!(
            "; but the kernel dropped {} datagrams at the receiver's socket (its buffer was full), so the expected counts do not apply: grade again",
            net.drops
        ));
        return Err(Unmet::error(msg));
    }
    Err(Unmet::fail(msg))
}

/// Sends the plan (ending with S's end marker) and expects the exact report.
pub(super) fn run(ctx: &mut Harness, net: &mut Net, plan: &[Dgram]) -> Outcome {
    let (want, _) = expected(plan)
        .ok_or_else(|| Unmet::error("the check's plan has no end marker (a bug in lab)"))?;
    play(ctx, net, plan)?;
    expect_report(ctx, net, want)
}

/// The usual ending: S announces and sends its end marker (count `n`), then the report
/// must match.
pub(super) fn finish(
    ctx: &mut Harness,
    net: &mut Net,
    mut plan: Vec<Dgram>,
    sess: u64,
    n: u64,
) -> Outcome {
    ctx.step(format!("S sends the end marker: count {n}"));
    plan.push(end(sess, n));
    run(ctx, net, &plan)
}

/// Sequence numbers shown in a transcript line: the first 12, then how many more.
pub(super) fn list(seqs: &[u64]) -> String {
    let mut s: Vec<String> = seqs.iter().take(12).map(|n| n.to_string()).collect();
    if seqs.len() > 12 {
        s.push(format!("... ({} in all)", seqs.len()));
    }
    s.join(", ")
}

/// `k` distinct indices in `lo..hi`, sorted.
pub(super) fn pick(rng: &mut Rng, k: usize, lo: usize, hi: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(k);
    // Bounded: k is far below hi - lo in every check, so this ends in a few rounds.
    while out.len() < k.min(hi - lo) {
        let i = rng.range(lo, hi);
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    out
}

pub(super) fn session(ctx: &mut Harness) -> u64 {
    ctx.rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(v: &[u64]) -> Vec<Dgram> {
        v.iter().map(|&s| data(9, s)).collect()
    }

    #[test]
    fn expected_follows_the_contract() {
        // 0 1 3 2 2 5 1 4, count 8: 6 received, 2 lost (6 and 7), 2 duplicates, 2 out
        // of order (2 after 3, 4 after 5).
        let mut plan = seqs(&[0, 1, 3, 2, 2, 5, 1, 4]);
        plan.push(end(9, 8));
        let (c, i) = expected(&plan).unwrap();
        assert_eq!(
            c,
            Counts {
                received: 6,
                lost: 2,
                duplicates: 2,
                out_of_order: 2
            }
        );
        assert_eq!(i, 8);
    }

    #[test]
    fn expected_ignores_foreign_datagrams() {
        let mut plan = vec![
            Dgram {
                who: Who::Stranger,
                bytes: b"LAB3 garbage".to_vec(),
            },
            data(9, 0),
            from_stranger(data(9, 1)),
            data(8, 1),
            from_stranger(end(9, 1)),
            end(8, 5),
            data(9, 1),
        ];
        plan.push(end(9, 3));
        plan.push(end(9, 99));
        let (c, i) = expected(&plan).unwrap();
        assert_eq!((c.received, c.lost, c.duplicates), (2, 1, 0));
        assert_eq!(i, 7, "the first end marker of S's session");
    }

    #[test]
    fn report_parsing_takes_json_only() {
        let c = parse_report(r#"{"received": 5, "lost": 18446744073709551615, "duplicates": 0, "out_of_order": 1, "jitter_ms": 0.1}"#).unwrap();
        assert_eq!(c.values(), [5, u64::MAX, 0, 1]);
        assert!(
            parse_report("{'received': 5, 'lost': 0, 'duplicates': 0, 'out_of_order': 0}")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            parse_report(r#"{"received": 5, "lost": 0, "duplicates": 0}"#)
                .unwrap_err()
                .contains("out_of_order")
        );
        assert!(
            parse_report(r#"{"received": 5, "lost": -1, "duplicates": 0, "out_of_order": 0}"#)
                .unwrap_err()
                .contains("\"lost\" is -1")
        );
        assert!(parse_report("[1, 2]")
            .unwrap_err()
            .contains("not an object"));
        // The counts printed by Counts::json read back the same.
        let c = Counts {
            received: 1,
            lost: 2,
            duplicates: 3,
            out_of_order: 4,
        };
        assert_eq!(parse_report(&c.json()).unwrap(), c);
    }
}
