#!/usr/bin/env bash
# Latency benchmark: `lab latency` ping-pong against `sockperf ping-pong`, TCP and UDP,
# 16 B and 1024 B, in the same run on the same machine, both tools' ends pinned the same
# way (placement moves the figure more than any tool: see notes/peers.md).
#
# Two comparisons per case:
#   harness: lab's client and sockperf's client against the same `sockperf server`
#            (lab with --peer sockperf sends sockperf's own messages): what each client
#            adds to the measurement, the server held fixed;
#   tools:   each tool against its own server (lab's is the event-loop server of
#            `lab latency --role server`; sockperf's blocks in recvfrom on its one socket).
#
#   bench/latency.sh            # 3 rounds of 3 s per case, medians printed as Markdown
#   DUR=5 ROUNDS=5 bench/latency.sh
#   PROTOS=udp SIZES=16 PLACEMENTS=same TOOLS="sockperf lab-sp" bench/latency.sh
#                               # narrow it: here the harness comparison alone
# TOOLS: sockperf, lab (its own server), lab-sp (sockperf's server), lab-busy (split only).
#
# Placements: "same" = client and server both on CPU $SAME (a wake-up hands the CPU
# over, no idle CPU to wake); "split" = client on CPU $CLIENT, server on CPU $SERVER.
# Busy-poll is only measured split: a spinning client on the server's CPU would starve it.
# Needs: sockperf (apt-get install -y sockperf), taskset (util-linux), python3.
# Loopback only; every run is bounded by DUR seconds, every server by a kill at the end.
set -euo pipefail

DUR=${DUR:-3}
ROUNDS=${ROUNDS:-3}
SAME=${SAME:-1}
CLIENT=${CLIENT:-0}
SERVER=${SERVER:-1}
LAB=${LAB:-target/release/lab}
PLACEMENTS=${PLACEMENTS:-"same split"}
TOOLS=${TOOLS:-"sockperf lab lab-sp lab-busy"}
cd "$(dirname "$0")/.."

command -v sockperf >/dev/null || { echo "sockperf missing: apt-get install -y sockperf" >&2; exit 2; }
[ -x "$LAB" ] || cargo build --release --quiet
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

# A free loopback port (TCP and UDP both free), chosen by the kernel.
port() { python3 -c 'import socket
for _ in range(20):
    t=socket.socket(); t.bind(("127.0.0.1",0)); p=t.getsockname()[1]
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
    try: u.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'; }

# Waits (bounded: 5 s) until something accepts TCP on the port.
wait_tcp() { for _ in $(seq 50); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$1),0.1).close()" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# sockperf PROTO SIZE CLIENT_CPU SERVER_CPU -> "p50 p99"
run_sockperf() {
  local proto=$1 size=$2 c=$3 s=$4 p flag=""
  p=$(port); [ "$proto" = tcp ] && flag=--tcp
  taskset -c "$s" sockperf server $flag -i 127.0.0.1 -p "$p" >/dev/null 2>&1 & PIDS+=($!)
  local spid=$!
  if [ "$proto" = tcp ]; then wait_tcp "$p"; else sleep 0.5; fi
  taskset -c "$c" timeout $((DUR + 20)) sockperf ping-pong $flag -i 127.0.0.1 -p "$p" -m "$size" -t "$DUR" --full-rtt >"$TMP/sp.txt" 2>&1
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
  python3 - "$TMP/sp.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def pct(p):
    m = re.search(r"percentile %s = +([0-9.]+)" % re.escape(p), t)
    return float(m.group(1))
print(pct("50.000"), pct("99.000"))
PY
}

# ours PROTO SIZE CLIENT_CPU SERVER_CPU lab|sockperf [--busy-poll] -> "p50 p99"
# (the fifth argument is the server: lab's own, or a sockperf server spoken to with
# --peer sockperf)
run_lab() {
  local proto=$1 size=$2 c=$3 s=$4 server=$5 extra=${6:-} p
  p=$(port)
  if [ "$server" = sockperf ]; then
    local flag=""; [ "$proto" = tcp ] && flag=--tcp
    taskset -c "$s" sockperf server $flag -i 127.0.0.1 -p "$p" >/dev/null 2>&1 & PIDS+=($!)
    extra="$extra --peer sockperf"
    if [ "$proto" = tcp ]; then wait_tcp "$p"; else sleep 0.5; fi
  else
    taskset -c "$s" "$LAB" latency --role server --bind "127.0.0.1:$p" --serve-for $((DUR + 30)) >/dev/null 2>&1 & PIDS+=($!)
    wait_tcp "$p"
  fi
  local spid=$!
  # A fresh folder each time: a failed run must not leave the last one's figures.
  rm -rf "$TMP/lab"
  # shellcheck disable=SC2086
  taskset -c "$c" timeout $((DUR + 30)) "$LAB" latency --connect "127.0.0.1:$p" --mode "$proto" --sizes "$size" \
    --duration "$DUR" --warmup 1000 --seed 8 $extra --out "$TMP/lab" >/dev/null
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
  python3 -c "import json,sys; s=json.load(open('$TMP/lab/summary.json'))['series'][0]['stats']; print(s['p50_us'], s['p99_us'])"
}

