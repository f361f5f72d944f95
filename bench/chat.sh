#!/usr/bin/env bash
# Chat benchmark: lab 05's server (`lab run 05 --role server`) against `ncat --chat`, in
# the same run, pinned the same way: the server on CPU $SERVER, the load on CPU $CLIENT.
#
# Per case (N connected clients, S of them sending), a fresh server, then a Python
# load generator on one event loop (selectors/epoll):
#   1. connects N clients, reading whatever arrives (join notices), until quiet;
#      RSS per idle client = (server RSS now - RSS before) / N;
#   2. for DUR seconds (server CPU time measured over it, from /proc), in batches: each sender writes K lines of 64 bytes, and the
#      batch ends when every other client has received every line (closed loop, so
#      no server ever has to drop a client for being slow). Delivered lines/s =
#      lines received by all clients / elapsed time.
#
#   bench/chat.sh                 # N=100 and 1000, 1 sender, and N=100 with 10 senders
#   ROUNDS=5 DUR=5 bench/chat.sh
#   TOOLS=lab CASES="1000:1" bench/chat.sh
# Prints one Markdown row per case: medians over ROUNDS rounds, and lab/ncat ratios.
# Needs: ncat (apt-get install -y ncat), taskset (util-linux), python3.
# Loopback only; every load run is bounded by `timeout`, every server killed at the end.
set -euo pipefail

DUR=${DUR:-3}
ROUNDS=${ROUNDS:-3}
K=${K:-20}
CLIENT=${CLIENT:-0}
SERVER=${SERVER:-1}
LAB=${LAB:-target/release/lab}
TOOLS=${TOOLS:-"lab ncat"}
CASES=${CASES:-"100:1 1000:1 100:10"}
cd "$(dirname "$0")/.."

command -v ncat >/dev/null || { echo "ncat missing: apt-get install -y ncat" >&2; exit 2; }
[ -x "$LAB" ] || cargo build --release --quiet
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

cat >"$TMP/load.py" <<'PY'
import resource, selectors, socket, sys, time

def cpu_s(pid):
    # utime + stime of the server, in seconds (fields 14 and 15 of /proc/PID/stat).
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100

def rss_kib(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

port, n, senders, dur, pid, k = (int(a) if i != 3 else float(a) for i, a in enumerate(sys.argv[1:7]))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
sel = selectors.DefaultSelector()
socks = []

def drain(quiet):
    # Reads until nothing arrives for `quiet` seconds (join notices).
    while True:
        ready = sel.select(quiet)
        if not ready:
            return
        for key, _ in ready:
            try:
                key.fileobj.recv(1 << 16)
            except BlockingIOError:
                pass

rss0 = rss_kib(pid)
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
    if i % 50 == 49:
        drain(0.005)  # a server with blocking writes would stall on full buffers
drain(0.5)
rss1 = rss_kib(pid)
batch = (b"bmsg " + b"x" * 58 + b"\n") * k  # k lines of 64 bytes
want = k * senders * (n - 1)
delivered, batches, t0, c0 = 0, 0, time.monotonic(), cpu_s(pid)
while time.monotonic() - t0 < dur:
    for s in socks[:senders]:
        s.setblocking(True)
        s.sendall(batch)
        s.setblocking(False)
    got, until = 0, time.monotonic() + 10
    while got < want:
        if time.monotonic() > until:
            sys.exit(f"stalled: {got} of {want} lines of a batch in 10 s")
        for key, _ in sel.select(1):
            try:
                got += key.fileobj.recv(1 << 16).count(b"\n")
            except BlockingIOError:
                pass
    delivered += got
    batches += 1
el, cpu = time.monotonic() - t0, cpu_s(pid) - c0
# lines/s, bytes of RSS per idle client, server CPU microseconds per 1000 lines
print(f"{delivered / el:.0f} {(rss1 - rss0) * 1024 / n:.0f} {cpu * 1e9 / max(delivered, 1):.0f}")
PY

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
  if out=$(taskset -c "$CLIENT" timeout $((DUR + 90)) python3 "$TMP/load.py" "$p" "$n" "$s" "$DUR" "$pid" "$K" 2>"$TMP/load.err"); then
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
