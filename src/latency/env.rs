//! The environment a run is recorded with: a latency figure means little without the
//! kernel, the CPU, where the process was allowed to run, and the socket sizes.

use std::fs;
use std::net::IpAddr;

use super::result::Environment;

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Reads what Linux tells about this machine; unknown fields say so instead of failing.
pub fn detect(
    target: IpAddr,
    buffers: (Option<usize>, Option<usize>),
    clock: String,
) -> Environment {
    let cpu = read("/proc/cpuinfo")
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let affinity = read("/proc/self/status")
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Cpus_allowed_list"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let loopback = target.is_loopback();
    Environment {
        kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        affinity,
        loopback,
        // Across machines the route decides the interface; we do not guess.
        mtu: if loopback {
            read("/sys/class/net/lo/mtu").and_then(|m| m.parse().ok())
        } else {
            None
        },
        sndbuf: buffers.0,
        rcvbuf: buffers.1,
        clock,
    }
}
