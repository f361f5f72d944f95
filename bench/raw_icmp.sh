#!/usr/bin/env bash
# Benchmark: lab 04's ping against iputils ping, same run, same namespace. Figure of
# merit: round-trip time of 64-byte ICMP echo (56 data bytes) to 127.0.0.1, p50 and p99,
# as ratios lab / ping (below 1: lab reports shorter round trips).
#
# Both run inside one private user + network namespace (unshare -Urn, lo up), so no
# root is needed and nothing leaves the machine; both are pinned to the same CPU
# (taskset -c $CPU): on loopback the kernel answers the request in the sender's own
# softirq, so one CPU is the whole path. Both take the time the same way: wall clock
# before sendto, the kernel's receive timestamp (SO_TIMESTAMP[NS]) of the reply, and
# print it with 3 decimals (1 us resolution). ROUNDS rounds alternate the tools so that
# drift on a shared machine hits both alike; each round sends COUNT requests: ping with
# -i INTERVAL (0.002: iputils ping's floor), then lab at the period ping really kept
# (longer than INTERVAL: see below). Percentiles are over all rounds.
#
# Usage: bench/raw_icmp.sh                    (needs unshare, ip, ping, taskset, python3)
#        ROUNDS=5 COUNT=2000 CPU=1 bench/raw_icmp.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-1000}
INTERVAL=${INTERVAL:-0.002}
CPU=${CPU:-1}
# LAB=path: a release binary built elsewhere from the same commit (no build here).
LAB=${LAB:-}
# LAB_FLAGS: extra flags for lab, e.g. "--wait sleep" to compare with ping's spinning.
LAB_FLAGS=${LAB_FLAGS:-}

for tool in unshare ip ping taskset python3 timeout; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 2; }
done
if [ -z "$LAB" ]; then cargo build --release --quiet; LAB=$(pwd)/target/release/lab; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# lab run records progress; a benchmark is not the user's practice: keep it out of
# ~/.local/state/lab (LAB_PROGRESS names the file; HOME too, for anything else).
export LAB_PROGRESS="$TMP/progress.json" HOME="$TMP"

# Whole run bounded: each round needs COUNT periods per tool plus start-up; ping's real
# period is longer than INTERVAL (up to ~7 ms seen on a loaded machine): allow 20 ms.
LIMIT=$(python3 -c "print(int($ROUNDS * 2 * ($COUNT * max($INTERVAL, 0.02) + 5) + 30))")
timeout "$LIMIT" unshare -Urn sh -c '
    set -e
    ip link set lo up
    for r in $(seq '"$ROUNDS"'); do
        taskset -c '"$CPU"' ping -n -q -c 1 127.0.0.1 > /dev/null  # warm the path alike
        taskset -c '"$CPU"' ping -n -c '"$COUNT"' -i '"$INTERVAL"' -s 56 127.0.0.1 > '"$TMP"'/ping.$r
        # ping -i 0.002 does not send every 2 ms: its loop sleeps the interval after
        # handling each reply, so the real period is longer (about 3 ms on our VM).
        # Pace lab at the period ping really kept in this round ("time Nms" spans
        # COUNT-1 periods), so both tools leave the CPU idle for the same gaps.
        pace=$(python3 -c "import re,sys; t=int(re.search(r\"time (\\d+)ms\", open(sys.argv[1]).read()).group(1)); print(f\"{max(t / (int(sys.argv[2]) - 1) / 1000, 0.002):.6f}\")" '"$TMP"'/ping.$r '"$COUNT"')
        echo "$pace" > '"$TMP"'/pace.$r
        taskset -c '"$CPU"' '"$LAB"' run 04 --count '"$COUNT"' --interval "$pace" --size 56 --quiet '"$LAB_FLAGS"' > '"$TMP"'/lab.$r
    done
'
python3 - "$TMP" "$ROUNDS" "$COUNT" <<'PY'
import sys, re, statistics
tmp, rounds, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def times(path):
    return [float(m.group(1)) for m in re.finditer(r"seq=\d+ ttl=\d+ time=([\d.]+) ms", open(path).read())]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
lab, ping = [], []
for r in range(1, rounds + 1):
    a, b = times(f"{tmp}/lab.{r}"), times(f"{tmp}/ping.{r}")
    lab += a; ping += b
    pace = float(open(f"{tmp}/pace.{r}").read())
    print(f"round {r} (both every {pace*1000:.2f} ms): lab {len(a)}/{count} replies p50 {pct(a,50)*1000:.0f} us p99 {pct(a,99)*1000:.0f} us; "
          f"ping {len(b)}/{count} p50 {pct(b,50)*1000:.0f} us p99 {pct(b,99)*1000:.0f} us")
for name, p in (("p50", 50), ("p99", 99)):
    x, y = pct(lab, p) * 1000, pct(ping, p) * 1000
    print(f"{name}: lab {x:.0f} us, ping {y:.0f} us, ratio lab/ping {x / y:.2f}")
print(f"mean: lab {statistics.mean(lab)*1000:.1f} us, ping {statistics.mean(ping)*1000:.1f} us; "
      f"replies lab {len(lab)}, ping {len(ping)} of {rounds * count} each")
# lab's summary also gives the round trips as the program saw them (its clock after
# recvmsg): how much later than the kernel's stamp a program holds the reply.
seen = [float(m.group(1)) for r in range(1, rounds + 1) for m in
        re.finditer(r"as the program saw them: min/avg/max = [\d.]+/([\d.]+)/", open(f"{tmp}/lab.{r}").read())]
if seen:
    print(f"lab as the program saw them: mean {statistics.mean(seen)*1000:.1f} us (kernel-stamped mean above)")
# How lab waited between requests (its summary's counts): spinning like ping below
# 10 ms with --wait auto, sleeping in ppoll otherwise.
waits = [m.groups() for r in range(1, rounds + 1) for m in
         re.finditer(r"waited between requests \(--wait (\w+)\): (\d+) spins.*?, (\d+) sleeps", open(f"{tmp}/lab.{r}").read())]
if waits:
    print("lab waits per round (--wait " + waits[0][0] + "): " + ", ".join(f"{s} spins/{z} sleeps" for _, s, z in waits))
PY
