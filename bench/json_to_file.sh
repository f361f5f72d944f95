#!/usr/bin/env bash
# Benchmark: lab 06's receiver (every record written, fsync'd, then acknowledged) against
# `nc -l > file` (bytes copied to a file: no parsing, no fsync, no acks: not durable),
# in the same run, same machine, loopback only. Figure of merit: records per second
# from the first byte sent until the last record is in the file (ours: acknowledged,
# hence durable; nc: the server exited after the client closed). Ratio ours / nc.
#
# The client is the same for both: `nc -N` sending a pre-generated JSON Lines file
# (each record with its sender and seq, ~90 bytes) and, for ours, collecting the acks.
# So the comparison isolates the receiving side. 1 sender, then 8 senders at once
# (nc: 8 `nc -l` servers, one per sender, each to its own file; ours: one receiver).
#
# The file lives in a folder on the disk ($DIR, default target/bench-json: not /tmp,
# which may be tmpfs where fsync costs nothing). Placement: receivers on CPU 1, clients
# on CPU 0. ROUNDS rounds alternate the tools so drift on a shared machine hits both;
# medians are reported. Bounded: every wait has a deadline.
#
# Pinning the whole receiver, its fdatasync thread included, to CPU 1 is fair: measured
# (perf stat --per-thread, 2,000,000 records) that thread uses ~8 ms of CPU against the
# event loop's ~650 ms (~1%): it mostly waits for the disk. The page-cache copy is
# charged to write() in the loop for both tools; nc's dirty pages are written back by
# kworkers (any CPU) seconds after its clock has stopped, ours inside fdatasync.
#
# Usage: bench/json_to_file.sh            (needs nc (netcat-openbsd), taskset, python3)
#        RECORDS=2000000 ROUNDS=5 bench/json_to_file.sh
#        LAB=/tmp/lab-before bench/json_to_file.sh   (another build of lab)
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-400000}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-17406}
DIR=${DIR:-target/bench-json}
LAB=${LAB:-target/release/lab}

for tool in nc taskset python3 timeout; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y netcat-openbsd util-linux python3 coreutils)" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs to pin clients and receivers apart" >&2; exit 2; }
cargo build --release --quiet
mkdir -p "$DIR"
TMP=$(mktemp -d -p "$DIR")
trap 'rm -rf "$TMP"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT

# The senders' files: 1 x RECORDS, and 8 x RECORDS/8 with distinct sender ids.
python3 - "$TMP" "$RECORDS" <<'PY'
import json, random, sys
tmp, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(6)
def write(path, sender, count):
    with open(path, "w") as f:
        for seq in range(1, count + 1):
            f.write(json.dumps({"sender": sender, "seq": seq, "sensor": "A0",
                                "value": round(rnd.uniform(0, 1023), 1), "t_ms": seq * 2},
                               separators=(",", ":")) + "\n")
write(f"{tmp}/one.jsonl", "bench-1", n)
for i in range(8):
    write(f"{tmp}/eight-{i}.jsonl", f"bench-8-{i}", n // 8)
PY

now() { date +%s.%N; }
lines() { cat "$@" 2>/dev/null | wc -l; }
wait_listen() {  # PORT: until something listens there (5 s at most)
    for _ in $(seq 500); do ss -ltn "sport = :$1" | grep -q LISTEN && return 0; sleep 0.01; done
    echo "bench: nothing listens on $1" >&2; exit 1
}

# ours N_SENDERS -> records per second
ours() {
    local n=$1 out="$TMP/ours.jsonl" files
    rm -f "$out"
    taskset -c 1 "$LAB" run 06 --role receiver --quiet --bind 127.0.0.1:$PORT --out "$out" >"$TMP/rx.log" 2>&1 &
    local rx=$!
    wait_listen $PORT
    if [ "$n" = 1 ]; then files="$TMP/one.jsonl"; else files=$(ls "$TMP"/eight-*.jsonl); fi
    local t0; t0=$(now)
    local pids=()
    for f in $files; do
        # -N: half-close after the file, so the receiver sees EOF, sends the last acks
        # and closes; nc exits once every ack has arrived.
        taskset -c 0 timeout 120 nc -N 127.0.0.1 $PORT <"$f" >"$f.acks" &
        pids+=($!)
    done
    wait "${pids[@]}"
    local t1; t1=$(now)
    kill -TERM $rx; wait $rx || true
    local want got acks
    want=$(lines $files); got=$(lines "$out"); acks=$(cat $(for f in $files; do echo "$f.acks"; done) | grep -c '^ok ' || true)
    [ "$got" = "$want" ] && [ "$acks" = "$want" ] || { echo "bench: ours saved $got, acked $acks of $want" >&2; exit 1; }
    python3 -c "print(f'{$want / ($t1 - $t0):.0f}')"
}

# theirs N_SENDERS -> records per second (nc -l > file, one server per sender)
theirs() {
    local n=$1 files srv=() pids=() i=0
    if [ "$n" = 1 ]; then files="$TMP/one.jsonl"; else files=$(ls "$TMP"/eight-*.jsonl); fi
    for f in $files; do
        rm -f "$TMP/nc-$i.jsonl"
        taskset -c 1 timeout 120 nc -l 127.0.0.1 $((PORT + 1 + i)) >"$TMP/nc-$i.jsonl" </dev/null &
        srv+=($!); i=$((i + 1))
    done
    for j in $(seq 0 $((i - 1))); do wait_listen $((PORT + 1 + j)); done
    local t0; t0=$(now)
    i=0
    for f in $files; do
        taskset -c 0 timeout 120 nc -N 127.0.0.1 $((PORT + 1 + i)) <"$f" >/dev/null &
        pids+=($!); i=$((i + 1))
    done
    wait "${pids[@]}" "${srv[@]}"
    local t1; t1=$(now)
    local want got
    want=$(lines $files); got=$(lines "$TMP"/nc-*.jsonl)
    rm -f "$TMP"/nc-*.jsonl
    [ "$got" = "$want" ] || { echo "bench: nc saved $got of $want" >&2; exit 1; }
    python3 -c "print(f'{$want / ($t1 - $t0):.0f}')"
}

median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" "$@"; }

echo "lab 06 receiver (write + fdatasync + ack) vs nc -l > file (no fsync, no ack)"
echo "records: $RECORDS per case; rounds: $ROUNDS; file system: $(df -T "$DIR" | awk 'NR==2 {print $2}'); $(nproc) CPUs; kernel $(uname -r)"
printf "%-10s %14s %14s %8s\n" senders "ours rec/s" "nc rec/s" ratio
for n in 1 8; do
    o=(); t=()
    for _ in $(seq "$ROUNDS"); do
        o+=("$(ours $n)")
        t+=("$(theirs $n)")
    done
    mo=$(median "${o[@]}"); mt=$(median "${t[@]}")
    printf "%-10s %14s %14s %8s   (rounds: ours %s; nc %s)\n" "$n" "$mo" "$mt" \
        "$(python3 -c "print(f'{$mo / $mt:.2f}')")" "${o[*]}" "${t[*]}"
done
