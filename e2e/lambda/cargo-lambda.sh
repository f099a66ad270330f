#!/usr/bin/env bash
# cargo-lambda and Zig from PyPI, in a venv cached under
# ${UPLOADGATE_CACHE:-~/.cache/uploadgate}/lambda-venv-<hash of the pins>.
#
#   e2e/lambda/cargo-lambda.sh build --release --arm64 ...   # runs `cargo lambda build ...`
#   e2e/lambda/cargo-lambda.sh --bin-dir                    # installs if needed, prints the venv's bin/
#
# The pins live in .ci/requirements-lambda.txt; changing one builds a new
# venv. The venv's bin/ goes first on PATH so cargo-lambda finds its Zig
# (the `ziglang` package, run as `python -m ziglang`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
REQS="$ROOT/.ci/requirements-lambda.txt"
PYTHON="${PYTHON:-python3}"

say() { echo "cargo-lambda: $*" >&2; }

ensure_venv() {
  local key venv
  key="$(sha256sum "$REQS" | cut -c1-12)"
  venv="$CACHE/lambda-venv-$key"
  if [ ! -f "$venv/.complete" ]; then
    say "creating venv $venv (first run downloads cargo-lambda and Zig, ~100 MB)"
    rm -rf "$venv"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
      --cache-dir "$CACHE/pip" -r "$REQS" >&2
    touch "$venv/.complete"
  fi
  echo "$venv/bin"
}

bin="$(ensure_venv)"
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
