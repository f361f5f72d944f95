#!/usr/bin/env bash
# Benchmark: lab 04's ping against iputils ping, same run, same namespace. Figure of
# merit: round-trip time of 64-byte ICMP echo (56 data bytes) to 127.0.0.1, p50 and p99,
# as ratios lab / ping (below 1: lab reports shorter round trips), each with a bootstrap
# 95% interval, next to an A/A control: ping against ping.
#
# Both run inside one private user + network namespace (unshare -Urn, lo up), so no
# root is needed and nothing leaves the machine; both are pinned to the same CPU
# (taskset -c $CPU): on loopback the kernel answers the request in the sender's own
# softirq, so one CPU is the whole path. Both take the time the same way: wall clock
# before sendto, the kernel's receive timestamp (SO_TIMESTAMP[NS]) of the reply, and
# print it in ms with 3 decimals: 1 us steps, the finest figure both print (ping's
# stamps are timevals, whole microseconds; lab cuts its nanosecond stamps to whole
# microseconds before subtracting, so both step alike).
#
# Why the design (a tail is the machine's as much as the program's): p99 of a few
# thousand round trips is the worst few dozen, and on a shared VM whole seconds go
# slow now and then, for any program. So the tools take turns in many short rounds
# (ROUNDS x COUNT requests), in an order that rotates and reverses (every tool runs in
# every position equally often over 2 x tools rounds), so slow stretches hit each tool
# alike; samples are pooled per tool. Tools: `ping` and `lab`, plus `ping2`, a second
# iputils ping run as if it were another tool: ping2 / ping is the A/A control, the
# ratio two identical programs show, i.e. the method's resolution. LAB_B=path adds
# `lab_b`, another lab binary, for before/after comparisons within one run.
#
# Statistics (python3, no numpy): percentiles interpolated within the 1 us print steps
# (grouped data: a value printed as k us stands for [k-0.5, k+0.5)), so a shift of a
# fraction of a step shows; intervals by bootstrap over rounds (whole rounds drawn with
# replacement, the same rounds for every tool, BOOT times): rounds, not single replies,
# are the independent units, since replies within a round share its machine state.
#
# Pacing: both get the same -i / --interval and both wait as ping's main_loop does
# (spin with sched_yield below 10 ms), so both really send every INTERVAL plus however
# late their spin notices it is time, on a busy machine often a scheduler slice of
# someone else's. The real periods are reported: a longer period means more of other
# programs' work between two requests, and longer round trips (seen at 17:00 with lab
# at 2 ms and at ping's 3.2 ms: p50 7 vs 10 us). PACE=ping paces lab at the period the
# latest ping run kept instead (what this script did while lab slept between requests).
#
# Usage: bench/raw_icmp.sh          (needs unshare, ip, ping, taskset, python3, timeout;
#        build first, e.g. `nice -n 19 cargo build --release --locked`, so that the
#        build this script starts when LAB is unset has nothing to do under the lock)
#        ROUNDS=24 COUNT=500 CPU=1 bench/raw_icmp.sh       (the defaults; ~90 s)
#        LAB=path LAB_B=path-to-other-build bench/raw_icmp.sh
#        AA=0 (no ping2), INTERVAL=0.02 (both sleep), LAB_FLAGS="--wait sleep"
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-24}
COUNT=${COUNT:-500}
INTERVAL=${INTERVAL:-0.002}
CPU=${CPU:-1}
AA=${AA:-1}
BOOT=${BOOT:-2000}
PACE=${PACE:-same}
# LAB=path: a release binary built elsewhere from the same commit (no build here).
LAB=${LAB:-}
LAB_B=${LAB_B:-}
# LAB_FLAGS: extra flags for lab, e.g. "--wait sleep" to compare with ping's spinning.
LAB_FLAGS=${LAB_FLAGS:-}

for tool in unshare ip ping taskset python3 timeout; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 2; }
done
if [ -z "$LAB" ]; then cargo build --release --locked --quiet; LAB=$(pwd)/target/release/lab; fi
TOOLS="ping lab"
[ "$AA" = 1 ] && TOOLS="$TOOLS ping2"
[ -n "$LAB_B" ] && TOOLS="$TOOLS lab_b"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# lab run records progress; a benchmark is not the user's practice: keep it out of
# ~/.local/state/lab (LAB_PROGRESS names the file; HOME too, for anything else).
export LAB_PROGRESS="$TMP/progress.json" HOME="$TMP"
echo "raw_icmp bench: $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), nice $(nice)," \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), tools: $TOOLS, $ROUNDS rounds x $COUNT"

