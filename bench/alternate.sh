#!/usr/bin/env bash
# The HTTP bench's ratio POST /v1/uploads / GET /healthz for several builds,
# alternated: PASSES passes, each binary once per pass, so that whatever
# else the machine does falls on every build alike. Then, per build, the
# median, mean and standard error of the runs' ratios, and the same for
# the ratio of CPU per request (server + client, healthz over upload),
# which moves less with the machine's load than req/s.
#
#   bench/alternate.sh PASSES BENCH_BINARY [BENCH_BINARY...]
#
# A bench binary is what `cargo bench -p uploadgate --bench http --no-run`
# prints (target/release/deps/http-*); build one per commit to compare.
# Each run is 3 rounds of 3 s per phase (UG_BENCH_ROUNDS, UG_BENCH_SECS
# override); about a minute per binary and pass on 2 vCPUs.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,14p "$0"; exit 2; }
passes=$1
shift
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

for pass in $(seq 1 "$passes"); do
  for bin in "$@"; do
    out=$(cd /tmp && UG_BENCH_PHASES=healthz,memory UG_BENCH_ROUNDS="${UG_BENCH_ROUNDS:-3}" \
      UG_BENCH_SECS="${UG_BENCH_SECS:-3}" UG_BENCH_BREAKDOWN_SECS=0 "$bin" --bench 2>&1) ||
      { echo "$out" | tail -20 >&2; exit 1; }
    # Medians of the run: "  healthz  79026  0.69 ms  1.91 ms  11.4  10.5".
    line=$(awk -v b="$bin" '
      $1 == "healthz" && NF == 8 { hr = $2; hc = $7 + $8 }
      $1 == "memory" && NF == 8 { mr = $2; mc = $7 + $8 }
      END { if (hr && mr) printf "%s %.4f %.4f %d %d\n", b, mr / hr, hc / mc, hr, mr }' <<<"$out")
    [ -n "$line" ] || { echo "alternate.sh: no medians in the output of $bin" >&2; exit 1; }
    echo "$line" >>"$log"
    read -r _ ratio cpu hr mr <<<"$line"
    printf 'pass %d %s ratio %s cpu-ratio %s healthz %s req/s upload %s req/s\n' \
      "$pass" "$bin" "$ratio" "$cpu" "$hr" "$mr"
  done
done

echo
printf '%-40s %-9s %7s %7s %7s   %s\n' binary measure median mean sem runs
for bin in "$@"; do
  for col in 2 3; do
    name=$([ "$col" = 2 ] && echo ratio || echo cpu-ratio)
    awk -v b="$bin" -v c="$col" '$1 == b { print $c }' "$log" | sort -g |
      awk -v b="$bin" -v n="$name" '
        { v[NR] = $1; s += $1; q += $1 * $1 }
        END {
          m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          mean = s / NR
          sd = NR > 1 ? sqrt((q - NR * mean * mean) / (NR - 1)) : 0
          printf "%-40s %-9s %7.3f %7.3f %7.3f   %d\n", b, n, m, mean, sd / sqrt(NR), NR
        }'
  done
done
