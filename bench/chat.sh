#!/usr/bin/env bash
# Chat benchmark: lab 05's server (`lab run 05 --role server`) against `ncat --chat`, in
# the same run, pinned the same way: the server on CPU $SERVER, the load on CPU $CLIENT.
#
# Per case (N connected clients, S of them sending), a fresh server, then the Rust load
# generator examples/chat_load.rs (one mio loop; see its header):
#   1. connects N clients, reading whatever arrives (join notices), until quiet;
#      RSS per idle client = (server RSS now - RSS before) / N;
#   2. the S senders send 64-byte lines, one line per write() as chat clients do
#      (WRITE=bulk: 256 lines per write, the old measure), the slowest receiver at most
#      1024 lines behind everything sent (so no server meets a client that cannot keep
#      up), until every client has received every other sender's lines: about
#      $DELIVERIES deliveries. Delivered lines/s = deliveries / elapsed; the server's CPU
#      time (user + system, /proc) over the same interval, per 1000 deliveries; how busy
#      the server and the generator were (% of one CPU: who was the bottleneck); and,
#      with perf, the server's system calls per 1000 deliveries, counted in the kernel
#      (`perf stat` on the syscall tracepoints, attached for the measured phase only).
#
#   bench/chat.sh                 # N=100 and 1000; 1, 10 and all clients sending
#   ROUNDS=5 DELIVERIES=5000000 bench/chat.sh
#   TOOLS=lab CASES="1000:1 100:all" WRITE=bulk bench/chat.sh
# Prints one Markdown row per case: medians over ROUNDS rounds, and lab/ncat ratios; the
# single rounds and the syscall breakdown go to stderr. A failed round (a server that
# cannot host N clients in $LIMIT s) skips that tool's other rounds of the case.
# Needs: ncat (apt-get install -y ncat), taskset (util-linux), python3, cargo; perf for
# the syscall counts (skipped without it).
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
WRITE=${WRITE:-line}
CASES=${CASES:-"100:1 100:10 100:all 1000:1 1000:10 1000:all"}
cd "$(dirname "$0")/.."

command -v ncat >/dev/null || { echo "ncat missing: apt-get install -y ncat" >&2; exit 2; }
[ -x "$LAB" ] || cargo build --release --quiet
# LOAD=path: a chat_load built earlier (the example build compiles the library again).
if [ -z "${LOAD:-}" ]; then
  LOAD=target/release/examples/chat_load
  cargo build --release --quiet --example chat_load
fi
PERF=1
perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 || { PERF=0; echo "perf cannot count syscalls here: no syscall figures" >&2; }
# 1000 clients and the server's 1000 sockets: raise the soft limit for both.
ulimit -n "$(ulimit -Hn)"
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

# The syscalls counted: all of them, and the ones either server makes per delivery.
EVENTS=raw_syscalls:sys_enter
for s in read recvfrom write sendto writev fcntl epoll_wait epoll_ctl select pselect6; do
  EVENTS+=",syscalls:sys_enter_$s"
done