RESULTS="$TMP/results.txt"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for proto in ${PROTOS:-tcp udp}; do
    for size in ${SIZES:-16 1024}; do
      for place in $PLACEMENTS; do
        if [ "$place" = same ]; then c=$SAME s=$SAME; else c=$CLIENT s=$SERVER; fi
        for tool in $TOOLS; do
          case $tool in
            sockperf) r=$(run_sockperf "$proto" "$size" "$c" "$s") ;;
            lab) r=$(run_lab "$proto" "$size" "$c" "$s" lab) ;;
            lab-sp) r=$(run_lab "$proto" "$size" "$c" "$s" sockperf) ;;
            # A spinning client on the server's CPU would starve it: split only.
            lab-busy) [ "$place" = split ] || continue
                      r=$(run_lab "$proto" "$size" "$c" "$s" lab --busy-poll) ;;
            *) echo "unknown tool $tool in TOOLS" >&2; exit 2 ;;
          esac
          echo "$place $tool $proto $size $r" >>"$RESULTS"
        done
      done
    done
  done
done

python3 - "$RESULTS" "$ROUNDS" "$DUR" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)  # (place, proto, size, tool) -> [(p50, p99)], round order
for line in open(sys.argv[1]):
    place, tool, proto, size, p50, p99 = line.split()
    rows[(place, proto, int(size), tool)].append((float(p50), float(p99)))
cases = sorted({k[:3] for k in rows}, key=lambda c: (c[0] != "same", c[1], c[2]))
def med(case, tool, i):
    v = rows.get(case + (tool,))
    return statistics.median(x[i] for x in v) if v else float("nan")
def spread(case, tool, i):
    # The ratio in each round (both ran back to back): how far noise moves it.
    a, b = rows.get(case + ("sockperf",), []), rows.get(case + (tool,), [])
    r = [y[i] / x[i] for x, y in zip(a, b)]
    return f"{min(r):.2f}-{max(r):.2f}" if r else "-"
def measured(tool):
    return any(k[3] == tool for k in rows)
print(f"Round-trip times in us, medians of {sys.argv[2]} runs of {sys.argv[3]} s each;")
print("a ratio is lab / sockperf, its range the lowest and highest ratio of one round.\n")
if measured("lab-sp"):
    print("Harness: both clients against the same `sockperf server`.\n")
    print("| placement | test | sockperf p50 | lab p50 | ratio | range | sockperf p99 | lab p99 | ratio | range |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        sp50, sp99, h50, h99 = (med(c, "sockperf", 0), med(c, "sockperf", 1), med(c, "lab-sp", 0), med(c, "lab-sp", 1))
        print(f"| {c[0]} | {c[1].upper()} {c[2]} B | {sp50:.1f} | {h50:.1f} | {h50/sp50:.2f} | {spread(c, 'lab-sp', 0)} "
              f"| {sp99:.1f} | {h99:.1f} | {h99/sp99:.2f} | {spread(c, 'lab-sp', 1)} |")
if measured("lab") or measured("lab-busy"):
    print("\nTools: each client against its own server.\n")
    print("| placement | test | sockperf p50 | lab p50 | ratio | sockperf p99 | lab p99 | ratio | lab --busy-poll p50 | p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        sp50, sp99, l50, l99 = (med(c, "sockperf", 0), med(c, "sockperf", 1), med(c, "lab", 0), med(c, "lab", 1))
        b50, b99 = med(c, "lab-busy", 0), med(c, "lab-busy", 1)
        busy = f"{b50:.1f} | {b99:.1f}" if b50 == b50 else "- | -"
        print(f"| {c[0]} | {c[1].upper()} {c[2]} B | {sp50:.1f} | {l50:.1f} | {l50/sp50:.2f} | {sp99:.1f} | {l99:.1f} | {l99/sp99:.2f} | {busy} |")
PY
