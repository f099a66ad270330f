#!/usr/bin/env bash
# Start-up figures of the Lambda binary (a measurement, not a test): the
# median time from process start to the first answered request, over RUNS
# fresh processes, for GET /healthz and POST /v1/uploads, and the peak RSS
# after it. See e2e/lambda/startup.py for exactly what is timed.
#
#   e2e/lambda/measure.sh [RUNS]         # default 7
#   e2e/lambda/measure.sh --zip [RUNS]   # the arm64 bootstrap of the zip
#
# --zip runs the `bootstrap` from target/lambda/uploadgate-lambda/bootstrap.zip
# (scripts/lambda-zip.sh) under qemu-aarch64 (Debian: qemu-user,
# libc6-arm64-cross): a check that the deployable artifact serves real
# requests; its times are an emulator's, not Graviton's.
#
# Builds the release binary for this machine (x86_64; the deployed one is
# the arm64 build of the same code), starts its own moto and LocalStack
# (as e2e/lambda/run.sh does) and `cargo lambda watch --only-lambda-apis`
# on 127.0.0.1, and stops them all at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=../../scripts/lib/proc.sh
. "$ROOT/scripts/lib/proc.sh"
ZIP=0
if [ "${1:-}" = "--zip" ]; then
  ZIP=1
  shift
fi
RUNS="${1:-7}"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
export UPLOADGATE_CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UPLOADGATE_CACHE/target}"
STATE="$UPLOADGATE_CACHE/lambda-e2e"
mkdir -p "$STATE"

say() { echo "lambda-measure: $*" >&2; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

WATCH_PID=""
unpacked=""
MOTO_STARTED_HERE=0
LOCALSTACK_STARTED_HERE=0
cleanup() {
  set +e
  stop_group "$WATCH_PID" 10
  [ -n "$unpacked" ] && rm -rf "$unpacked"
  [ "$MOTO_STARTED_HERE" = 1 ] && MOTO_STATE_DIR="$STATE/moto" bash scripts/moto.sh stop
  [ "$LOCALSTACK_STARTED_HERE" = 1 ] && LOCALSTACK_STATE_DIR="$STATE/localstack" bash e2e/scripts/localstack.sh stop
  return 0
}
trap cleanup EXIT

if [ "$ZIP" = 1 ]; then
  zip="$ROOT/target/lambda/uploadgate-lambda/bootstrap.zip"
  [ -f "$zip" ] || { say "no $zip: run scripts/lambda-zip.sh first"; exit 1; }
  command -v qemu-aarch64 >/dev/null || { say "needs qemu-aarch64 (apt-get install qemu-user libc6-arm64-cross)"; exit 1; }
  unpacked="$(mktemp -d)"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$unpacked"
  chmod +x "$unpacked/bootstrap"
  BINARY="$unpacked/bootstrap"
  export LAMBDA_EXEC_PREFIX="qemu-aarch64 -L /usr/aarch64-linux-gnu"
else
  say "building the release binary"
  cargo build --release --locked -q -p uploadgate-lambda
  BINARY="$CARGO_TARGET_DIR/release/uploadgate-lambda"
fi
bin="$(bash e2e/lambda/cargo-lambda.sh --bin-dir)"

eval "$(MOTO_STATE_DIR="$STATE/moto" bash scripts/moto.sh start)"
eval "$(LOCALSTACK_STATE_DIR="$STATE/localstack" LOCALSTACK_PORT="${LOCALSTACK_PORT:-$(free_port)}" \
  bash e2e/scripts/localstack.sh start)"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=ASIAE2ELAMBDA0000001 AWS_SECRET_ACCESS_KEY=test
export AWS_SESSION_TOKEN=E2eLambdaSessionToken AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_S3="$LOCALSTACK_ENDPOINT"
unset AWS_PROFILE AWS_DEFAULT_PROFILE

suffix="$(date +%s)-$$"
export UPLOADGATE_STORE=dynamodb UPLOADGATE_TABLE="uploadgate-lambda-measure-$suffix"
export UPLOADGATE_TARGET=s3 UPLOADGATE_BUCKET="ug-lambda-measure-$suffix"
# startup.py names its users in x-user-id, as the README's figures were
# measured; the function's own default, jwt, would refuse to start without
# an issuer (e2e/lambda/run.sh tests that path, with moto's Cognito).
export UPLOADGATE_IDENTITY=header
"$LOCALSTACK_PYTHON" e2e/scripts/s3admin.py "$LOCALSTACK_ENDPOINT" create-bucket "$UPLOADGATE_BUCKET"
cargo run --locked -q -p uploadgate -- table create >&2

PORT="$(free_port)"
setsid "$bin/cargo-lambda" lambda watch --only-lambda-apis -A 127.0.0.1 -P "$PORT" \
  </dev/null >/dev/null 2>&1 &
WATCH_PID=$!
# Ready when it accepts connections (any HTTP request would be an invocation).
python3 - "$PORT" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("cargo lambda watch did not start")
PY

say "$RUNS runs per route, binary $BINARY ($(stat -c %s "$BINARY") bytes)"
python3 e2e/lambda/startup.py "$BINARY" "http://127.0.0.1:$PORT/.rt/uploadgate-lambda" \
  "http://127.0.0.1:$PORT/lambda-url/uploadgate-lambda" "$RUNS"
