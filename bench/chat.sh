#!/usr/bin/env bash
# Chat benchmark: lab 05's server (`lab run 05 --role server`) against `ncat --chat`, in
# the same run, pinned the same way: the server on CPU $SERVER, the load on CPU $CLIENT.
#
# Per case (N connected clients, S of them sending), a fresh server, then the Rust load
# generator examples/chat_load.rs (one mio loop; see its header):
#   1. connects N clients, reading whatever arrives (join notices), until quiet;
#      RSS per idle client = (server RSS now - RSS before) / N;
#   2. the S senders send 64-byte lines, each at most 1024 lines ahead of the slowest
#      receiver (so no server meets a client that cannot keep up), until every client
#      has received every other sender's lines: about $DELIVERIES deliveries.
#      Delivered lines/s = deliveries / elapsed; the server's CPU time (user + system,
#      /proc) over the same interval, per 1000 deliveries.
#
#   bench/chat.sh                 # N=100 and 1000, 1 sender, and N=100 and 1000 with 10
#   ROUNDS=5 DELIVERIES=5000000 bench/chat.sh
#   TOOLS=lab CASES="1000:1" bench/chat.sh
# Prints one Markdown row per case: medians over ROUNDS rounds, and lab/ncat ratios.
# Needs: ncat (apt-get install -y ncat), taskset (util-linux), python3, cargo.
# Loopback only; every load run is bounded (--timeout and `timeout`), every server
# killed at the end.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DELIVERIES=${DELIVERIES:-3000000}
LIMIT=${LIMIT:-60}
CLIENT=${CLIENT:-0}
SERVER=${SERVER:-1}
LAB=${LAB:-target/release/lab}
TOOLS=${TOOLS:-"lab ncat"}
CASES=${CASES:-"100:1 1000:1 100:10 1000:10"}
cd "$(dirname "$0")/.."

command -v ncat >/dev/null || { echo "ncat missing: apt-get install -y ncat" >&2; exit 2; }
[ -x "$LAB" ] || cargo build --release --quiet
LOAD=target/release/examples/chat_load
cargo build --release --quiet --example chat_load
# 1000 clients and the server's 1000 sockets: raise the soft limit for both.
ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT


# A free loopback port, chosen by the kernel.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_tcp() { for _ in $(seq 50); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$1),0.1).close()" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# one TOOL N SENDERS -> "lines/s bytes/idle_client cpu_us/1000_lines", or "fail fail fail"
one() {
  local tool=$1 n=$2 s=$3 p pid out
  p=$(port)
  case $tool in
    lab) taskset -c "$SERVER" "$LAB" run 05 --role server --bind "127.0.0.1:$p" --quiet --idle-timeout 0 >/dev/null 2>&1 </dev/null & ;;
    # -n: no reverse DNS per connection; --max-conns: its default is 100.
    ncat) taskset -c "$SERVER" ncat -n --chat -l 127.0.0.1 "$p" --max-conns $((n + 10)) >/dev/null 2>"$TMP/ncat.err" </dev/null & ;;
  esac
  pid=$!; PIDS+=("$pid")
  wait_tcp "$p"
  # wait_tcp's probe connection counts as a join: let it leave.
  sleep 0.3
  if out=$(taskset -c "$CLIENT" timeout $((LIMIT + 30)) "$LOAD" --addr "127.0.0.1:$p" --clients "$n" \
      --senders "$s" --deliveries "$DELIVERIES" --pid "$pid" --timeout "$LIMIT" 2>"$TMP/load.err"); then
    echo "$out"
  else
    echo "fail fail fail"; echo "  $tool N=$n S=$s failed: $(tail -1 "$TMP/load.err") $(tail -1 "$TMP/ncat.err" 2>/dev/null)" >&2
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}

median() { python3 -c 'import sys, statistics
v=[float(x) for x in sys.argv[1:] if x!="fail"]
print(round(statistics.median(v)) if v else "fail")' "$@"; }

echo "| clients | senders | lab lines/s | ncat lines/s | ratio | server CPU us/1000 lines lab | ncat | ratio | B/idle client lab | ncat | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in $CASES; do
  n=${c%%:*}; s=${c##*:}
  declare -A rate=() rss=() cpu=()
  for tool in $TOOLS; do
    r=(); m=(); u=()
    for _ in $(seq "$ROUNDS"); do
      read -r a b c < <(one "$tool" "$n" "$s")
      r+=("$a"); m+=("$b"); u+=("$c")
    done
    rate[$tool]=$(median "${r[@]}"); rss[$tool]=$(median "${m[@]}"); cpu[$tool]=$(median "${u[@]}")
    echo "  $tool N=$n S=$s: lines/s ${r[*]}; CPU us/1000 lines ${u[*]}; B/idle client ${m[*]}" >&2
  done
  ratio() { python3 -c 'import sys
a,b=sys.argv[1:]
print("-" if "fail" in (a,b) or a in ("","0") or b in ("","0") else f"{float(a)/float(b):.2f}")' "$1" "$2"; }
  echo "| $n | $s | ${rate[lab]:--} | ${rate[ncat]:--} | $(ratio "${rate[lab]:-}" "${rate[ncat]:-}") | ${cpu[lab]:--} | ${cpu[ncat]:--} | $(ratio "${cpu[lab]:-}" "${cpu[ncat]:-}") | ${rss[lab]:--} | ${rss[ncat]:--} | $(ratio "${rss[lab]:-}" "${rss[ncat]:-}") |"
done
