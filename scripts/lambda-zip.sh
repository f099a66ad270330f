#!/usr/bin/env bash
# Build a Lambda function's deployment zip with cargo-lambda (from the
# cached venv of e2e/lambda/cargo-lambda.sh, pinned in
# .ci/requirements-lambda.txt) and print its path and size.
#
#   scripts/lambda-zip.sh                   # the gate, arm64 (Graviton), what infra/ deploys
#   scripts/lambda-zip.sh --settle          # the settle function (charge = "upload")
#   scripts/lambda-zip.sh --x86-64 [--settle]   # x86_64 functions
#
# The zip holds one file, `bootstrap`, for the provided.al2023 runtime. It
# lands in <repo>/target/lambda/uploadgate-lambda/bootstrap.zip (the settle
# function's in <repo>/target/lambda/uploadgate-settle/bootstrap.zip)
# whatever CARGO_TARGET_DIR is, because those are the paths the Terraform
# example reads (infra/examples/complete, lambda_zip_path and
# settle_lambda_zip_path). Cross-linking goes
# through Zig, so no cross toolchain is needed; the Rust standard library
# for the target is added with rustup if it is missing. A cold build takes
# about 7 minutes on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

arch_flag="--arm64"
triple="aarch64-unknown-linux-gnu"
# Package, and the binary cargo lambda names the zip's directory after.
package="uploadgate-lambda"
binary="uploadgate-lambda"
for arg in "$@"; do
  case "$arg" in
    --arm64) ;;
    --x86-64 | --x86_64)
      arch_flag="--x86-64"
      triple="x86_64-unknown-linux-gnu"
      ;;
    --settle)
      package="uploadgate-settle-lambda"
      binary="uploadgate-settle"
      ;;
    *)
      echo "usage: $0 [--arm64|--x86-64] [--settle]" >&2
      exit 2
      ;;
  esac
done

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$triple"; then
  rustup target add "$triple" >&2
fi

lambda_dir="$ROOT/target/lambda"
start=$(date +%s)
"$ROOT/e2e/lambda/cargo-lambda.sh" build --release "$arch_flag" --output-format zip \
  --lambda-dir "$lambda_dir" -p "$package" >&2
zip="$lambda_dir/$binary/bootstrap.zip"
[ -f "$zip" ] || { echo "lambda-zip: no zip at $zip" >&2; exit 1; }
bytes=$(stat -c %s "$zip")
echo "lambda-zip: $package for $triple in $(( $(date +%s) - start ))s" >&2
echo "$zip $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))"
