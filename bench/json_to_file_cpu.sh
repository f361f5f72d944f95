#!/usr/bin/env bash
# Benchmark: CPU time per record of lab 06's receiver (user + sys, /usr/bin/time), the
# figure that load on a shared machine disturbs least. One `nc -N` sends a JSON Lines
# file of RECORDS records (~77 bytes, one sender, as in bench/json_to_file.sh); the
# receiver writes, fdatasyncs and acknowledges them all. Receiver pinned to CPU 1,
# client to CPU 0. Each binary given is run ROUNDS times, alternating, so drift on a
# shared machine hits all of them; the per-round figures are printed, then medians.
#
# Usage: bench/json_to_file_cpu.sh [LAB_BINARY ...]   (default target/release/lab)
#        RECORDS=2000000 ROUNDS=3 bench/json_to_file_cpu.sh /tmp/lab-before target/release/lab
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-2000000}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-17426}
DIR=${DIR:-target/bench-json}
[ $# -gt 0 ] || set -- target/release/lab
for tool in nc taskset python3 timeout /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y netcat-openbsd util-linux python3 coreutils time)" >&2; exit 2; }
done
mkdir -p "$DIR"
TMP=$(mktemp -d -p "$DIR")
trap 'rm -rf "$TMP"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT

python3 - "$TMP/in.jsonl" "$RECORDS" <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(6)
with open(path, "w") as f:
    for seq in range(1, n + 1):
        f.write(json.dumps({"sender": "bench-1", "seq": seq, "sensor": "A0",
                            "value": round(rnd.uniform(0, 1023), 1), "t_ms": seq * 2},
                           separators=(",", ":")) + "\n")
PY

wait_listen() {  # PORT: until something listens there (5 s at most)
    for _ in $(seq 500); do ss -ltn "sport = :$1" | grep -q LISTEN && return 0; sleep 0.01; done
    echo "bench: nothing listens on $1" >&2; exit 1
}

# one LAB -> CPU ns per record
one() {
    local lab=$1 out="$TMP/out.jsonl"
    rm -f "$out"
    taskset -c 1 /usr/bin/time -f "%U %S" -o "$TMP/time" "$lab" run 06 --role receiver --quiet \
        --bind 127.0.0.1:$PORT --out "$out" >"$TMP/rx.log" 2>&1 &
    local rx=$!
    wait_listen $PORT
    taskset -c 0 timeout 300 nc -N 127.0.0.1 $PORT <"$TMP/in.jsonl" >"$TMP/acks"
    kill -TERM "$(pgrep -P $rx)" 2>/dev/null || kill -TERM $rx
    wait $rx || true
    local got; got=$(wc -l <"$out")
    [ "$got" = "$RECORDS" ] || { echo "bench: $lab saved $got of $RECORDS" >&2; exit 1; }
    python3 -c "u, s = map(float, open('$TMP/time').read().split()[-2:]); print(f'{(u + s) * 1e9 / $RECORDS:.0f}')"
}

echo "lab 06 receiver: CPU ns per record (user + sys), $RECORDS records, 1 sender; load: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A all
for _ in $(seq "$ROUNDS"); do
    for lab in "$@"; do all[$lab]="${all[$lab]:-} $(one "$lab")"; done
done
for lab in "$@"; do
    printf "%-40s median %5s ns   (rounds:%s)\n" "$lab" \
        "$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" ${all[$lab]})" "${all[$lab]}"
done
