#!/usr/bin/env bash
# cargo-lambda and Zig from PyPI, in a venv cached under
# ${UPLOADGATE_CACHE:-~/.cache/uploadgate}/venv-lambda-<hash of the pins and Python>.
#
#   e2e/lambda/cargo-lambda.sh build --release --arm64 ...   # runs `cargo lambda build ...`
#   e2e/lambda/cargo-lambda.sh --bin-dir                    # installs if needed, prints the venv's bin/
#
# The pins live in .ci/requirements-lambda.txt; changing one builds a new
# venv. The venv's bin/ goes first on PATH so cargo-lambda finds its Zig
# (the `ziglang` package, run as `python -m ziglang`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQS="$ROOT/.ci/requirements-lambda.txt"
PYTHON="${PYTHON:-python3}"

say() { echo "cargo-lambda: $*" >&2; }

# shellcheck source=../../scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

bin="$(ensure_venv lambda "$REQS" "$PYTHON")/bin"
if [ "${1:-}" = "--bin-dir" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
export PATH="$bin:$PATH"
exec "$bin/cargo-lambda" lambda "$@"
