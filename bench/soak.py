#!/usr/bin/env python3
"""Soak: every server of `lab` under the hostile clients of issue 18, one at a time.

For each server: start it on loopback, start its attack, and once a second a probe
connects (or sends) and times the answer; sample the server's RSS and CPU from /proc.
At the end: Ctrl-C (SIGINT) and time the stop. Prints a Markdown table for
BENCHMARKS.md. Bounded: SOAK_SECS per server (default 20, at most 60).

Usage: bench/soak.sh  (LAB=path/to/lab, SOAK_SECS=N, SOAK_ONLY=name,name)
"""
import os, signal, socket, subprocess, sys, threading, time

LAB = os.environ.get("LAB", "target/release/lab")
SECS = min(int(os.environ.get("SOAK_SECS", "20")), 60)
ONLY = [s for s in os.environ.get("SOAK_ONLY", "").split(",") if s]
HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_peak_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


# ----- attacks: each runs until `stop` is set, holding what it opened -------------------

def silent_tcp(port, n=300, payload=b""):
    """n clients that connect (and maybe send) and never read."""
    def run(stop):
        held = []
        for _ in range(n):
            if stop.is_set():
                break
            try:
                s = socket.create_connection((HOST, port), timeout=2)
                s.setblocking(False)
                if payload:
                    try:
                        s.send(payload)
                    except OSError:
                        pass
                held.append(s)
            except OSError:
                pass
        while not stop.wait(0.2):
            for s in held:
                if payload:
                    try:
                        s.send(payload)
                    except OSError:
                        pass
        for s in held:
            s.close()
    return run


def udp_flood(port, payload=b""):
    def run(stop):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not stop.is_set():
            for _ in range(1000):
                try:
                    s.sendto(payload, (HOST, port))
                except OSError:
                    pass
            time.sleep(0.001)
    return run


def latency_attack(port):
    """A 1 ns subscription, then 60 half-sent 1 MiB ping-pong messages."""
    def run(stop):
        held = []
        sub = socket.create_connection((HOST, port))
        # Subscribe frame: "LS", kind 2, flags 0, seq=samples(1), t0 0, period 1 ns, len 0
        sub.send(b"LS\x02\x00" + (1).to_bytes(4, "big") + bytes(8) + (1).to_bytes(4, "big") + bytes(2))
        held.append(sub)
        for _ in range(60):
            try:
                c = socket.create_connection((HOST, port), timeout=2)
                c.send(b"LP\x01\x01" + (1 << 20).to_bytes(4, "big"))
                c.settimeout(2)
                c.sendall(bytes((1 << 20) - 1))
                held.append(c)
            except OSError:
                pass
        stop.wait(SECS)
        for s in held:
            s.close()
    return run


# ----- probes: one answer, timed -------------------------------------------------------

# Each probe returns (connect time, first answer after it); None where there is none.
# The connect completes in the kernel's backlog (the three-way handshake does not wait
# for accept()), so "connect" is the kernel's share and "first byte" the loop's: a loop
# that stopped polling shows in the second.

def probe_tcp_first_bytes(port, send=b""):
    t0 = time.monotonic()
    with socket.create_connection((HOST, port), timeout=5) as s:
        t1 = time.monotonic()
        s.settimeout(5)
        if send:
            s.sendall(send)
        if not s.recv(1):
            raise OSError("closed before the first byte")
    return t1 - t0, time.monotonic() - t1


def probe_tcp_accept(port):
    """A server that says nothing first: accepted, then closed by us; the server's
    answer is the FIN or reset it sends back when it sees our close, which proves the
    loop handled this connection (accept, read EOF, close)."""
    t0 = time.monotonic()
    with socket.create_connection((HOST, port), timeout=5) as s:
        t1 = time.monotonic()
        s.settimeout(5)
        s.shutdown(socket.SHUT_WR)
        try:
            s.recv(1)
        except ConnectionResetError:
            pass
    return t1 - t0, time.monotonic() - t1


