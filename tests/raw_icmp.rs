//! Lab 04 through the real binary, always inside a user + network namespace of the
//! test's own (`unshare -Urn`, loopback brought up), so no root is needed and nothing
//! leaves the machine: replies and round-trip times agree with iputils `ping` in the
//! same namespace, tshark decodes our requests with correct checksums, and each
//! privilege path (raw socket, lab's own namespace, ping socket, none) does what it
//! says. Needs unshare and setpriv (util-linux), ip (iproute2), ping (iputils-ping)
//! and tshark; a missing tool skips loudly outside CI and fails in CI.

mod common;

use std::process::{Command, Output, Stdio};

use common::have;

/// Whether the tools are here and `unshare -Urn` works; explains a skip.
fn ready(tools: &[&str]) -> bool {
    for t in tools.iter().chain(&["unshare", "ip", "setpriv"]) {
        if !have(t) {
            assert!(
                std::env::var_os("CI").is_none(),
                "{t} is missing in CI (see .ci/apt-packages)"
            );
            eprintln!("SKIP: {t} is not installed");
            return false;
        }
    }
    let ok = Command::new("unshare")
        .args(["-Urn", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "user namespaces are off in CI"
        );
        eprintln!("SKIP: user namespaces are disabled here (unshare -Urn fails)");
    }
    ok
}

