#!/usr/bin/env bash
# Browser end-to-end tests: the JS client and the demo page in headless
# Chromium, against `uploadgate serve` (embedded bucket) and LocalStack S3.
#
# Installs what is missing (Debian chromium, npm packages, a LocalStack venv),
# builds the binary unless UPLOADGATE_BIN is set, runs `node --test`, and after
# a fully passing run copies the page screenshots to docs/screenshots/.
#
# Environment:
#   UPLOADGATE_BIN     uploadgate binary to test (default: cargo build -p uploadgate)
#   UPLOADGATE_CACHE   cache for npm and the LocalStack venv (default ~/.cache/uploadgate)
#   E2E_TESTS          test files to run (default e2e/tests/*.test.mjs)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
START=$SECONDS
say() { echo "e2e: $*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Debian's Chromium. Never a browser download.
if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { as_root apt-get install -y --no-install-recommends chromium fonts-dejavu-core; }
  if ! apt_install; then
    as_root apt-get update
    apt_install
  fi
fi

# 2. playwright-core from the lockfile (it brings no browser).
mkdir -p "$CACHE/npm"
say "npm ci"
(cd "$HERE" && npm ci --cache "$CACHE/npm" --prefer-offline --no-audit --no-fund --loglevel=error)

# 3. The gate.
if [ -z "${UPLOADGATE_BIN:-}" ]; then
  say "cargo build -p uploadgate"
  (cd "$ROOT" && cargo build -p uploadgate)
  export UPLOADGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/uploadgate"
fi
[ -x "$UPLOADGATE_BIN" ] || { say "no binary at $UPLOADGATE_BIN"; exit 1; }
# The tests run from e2e/: make a relative path absolute.
UPLOADGATE_BIN="$(cd "$(dirname "$UPLOADGATE_BIN")" && pwd)/$(basename "$UPLOADGATE_BIN")"
export UPLOADGATE_BIN

# 4. LocalStack S3 (stopped again on exit if this script started it).
LS_OUT="$("$HERE/scripts/localstack.sh" start)"
eval "$LS_OUT"
cleanup() {
  if [ "${LOCALSTACK_STARTED_HERE:-0}" = 1 ]; then "$HERE/scripts/localstack.sh" stop || true; fi
}
trap cleanup EXIT

# 5. The tests (one file at a time: each starts servers and a browser).
rm -rf "$HERE/artifacts"
mkdir -p "$HERE/artifacts"
say "running tests (setup took $((SECONDS - START)) s)"
set +e
if [ -n "${E2E_TESTS:-}" ]; then
  # shellcheck disable=SC2086
  (cd "$HERE" && node --test --test-concurrency=1 $E2E_TESTS)
else
  (cd "$HERE" && node --test --test-concurrency=1 tests/*.test.mjs)
fi
STATUS=$?
set -e

# 6. Publish the screenshots only from a fully passing run.
if [ "$STATUS" = 0 ]; then
  for shot in uploading.png limited.png; do
    if [ -f "$HERE/artifacts/docs/$shot" ]; then
      mkdir -p "$ROOT/docs/screenshots"
      cp "$HERE/artifacts/docs/$shot" "$ROOT/docs/screenshots/$shot"
      say "updated docs/screenshots/$shot"
    fi
  done
else
  say "FAILED; screenshots of failing pages are in e2e/artifacts/"
  ls "$HERE/artifacts"/FAILED-*.png 2>/dev/null || true
fi
say "finished in $((SECONDS - START)) s"
exit "$STATUS"