# The plan: one "round tool" line per run, the order rotated by the round and reversed
# every other cycle.
python3 - "$ROUNDS" $TOOLS > "$TMP/plan" <<'PY'
import sys
rounds, tools = int(sys.argv[1]), sys.argv[2:]
k = len(tools)
for r in range(rounds):
    order = tools[r % k:] + tools[:r % k]
    if (r // k) % 2:
        order.reverse()
    for t in order:
        print(r + 1, t)
PY

cat > "$TMP/inner.sh" <<'SH'
set -eu
ip link set lo up
pin="taskset -c $CPU"
# The first pace: a short ping of its own (also wakes the path up).
$pin ping -n -q -c 100 -i "$INTERVAL" -s 56 127.0.0.1 > "$TMP/calib"
pace_of() {  # the period a ping run really kept ("time Nms" spans count-1 periods)
    python3 -c 'import re,sys; t=int(re.search(r"time (\d+)ms", open(sys.argv[1]).read()).group(1)); print(f"{max(t / (int(sys.argv[2]) - 1) / 1000, float(sys.argv[3])):.6f}")' "$1" "$2" "$INTERVAL"
}
pace=$INTERVAL
[ "$PACE" = ping ] && pace=$(pace_of "$TMP/calib" 100)
while read -r r tool; do
    $pin ping -n -q -c 1 127.0.0.1 > /dev/null  # warm the path alike before every run
    out="$TMP/r$r.$tool"
    case $tool in
        ping|ping2)
            $pin ping -n -c "$COUNT" -i "$INTERVAL" -s 56 127.0.0.1 > "$out"
            [ "$PACE" = ping ] && pace=$(pace_of "$out" "$COUNT") ;;
        lab)   $pin "$LAB" run 04 --count "$COUNT" --interval "$pace" --size 56 --quiet $LAB_FLAGS > "$out" ;;
        lab_b) $pin "$LAB_B" run 04 --count "$COUNT" --interval "$pace" --size 56 --quiet $LAB_FLAGS > "$out" ;;
    esac
    echo "$pace" > "$out.pace"
done < "$TMP/plan"
SH

# Whole run bounded: each run needs COUNT periods plus start-up; ping's real period is
# longer than INTERVAL (up to ~7 ms seen on a loaded machine): allow 20 ms.
NTOOLS=$(echo $TOOLS | wc -w)
LIMIT=$(python3 -c "print(int($ROUNDS * $NTOOLS * ($COUNT * max($INTERVAL, 0.02) + 5) + 60))")
export TMP CPU INTERVAL COUNT LAB LAB_B LAB_FLAGS PACE
START=$(date +%s)
timeout "$LIMIT" unshare -Urn bash "$TMP/inner.sh"
echo "measured for $(( $(date +%s) - START )) s; load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$TMP" "$ROUNDS" "$COUNT" "$BOOT" $TOOLS <<'PY'
import sys, re, random, statistics
from collections import Counter
tmp, rounds, count, boot, tools = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]

def times_us(path):
    """Round trips in whole us as printed (3 decimals in ms; DUP lines left out)."""
    return [round(float(m.group(1)) * 1000) for m in
            re.finditer(r"seq=\d+ ttl=\d+ time=([\d.]+) ms(?! \(DUP)", open(path).read())]

# hist[tool][round] = Counter of us values
hist = {t: [] for t in tools}
for r in range(1, rounds + 1):
    for t in tools:
        v = times_us(f"{tmp}/r{r}.{t}")
        if len(v) < count:
            print(f"round {r}: {t} got {len(v)}/{count} replies")
        hist[t].append(Counter(v))

def quantile(h, p):
    """p-quantile of a histogram of 1 us steps, interpolated within the step."""
    n = sum(h.values())
    target, cum = p * n, 0
    for k in sorted(h):
        c = h[k]
        if cum + c >= target:
            return k - 0.5 + (target - cum) / c
        cum += c
    return float(max(h))

# For the bootstrap, per tool: the distinct values (K) and, per round, how many of its
# values are <= each of them (cumulative counts). A resample is a weight per round (how
# often it was drawn); a pooled percentile is a binary search over K of the weighted
# cumulative counts: fast enough in plain python for thousands of resamples.
table = {}
for t in tools:
    keys = sorted(set().union(*hist[t]))
    cums = []
    for h in hist[t]:
        c, row = 0, []
        for k in keys:
            c += h.get(k, 0)
            row.append(c)
        cums.append(row)
    sums = [sum(k * c for k, c in h.items()) for h in hist[t]]
    table[t] = (keys, cums, sums)

