#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 15), one
# after the other, on one core, niced:
#
#   scripts/fuzz.sh               # every target, 15 s each (CI)
#   scripts/fuzz.sh 600           # every target, 10 min each
#   scripts/fuzz.sh 60 limits     # one target
#
# Installs what it needs: cargo-fuzz (pinned, by scripts/tool.sh) and a
# nightly toolchain (rustup, minimal profile). Where no nightly can be had,
# it builds with the pinned stable toolchain and RUSTC_BOOTSTRAP=1, which
# takes the same -Z flags.
#
# Each target starts from its committed seeds (fuzz/corpus/<target>, only
# read) and a working corpus in the cache, which keeps what earlier runs
# found. A crash fails the run; its input is in fuzz/artifacts/<target>/
# and `cargo +nightly fuzz run <target> <file>` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

seconds="${1:-15}"
shift || true
CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
# The fuzz crate is its own workspace, built with other flags and another
# toolchain: it never shares the product's target directory.
export CARGO_TARGET_DIR="$CACHE/fuzz-target"
export CARGO_TERM_COLOR=never

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1 \
  || rustup toolchain install nightly --profile minimal >&2; then
  toolchain=(+nightly)
else
  echo "fuzz: no nightly toolchain; building with stable and RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
fi

# cargo-fuzz, pinned, from the cache (scripts/tool.sh installs it once).
bash scripts/tool.sh cargo-fuzz --version >/dev/null
export PATH="$CACHE/tools/bin:$PATH"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

echo "== fuzz: build (${targets[*]})"
start=$(date +%s)
nice cargo "${toolchain[@]}" fuzz build --fuzz-dir fuzz
echo "fuzz: built in $(( $(date +%s) - start ))s"

logs="$CACHE/fuzz-logs"
mkdir -p "$logs"
for t in "${targets[@]}"; do
  work="$CACHE/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/corpus/$t"
  args=(-max_total_time="$seconds" -print_final_stats=1)
  [ -f "fuzz/dict/$t.dict" ] && args+=(-dict="fuzz/dict/$t.dict")
  echo "== fuzz: $t for ${seconds}s (log: $logs/$t.log)"
  # New inputs go to the first corpus directory: the working one.
  rc=0
  nice cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz "$t" "$work" "fuzz/corpus/$t" -- "${args[@]}" \
    >"$logs/$t.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$logs/$t.log" >&2
    echo "fuzz: $t FAILED (exit $rc); the input is under fuzz/artifacts/$t/" >&2
    exit "$rc"
  fi
  # libFuzzer's summary: corpus loaded, final coverage, executions.
  grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+(INITED|DONE))|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
    "$logs/$t.log" || true
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
