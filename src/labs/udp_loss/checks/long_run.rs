//! 03's long run: about a million data datagrams, with the receiver's memory read while
//! they arrive. A receiver that remembers every sequence number grows with the run; one
//! that keeps a window of recent ones (the contract says how far back a datagram can
//! arrive) stays the same size however long it runs. The datagrams come from a
//! generator, block by block, and lab's own [`Tally`] counts them as they leave: a plan
//! of 2^20 datagrams held in advance would cost the grader itself ~100 MB.

use std::time::{Duration, Instant};

use super::super::tally::Tally;
use super::play::{drained, expect_report, setup, Counts, SIZE};
use crate::grade::harness::{Harness, Outcome, Unmet, Wait};
use crate::grade::sandbox::thread_queued_seconds;
use crate::sys::{send_batch, MAX_BATCH};
use crate::wire::epoch_ns;
use crate::wire::probe::{Kind, Packet, Repr};

/// Data datagrams in the run. Remembering each costs a Python set ~80 bytes (~40 MiB in
/// all) and a Rust `HashSet<u64>` 9-14 MiB (its table doubles past 458,752 entries):
/// over [`GROWTH`]. A window costs the same at any length.
const DATAGRAMS: u64 = 1 << 19;

/// How much the receiver's peak resident memory may grow from the baseline to the end:
/// room for any window the contract calls for (1,024 sequence numbers; even a Python
/// set of the last 65,536 grows ~6 MiB), under what remembering everything costs.
const GROWTH: u64 = 8 << 20;

/// Datagrams before the baseline is read: by then the program has run every code path
/// once (imports done, buffers allocated).
const WARM_UP: u64 = 16 * BLOCK;

/// Datagrams per block. In each block one datagram is lost, one sent twice (the copy
/// three places later) and one overtaken by the next: exact counts stay non-trivial,
/// and nothing arrives more than a few places late (the contract allows 1,000).
const BLOCK: u64 = 1000;

/// Datagrams sent between two waits for the receiver to empty its queue: ~128 KiB of
/// receive buffer (the kernel charges ~1 KiB per small datagram) of the 208 KiB default.
const PACE: usize = 2 * MAX_BATCH;

/// How long the run may take at most: a Python receiver needs ~7 s on a loaded 2-CPU
/// runner; one that cannot keep up within this cannot be judged. Time the receiver and
/// the grader's sending thread waited for a CPU is not charged (at load 37 a correct
/// receiver had read only 342,000 datagrams in 120 s of wall time), up to
/// [`RUN_WALL_FACTOR`] times this of wall time.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// However loaded the machine, the long run stops after this many times [`RUN_LIMIT`].
const RUN_WALL_FACTOR: u32 = 3;

