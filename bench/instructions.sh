#!/usr/bin/env bash
# Instructions per request of the HTTP bench's phases, counted by callgrind:
# unlike req/s, hardly moved by whatever else the machine is doing, so two
# builds compare on a shared, noisy machine.
#
#   bench/instructions.sh BENCH_BINARY [BENCH_BINARY...]
#
# A bench binary is what `cargo bench -p uploadgate --bench http --no-run`
# prints (target/release/deps/http-*); build one per commit to compare (a
# worktree each). For each binary and phase (`healthz`, `memory`: POST
# /v1/uploads on the memory store) it runs the load twice under callgrind,
# 1 s and 4 s, and prints the difference of instruction totals divided by
# the difference of requests: start-up costs cancel. Server and load
# generator share the process, as in the bench, so the figure is both.
# valgrind hides SHA-NI (sha2 takes its portable path), so SHA-256's share
# (the presigner's) is larger than on the real CPU. One connection by
# default (UG_BENCH_CONC overrides): with more, how requests interleave (and
# coalesce) changes from run to run, and so do the counts (about +/-15k per
# upload at 16 connections). Even at one they move between runs, by +/-4k on
# a quiet machine and up to +/-18k on a busy one (timers and background
# tasks count per second, so against however many requests the run made):
# run each binary several times, and see bench/alternate.sh for the ratio
# itself. Needs valgrind; about a minute per binary.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,23p "$0"; exit 2; }
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

count() { # binary phase secs -> "instructions requests"
  local log="$work/log"
  UG_BENCH_PHASES="$2" UG_BENCH_ROUNDS=1 UG_BENCH_SECS="$3" UG_BENCH_WARMUP=0.5 \
    UG_BENCH_BREAKDOWN_SECS=0 UG_BENCH_CONC="${UG_BENCH_CONC:-1}" \
    valgrind --tool=callgrind --callgrind-out-file="$work/out" "$1" --bench >"$log" 2>&1 ||
    { tail -20 "$log" >&2; return 1; }
  local ir req
  ir="$(sed -n 's/.*Collected : *\([0-9,]*\).*/\1/p' "$log" | tr -d ,)"
  req="$(sed -n 's/^round 1 .*(\([0-9]*\) req).*/\1/p' "$log")"
  [ -n "$ir" ] && [ -n "$req" ] || { echo "instructions.sh: no totals in the output of $1" >&2; return 1; }
  echo "$ir $req"
}

printf '%-60s %-8s %14s\n' binary phase 'instr/request'
for bin in "$@"; do
  for phase in healthz memory; do
    read -r ir1 req1 < <(count "$bin" "$phase" 1)
    read -r ir4 req4 < <(count "$bin" "$phase" 4)
    awk -v b="$bin" -v p="$phase" -v i="$((ir4 - ir1))" -v r="$((req4 - req1))" \
      'BEGIN { printf "%-60s %-8s %14.0f\n", b, p, i / r }'
  done
done
