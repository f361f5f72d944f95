//! `report.md`: the run explained, with both plots embedded and the table.

use std::fmt::Write;

use crate::latency::result::Run;

use super::table;

/// Renders the report.
pub fn render(run: &Run) -> String {
    let p = &run.params;
    let e = &run.env;
    let stream = run.series.iter().any(|s| s.floor.is_some());
    let mut md = String::from("# Latency report\n\n");
    let how = match (p.count, p.duration_s) {
        (Some(c), _) => format!("then {c} measured samples"),
        (None, Some(d)) => format!("then {d} s of measured samples"),
        _ => "then samples until the run was stopped".into(),
    };
    let _ = writeln!(
        md,
        "Measured against `{}` ({}). Modes: {}. For each size: {} warm-up samples, not \
         counted, {how}. Client {}{}. Seed {}.\n",
        p.target,
        if e.loopback {
            "loopback: both ends on this machine"
        } else {
            "another machine"
        },
        p.modes.join(", "),
        p.warmup,
        if p.busy_poll {
            "busy-polling"
        } else {
            "blocking in the kernel"
        },
        if p.split_writes {
            ", TCP messages written in two halves"
        } else {
            ""
        },
        p.seed
    );
    for line in how_measured(run) {
        let _ = writeln!(md, "- {line}");
    }
    md.push('\n');
    let _ = writeln!(
        md,
        "Machine: {} ({} CPUs, this process on CPUs {}), kernel {}, MTU {}, socket buffers {} / {} bytes \
         (send / receive as the kernel reports them). Clock: {}.\n",
        e.cpu,
        e.cpus,
        e.affinity,
        e.kernel,
        e.mtu.map_or("unknown".into(), |m| m.to_string()),
        e.sndbuf.map_or("?".into(), |m| m.to_string()),
        e.rcvbuf.map_or("?".into(), |m| m.to_string()),
        e.clock
    );
    md.push_str("## Percentiles\n\n![latency by percentile](percentiles.svg)\n\n");
    md.push_str(
        "Each curve is one size. Reading left to right, the x axis goes 0%, 90%, 99%, 99.9%: each step \
         is ten times rarer, so the tail gets as much room as the body. A flat curve that shoots up on \
         the right is normal: most requests are fast and a few wait for something (a timer, another \
         process on the CPU, a page fault). Compare curves at the same percentile, not their maxima; \
         the max is one sample and moves from run to run.\n\n",
    );
    md.push_str("```text\n");
    md.push_str(&table::render(run));
    md.push_str("```\n\n");
    md.push_str("## Latency against size\n\n![latency by size](by_size.svg)\n\n");
    if stream {
        md.push_str(
            "A sample waits in the producer's buffer until the buffer is full: with N samples per buffer \
             at a fixed rate, the first sample waits (N-1)/rate and the last not at all, so the average \
             age can never be below (N-1)/rate/2 (the dotted floor) and the oldest sample of each buffer \
             is always (N-1)/rate old (the dash-dot floor). Above a few samples per buffer the floor is \
             the whole story: the network adds microseconds, the buffer adds milliseconds. Small buffers \
             cost packets per second instead.\n",
        );
    } else {
        md.push_str(
            "On loopback the cost of a round trip is mostly system calls and wake-ups, not bytes: the \
             curves stay flat until messages reach several kilobytes, where copying starts to show. \
             Across a real network the slope is 8 bits per byte divided by the link speed, each way. \
             If `tcp-nagle` sits about 40 ms above `tcp` with split writes, that is Nagle's algorithm \
             holding the second half of each message until the first is acknowledged, while the \
             receiver delays its acknowledgement hoping to piggyback it on a reply.\n",
        );
    }
    md.push_str(
        "\n## Files\n\n- `summary.csv`, `summary.json`: every figure above (JSON adds parameters and \
         environment; `lab latency compare A B` reads it).\n- `*.hgrm`: one percentile distribution per \
         size, in HdrHistogram's format (paste into its online plotter).\n- `intervals.hlog`: the \
         histograms about every second, HdrHistogram's compressed V2 interval log.\n",
    );
    md
}

/// What one latency sample is, for each kind of mode in the run: ping-pong modes time
/// a request and its reply; stream mode ages samples the server produced on its own.
fn how_measured(run: &Run) -> Vec<String> {
    let p = &run.params;
    let pingpong: Vec<&str> = p
        .modes
        .iter()
        .map(String::as_str)
        .filter(|m| *m != "stream")
        .collect();
    let mut lines = Vec::new();
    if !pingpong.is_empty() {
        let modes = pingpong.join(", ");
        lines.push(match p.rate {
            Some(r) => format!(
                "{modes}: ping-pong, open loop at {r} requests per second: each latency is measured \
                 from the time the request was *meant* to be sent, so a stall counts against every \
                 request it delayed (no coordinated omission)."
            ),
            None => format!(
                "{modes}: ping-pong, closed loop: the client sends a message, the server echoes it, \
                 and the next message leaves when the reply arrives; a latency is one round trip."
            ),
        });
    }
    if p.modes.iter().any(|m| m == "stream") {
        lines.push(format!(
            "stream: one way, server to client. The server produces {} samples per second on its \
             own clock and sends them in buffers of N (the sizes); the client never asks. A \
             latency is a sample's age when its buffer arrives (arrival time minus production \
             time), so it includes the time the sample waited for its buffer to fill.",
            p.rate.unwrap_or(crate::latency::ARDUINO_RATE)
        ));
    }
    lines
}