pub(super) fn bounded_memory(ctx: &mut Harness) -> Outcome {
    let mut net = setup(ctx)?;
    let sess = ctx.rng.next_u64();
    // Far from 0 and from 2^32: a table indexed by sequence number cannot be allocated,
    // and a 32-bit cut shows.
    let base = (1u64 << 40) + (ctx.rng.next_u64() >> 24);
    ctx.step(format!(
        "S sends {DATAGRAMS} data datagrams of session {sess:#018x}, sequence numbers {base} to {}, {BLOCK} at a time: in each thousand one is lost, one sent twice (the copy 3 places later) and one overtaken by the next; the grader waits for the receiver to read every {PACE}",
        base + DATAGRAMS - 1
    ));
    let mut tally = Tally::new();
    let mut wire: Vec<[u8; SIZE]> = Vec::with_capacity(BLOCK as usize + 1);
    let mut unpaced = 0;
    let queued = |ctx: &mut Harness| {
        ctx.program().map_or(0.0, |p| p.queued_seconds()) + thread_queued_seconds()
    };
    let run = Wait::start(RUN_LIMIT, queued(ctx)).within(RUN_WALL_FACTOR);
    let mut baseline = None;
    for b in 0..DATAGRAMS / BLOCK + 1 {
        let first = b * BLOCK;
        let len = BLOCK.min(DATAGRAMS - first);
        if len == 0 {
            break;
        }
        if baseline.is_none() && first >= WARM_UP {
            let m = ctx.peak_memory().ok_or_else(|| {
                Unmet::error("cannot read the program's memory from /proc/PID/status")
            })?;
            ctx.step(format!(
                "after {first} datagrams the receiver's peak memory (VmHWM) is {}",
                mib(m)
            ));
            baseline = Some(m);
        }
        let order = block_order(ctx, len);
        wire.clear();
        for off in order {
            let h = Repr {
                kind: Kind::Data,
                session: sess,
                seq: base + first + off,
                sent_ns: epoch_ns(),
            };
            let mut bytes = [0u8; SIZE];
            h.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            tally.data(&h, SIZE, 0);
            wire.push(bytes);
        }
        for chunk in wire.chunks(PACE) {
            send_all(&net.s, chunk, ctx.addr())?;
            unpaced += chunk.len();
            if unpaced >= PACE {
                // Paced all along, even after a wait runs out (a receiver without the CPU
                // for a second on a loaded runner): the kernel's drop counter, read while
                // waiting, then says whether anything was lost at its socket.
                drained(ctx, &mut net);
                unpaced = 0;
            }
        }
        if let Some(e) = ctx.program().and_then(|p| p.try_ended()) {
            return Err(Unmet::fail(format!(
                "the receiver {} after {} of {DATAGRAMS} datagrams, before any end marker (out of memory?)",
                crate::grade::sandbox::describe_status(e.status),
                first + len
            )));
        }
        if run.over(|| queued(ctx)) {
            let waited = run.queued_since(queued(ctx));
            return Err(Unmet::error(format!(
                "the receiver read only {} datagrams in {} s ({} s of it waiting for a CPU): too slow to finish the long run",
                first + len,
                run.elapsed().as_secs(),
                waited.max(0.0) as u64
            )));
        }
    }
    // Everything read before the peak is taken, so the last datagrams count too, and
    // the report then comes within the usual reply timeout. A receiver starved of the
    // CPU on a loaded runner gets up to 10 s to catch up.
    for _ in 0..10 {
        if drained(ctx, &mut net) {
            break;
        }
    }
    let base_mem = baseline.unwrap_or(0);
    let peak = ctx
        .peak_memory()
        .ok_or_else(|| Unmet::error("cannot read the program's memory from /proc/PID/status"))?;
    let grew = peak.saturating_sub(base_mem);
    ctx.step(format!(
        "after all {DATAGRAMS} datagrams ({:.1} s) its peak memory is {}: it grew {} (at most {} allowed)",
        run.elapsed().as_secs_f64(),
        mib(peak),
        mib(grew),
        mib(GROWTH)
    ));
    if grew > GROWTH {
        return Err(Unmet::fail(format!(
            "the receiver's memory grew by {} over {} datagrams (from {} to {}), more than the {} allowed: it keeps something for every datagram",
            mib(grew),
            DATAGRAMS - WARM_UP,
            mib(base_mem),
            mib(peak),
            mib(GROWTH)
        )));
    }
    // The counts must still be exact: a window must not cost correctness.
    ctx.step(format!("S sends the end marker: count {DATAGRAMS}"));
    let end = {
        let mut bytes = [0u8; SIZE];
        Repr {
            kind: Kind::End,
            session: sess,
            seq: DATAGRAMS,
            sent_ns: epoch_ns(),
        }
        .emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    };
    send_all(&net.s, &[end], ctx.addr())?;
    let want = Counts {
        received: tally.received,
        lost: tally.lost(Some(DATAGRAMS)),
        duplicates: tally.duplicates,
        out_of_order: tally.out_of_order,
    };
    expect_report(ctx, &net, want)
}

/// The order the offsets `0..len` of one block leave in: one lost, one overtaken by
/// the next, one sent twice (its copy three places later).
fn block_order(ctx: &mut Harness, len: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..len).collect();
    if len < 20 {
        return order;
    }
    let lost = ctx.rng.range(1, len as usize - 1);
    order.remove(lost);
    let swap = ctx.rng.range(1, order.len() - 10);
    order.swap(swap, swap + 1);
    let dup = ctx.rng.range(1, order.len() - 10);
    order.insert(dup + 3, order[dup]);
    order
}

/// Sends datagrams in `sendmmsg` batches, retrying the rest when the kernel takes only
/// part (bounded: a socket that takes nothing for 2 s is an error).
fn send_all(
    sock: &std::net::UdpSocket,
    dgrams: &[[u8; SIZE]],
    to: std::net::SocketAddr,
) -> Outcome {
    let mut sent = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while sent < dgrams.len() {
        let refs: Vec<&[u8]> = dgrams[sent..]
            .iter()
            .take(MAX_BATCH)
            .map(|d| &d[..])
            .collect();
        match send_batch(sock, &refs, Some(to)) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                return Err(Unmet::error(format!(
                    "the grader could not send a datagram: {e}"
                )))
            }
        }
    }
    Ok(())
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
