//! The roles for two machines (`--role sender|receiver|relay`) and the receiver's
//! printed report.

use std::time::Duration;

use anyhow::Result;

use super::receiver::{bind_receiver, receive, Receiver, ReceiverReport};
use super::sender::send;
use super::{Args, Rate};
use crate::error::LabError;
use crate::impair::{self, Settings};
use crate::out::{bold, code, duration_us, warn};
use crate::say;

pub(super) fn settings(args: &Args, seed: u64) -> Settings {
    Settings {
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        delay: args.delay,
        jitter: args.jitter,
        seed,
    }
}

pub(super) fn sender_role(args: &Args) -> Result<()> {
    let pps = args.rate.unwrap_or(Rate::Max).pps(args.size);
    let count = if args.duration.is_some() {
        None
    } else {
        Some(args.count.unwrap_or(20_000))
    };
    if !args.json {
        say!(
            "{} {} datagrams of {} bytes to {} at {}",
            bold("sending"),
            count.map_or_else(
                || format!("{} s of", args.duration.unwrap_or_default().as_secs_f64()),
                |c| c.to_string()
            ),
            args.size,
            args.connect,
            pps.map_or("full speed".to_string(), |p| format!("{p:.0}/s"))
        )?;
    }
    let rep = send(args.connect, args, pps, count, !args.json)?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "sender": rep }))?
        )?;
    } else {
        say!(
            "sent {} datagrams ({} bytes) in {:.2} s, {:.0}/s, session {}; then {} end markers saying \"{}\"",
            rep.packets,
            rep.bytes,
            rep.seconds,
            rep.packets_per_second,
            rep.session,
            rep.end_markers,
            rep.packets
        )?;
    }
    Ok(())
}

pub(super) fn receiver_role(args: &Args) -> Result<()> {
    let (ev, local, granted) = bind_receiver(args, args.bind, args.rcvbuf)?;
    let wait = args.wait.unwrap_or(Duration::from_secs(60));
    if args.json {
        // stdout carries only the JSON; scripts learn the address here.
        eprintln!("receiving on {local}");
    } else {
        say!(
            "{} on {} (waiting up to {} s for a sender; receive buffer {} bytes)",
            bold("receiving"),
            local,
            wait.as_secs_f64(),
            granted
        )?;
        say!(
            "  try: {}",
            code(format!("lab run 03 --role sender --connect {local}"))
        )?;
    }
    let mut rx = Receiver::new(args, wait, !args.json);
    let rep = receive(ev, &mut rx)?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "receiver": rep }))?
        )?;
    } else {
        print_receiver(&rep)?;
    }
    if rep.session.is_none() {
        return Err(LabError::failed(format!(
            "no datagram of a probe session arrived in {} s: everything was lost, or no sender ran",
            wait.as_secs_f64()
        ))
        .into());
    }
    Ok(())
}

pub(super) fn relay_role(args: &Args) -> Result<()> {
    impair::run(&impair::ImpairArgs {
        listen: args.listen,
        forward: args.forward,
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        delay: args.delay,
        jitter: args.jitter,
        seed: args.seed,
        duration: args.duration,
        json: args.json,
    })
}

pub(super) fn print_receiver(r: &ReceiverReport) -> std::io::Result<()> {
    say!()?;
    say!("{}", bold("receiver totals"))?;
    let known = if r.count_known {
        String::new()
    } else {
        warn(" (no end marker arrived: counted up to the highest sequence seen; loss at the tail is invisible)")
    };
    say!(
        "  received {} of {} datagrams; lost {} ({:.2}%){known}",
        r.received,
        r.packets,
        r.lost_packets,
        r.lost_percent
    )?;
    say!(
        "  duplicates {}, out of order {}, jitter {}, kernel drops {}, foreign {}, truncated {}, late {}",
        r.duplicates,
        r.out_of_order,
        duration_us(r.jitter_ms * 1000.0),
        r.kernel_drops,
        r.foreign,
        r.truncated,
        r.late
    )?;
    say!(
        "  {} bytes in {:.2} s = {:.2} Mbit/s",
        r.bytes,
        r.seconds,
        r.bits_per_second / 1e6
    )?;
    for w in &r.warnings {
        say!("  {} {w}", warn("doubt:"))?;
    }
    Ok(())
}
