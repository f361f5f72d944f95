//! The grader's wiretap for 04's checks: runs the student's ping once while a raw
//! socket of the grader's own watches every request it sends, and answers as the check
//! wants: the namespace's kernel (as usual), nobody (`icmp_echo_ignore_all=1`), or the
//! grader itself with replies it forges (another identifier, IP options), written with
//! IP_HDRINCL so the grader writes the IPv4 header too.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use crate::grade::harness::{Harness, Outcome, Unmet};
use crate::grade::sandbox::describe_status;
use crate::wire::icmp::{self, Message};
use crate::wire::ipv4;

/// Interval the contract allows at most between requests (1 per 0.2 s or faster).
pub(super) const MAX_INTERVAL: Duration = Duration::from_millis(200);

/// Slack for starting the program and a loaded 2-CPU machine, on top of the time the
/// contract allows (requests x interval + timeout).
pub(super) const SLACK: Duration = Duration::from_secs(4);

/// Requests the grader keeps for inspection: a program sending more than this for a
/// handful of `--count` is already wrong, and memory stays bounded.
pub(super) const KEEP_REQUESTS: usize = 64;

/// TTL of the grader's forged replies: not 64, so a program printing a constant shows.
pub(super) const FORGED_TTL: u8 = 57;

/// Who answers the program's echo requests during a run.
#[derive(Clone, Copy)]
pub(super) enum Answer {
    /// The namespace's kernel, as usual.
    Kernel,
    /// Nobody: `icmp_echo_ignore_all=1` and the grader stays silent.
    Nobody,
    /// The grader, with the kernel silenced: for the request seen `index`-th (from 0)
    /// with identifier `ident`, the forged replies to send.
    Grader(fn(index: usize) -> &'static [Forge]),
}

/// One forged reply.
#[derive(Clone, Copy)]
pub(super) struct Forge {
    /// Added to the request's identifier (0: a reply to the program).
    pub(super) ident_offset: u16,
    /// IPv4 option bytes (a multiple of 4).
    pub(super) options: &'static [u8],
}

pub(super) const REAL: Forge = Forge {
    ident_offset: 0,
    options: &[],
};
pub(super) const FOREIGN: Forge = Forge {
    ident_offset: 0x5a5a,
    options: &[],
};
/// Seven NOPs and End of Option List (RFC 791 3.1): IHL 7, harmless to every router.
pub(super) const WITH_OPTIONS: Forge = Forge {
    ident_offset: 0,
    options: &[1, 1, 1, 1, 1, 1, 1, 0],
};

/// What a run produced.
pub(super) struct Finished {
    /// Exit code, or `None` when killed by a signal or by the grader.
    pub(super) code: Option<i32>,
    /// How it ended, in words.
    pub(super) status: String,
    /// True when the grader had to stop it.
    pub(super) hung: bool,
    /// The deadline it had.
    pub(super) limit: Duration,
    /// Its stdout.
    pub(super) stdout: String,
    /// Its output tail (stderr first), for messages.
    pub(super) output: String,
    /// The echo requests seen on the wire (whole IPv4 packets), at most [`KEEP_REQUESTS`].
    pub(super) requests: Vec<Vec<u8>>,
}

/// Sets `net.ipv4.icmp_echo_ignore_all` of the grader's namespace.
pub(super) fn ignore_echo(on: bool) -> std::io::Result<()> {
    std::fs::write(
        "/proc/sys/net/ipv4/icmp_echo_ignore_all",
        if on { "1" } else { "0" },
    )
}

/// Runs the program once with `count` requests and `timeout`, while the grader watches
/// the wire and answers as `answer` says.
pub(super) fn session(
    ctx: &mut Harness,
    count: u32,
    timeout: u32,
    size: Option<usize>,
    answer: Answer,
) -> Outcome<Finished> {
    if !ctx.isolated {
        return Err(Unmet::error(
            "04's checks run only inside the grader's own user + network namespace (they change icmp_echo_ignore_all and need CAP_NET_RAW there), and namespaces are off here (LAB_NO_NAMESPACES, or user namespaces disabled); enable user namespaces (kernel.unprivileged_userns_clone=1) and grade again",
        ));
    }
    let silent = !matches!(answer, Answer::Kernel);
    ignore_echo(silent).map_err(|e| {
        Unmet::error(format!(
            "cannot set icmp_echo_ignore_all in the grader's namespace: {e}"
        ))
    })?;
    ctx.step(match answer {
        Answer::Kernel => "the namespace's kernel answers echo requests".to_string(),
        Answer::Nobody => "icmp_echo_ignore_all=1: nobody answers".to_string(),
        Answer::Grader(_) => {
            "icmp_echo_ignore_all=1: the grader answers in the kernel's place".to_string()
        }
    });
    let result = watch(ctx, count, timeout, size, answer);
    let _ = ignore_echo(false);
    result
}

pub(super) fn watch(
    ctx: &mut Harness,
    count: u32,
    timeout: u32,
    size: Option<usize>,
    answer: Answer,
) -> Outcome<Finished> {
    let sock = crate::labs::raw_icmp::privilege::raw_socket()
        .map_err(|e| Unmet::error(format!("the grader cannot open its raw socket: {e}")))?;
    sock.set_header_included_v4(true)
        .map_err(|e| Unmet::error(format!("IP_HDRINCL: {e}")))?;
    // Short: the loop also watches the program's exit.
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| Unmet::error(format!("SO_RCVTIMEO: {e}")))?;
    let mut args: Vec<String> = [
        "--target",
        "127.0.0.1",
        "--count",
        &count.to_string(),
        "--timeout",
        &timeout.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(n) = size {
        args.extend(["--size".to_string(), n.to_string()]);
    }
    let limit = MAX_INTERVAL * count + Duration::from_secs(u64::from(timeout)) + SLACK;
    let idx = ctx.launch(&args)?;
    let began = Instant::now();
    let mut requests = Vec::new();
    let mut seen = 0usize;
    let mut replies_sent = 0usize;
    let mut buf = vec![0u8; 65_536];
    let mut hung = false;
    loop {
        let ended = ctx.program().and_then(|p| p.try_ended());
        // Read what is waiting (the last requests may still be queued after the exit).
        let got = crate::sys::recv_from_trunc(&sock, &mut buf);
        if let Ok(r) = got {
            let pkt = &buf[..r.len];
            if let Some((ident, seq, data, valid)) = request_of(pkt) {
                if requests.len() < KEEP_REQUESTS {
                    requests.push(pkt.to_vec());
                }
                if valid {
                    if let Answer::Grader(plan) = answer {
                        for f in plan(seen) {
                            send_forged(&sock, ident.wrapping_add(f.ident_offset), seq, &data, f);
                            replies_sent += 1;
                        }
                    }
                }
                seen += 1;
            }
            continue;
        }
        if ended.is_some() {
            break;
        }
        if began.elapsed() > limit {
            hung = true;
            break;
        }
    }
    let (code, status) = if hung {
        let s = ctx.stop(idx);
        (None, s)
    } else {
        let p = ctx.program().ok_or_else(|| Unmet::error("no program"))?;
        p.settle_readers();
        let e = p
            .try_ended()
            .ok_or_else(|| Unmet::error("no exit status"))?;
        (e.status.code(), describe_status(e.status))
    };
    let p = ctx.program().ok_or_else(|| Unmet::error("no program"))?;
    let stdout = String::from_utf8_lossy(&p.stdout_kept()).to_string();
    let output = p.output_tail();
    ctx.step(format!(
        "the program {status} after {} ms; the grader saw {} echo request(s){}",
        began.elapsed().as_millis(),
        seen,
        match answer {
            Answer::Grader(_) => format!(" and sent {replies_sent} forged replies"),
            _ => String::new(),
        }
    ));
    Ok(Finished {
        code,
        status,
        hung,
        limit,
        stdout,
        output,
        requests,
    })
}

/// An echo request's identifier, sequence number, data and whether its checksum is
/// right, read leniently (a wrong checksum is exactly what we want to report).
pub(super) fn request_of(pkt: &[u8]) -> Option<(u16, u16, Vec<u8>, bool)> {
    let ip = ipv4::Packet::new_checked(pkt).ok()?;
    if ip.protocol() != ipv4::Protocol::Icmp {
        return None;
    }
    let p = icmp::Packet::new_checked(ip.payload()).ok()?;
    if p.msg_type() != Message::EchoRequest {
        return None;
    }
    Some((
        p.echo_ident(),
        p.echo_seq_no(),
        p.data().to_vec(),
        p.verify_checksum() && p.msg_code() == 0,
    ))
}

/// Sends one echo reply 127.0.0.1 -> 127.0.0.1 with a header we write ourselves.
pub(super) fn send_forged(sock: &Socket, ident: u16, seq: u16, data: &[u8], f: &Forge) {
    let reply = icmp::Repr::EchoReply {
        ident,
        seq_no: seq,
        data,
    };
    let ip = ipv4::Repr {
        src_addr: Ipv4Addr::LOCALHOST,
        dst_addr: Ipv4Addr::LOCALHOST,
        protocol: ipv4::Protocol::Icmp,
        ttl: FORGED_TTL,
        ident: seq,
        dont_frag: false,
        options: f.options.to_vec(),
        payload_len: reply.buffer_len(),
    };
    let mut buf = vec![0u8; ip.total_len()];
    let mut p = ipv4::Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut p);
    reply.emit(&mut icmp::Packet::new_unchecked(p.payload_mut()));
    let _ = sock.send_to(
        &buf,
        &SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
    );
}
