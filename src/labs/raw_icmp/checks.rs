//! The grader's checks for 04-raw-icmp: a student's mini ping, run as
//! `PROG --target 127.0.0.1 --count N --timeout S [--size N]`, judged by what it prints
//! (`seq=SEQ ttl=TTL time=MS ms` per reply, `N transmitted, M received` at the end), its
//! exit status (0, or 1 when nothing came back), and what it puts on the wire.
//!
//! The checks run inside the grader's own user + network namespace (`grade::ns`), where
//! the grader is root of its namespace: the program inherits CAP_NET_RAW there only, and
//! the grader can change `net.ipv4.icmp_echo_ignore_all` without touching the machine.
//! The grader keeps a raw socket of its own open during each run: it sees every request
//! the program sends (and checks its bytes), and, with the kernel told to stay silent,
//! answers in the kernel's place with replies it forges: replies with another
//! identifier, replies with IP options (IHL 7), or none at all (see [`super::tap`]).

use std::net::Ipv4Addr;

use super::tap::{session, Answer, Finished, Forge, FOREIGN, FORGED_TTL, REAL, WITH_OPTIONS};
use crate::grade::checks::{Check, Suite};
use crate::grade::harness::{Harness, Outcome, Transport, Unmet};
use crate::wire::{icmp, ipv4};

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "04-raw-icmp",
    transport: Transport::Exits,
    checks: &[
        Check {
            name: "starts",
            description: "runs with --target 127.0.0.1 --count 1 --timeout 2 and exits by itself with 0 or 1",
            mistake: "the program could not open its raw socket, crashed, or ignores --count/--timeout",
            hint: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); the grader gives you CAP_NET_RAW inside its namespace. Parse --target, --count, --timeout and --size.",
            run: starts,
            prologue: None,
        },
        Check {
            name: "replies",
            description: "3 requests to 127.0.0.1: 3 lines `seq=SEQ ttl=TTL time=MS ms`, `3 transmitted, 3 received`, exit 0",
            mistake: "a wrong checksum (the kernel drops such a request silently, so no reply ever comes), or reply lines not in the contract's format",
            hint: "Checksum: sum 16-bit big-endian words with the checksum field at 0, fold the carries back in, take the complement (RFC 1071). Print `seq=1 ttl=64 time=0.045 ms` per reply.",
            run: replies,
            prologue: None,
        },
        Check {
            name: "wire_format",
            description: "the requests the grader sees on the wire: type 8, code 0, valid checksum, one identifier, distinct sequence numbers",
            mistake: "a wrong type/code or checksum, or a new identifier per request",
            hint: "Type 8 (echo request), code 0; identifier fixed for the run (ping uses its pid & 0xffff); sequence 1, 2, 3...",
            run: wire_format,
            prologue: None,
        },
        Check {
            name: "own_requests",
            description: "only the first request is answered: one reply line, `2 transmitted, 1 received`",
            mistake: "the program counts its own echo requests (type 8), which a raw socket on loopback sees go by, as replies",
            hint: "A reply is type 0. Skip type 8: on loopback your raw socket receives your own requests too.",
            run: own_requests,
            prologue: None,
        },
        Check {
            name: "other_identifier",
            description: "each request also gets a reply with another identifier, and request 2 gets only that one: `3 transmitted, 2 received`",
            mistake: "no identifier check: another program's replies (the grader injects some) are counted as yours",
            hint: "Keep only type 0 replies whose identifier is yours and whose sequence number you sent.",
            run: other_identifier,
            prologue: None,
        },
        Check {
            name: "ip_options",
            description: "replies carry 8 bytes of IP options (IHL 7) and TTL 57: still counted, ttl=57 printed",
            mistake: "the ICMP message read at a fixed offset of 20 bytes instead of IHL x 4",
            hint: "ihl = (packet[0] & 0x0f) * 4; the ICMP message starts at packet[ihl:]. TTL is byte 8 of the IPv4 header.",
            run: ip_options,
            prologue: None,
        },
        Check {
            name: "silent_target",
            description: "a target that never answers (icmp_echo_ignore_all=1): `2 transmitted, 0 received` and exit 1, within the timeout",
            mistake: "recv without a timeout blocks forever when no reply comes",
            hint: "Set a receive timeout (settimeout / set_read_timeout) and stop waiting --timeout seconds after the last request.",
            run: silent_target,
            prologue: None,
        },
        Check {
            name: "odd_size",
            description: "--size 33: requests of 8 + 33 bytes whose checksum is right, both answered",
            mistake: "the checksum of an odd number of bytes: the last byte is the HIGH half of a word padded with zero",
            hint: "If the length is odd, add a zero byte at the END before summing 16-bit big-endian words (RFC 1071 section 1).",
            run: odd_size,
            prologue: None,
        },
    ],
};

