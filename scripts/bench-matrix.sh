#!/usr/bin/env bash
# The whole end-to-end comparison of docs/perf.md: flowgate on PostgreSQL
# and this machine's Postfix, interleaved, at 1, 8 and 32 sessions with 2 KiB
# and 100 KiB messages, ROUNDS times (default 2); then flowgate on SQLite
# once. Prints one line per run (see scripts/bench-e2e.sh for what is
# measured and what it needs).
#
#   scripts/bench-matrix.sh [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
# Counts give flowgate runs of 2–5 s on a 2-core VM (shorter runs,
# 1,000 messages of 100 KiB in about a second, measured mostly the start
# and the end of a run).
cases=("1 2048 3000" "8 2048 6000" "32 2048 8000" "1 102400 1500" "8 102400 3000" "32 102400 3000")
for _ in $(seq 1 "$rounds"); do
  for c in "${cases[@]}"; do
    set -- $c
    scripts/bench-e2e.sh flowgate postgres "$1" "$2" "$3" 2>&1 | grep 'end to end'
    scripts/bench-e2e.sh postfix - "$1" "$2" "$3" 2>&1 | grep 'end to end'
    echo "1-minute load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
for c in "${cases[@]}"; do
  set -- $c
  scripts/bench-e2e.sh flowgate sqlite "$1" "$2" "$3" 2>&1 | grep 'end to end'
done
