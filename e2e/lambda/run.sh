#!/usr/bin/env bash
# End-to-end test of the Lambda function: the real `uploadgate-lambda`
# binary under `cargo lambda watch` (which emulates the Lambda runtime API
# and function URLs), on DynamoDB (moto) and S3 (LocalStack, which verifies
# presigned signatures, expiry and conditional writes), in the identity mode
# the function defaults to and the Terraform module deploys: `jwt`, with
# tokens of a user pool in moto's Cognito (e2e/lambda/cognito.py), sent in
# `x-upload-token` as behind CloudFront (whose origin access control
# overwrites Authorization). The gate charges on upload; the settle function
# (`uploadgate-settle`, in a `cargo lambda watch` of its own) is invoked
# with the SQS messages LocalStack's S3 sent for each object, as an event
# source mapping would, and hands accepted uploads to a LocalStack queue.
#
#   e2e/lambda/run.sh                          # debug build (reuses cargo test's)
#   UG_LAMBDA_PROFILE=release e2e/lambda/run.sh  # release build (for the memory figure)
#
# It starts everything it needs and stops what it started: its own moto and
# LocalStack (state under $UPLOADGATE_CACHE/lambda-e2e, so a run never stops
# another suite's instances), and cargo lambda watch on 127.0.0.1. The checks
# are e2e/lambda/check.py; the last line is "N passed, N failed". It also
# prints the function process's peak RSS (VmHWM) and the run's duration.
#
# Installs on first use: cargo-lambda + Zig (PyPI, e2e/lambda/cargo-lambda.sh),
# moto (scripts/moto.sh), LocalStack (e2e/scripts/localstack.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=../../scripts/lib/proc.sh
. "$ROOT/scripts/lib/proc.sh"
start=$(date +%s)

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

export UPLOADGATE_CACHE="${UPLOADGATE_CACHE:-$HOME/.cache/uploadgate}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$UPLOADGATE_CACHE/target}"
STATE="$UPLOADGATE_CACHE/lambda-e2e"
PROFILE="${UG_LAMBDA_PROFILE:-dev}"
URL_TTL_SECONDS=4
RUN="$(mktemp -d "${TMPDIR:-/tmp}/uploadgate-lambda-e2e.XXXXXX")"
mkdir -p "$STATE"

