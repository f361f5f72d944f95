//! Checks for 02-udp-echo: every datagram (1 to 65507 bytes) goes back, unchanged, to
//! the address it came from.

use crate::grade::checks::{starts, Check, Suite};
use crate::grade::harness::{Harness, Outcome, Transport};

/// The checks, in order.
pub const SUITE: Suite = Suite {
    lab: "02-udp-echo",
    transport: Transport::Udp,
    checks: &[
        Check {
            name: "starts",
            description: "starts with --port N and binds UDP 127.0.0.1:N",
            mistake: "the server must take its port from `--port N` and bind it",
            hint: "Parse the argument after --port and bind a UDP socket to 127.0.0.1 (or 0.0.0.0) on it.",
            run: starts,
            prologue: None,
        },
        Check {
            name: "one_byte",
            description: "a 1-byte datagram comes back",
            mistake: "the echo must be the datagram itself, sent back with sendto() to the sender",
            hint: "data, addr = sock.recvfrom(65535); sock.sendto(data, addr)",
            run: one_byte,
            prologue: None,
        },
        Check {
            name: "size_1472",
            description: "a 1472-byte datagram (the most one Ethernet frame carries) comes back whole",
            mistake: "a receive buffer smaller than the datagram: the kernel silently cuts it",
            hint: "Receive into a 65535-byte buffer: recvfrom(65535).",
            run: size_1472,
            prologue: None,
        },
        Check {
            name: "size_8000",
            description: "an 8000-byte datagram comes back whole",
            mistake: "a receive buffer of 4096 or 8192 bytes truncates larger datagrams",
            hint: "Receive into a 65535-byte buffer: recvfrom(65535).",
            run: size_8000,
            prologue: None,
        },
        Check {
            name: "size_65507",
            description: "a 65507-byte datagram (the largest UDP over IPv4) comes back whole",
            mistake: "the buffer must hold the largest datagram: 65535 - 20 (IP) - 8 (UDP) = 65507 bytes",
            hint: "Receive into a 65535-byte buffer; 65507 is the most UDP over IPv4 can carry.",
            run: size_65507,
            prologue: None,
        },
        Check {
            name: "binary_bytes",
            description: "random bytes (zeros, newlines, invalid UTF-8, trailing spaces) come back unchanged",
            mistake: "treating datagrams as text: decoding, stripping or re-encoding changes the bytes",
            hint: "Echo the bytes exactly as received; do not decode(), strip() or add a newline.",
            run: binary_bytes,
            prologue: None,
        },
        Check {
            name: "two_senders",
            description: "two clients interleave datagrams; each echo goes to its own sender",
            mistake: "replying to a fixed address (the first client, or a hard-coded port) instead of recvfrom()'s",
            hint: "Reply to the address that recvfrom() returned with this very datagram.",
            run: two_senders,
            prologue: None,
        },
        Check {
            name: "burst",
            description: "a burst of 64 datagrams comes back, each intact and in order",
            mistake: "the server stops after one datagram or handles them out of order",
            hint: "recvfrom() and sendto() in a loop that never ends.",
            run: burst,
            prologue: None,
        },
    ],
};

fn echo_of_size(ctx: &mut Harness, n: usize) -> Outcome {
    ctx.start()?;
    let c = ctx.udp_client("A")?;
    let data = ctx.rng.bytes(n);
    ctx.send_to("A", &c, &data)?;
    ctx.expect_datagram("A", &c, &data)
}

fn one_byte(ctx: &mut Harness) -> Outcome {
    echo_of_size(ctx, 1)
}

fn size_1472(ctx: &mut Harness) -> Outcome {
    echo_of_size(ctx, 1472)
}

fn size_8000(ctx: &mut Harness) -> Outcome {
    echo_of_size(ctx, 8000)
}

fn size_65507(ctx: &mut Harness) -> Outcome {
    echo_of_size(ctx, 65507)
}

fn binary_bytes(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let c = ctx.udp_client("A")?;
    let mut data = b"\x00\xff\xfe line\n \r\n\t ".to_vec();
    let n = ctx.rng.range(16, 64);
    data.extend(ctx.rng.bytes(n));
    data.extend_from_slice(b"  \n");
    ctx.send_to("A", &c, &data)?;
    ctx.expect_datagram("A", &c, &data)
}

fn two_senders(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let a = ctx.udp_client("A")?;
    let b = ctx.udp_client("B")?;
    for i in 0..3 {
        let da = format!("from A #{i} {}", ctx.rng.word(6)).into_bytes();
        let db = format!("from B #{i} {}", ctx.rng.word(6)).into_bytes();
        ctx.send_to("A", &a, &da)?;
        ctx.expect_datagram("A", &a, &da)?;
        ctx.send_to("B", &b, &db)?;
        ctx.expect_datagram("B", &b, &db)?;
    }
    Ok(())
}

fn burst(ctx: &mut Harness) -> Outcome {
    ctx.start()?;
    let a = ctx.udp_client("A")?;
    // 64 datagrams of up to 512 bytes: 32 KiB, well inside the 1 MiB receive buffer
    // the client asked for, so loopback loses none.
    let all: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let n = ctx.rng.range(1, 512);
            let mut d = format!("{i:03}:").into_bytes();
            d.extend(ctx.rng.bytes(n));
            d
        })
        .collect();
    ctx.step("client A sends 64 datagrams back to back (each \"NNN:\" + random bytes)");
    for d in &all {
        a.send_to(d, ctx.addr())
            .map_err(|e| crate::grade::harness::Unmet::error(e.to_string()))?;
    }
    let steps = ctx.transcript.len();
    for d in &all {
        ctx.expect_datagram("A", &a, d)?;
    }
    // Keep the transcript short: one line for 64 identical expectations.
    ctx.transcript.truncate(steps);
    ctx.step("client A received all 64 echoes, each intact, in order");
    Ok(())
}
