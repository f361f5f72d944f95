#!/usr/bin/env bash
# Benchmark: lab 03's sender -> receiver at full speed against iperf3 -u -b 0, same run,
# same machine, loopback only. Figure of merit: datagrams RECEIVED per second (what a
# receiver can actually account for), as a ratio ours / iperf3. Second figure, robust on
# a shared machine: the receiver's CPU time (user + system, GNU time) per datagram it
# received, in microseconds; the ratio iperf3 / ours says how much cheaper ours is.
#
# Placement (../shared/notes/peers.md): sender on CPU 0, receiver on CPU 1, for both
# tools. Each measurement lasts DURATION seconds; ROUNDS rounds alternate the tools so
# drift on a shared machine hits both alike; medians are reported.
#
# Usage: bench/udp_loss.sh            (needs iperf3, taskset, python3; builds --release)
#        DURATION=3 ROUNDS=3 SIZES="64 1400" bench/udp_loss.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-"64 1400"}
PORT_LAB=${PORT_LAB:-17303}
PORT_IPERF=${PORT_IPERF:-17304}
LAB=target/release/lab

[ -x /usr/bin/time ] || { echo "bench: GNU time is missing (apt-get install -y time)" >&2; exit 2; }
for tool in iperf3 taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y $tool)" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs to pin sender and receiver apart" >&2; exit 2; }
cargo build --release --quiet
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ours SIZE -> "received_pps sent_pps kernel_drops lost rx_cpu_us_per_datagram"
ours() {
    local size=$1
    rm -f "$TMP/rx.err"  # so the readiness check below cannot see the previous run's line
    taskset -c 1 /usr/bin/time -f "%U %S" -o "$TMP/rx.time" "$LAB" run 03 --role receiver --json --bind 127.0.0.1:$PORT_LAB \
        --wait 10s --idle 2s >"$TMP/rx.json" 2>"$TMP/rx.err" &
    local rx=$!
    # Ready when it says so on stderr (bounded: 5 s).
    for _ in $(seq 500); do grep -q "receiving on" "$TMP/rx.err" 2>/dev/null && break; sleep 0.01; done
    taskset -c 0 "$LAB" run 03 --role sender --json --connect 127.0.0.1:$PORT_LAB \
        --rate max --size "$size" --duration "$DURATION" >"$TMP/tx.json"
    wait $rx || true
    python3 - "$TMP/rx.json" "$TMP/tx.json" "$TMP/rx.time" <<'PY'
import json, sys
rx = json.load(open(sys.argv[1]))["receiver"]
tx = json.load(open(sys.argv[2]))["sender"]
cpu = sum(float(x) for x in open(sys.argv[3]).read().split()[-2:])
secs = tx["seconds"]
us = cpu * 1e6 / max(rx["received"], 1)
print(f'{rx["received"] / secs:.0f} {tx["packets"] / secs:.0f} {rx["kernel_drops"]} {rx["lost_packets"]} {us:.2f}')
PY
}

# theirs SIZE [IPERF FLAGS] -> "received_pps sent_pps lost rx_cpu_us_per_datagram"
theirs() {
    local size=$1; shift
    taskset -c 1 /usr/bin/time -f "%U %S" -o "$TMP/srv.time" iperf3 -s -1 -p $PORT_IPERF >/dev/null 2>&1 &
    local srv=$!
    for _ in $(seq 500); do
        ss -ltn "sport = :$PORT_IPERF" | grep -q LISTEN && break; sleep 0.01
    done
    taskset -c 0 iperf3 -c 127.0.0.1 -p $PORT_IPERF -u -b 0 -l "$size" -t "$DURATION" "$@" -J >"$TMP/iperf.json"
    wait $srv || true
    python3 - "$TMP/iperf.json" "$TMP/srv.time" <<'PY'
import json, sys
end = json.load(open(sys.argv[1]))["end"]
cpu = sum(float(x) for x in open(sys.argv[2]).read().split()[-2:])
# sum_sent / sum_received when present (iperf3 >= 3.13); older: "sum" holds the
# sender's packets with the receiver's loss.
sent = end.get("sum_sent", end["sum"])
recv = end.get("sum_received", end["sum"])
secs = sent["seconds"]
packets = sent["packets"]
lost = recv["lost_packets"]
print(f'{(packets - lost) / secs:.0f} {packets / secs:.0f} {lost} {cpu * 1e6 / max(packets - lost, 1):.2f}')
PY
}

median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, $(iperf3 --version | head -1 | cut -d' ' -f1-2), ${DURATION}s x ${ROUNDS} rounds"
printf '%-6s %-7s %12s %12s %10s %12s %10s\n' size tool rx_pps tx_pps kdrops lost rx_cpu_us
for size in $SIZES; do
    o_rx=(); t_rx=(); o_us=(); t_us=(); w_rx=()
    for r in $(seq "$ROUNDS"); do
        read -r a b c d e < <(ours "$size"); o_rx+=("$a"); o_us+=("$e")
        printf '%-6s %-7s %12s %12s %10s %12s %10s\n' "$size" lab "$a" "$b" "$c" "$d" "$e"
        read -r a b c e < <(theirs "$size"); t_rx+=("$a"); t_us+=("$e")
        printf '%-6s %-7s %12s %12s %10s %12s %10s\n' "$size" iperf3 "$a" "$b" "-" "$c" "$e"
        # The same 4 MiB receive buffer our receiver asks for by default.
        read -r a b c e < <(theirs "$size" -w 4M); w_rx+=("$a")
        printf '%-6s %-7s %12s %12s %10s %12s %10s\n' "$size" iperf3w "$a" "$b" "-" "$c" "$e"
    done
    mw=$(median "${w_rx[@]}")
    mo=$(median "${o_rx[@]}"); mt=$(median "${t_rx[@]}")
    uo=$(median "${o_us[@]}"); ut=$(median "${t_us[@]}")
    python3 -c "print(f'size $size: median received/s lab {$mo:.0f}, iperf3 {$mt:.0f}, ratio {$mo/$mt:.2f}x (vs iperf3 -w 4M {$mw:.0f}: {$mo/$mw:.2f}x); receiver CPU per datagram lab {$uo:.2f} us, iperf3 {$ut:.2f} us, iperf3/lab {$ut/$uo:.2f}x')"
done