def stats(w):
    """p50, p99 and mean per tool, pooling round i w[i] times."""
    out = {}
    for t in tools:
        keys, cums, sums = table[t]
        live = [(wi, cums[i]) for i, wi in enumerate(w) if wi]
        at = lambda j: sum(wi * row[j] for wi, row in live)
        n = at(len(keys) - 1)
        res = []
        for p in (0.50, 0.99):
            target = p * n
            lo, hi = 0, len(keys) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if at(mid) >= target:
                    hi = mid
                else:
                    lo = mid + 1
            below = at(lo - 1) if lo else 0
            res.append(keys[lo] - 0.5 + (target - below) / (at(lo) - below))
        res.append(sum(wi * sums[i] for i, wi in enumerate(w)) / n)
        out[t] = tuple(res)
    return out

full = stats([1] * rounds)
for t in tools:  # the fast path agrees with the plain one
    h = sum(hist[t], Counter())
    assert abs(full[t][1] - quantile(h, 0.99)) < 1e-9, (t, full[t], quantile(h, 0.99))
rng = random.Random(4)
def draw():
    w = [0] * rounds
    for _ in range(rounds):
        w[rng.randrange(rounds)] += 1
    return w
draws = [stats(draw()) for _ in range(boot)]

def ci(f):
    v = sorted(f(d) for d in draws)
    return v[int(0.025 * (len(v) - 1))], v[int(0.975 * (len(v) - 1))]

print(f"per tool, pooled over {rounds} rounds x {count} (interpolated us; 95% bootstrap interval over rounds):")
names = ("p50", "p99", "mean")
for t in tools:
    parts = []
    for j, name in enumerate(names):
        lo, hi = ci(lambda d: d[t][j])
        parts.append(f"{name} {full[t][j]:.2f} [{lo:.2f}, {hi:.2f}]")
    n = sum(sum(h.values()) for h in hist[t])
    print(f"  {t:6} {'; '.join(parts)}  ({n} replies)")
pairs = [("lab", "ping")] + [(t, "ping") for t in ("ping2", "lab_b") if t in tools] \
        + ([("lab", "lab_b")] if "lab_b" in tools else [])
print("ratios (paired: the same resampled rounds for both):")
for a, b in pairs:
    parts = []
    for j, name in enumerate(names):
        lo, hi = ci(lambda d: d[a][j] / d[b][j])
        parts.append(f"{name} {full[a][j] / full[b][j]:.3f} [{lo:.3f}, {hi:.3f}]")
    label = f"{a}/{b}" + ("  (A/A control)" if a == "ping2" else "")
    print(f"  {label:28} {'; '.join(parts)}")
def period_ms(t, r):
    """The period a run really kept: its summary's "time Nms" spans count - 1 periods."""
    m = re.search(r"time (\d+)ms", open(f"{tmp}/r{r}.{t}").read())
    return int(m.group(1)) / (count - 1) if m else float("nan")
told = open(f"{tmp}/r1.lab.pace").read().strip()
print("real period between requests, mean over runs (ms): " + ", ".join(
    f"{t} {statistics.mean(period_ms(t, r) for r in range(1, rounds + 1)):.2f}" for t in tools)
    + f" (lab's first --interval: {told} s)")
print("per round p50/p99 us (interpolated), and each run's period in ms:")
for r in range(rounds):
    print(f"  round {r + 1:2}: " + ", ".join(
        f"{t} {quantile(hist[t][r], .5):.1f}/{quantile(hist[t][r], .99):.1f} ({period_ms(t, r + 1):.2f})" for t in tools))
# lab's summary: round trips as the program saw them (its clock after recvmsg), and
# how it waited between requests (spinning like ping below 10 ms with --wait auto).
for t in ("lab", "lab_b"):
    if t not in tools:
        continue
    seen = [float(m.group(1)) for r in range(1, rounds + 1) for m in
            re.finditer(r"as the program saw them: min/avg/max = [\d.]+/([\d.]+)/", open(f"{tmp}/r{r}.{t}").read())]
    spins = [int(m.group(1)) for r in range(1, rounds + 1) for m in
             re.finditer(r"waited between requests \(--wait \w+\): (\d+) spins", open(f"{tmp}/r{r}.{t}").read())]
    if seen:
        print(f"{t} as the program saw them: mean {statistics.mean(seen) * 1000:.1f} us; "
              f"spins per run {min(spins) if spins else '?'}-{max(spins) if spins else '?'}")
PY