say() { echo "lambda-e2e: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

WATCH_PID=""
SETTLE_PID=""
MOTO_STARTED_HERE=0
LOCALSTACK_STARTED_HERE=0
ok=0
cleanup() {
  set +e
  # cargo lambda watch, cargo run and the function share its process group.
  stop_group "$WATCH_PID" 10
  stop_group "$SETTLE_PID" 10
  if [ "$MOTO_STARTED_HERE" = 1 ]; then
    MOTO_STATE_DIR="$STATE/moto" bash scripts/moto.sh stop
  fi
  if [ "$LOCALSTACK_STARTED_HERE" = 1 ]; then
    LOCALSTACK_STATE_DIR="$STATE/localstack" bash e2e/scripts/localstack.sh stop
  fi
  if [ "$ok" = 1 ] && [ -z "${KEEP_LOGS:-}" ]; then
    rm -rf "$RUN"
  else
    say "logs kept in $RUN"
  fi
}
trap cleanup EXIT

bin="$(bash e2e/lambda/cargo-lambda.sh --bin-dir)"

eval "$(MOTO_STATE_DIR="$STATE/moto" bash scripts/moto.sh start)"
eval "$(LOCALSTACK_STATE_DIR="$STATE/localstack" LOCALSTACK_PORT="${LOCALSTACK_PORT:-$(free_port)}" \
  bash e2e/scripts/localstack.sh start)"

# Credentials shaped like a Lambda role's (a session token included), so
# the log check can look for them. LocalStack verifies signatures with the
# secret key "test"; moto takes anything.
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=ASIAE2ELAMBDA0000001
export AWS_SECRET_ACCESS_KEY=test
export AWS_SESSION_TOKEN="E2eLambdaSessionToken$(date +%s)NotForLogs"
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE
export AWS_ENDPOINT_URL_S3="$LOCALSTACK_ENDPOINT"

suffix="$(date +%s)-$$"
TABLE="uploadgate-lambda-e2e-$suffix"
BUCKET="ug-lambda-e2e-$suffix"
USAGE_TABLE="uploadgate-lambda-e2e-usage-$suffix"
"$LOCALSTACK_PYTHON" e2e/scripts/s3admin.py "$LOCALSTACK_ENDPOINT" create-bucket "$BUCKET"
# The bucket's ObjectCreated events go to a queue (with a DLQ), which the
# settle function is invoked with; it hands accepted uploads to another.
eval "$("$LOCALSTACK_PYTHON" e2e/scripts/s3admin.py "$LOCALSTACK_ENDPOINT" notify "$BUCKET" uploads/)"
export AWS_ENDPOINT_URL_SQS="$LOCALSTACK_ENDPOINT"
UPLOADGATE_STORE=dynamodb UPLOADGATE_TABLE="$TABLE" UPLOADGATE_USAGE_TABLE="$USAGE_TABLE" \
  cargo run --locked -q -p uploadgate -- table create >&2
# The issuer: a user pool and app client in moto's Cognito; the function
# verifies their tokens against the pool's JWKS, served by moto.
eval "$("$LOCALSTACK_PYTHON" e2e/lambda/cognito.py "$MOTO_ENDPOINT" "uploadgate-lambda-e2e-$suffix")"
say "issuer $COGNITO_ISSUER, keys at $COGNITO_JWKS_URL"

PORT="$(free_port)"
SETTLE_PORT="$(free_port)"
# No UPLOADGATE_IDENTITY: `jwt` is the function's own default. Charging on
# upload: the gate reserves, the settle function settles what lands.
export UPLOADGATE_STORE=dynamodb UPLOADGATE_TABLE="$TABLE" UPLOADGATE_TARGET=s3 \
  UPLOADGATE_BUCKET="$BUCKET" UPLOADGATE_URL_TTL="${URL_TTL_SECONDS}s" \
  UPLOADGATE_LIMITS='uploads=user:5/3h;burst=ip:100/1m' UPLOADGATE_CLIENT_IP=cloudfront \
  UPLOADGATE_JWT_ISSUER="$COGNITO_ISSUER" \
  UPLOADGATE_JWT_AUDIENCE="$COGNITO_CLIENT_ID" UPLOADGATE_JWKS_URL="$COGNITO_JWKS_URL" \
  UPLOADGATE_TOKEN_HEADER=x-upload-token \
  UPLOADGATE_CHARGE=upload UPLOADGATE_USAGE_TABLE="$USAGE_TABLE" \
  UPLOADGATE_SETTLE_QUEUE_URL="$EVENTS_QUEUE_URL" \
  UPLOADGATE_ACCEPTED_QUEUE_URL="$ACCEPTED_QUEUE_URL"
release_flag=()
[ "$PROFILE" = release ] && release_flag=(--release)
say "cargo lambda watch on 127.0.0.1:$PORT ($PROFILE build; logs in $RUN)"
PATH="$bin:$PATH" \
  setsid "$bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$PORT" --ignore-changes \
  --disable-cors -p uploadgate-lambda "${release_flag[@]}" \
  </dev/null >"$RUN/watch.out" 2>"$RUN/watch.err" &
WATCH_PID=$!
# The settle function, in an emulator of its own (invoked directly with
# SQS events, as an event source mapping would).
say "cargo lambda watch (settle) on 127.0.0.1:$SETTLE_PORT"
PATH="$bin:$PATH" \
  setsid "$bin/cargo-lambda" lambda watch -A 127.0.0.1 -P "$SETTLE_PORT" --ignore-changes \
  -p uploadgate-settle-lambda "${release_flag[@]}" \
  </dev/null >"$RUN/settle.out" 2>"$RUN/settle.err" &
SETTLE_PID=$!

BASE="http://127.0.0.1:$PORT/lambda-url/uploadgate-lambda"
# The first invocation waits for the build and the function's start.
ready=0
for _ in $(seq 1 180); do
  [ -d "/proc/$WATCH_PID" ] || break
  if [ "$(curl -s -m 600 -o /dev/null -w '%{http_code}' "$BASE/healthz" 2>/dev/null)" = 200 ]; then
    ready=1
    break
  fi
  sleep 1
done
if [ "$ready" != 1 ]; then
  say "the function never answered /healthz"
  tail -n 40 "$RUN/watch.err" >&2
  exit 1
fi

status=0
LAMBDA_BASE="$BASE" BUCKET="$BUCKET" URL_TTL_SECONDS="$URL_TTL_SECONDS" \
  SETTLE_INVOKE="http://127.0.0.1:$SETTLE_PORT/2015-03-31/functions/uploadgate-settle/invocations" \
  SETTLE_OUT="$RUN/settle.out" \
  COGNITO_ENDPOINT="$MOTO_ENDPOINT" \
  WATCH_OUT="$RUN/watch.out" WATCH_ERR="$RUN/watch.err" \
  "$LOCALSTACK_PYTHON" e2e/lambda/check.py || status=$?

# The function process: a descendant of cargo lambda watch running the
# binary that cargo built.
exe_dir=debug
[ "$PROFILE" = release ] && exe_dir=release
descends_from_watch() {
  local p="$1"
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    [ "$p" = "$WATCH_PID" ] && return 0
    p="$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)"
  done
  return 1
}
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  [ "$(readlink "$p/exe" 2>/dev/null)" = "$CARGO_TARGET_DIR/$exe_dir/uploadgate-lambda" ] || continue
  descends_from_watch "$pid" || continue
  say "function process $pid ($PROFILE): $(grep -E '^(VmHWM|VmRSS)' "$p/status" | tr -s ' \t' ' ' | paste -sd ',' -)"
done
say "finished in $(( $(date +%s) - start ))s"
[ "$status" = 0 ] && ok=1
exit "$status"
