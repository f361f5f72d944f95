#!/bin/bash
# Runs the whole suite twice at once (two copies, separate target folders), optionally
# beside busy loops on every CPU, with CI=true (a skip is a failure) and
# --no-fail-fast; writes each copy's log, the load average every 30 s and a summary.
# See CONTRIBUTING.md, "Running the suite under load".
#
#   tests/under-load.sh            # two copies at once
#   BUSY=2 tests/under-load.sh     # ... and two busy loops at nice 0 (like `stress -c 2`)
#
# Logs go to target/under-load/<UTC time>/ (a.log, b.log, load.log, summary).
# Exit status: 0 when both copies passed.
set -u
cd "$(dirname "$0")/.."
out=target/under-load/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
git log --oneline -1 > "$out/commit" 2>/dev/null || true
# Both copies built first, so the load is the tests themselves.
cargo test --locked --no-run > "$out/build-a.log" 2>&1 || { echo "build failed: $out/build-a.log"; exit 1; }
CARGO_TARGET_DIR=target/load cargo test --locked --no-run > "$out/build-b.log" 2>&1 ||
    { echo "build failed: $out/build-b.log"; exit 1; }
(while :; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 30; done) > "$out/load.log" &
logger=$!
busy=()
for _ in $(seq 1 "${BUSY:-0}"); do
    timeout 3600 sh -c 'while :; do :; done' &
    busy+=($!)
done
cleanup() { kill "$logger" "${busy[@]}" 2>/dev/null; }
trap cleanup EXIT
echo "two copies of the suite, ${BUSY:-0} busy loops; logs in $out"
date -u +%T > "$out/start"
CI=true cargo test --locked --no-fail-fast > "$out/a.log" 2>&1 &
a=$!
CI=true CARGO_TARGET_DIR=target/load cargo test --locked --no-fail-fast > "$out/b.log" 2>&1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
date -u +%T > "$out/end"
for f in a b; do
    echo "== copy $f"
    grep -E "^test .* FAILED$" "$out/$f.log"
    grep -E "^test result" "$out/$f.log" | awk '{p += $4; f += $6} END {print "passed", p, "failed", f}'
done | tee "$out/summary"
awk '{print $2}' "$out/load.log" | sort -n | sed -n '1p;$p' | paste -sd' ' |
    sed 's/^/load (1-min average, lowest and highest): /' | tee -a "$out/summary"
[ $ra -eq 0 ] && [ $rb -eq 0 ]
