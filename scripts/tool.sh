#!/usr/bin/env bash
# Runs a Rust command-line tool from crates.io, installing it first (once,
# pinned) into the cache, so neither CI nor a new machine needs it by hand:
#
#   scripts/tool.sh cargo-machete             # cargo machete
#   scripts/tool.sh oha -z 10s URL            # oha (load generator)
#   scripts/tool.sh cargo-fuzz list           # cargo fuzz (scripts/fuzz.sh)
#
# Tools land in $UPLOADGATE_CACHE/tools/bin (default ~/.cache/uploadgate).
# The first argument is the crate; its binary runs with the other arguments.
set -euo pipefail

CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
ROOT="$CACHE/tools"

declare -A VERSIONS=(
  [cargo-fuzz]=0.13.2
  [cargo-machete]=0.9.2
  [oha]=1.16.0
)

crate="${1:?usage: scripts/tool.sh CRATE [ARGS...]}"
shift
version="${VERSIONS[$crate]:-}"
[ -n "$version" ] || { echo "scripts/tool.sh: unknown tool $crate (known: ${!VERSIONS[*]})" >&2; exit 2; }

bin="$ROOT/bin/$crate"
if ! [ -x "$bin" ] || ! grep -qs "^$crate $version\$" "$ROOT/versions" 2>/dev/null; then
  echo "tool: installing $crate $version into $ROOT" >&2
  cargo install --quiet --locked --root "$ROOT" --version "$version" "$crate" >&2
  { grep -v "^$crate " "$ROOT/versions" 2>/dev/null || true; echo "$crate $version"; } > "$ROOT/versions.new"
  mv "$ROOT/versions.new" "$ROOT/versions"
fi

exec "$bin" "$@"