# A free loopback port, chosen by the kernel.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_tcp() { for _ in $(seq 50); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$1),0.1).close()" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# one TOOL N SENDERS -> "lines/s bytes/idle_client cpu_us/1000 server_busy% load_busy%
# syscalls/1000", or "fail" six times
one() {
  local tool=$1 n=$2 s=$3 p pid out ready=$TMP/ready perfpid=
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
  rm -f "$ready" "$TMP/perf"
  taskset -c "$CLIENT" timeout $((LIMIT + 40)) "$LOAD" --addr "127.0.0.1:$p" --clients "$n" \
      --senders "$s" --deliveries "$DELIVERIES" --pid "$pid" --timeout "$LIMIT" \
      --write "$WRITE" --ready-file "$ready" >"$TMP/load.out" 2>"$TMP/load.err" &
  local load=$!
  # Once every client has joined: count the server's syscalls (measured phase only).
  for _ in $(seq $((LIMIT * 10))); do [ -e "$ready" ] || ! kill -0 "$load" 2>/dev/null && break; sleep 0.1; done
  if [ -e "$ready" ]; then
    if [ "$PERF" = 1 ]; then
      taskset -c "$CLIENT" perf stat -x, -e "$EVENTS" -p "$pid" -o "$TMP/perf" & perfpid=$!
      sleep 0.5
    fi
    rm -f "$ready"
  fi
  if wait "$load"; then
    out=$(cat "$TMP/load.out")
    [ -n "$perfpid" ] && { kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true; }
    local per=- delivered
    delivered=$(grep -o '^chat_load: [0-9]* deliveries' "$TMP/load.err" | grep -o '[0-9]*' || echo 0)
    if [ -s "$TMP/perf" ] && [ "$delivered" -gt 0 ]; then
      per=$(python3 - "$TMP/perf" "$delivered" <<'EOF'
import sys
counts = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].isdigit():
        counts[f[2].split(":")[-1].replace("sys_enter_", "")] = int(f[0])
d = int(sys.argv[2]) / 1000
detail = " ".join(f"{k}={v / d:.1f}" for k, v in counts.items() if k != "sys_enter" and v)
print(f"{counts.get('sys_enter', 0) / d:.1f}", file=sys.stdout)
print(f"    syscalls per 1000 deliveries: {detail}", file=sys.stderr)
EOF
)
    fi
    echo "$out $per"
    echo "    $(tail -1 "$TMP/load.err")" >&2
  else
    [ -n "$perfpid" ] && { kill -INT "$perfpid" 2>/dev/null; wait "$perfpid" 2>/dev/null || true; }
    echo "fail fail fail fail fail fail"
    echo "  $tool N=$n S=$s failed: $(tail -1 "$TMP/load.err") $(tail -1 "$TMP/ncat.err" 2>/dev/null)" >&2
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
}

median() { python3 -c 'import sys, statistics
v=[float(x) for x in sys.argv[1:] if x not in ("fail", "-")]
m=statistics.median(v) if v else None
print("fail" if m is None else (f"{m:.1f}" if m < 100 else round(m)))' "$@"; }
ratio() { python3 -c 'import sys
a,b=sys.argv[1:]
print("-" if "fail" in (a,b) or a in ("","0","-") or b in ("","0","-") else f"{float(a)/float(b):.2f}")' "$1" "$2"; }

echo "write mode: $WRITE; $(date -u '+%F %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| clients | senders | lab lines/s | ncat lines/s | ratio | CPU us/1000 lab | ncat | syscalls/1000 lab | ncat | busy % lab (load) | ncat (load) | B/idle client lab | ncat |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in $CASES; do
  n=${c%%:*}; s=${c##*:}
  [ "$s" = all ] && s=$n
  declare -A rate=() rss=() cpu=() busy=() lbusy=() sys=()
  for tool in $TOOLS; do
    r=(); m=(); u=(); b=(); l=(); y=()
    for _ in $(seq "$ROUNDS"); do
      read -r f1 f2 f3 f4 f5 f6 < <(one "$tool" "$n" "$s")
      r+=("$f1"); m+=("$f2"); u+=("$f3"); b+=("$f4"); l+=("$f5"); y+=("${f6:--}")
      [ "$f1" = fail ] && break
    done
    rate[$tool]=$(median "${r[@]}"); rss[$tool]=$(median "${m[@]}"); cpu[$tool]=$(median "${u[@]}")
    busy[$tool]=$(median "${b[@]}"); lbusy[$tool]=$(median "${l[@]}"); sys[$tool]=$(median "${y[@]}")
    echo "  $tool N=$n S=$s: lines/s ${r[*]}; CPU us/1000 ${u[*]}; syscalls/1000 ${y[*]}; server busy % ${b[*]}; load busy % ${l[*]}; B/idle client ${m[*]}" >&2
  done
  echo "| $n | $s | ${rate[lab]:--} | ${rate[ncat]:--} | $(ratio "${rate[lab]:-}" "${rate[ncat]:-}") | ${cpu[lab]:--} | ${cpu[ncat]:--} | ${sys[lab]:--} | ${sys[ncat]:--} | ${busy[lab]:--} (${lbusy[lab]:--}) | ${busy[ncat]:--} (${lbusy[ncat]:--}) | ${rss[lab]:--} | ${rss[ncat]:--} |"
done
