#!/bin/sh
# Soak every server under issue 18's hostile clients; see bench/soak.py.
# Bounded: SOAK_SECS per server (default 20, at most 60), nine cases.
set -eu
cd "$(dirname "$0")/.."
: "${LAB:=target/release/lab}"
[ -x "$LAB" ] || cargo build --release --locked
ulimit -n 4096 2>/dev/null || true
LAB="$LAB" exec python3 bench/soak.py