/// Runs a shell script in a fresh user + network namespace with `lo` up; `$LAB` is the
/// binary under test. `timeout` bounds the whole script.
fn in_namespace(script: &str) -> Output {
    Command::new("timeout")
        .args(["60", "unshare", "-Urn", "sh", "-c"])
        .arg(format!("ip link set lo up || exit 99\n{script}"))
        .env("LAB", env!("CARGO_BIN_EXE_lab"))
        .env("NO_COLOR", "1")
        .env("LAB_PROGRESS", common::scratch_progress())
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `time=X ms` values of the lines that also say `seq=`.
fn times(s: &str) -> Vec<f64> {
    s.lines()
        .filter(|l| l.contains("seq="))
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            t.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[test]
fn replies_and_rtt_agree_with_iputils_ping_in_the_same_namespace() {
    if !ready(&["ping"]) {
        return;
    }
    let o = in_namespace(
        "$LAB run 04 --count 5 --interval 0.05 --quiet; echo \"lab rc=$?\"\n\
         echo '=== ping'\n\
         ping -n -c 5 -i 0.05 127.0.0.1; echo \"ping rc=$?\"",
    );
    let (out, err) = text(&o);
    let (ours, theirs) = out
        .split_once("=== ping")
        .unwrap_or_else(|| panic!("{out}{err}"));
    assert!(ours.contains("lab rc=0"), "{out}{err}");
    assert!(theirs.contains("ping rc=0"), "{out}{err}");
    assert!(
        ours.contains("5 transmitted, 5 received, 0% packet loss"),
        "{ours}"
    );
    assert!(
        theirs.contains("5 packets transmitted, 5 received"),
        "{theirs}"
    );
    // Both said seq=1..5 (ping says icmp_seq=, which contains seq=).
    let (a, b) = (times(ours), times(theirs));
    assert_eq!((a.len(), b.len()), (5, 5), "{out}");
    // Same order of magnitude (a units check, ms vs us, not a speed test: the figures
    // are in BENCHMARKS.md). Loopback round trips are tens of microseconds to a few ms
    // on a loaded machine; a factor of 30 either way still catches a unit error.
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = avg(&a) / avg(&b);
    assert!(
        (1.0 / 30.0..30.0).contains(&ratio),
        "lab {a:?} vs ping {b:?}"
    );
    // And the TTL the kernel set, read from the IPv4 header.
    assert!(ours.contains("ttl=64"), "{ours}");
}

#[test]
fn tshark_decodes_our_requests_with_correct_checksums() {
    if !ready(&["tshark"]) {
        return;
    }
    // An odd size on purpose: the padded last byte is where hand-made checksums go
    // wrong. tshark validates the ICMP checksum ("[Checksum Status: Good]") and, with
    // ip.check_checksum, the kernel's IPv4 header checksum too. (tcpdump cannot be used
    // here: it insists on switching user, which a user namespace does not allow.)
    // tshark says "Capture started" slightly before it really captures, so lab pings
    // again (at most 5 times) until tshark has its 4 packets.
    let o = in_namespace(
        "t=$(mktemp -d)\n\
         tshark -i lo -f icmp -c 4 -V -l -o ip.check_checksum:TRUE > $t/out 2> $t/err &\n\
         shark=$!\n\
         for i in $(seq 200); do grep -q 'Capture started' $t/err && break; sleep 0.05; done\n\
         for i in 1 2 3 4 5; do\n\
           $LAB run 04 --count 2 --interval 0.1 --size 33 --quiet > $t/lab; echo \"lab rc=$?\"\n\
           for j in $(seq 40); do kill -0 $shark 2>/dev/null || break; sleep 0.05; done\n\
           kill -0 $shark 2>/dev/null || break\n\
         done\n\
         kill $shark 2>/dev/null; wait $shark\n\
         cat $t/out; rm -rf $t",
    );
    let (out, err) = text(&o);
    assert!(out.contains("lab rc=0"), "{out}{err}");
    let requests = out.matches("Type: 8 (Echo (ping) request)").count();
    assert!(requests >= 2, "tshark saw {requests} requests:\n{out}{err}");
    assert!(out.contains("Data (33 bytes)"), "{out}");
    // Every ICMP checksum tshark looked at is good, and so is every IPv4 header's.
    let good = out.matches("[Checksum Status: Good]").count();
    assert!(good >= 4, "{out}");
    assert!(!out.contains("Bad]"), "tshark found a bad checksum:\n{out}");
    assert!(!out.contains("[incorrect"), "{out}");
}

#[test]
fn without_cap_net_raw_lab_enters_a_namespace_of_its_own() {
    if !ready(&[]) {
        return;
    }
    // Root of the test's namespace drops CAP_NET_RAW for lab: its raw socket fails, so
    // it must go one namespace deeper to get one.
    let o = in_namespace(
        "setpriv --inh-caps=-net_raw --bounding-set=-net_raw $LAB run 04 --count 2 --interval 0.1 --quiet",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("entered a user + network namespace of its own"),
        "{out}"
    );
    assert!(
        out.contains("via raw socket in a private user + network namespace"),
        "{out}"
    );
    assert!(out.contains("2 transmitted, 2 received"), "{out}");
}

#[test]
fn a_ping_socket_is_used_where_ping_group_range_allows_it() {
    if !ready(&[]) {
        return;
    }
    let o = in_namespace(
        "echo '0 0' > /proc/sys/net/ipv4/ping_group_range\n\
         LAB_NO_NAMESPACES=1 setpriv --inh-caps=-net_raw --bounding-set=-net_raw $LAB run 04 --count 2 --interval 0.1",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("using a ping socket instead"), "{out}");
    assert!(out.contains("identifier and the checksum for us"), "{out}");
    assert!(out.contains("2 transmitted, 2 received"), "{out}");
    // What the kernel hands a ping socket has no IPv4 header.
    assert!(
        out.contains("a ping socket strips the IPv4 header"),
        "{out}"
    );
}

#[test]
fn with_no_way_to_send_icmp_it_exits_2_naming_the_fixes() {
    if !ready(&[]) {
        return;
    }
    let o = in_namespace(
        "echo '1 0' > /proc/sys/net/ipv4/ping_group_range\n\
         LAB_NO_NAMESPACES=1 setpriv --inh-caps=-net_raw --bounding-set=-net_raw $LAB run 04 --count 1",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("cannot open a socket that sends ICMP"),
        "{err}"
    );
    for fix in ["sudo", "setcap cap_net_raw+ep", "ping_group_range"] {
        assert!(err.contains(fix), "{fix} missing: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// The number in lab's "N packets on the socket were not ours" line, 0 without one.
fn not_ours(out: &str) -> u32 {
    out.lines()
        .find(|l| l.contains("packets on the socket were not ours"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_kernel_filters_what_is_not_ours_as_for_ping() {
    if !ready(&["ping"]) {
        return;
    }
    // Alone on loopback: every request we send also arrives at our raw socket unless
    // ICMP_FILTER drops echo requests, as ping's does; then nothing reaches us but the
    // replies. And the summary shows the round trips as the program saw them next to
    // the kernel-stamped ones.
    let o = in_namespace("$LAB run 04 --count 5 --interval 0.01 --quiet");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("5 transmitted, 5 received"), "{out}");
    assert_eq!(
        not_ours(&out),
        0,
        "our own requests reached the socket:\n{out}"
    );
    assert!(
        out.contains("as the program saw them: min/avg/max = "),
        "{out}"
    );
    // With another ping running: its replies reach us until the first one makes lab
    // attach the identifier filter, as ping does; then the kernel drops them. ping
    // answers ~80 times while lab runs; without the filter lab would skip them all.
    let o = in_namespace(
        "ping -n -q -c 300 -i 0.005 127.0.0.1 > /dev/null & sleep 0.3\n\
         $LAB run 04 --count 20 --interval 0.02 --quiet; echo \"lab rc=$?\"; wait",
    );
    let (out, err) = text(&o);
    assert!(out.contains("lab rc=0"), "{out}{err}");
    assert!(out.contains("20 transmitted, 20 received"), "{out}");
    let n = not_ours(&out);
    assert!(n >= 1, "the other ping's replies never showed up:\n{out}");
    assert!(
        n < 20,
        "{n} replies of another ping reached the socket:\n{out}"
    );
}

/// `(spins, sleeps, mode)` from the summary's "waited between requests" line.
fn waits(out: &str) -> (u64, u64, String) {
    let l = out
        .lines()
        .find(|l| l.starts_with("waited between requests"))
        .unwrap_or_else(|| panic!("no \"waited between requests\" line:\n{out}"));
    let mode = l.split("--wait ").nth(1).and_then(|m| m.split(')').next());
    let num = |after: &str| -> u64 {
        l.split(after)
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{l}"))
    };
    (
        num("): "),
        num("recvmsg), "),
        mode.unwrap_or("?").to_string(),
    )
}

#[test]
fn short_intervals_spin_like_ping_and_long_ones_sleep() {
    if !ready(&[]) {
        return;
    }
    // iputils ping's rule: with the next request due within 10 ms and no reply
    // pending, spin (sched_yield + non-blocking recvmsg); otherwise sleep. At -i 0.002
    // every gap after a reply is under 10 ms, so lab spins.
    let run = |flags: &str| {
        let o = in_namespace(&format!("$LAB run 04 --quiet {flags}"));
        let (out, err) = text(&o);
        assert!(o.status.success(), "{flags}: {out}{err}");
        waits(&out)
    };
    let (spins, _, mode) = run("--count 10 --interval 0.002");
    assert_eq!(mode, "auto");
    assert!(spins > 0, "at a 2 ms interval lab never spun");
    // At 20 ms each gap starts 20 ms away from the next send: sleep, never spin (a
    // spin would need the process held off the CPU for 10 ms right after a reply).
    let (spins, sleeps, _) = run("--count 5 --interval 0.02");
    assert_eq!(spins, 0, "at a 20 ms interval lab spun");
    assert!(sleeps >= 5, "{sleeps} sleeps for 5 requests");
    // The flag overrides the rule either way.
    let (spins, _, mode) = run("--count 5 --interval 0.002 --wait sleep");
    assert_eq!((spins, mode.as_str()), (0, "sleep"));
    let (spins, _, _) = run("--count 3 --interval 0.02 --wait spin");
    assert!(spins > 0, "--wait spin never spun");
}

#[test]
fn a_silent_target_gives_0_received_and_exit_1() {
    if !ready(&[]) {
        return;
    }
    let o = in_namespace(
        "echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all\n\
         $LAB run 04 --count 2 --interval 0.1 --timeout 0.5 --quiet",
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("no reply for seq=1 within 0.5 s"), "{out}");
    assert!(
        out.contains("2 transmitted, 0 received, 100% packet loss"),
        "{out}"
    );
    assert!(err.contains("no reply from 127.0.0.1"), "{err}");
}

#[test]
fn bad_flags_are_usage_errors_with_a_fix() {
    for args in [
        // Parsed (1 ms), then refused by the lab's floor, which names the range.
        &["--interval", "0.001"][..],
        &["--size", "70000"],
        &["--count", "0"],
        &["--ttl", "0"],
    ] {
        let o = common::lab()
            .args(["run", "04"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("fix:"), "{args:?}: {err}");
    }
}