def probe_udp_echo(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        t0 = time.monotonic()
        s.sendto(b"probe", (HOST, port))
        s.recvfrom(100)
        return None, time.monotonic() - t0


HELLO = b"LP\x01\x01" + (64).to_bytes(4, "big")


def cases(tmp):
    p = free_port()
    yield ("01 server", [LAB, "run", "01", "--role", "server", "--bind", f"{HOST}:{p}"],
           "300 clients sending, never reading", silent_tcp(p, 300, b"x" * 65536),
           lambda: probe_tcp_first_bytes(p, b"ping\n"))
    p = free_port()
    yield ("02 server", [LAB, "run", "02", "--role", "server", "--bind", f"{HOST}:{p}"],
           "flood of empty datagrams", udp_flood(p), lambda: probe_udp_echo(p))
    p = free_port()
    yield ("03 receiver", [LAB, "run", "03", "--role", "receiver", "--bind", f"{HOST}:{p}",
                           "--wait", "1h", "--idle", "1h", "--interval", "100ms"],
           "flood of foreign datagrams", udp_flood(p, b"LU" + bytes(30)), None)
    p = free_port()
    yield ("05 chat", [LAB, "run", "05", "--role", "server", "--bind", f"{HOST}:{p}"],
           "300 clients talking, never reading", silent_tcp(p, 300, b"hello everyone\n" * 100),
           lambda: probe_tcp_first_bytes(p))
    p = free_port()
    yield ("06 receiver", [LAB, "run", "06", "--role", "receiver", "--bind", f"{HOST}:{p}",
                           "--out", os.path.join(tmp, "out.jsonl")],
           "300 clients sending a line without end", silent_tcp(p, 300, b"x" * 65536),
           lambda: probe_tcp_accept(p))
    p = free_port()
    yield ("07 server", [LAB, "run", "07", "--role", "server", "--bind", f"{HOST}:{p}",
                         "--rate", "50000", "--quiet"],
           "300 clients never reading, 50,000 samples/s", silent_tcp(p, 300),
           lambda: probe_tcp_first_bytes(p))
    # The same at the simulator's top rate: more than the loop can send to 300 clients
    # while their kernel buffers fill, so a newcomer shows whether it waits behind the
    # backlog the others still have to get (it did, up to 0.8 s, before the staged queue).
    p = free_port()
    yield ("07 server, top rate", [LAB, "run", "07", "--role", "server", "--bind", f"{HOST}:{p}",
                                   "--rate", "1000000", "--quiet"],
           "300 clients never reading, 1,000,000 samples/s", silent_tcp(p, 300),
           lambda: probe_tcp_first_bytes(p))
    p = free_port()
    yield ("latency server", [LAB, "latency", "--role", "server", "--bind", f"{HOST}:{p}"],
           "1 ns subscription + 60 half-sent 1 MiB messages", latency_attack(p),
           lambda: probe_tcp_first_bytes(p, HELLO))
    p, f = free_port(), free_port()
    yield ("impair relay", [LAB, "impair", "--listen", f"{HOST}:{p}", "--forward",
                            f"{HOST}:{f}", "--delay", "3600s"],
           "flood of empty datagrams, --delay 3600s", udp_flood(p), None)


def soak(name, argv, attack_name, attack, probe):
    srv = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    time.sleep(1.0)
    stop = threading.Event()
    t = threading.Thread(target=attack, args=(stop,), daemon=True)
    t.start()
    c0, w0 = cpu_s(srv.pid), time.monotonic()
    worst_conn, worst, late, failed, probes = 0.0, 0.0, 0, 0, 0
    end = w0 + SECS
    while time.monotonic() < end and srv.poll() is None:
        if probe:
            probes += 1
            try:
                c, d = probe()
                worst_conn = max(worst_conn, c or 0.0)
                worst = max(worst, d)
                late += (c or 0.0) + d > 0.1
            except OSError:
                failed += 1
        time.sleep(1.0)
    alive = srv.poll() is None
    cpu = (cpu_s(srv.pid) - c0) if alive else float("nan")
    wall = time.monotonic() - w0
    peak = rss_peak_kib(srv.pid) if alive else 0
    t1 = time.monotonic()
    srv.send_signal(signal.SIGINT)
    try:
        srv.wait(30)
        stop_s = f"{time.monotonic() - t1:.2f}"
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
        stop_s = "> 30 (killed)"
    stop.set()
    t.join(5)
    pr = "n/a" if not probe else (
        f"connect {worst_conn * 1000:.0f} ms, answer {worst * 1000:.0f} ms worst; "
        f"{late}/{probes} over 100 ms, {failed} failed")
    print(f"| {name} | {attack_name} | {peak / 1024:.1f} | {cpu / wall * 100:.0f}% | {pr} | {stop_s} |",
          flush=True)


def main():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        print(f"soak: {LAB}, {SECS} s per server, started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
              f"load average {os.getloadavg()[0]:.1f}, nice {os.nice(0)}")
        print("| server | attack | peak RSS MiB | CPU | probe (a new client, once a second) | Ctrl-C to exit, s |")
        print("|---|---|---|---|---|---|")
        for name, argv, aname, attack, probe in cases(tmp):
            if ONLY and not any(o in name for o in ONLY):
                continue
            soak(name, argv, aname, attack, probe)
        print(f"ended {time.strftime('%H:%M:%S UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