/// What the program printed, parsed.
#[derive(Debug, Default)]
struct Printed {
    /// (seq, ttl, ms) per line with `seq=` `ttl=` `time=`.
    replies: Vec<(u32, u32, f64)>,
    /// (transmitted, received) from the summary line.
    summary: Option<(u32, u32)>,
}

/// The number right after `key` in `line`.
fn number_after(line: &str, key: &str) -> Option<String> {
    let at = line.find(key)? + key.len();
    let s: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!s.is_empty()).then_some(s)
}

fn parse_output(stdout: &str) -> Printed {
    let mut p = Printed::default();
    for line in stdout.lines() {
        if let (Some(seq), Some(ttl), Some(ms)) = (
            number_after(line, "seq="),
            number_after(line, "ttl="),
            number_after(line, "time="),
        ) {
            if let (Ok(seq), Ok(ttl), Ok(ms)) = (seq.parse(), ttl.parse(), ms.parse()) {
                p.replies.push((seq, ttl, ms));
            }
        }
        if let Some(at) = line.find(" transmitted, ") {
            let tx = line[..at]
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|s| s.parse().ok());
            let rx = line[at + 14..]
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok());
            if let (Some(tx), Some(rx)) = (tx, rx) {
                p.summary = Some((tx, rx));
            }
        }
    }
    p
}

/// Fails unless the program exited by itself in time.
fn exited(ctx: &mut Harness, f: &Finished) -> Outcome {
    if f.hung {
        return Err(Unmet::fail(format!(
            "the program was still running after {} s (it was given --count and --timeout, so it should stop by itself); stopped: {}",
            f.limit.as_secs(),
            f.status
        )));
    }
    if f.code.is_none() {
        return Err(Unmet::fail(format!(
            "the program {}; its output:\n{}",
            f.status,
            f.output.trim_end()
        )));
    }
    ctx.step(format!("it exited with status {}", f.code.unwrap_or(-1)));
    Ok(())
}

