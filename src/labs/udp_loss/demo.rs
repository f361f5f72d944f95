//! The demo: sender, seeded relay and receiver on loopback, and the receiver's counts
//! set beside what the relay really did (or, with `--kernel-drops`, the kernel).

use std::fmt::Write as _;
use std::thread;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::receiver::{bind_receiver, receive, Receiver, ReceiverReport};
use super::roles::{print_receiver, settings};
use super::sender::{send, SenderReport};
use super::{Args, Rate};
use crate::core::EventLoop;
use crate::core::LoopThread;
use crate::error::LabError;
use crate::impair::{self, Relay, RelayStats};
use crate::out::{bad, bold, code, dim, good};
use crate::say;

/// The whole demo's result, the `--json` document.
#[derive(Debug, Serialize)]
struct DemoReport {
    /// The relay's seed (null with --kernel-drops).
    seed: Option<u64>,
    /// Impairment settings, in words.
    impairment: Option<String>,
    /// What the sender sent.
    sender: SenderReport,
    /// What the relay did (null with --kernel-drops): the ground truth.
    relay: Option<RelayStats>,
    /// What the receiver counted.
    receiver: ReceiverReport,
}

pub(super) fn demo(args: &Args) -> Result<()> {
    let kernel = args.kernel_drops;
    let count = if args.duration.is_some() {
        None
    } else {
        Some(args.count.unwrap_or(if kernel { 100_000 } else { 20_000 }))
    };
    let rate = args.rate.unwrap_or(if kernel {
        Rate::Max
    } else {
        Rate::Pps(10_000.0)
    });
    let pps = rate.pps(args.size);
    let seed = args.seed.unwrap_or_else(impair::random_seed);
    let text = !args.json;

    // The receiver first, so nothing is sent to a port nobody listens on.
    let rcvbuf = if kernel {
        Some(args.rcvbuf.unwrap_or(4096))
    } else {
        args.rcvbuf
    };
    let (rx_ev, rx_addr, granted) = bind_receiver(args, "127.0.0.1:0".parse()?, rcvbuf)?;
    // 2 s of silence before the first datagram means nothing is coming (plus whatever
    // delay the relay was asked to add).
    let wait = args
        .wait
        .unwrap_or(Duration::from_secs(2) + args.delay + args.jitter);
    let mut rx = Receiver::new(args, wait, text);

    // Then the relay in front of it (not with --kernel-drops).
    let mut relay_parts = None;
    let target = if kernel {
        rx_addr
    } else {
        let mut ev = EventLoop::new()?;
        let (relay, addr) = Relay::bind(
            &mut ev,
            "127.0.0.1:0".parse()?,
            rx_addr,
            settings(args, seed),
        )?;
        relay_parts = Some((ev, relay));
        addr
    };

    if text {
        say!(
            "{}",
            bold("03-udp-loss: numbered datagrams through a bad network, counted exactly")
        )?;
        let what = count.map_or_else(
            || format!("for {} s", args.duration.unwrap_or_default().as_secs_f64()),
            |c| c.to_string(),
        );
        let speed = pps.map_or("at full speed".to_string(), |p| format!("at {p:.0}/s"));
        say!(
            "  sender   -> {target}: {what} datagrams of {} bytes {speed}",
            args.size
        )?;
        if kernel {
            say!(
                "  receiver    {rx_addr}: SO_RCVBUF asked {} bytes, the kernel gave {granted} (tiny); no relay",
                rcvbuf.unwrap_or(0)
            )?;
        } else {
            say!(
                "  relay       {target} -> {rx_addr}: {}",
                settings(args, seed).describe()
            )?;
            say!("  receiver    {rx_addr}")?;
            say!(
                "  {}",
                dim(format!("repeat this exact run with --seed {seed}"))
            )?;
        }
        say!()?;
    }

    let rx_thread = thread::spawn(move || receive(rx_ev, &mut rx));
    let relay_thread = relay_parts
        .map(|(ev, relay)| LoopThread::spawn("relay", ev, relay))
        .transpose()?;

    let sent = send(target, args, pps, count, text);
    let received = rx_thread
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    let relay = match relay_thread {
        Some(relay) => {
            relay.stop()?;
            Some(relay.join()?.stats)
        }
        None => None,
    };
    let sender = sent?;
    let receiver = received?;

    let doc = DemoReport {
        seed: (!kernel).then_some(seed),
        impairment: (!kernel).then(|| settings(args, seed).describe()),
        sender,
        relay,
        receiver,
    };
    let verdict = compare(&doc);
    if args.json {
        say!("{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        print_receiver(&doc.receiver)?;
        if let Some(r) = &doc.relay {
            impair::print_stats(r)?;
        }
        explain(&doc, &verdict)?;
    }
    match verdict.mismatch {
        Some(m) => Err(LabError::failed(m).into()),
        None => Ok(()),
    }
}

/// The receiver's figures against the ground truth.
struct Verdict {
    /// Rows: what, receiver's figure, the truth, its source, equal.
    rows: Vec<(&'static str, u64, u64, String, bool)>,
    /// Set when a figure that must match does not.
    mismatch: Option<String>,
    /// Losses inside this machine that make exact matching impossible to promise.
    inexact: bool,
}

fn compare(doc: &DemoReport) -> Verdict {
    let r = &doc.receiver;
    let s = &doc.sender;
    let mut rows = Vec::new();
    let inexact;
    match &doc.relay {
        Some(rel) => {
            // Every datagram lost is one the relay dropped, or lost inside this machine
            // (a full queue in the relay or the receiver), or cut short at the receiver.
            let truth =
                rel.dropped + rel.overflow + rel.kernel_drops + r.kernel_drops + r.truncated;
            inexact = rel.overflow + rel.kernel_drops + r.kernel_drops > 0;
            let src = if truth == rel.dropped {
                "dropped by the relay".to_string()
            } else {
                format!(
                    "{} dropped + {} lost inside this machine",
                    rel.dropped,
                    truth - rel.dropped
                )
            };
            rows.push(("lost", r.lost_packets, truth, src, r.lost_packets == truth));
            rows.push((
                "duplicates",
                r.duplicates,
                rel.duplicated,
                "duplicated by the relay".into(),
                r.duplicates == rel.duplicated,
            ));
            rows.push((
                "out of order",
                r.out_of_order,
                rel.reordered,
                "reordered by the relay".into(),
                r.out_of_order == rel.reordered,
            ));
        }
        None => {
            inexact = false;
            rows.push((
                "lost",
                r.lost_packets,
                r.kernel_drops,
                "kernel drops (SO_RXQ_OVFL)".into(),
                r.lost_packets == r.kernel_drops,
            ));
        }
    }
    rows.push((
        "sent = received + lost",
        s.packets,
        r.received + r.lost_packets,
        "the receiver's sum".into(),
        s.packets == r.received + r.lost_packets,
    ));
    let mismatch = if !r.count_known {
        None // explained in the closing text; nothing exact to hold it to
    } else {
        rows.iter()
            .filter(|row| !row.4)
            // Losses inside the machine excuse the other rows, never the sum.
            .filter(|row| !inexact || row.0 == "sent = received + lost")
            .map(|row| {
                format!(
                    "the receiver's {} ({}) differs from the truth ({})",
                    row.0, row.1, row.2
                )
            })
            .next()
    };
    Verdict {
        rows,
        mismatch,
        inexact,
    }
}

fn explain(doc: &DemoReport, v: &Verdict) -> std::io::Result<()> {
    let r = &doc.receiver;
    say!()?;
    say!("{}", bold("Receiver beside the ground truth"))?;
    for (what, got, truth, src, ok) in &v.rows {
        let mark = if *ok { good("✓") } else { bad("✗") };
        say!("  {mark} {what:<24} {got:>8}   {truth:>8} {}", dim(src))?;
    }
    let mut notes = String::new();
    if r.session.is_none() {
        let _ = writeln!(
            notes,
            "  - Nothing of the session arrived before the receiver gave up (--wait): every datagram, and\n    every end marker, was lost. A receiver cannot tell \"all lost\" from \"no sender\", so it\n    stops after a timeout instead of hanging."
        );
    } else if !r.count_known {
        let _ = writeln!(
            notes,
            "  - All end markers were lost, so the sender's count is unknown: loss is counted up to the\n    highest sequence seen ({}), and any loss at the tail is invisible (iperf3 always counts this way).",
            r.packets
        );
    }
    if v.inexact {
        let _ = writeln!(
            notes,
            "  - Some datagrams were lost inside this machine (a full socket buffer), not by the relay's choice;\n    a datagram overtaken by one that was then dropped is not out of order, so those rows may differ."
        );
    }
    say!()?;
    say!("{}", bold("What you saw"))?;
    if doc.relay.is_some() {
        say!("  - The sender never learned of any of it: UDP has no acknowledgements and no retransmission.")?;
        say!("  - Loss is exact because the sender said how many it sent (its end marker, sent 5 times).")?;
        say!("  - Duplicates are counted apart, so a duplicate never hides a loss.")?;
        say!("  - Out of order: a sequence number lower than one already received. Jitter (RFC 3550) is the")?;
        say!("    smoothed variation of transit time; the relay's delay ± jitter made it, not the distance.")?;
    } else {
        say!("  - No network and no relay, and still loss: the receiver's socket buffer was full, so its kernel")?;
        say!("    dropped datagrams and counted them (SO_RXQ_OVFL). A faster sender than reader always loses.")?;
        say!("  - Raise the buffer (--rcvbuf) or read faster (batching: recvmmsg) and the loss shrinks.")?;
    }
    if !notes.is_empty() {
        say!("{}", notes.trim_end())?;
    }
    say!()?;
    say!(
        "Next: {}, {}, or split it across machines with {}",
        code("lab show 03"),
        code("lab run 03 --kernel-drops"),
        code("--role sender|relay|receiver")
    )
}
