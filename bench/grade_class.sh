#!/bin/sh
# Benchmark: grading a class with `lab grade --submissions`. N submissions (default 50)
# for labs 01-03, each a `lab init` workspace holding the Python reference solutions;
# every other one has one lab replaced by a mutant from tests/mutants/ (taken in turn),
# so both quick passes and slow failures (checks that wait for their timeouts) are in
# the mix. Python only: a Rust submission adds its cold build (see bench/grade.sh).
#
# Three passes over the same folder, one seed:
#   alone:   `lab grade 01 02 03 --dir WS` for each workspace in turn (no class
#            machinery: the cost of grading one workspace alone);
#   jobs 1:  `lab grade 01 02 03 --submissions DIR --jobs 1`;
#   jobs 2:  the same with --jobs 2.
# Prints wall times, submissions per minute, and the per-submission overhead of the
# class run against grading alone. Bounded: each pass is N gradings, each capped by
# --student-timeout 300.
# Usage: bench/grade_class.sh [N]   (ALONE=K: the alone pass grades only the first K
# workspaces, half of them with a mutant, and its per-submission cost is their mean)
set -eu
N=${1:-50}
ALONE=${ALONE:-$N}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=${LAB:-$ROOT/target/debug/lab}
[ -x "$LAB" ] || (cd "$ROOT" && cargo build --quiet)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Progress goes to the run's own file, never to the user's ~/.local/state/lab.
export LAB_PROGRESS="$TMP/progress.txt"
SUB=$TMP/submissions
MUTANTS=$(cd "$ROOT/tests/mutants" && ls tcp_*.py udp_*.py loss_*.py)
set -- $MUTANTS
COUNT=$#
i=1
while [ "$i" -le "$N" ]; do
    ws=$SUB/$(printf 'student%03d' "$i")
    "$LAB" init "$ws" >/dev/null
    cp "$ROOT"/solutions/python/01-tcp-echo.py "$ROOT"/solutions/python/02-udp-echo.py \
        "$ROOT"/solutions/python/03-udp-loss.py "$ws/python/"
    if [ $((i % 2)) -eq 0 ]; then
        k=$(( (i / 2 - 1) % COUNT + 1 ))
        eval m=\${$k}
        case $m in
            tcp_*) dest=01-tcp-echo.py ;;
            udp_*) dest=02-udp-echo.py ;;
            *) dest=03-udp-loss.py ;;
        esac
        cp "$ROOT/tests/mutants/$m" "$ws/python/$dest"
    fi
    i=$((i + 1))
done
now() { date +%s.%N; }
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); namespaces: $(unshare --user --map-root-user --net --pid --fork --mount-proc true 2>/dev/null && echo yes || echo no)"
echo "$N submissions (labs 01-03, Python; every other one with a mutant)"

t0=$(now)
k=0
for ws in "$SUB"/*; do
    [ "$k" -lt "$ALONE" ] || break
    "$LAB" grade 01 02 03 --dir "$ws" --seed 7 --format json --out "$TMP/alone.json" 2>/dev/null || true
    k=$((k + 1))
done
each=$(echo "scale=3; ($(now) - $t0) / $ALONE" | bc)
# The cost of grading all N alone, from the mean of the ones graded.
alone=$(echo "$each * $N" | bc)
echo "alone:  $ALONE of $N graded, $each s per submission ($alone s for all $N)"

for jobs in 1 2; do
    t0=$(now)
    "$LAB" grade 01 02 03 --submissions "$SUB" --out "$TMP/grades$jobs" --jobs "$jobs" \
        --seed 7 --student-timeout 300 2>/dev/null | tail -1
    t=$(echo "$(now) - $t0" | bc)
    echo "jobs $jobs: $t s  ($(echo "scale=1; $N * 60 / $t" | bc) submissions/min, $(echo "scale=2; $t / $N" | bc) s each, overhead vs alone $(echo "scale=3; ($t - $alone) / $N" | bc) s per submission)"
done
if cmp -s "$TMP/grades1/gradebook.csv" "$TMP/grades2/gradebook.csv"; then
    echo "gradebooks of jobs 1 and jobs 2: identical"
else
    echo "gradebooks of jobs 1 and jobs 2: DIFFER"
    diff "$TMP/grades1/gradebook.csv" "$TMP/grades2/gradebook.csv" || true
fi