/// Expects the summary `tx transmitted, rx received`, `rx` reply lines with distinct
/// sequence numbers, and the exit status.
fn expect_counts(ctx: &mut Harness, f: &Finished, tx: u32, rx: u32) -> Outcome<Printed> {
    exited(ctx, f)?;
    let printed = parse_output(&f.stdout);
    ctx.step(format!(
        "the grader expects {rx} line(s) `seq=SEQ ttl=TTL time=MS ms` and `{tx} transmitted, {rx} received`"
    ));
    let Some((got_tx, got_rx)) = printed.summary else {
        return Err(Unmet::fail(format!(
            "no summary line `{tx} transmitted, {rx} received` on stdout; it printed:\n{}",
            shown(&f.stdout)
        )));
    };
    if got_rx > rx && !printed.replies.is_empty() {
        return Err(Unmet::fail(format!(
            "`{got_tx} transmitted, {got_rx} received` but only {rx} real replies were sent to it; it printed:\n{}",
            shown(&f.stdout)
        )));
    }
    if (got_tx, got_rx) != (tx, rx) {
        return Err(Unmet::fail(format!(
            "expected `{tx} transmitted, {rx} received` but got `{got_tx} transmitted, {got_rx} received`; it printed:\n{}",
            shown(&f.stdout)
        )));
    }
    let mut seqs: Vec<u32> = printed.replies.iter().map(|r| r.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    if printed.replies.len() != rx as usize || seqs.len() != rx as usize {
        return Err(Unmet::fail(format!(
            "expected {rx} reply line(s) with distinct seq=, got {}; it printed:\n{}",
            printed.replies.len(),
            shown(&f.stdout)
        )));
    }
    let want = if rx == 0 { 1 } else { 0 };
    if f.code != Some(want) {
        return Err(Unmet::fail(format!(
            "exit status {} but the contract says {want} ({})",
            f.code.unwrap_or(-1),
            if want == 0 {
                "replies came back"
            } else {
                "nothing came back"
            }
        )));
    }
    Ok(printed)
}

/// The first lines of what a program printed, for messages.
fn shown(stdout: &str) -> String {
    let lines: Vec<&str> = stdout.lines().take(12).collect();
    if lines.is_empty() {
        "(nothing)".into()
    } else {
        lines.join("\n")
    }
}

/// Why requests were not answered, from what the grader saw on the wire.
fn wire_diagnosis(f: &Finished) -> Option<String> {
    if f.requests.is_empty() {
        return Some("the grader saw no echo request from the program on the wire: is it sending type 8 to --target?".into());
    }
    for pkt in &f.requests {
        let ip = ipv4::Packet::new_checked(&pkt[..]).ok()?;
        let p = icmp::Packet::new_checked(ip.payload()).ok()?;
        if !p.verify_checksum() {
            return Some(format!(
                "request seq={} carries ICMP checksum 0x{:04x} but its bytes need 0x{:04x}: the kernel drops a request with a wrong checksum silently, so no reply ever comes ({} bytes of ICMP{})",
                p.echo_seq_no(),
                p.checksum(),
                p.computed_checksum(),
                ip.payload().len(),
                if ip.payload().len() % 2 == 1 { ", an odd length: the last byte is the high half of a zero-padded word" } else { "" }
            ));
        }
        if p.msg_code() != 0 {
            return Some(format!(
                "request seq={} has code {}, not 0: the kernel does not answer it",
                p.echo_seq_no(),
                p.msg_code()
            ));
        }
    }
    None
}

// ----- the checks, in order ---------------------------------------------------------

fn starts(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 1, 2, None, Answer::Kernel)?;
    if f.hung {
        return Err(Unmet::error(format!(
            "`--count 1 --timeout 2` did not end within {} s: does it read --count and --timeout, and stop after the last reply or timeout?",
            f.limit.as_secs()
        )));
    }
    match f.code {
        Some(0) | Some(1) => Ok(()),
        _ => {
            let perm = f.output.contains("ermission") || f.output.contains("not permitted");
            Err(Unmet::error(format!(
                "the program {}{}; its output:\n{}",
                f.status,
                if perm {
                    " (a permission error: here it holds CAP_NET_RAW in the grader's namespace, so a raw ICMP socket should open; by hand, use sudo or `unshare -Urn`)"
                } else {
                    ""
                },
                f.output.trim_end()
            )))
        }
    }
}

fn replies(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 3, 2, None, Answer::Kernel)?;
    let out = expect_counts(ctx, &f, 3, 3);
    match out {
        Ok(_) => Ok(()),
        Err(mut u) => {
            if let Some(why) = wire_diagnosis(&f) {
                u.message = format!("{why}\n{}", u.message);
            }
            Err(u)
        }
    }
}

fn wire_format(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 3, 1, None, Answer::Kernel)?;
    exited(ctx, &f)?;
    ctx.step("the grader checks every echo request it saw on the wire".to_string());
    if let Some(why) = wire_diagnosis(&f) {
        return Err(Unmet::fail(why));
    }
    let mut idents = Vec::new();
    let mut seqs = Vec::new();
    for pkt in &f.requests {
        let ip = ipv4::Packet::new_checked(&pkt[..]).map_err(|e| Unmet::fail(e.to_string()))?;
        if ip.dst_addr() != Ipv4Addr::LOCALHOST {
            return Err(Unmet::fail(format!(
                "a request went to {}, not to --target 127.0.0.1",
                ip.dst_addr()
            )));
        }
        let p = icmp::Packet::new_checked(ip.payload()).map_err(|e| Unmet::fail(e.to_string()))?;
        idents.push(p.echo_ident());
        seqs.push(p.echo_seq_no());
    }
    if f.requests.len() != 3 {
        return Err(Unmet::fail(format!(
            "--count 3 but the grader saw {} echo requests",
            f.requests.len()
        )));
    }
    idents.dedup();
    if idents.len() != 1 {
        return Err(Unmet::fail(format!("the requests used identifiers {idents:?}: one identifier per run lets replies be matched")));
    }
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seqs.len() {
        return Err(Unmet::fail(format!(
            "sequence numbers {seqs:?} repeat: each request needs its own"
        )));
    }
    Ok(())
}

