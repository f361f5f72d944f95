#!/bin/sh
# Benchmark: wall time of grading labs 01-03 against the reference solutions, Rust and
# Python, once the Rust solutions are built (the build is timed separately).
# Usage: bench/grade.sh [RUNS]   (default 3; prints one line per run and the median)
set -eu
RUNS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${LAB:-$ROOT/target/debug/lab}
[ -x "$LAB" ] || (cd "$ROOT" && cargo build --quiet)
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
# The solutions as a student workspace: the embedded starters, then the solutions on top.
"$LAB" init "$WS" >/dev/null
cp -r "$ROOT/solutions/rust" "$ROOT/solutions/python" "$WS/"
now() { date +%s.%N; }
t0=$(now)
(cd "$WS" && cargo build --quiet --offline --bins)
echo "build (cargo, all solution binaries, cold): $(echo "$(now) - $t0" | bc) s"
echo "namespaces: $(unshare --user --map-root-user --net --pid --fork --mount-proc true 2>/dev/null && echo yes || echo no)"
for lang in rust python; do
    times=""
    for i in $(seq "$RUNS"); do
        t0=$(now)
        "$LAB" grade --all --dir "$WS" --lang "$lang" --seed "$i" --format json --out "$WS/r.json"
        t=$(echo "$(now) - $t0" | bc)
        score=$(python3 -c "import json; d=json.load(open('$WS/r.json')); print(sum(l['score'] for l in d), '/', sum(l['max_score'] for l in d))")
        echo "grade --all ($lang) run $i: $t s, score $score"
        times="$times $t"
    done
    echo "median ($lang): $(echo $times | tr ' ' '\n' | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p") s"
done