/// Answers only the first request.
fn first_only(index: usize) -> &'static [Forge] {
    if index == 0 {
        &[REAL]
    } else {
        &[]
    }
}

fn own_requests(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 2, 1, None, Answer::Grader(first_only))?;
    expect_counts(ctx, &f, 2, 1).map(|_| ()).map_err(|mut u| {
        if !u.error {
            u.message.push_str("\n(only the first request was answered: a second reply line or `received 2` came from the program's own type-8 request)");
        }
        u
    })
}

/// A foreign reply to every request; a real one to all but the second.
fn foreign_plan(index: usize) -> &'static [Forge] {
    if index == 1 {
        &[FOREIGN]
    } else {
        &[FOREIGN, REAL]
    }
}

fn other_identifier(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 3, 1, None, Answer::Grader(foreign_plan))?;
    expect_counts(ctx, &f, 3, 2).map(|_| ()).map_err(|mut u| {
        if !u.error {
            u.message.push_str(&format!(
                "\n(each request got a reply whose identifier is yours + 0x{:04x}; the second got only that one)",
                FOREIGN.ident_offset
            ));
        }
        u
    })
}

fn with_options(_: usize) -> &'static [Forge] {
    &[WITH_OPTIONS]
}

fn ip_options(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 2, 1, None, Answer::Grader(with_options))?;
    let printed = expect_counts(ctx, &f, 2, 2).map_err(|mut u| {
        if !u.error {
            u.message.push_str("\n(the replies' IPv4 headers were 28 bytes: IHL 7, with 8 bytes of options; ICMP starts at IHL x 4)");
        }
        u
    })?;
    for (seq, ttl, _) in &printed.replies {
        if *ttl != u32::from(FORGED_TTL) {
            return Err(Unmet::fail(format!(
                "seq={seq} printed ttl={ttl} but the reply's TTL (byte 8 of its IPv4 header) was {FORGED_TTL}"
            )));
        }
    }
    Ok(())
}

fn silent_target(ctx: &mut Harness) -> Outcome {
    let f = session(ctx, 2, 1, None, Answer::Nobody)?;
    expect_counts(ctx, &f, 2, 0).map(|_| ())
}

fn odd_size(ctx: &mut Harness) -> Outcome {
    let size = 33;
    let f = session(ctx, 2, 2, Some(size), Answer::Kernel)?;
    for pkt in &f.requests {
        if let Ok(ip) = ipv4::Packet::new_checked(&pkt[..]) {
            let n = ip.payload().len();
            if n != icmp::HEADER_LEN + size {
                return Err(Unmet::fail(format!(
                    "--size {size} but a request carried {n} bytes of ICMP, not 8 + {size}: read --size"
                )));
            }
        }
    }
    if let Some(why) = wire_diagnosis(&f) {
        return Err(Unmet::fail(why));
    }
    expect_counts(ctx, &f, 2, 2).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_are_read_like_the_contract_says() {
        let p = parse_output(
            "PING 127.0.0.1\n64 bytes from 127.0.0.1: seq=1 ttl=64 time=0.045 ms\nseq=2 ttl=57 time=1 ms\n\n2 transmitted, 2 received, 0% packet loss\n",
        );
        assert_eq!(p.replies, vec![(1, 64, 0.045), (2, 57, 1.0)]);
        assert_eq!(p.summary, Some((2, 2)));
        assert_eq!(parse_output("garbage seq= ttl=x\n").replies, vec![]);
        assert_eq!(
            parse_output("--- 3 transmitted, 0 received").summary,
            Some((3, 0))
        );
    }
}
