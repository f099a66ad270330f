#!/usr/bin/env bash
# Schemathesis against docs/openapi.yaml on a running `uploadgate serve`, in
# `jwt` identity mode with a valid token: no 5xx, and every response
# conforms to the document (status codes, content types, headers, bodies).
#
#   e2e/schemathesis/run.sh
#   SCHEMATHESIS_SEED=7 SCHEMATHESIS_MAX_EXAMPLES=300 e2e/schemathesis/run.sh
#
# Three rounds, each against a fresh server (memory store, temp data dir,
# API and local bucket on 127.0.0.1:0), with the same issuer:
#   admitted         generous limits under the token's tier (`plan: pro`),
#                    so requests reach the 200 answers;
#   limited          tight default limits and no tier, so most requests get
#                    429 (and a declared size over the byte limit, 413);
#                    charging on upload, so grants are reservations;
#   unauthenticated  no token: Schemathesis makes up credentials from the
#                    document's security schemes, or sends none, so every
#                    quota route answers 401.
# The key pair is generated here (e2e/schemathesis/issuer.py, ES256); the
# server verifies the token against the public key file. Each round must
# also see the statuses it exists for (e2e/schemathesis/statuses.py), so a
# round that tested nothing (a refused token, say) fails.
#
# Environment:
#   UPLOADGATE_BIN             binary to test (default: cargo build -p uploadgate)
#   UPLOADGATE_CACHE           cache of the venv (default ~/.cache/uploadgate)
#   SCHEMATHESIS_SEED          fixed seed (default 20261202)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   SCHEMATHESIS_ROUNDS        rounds to run (default "admitted limited unauthenticated")
#   SCHEMATHESIS_ARGS          more `schemathesis run` flags, e.g. --continue-on-failure
#   PYTHON                     interpreter for the venv (default python3)
#   KEEP_LOGS                  keep the temp dir (server logs, JUnit report)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
# shellcheck source=../../scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=../../scripts/lib/proc.sh
. "$ROOT/scripts/lib/proc.sh"
start=$SECONDS

say() { echo "schemathesis: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

SEED="${SCHEMATHESIS_SEED:-20261202}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
ROUNDS="${SCHEMATHESIS_ROUNDS:-admitted limited unauthenticated}"
ISSUER="https://issuer.uploadgate.test/schemathesis"
AUDIENCE="uploadgate-schemathesis"

# 1. Schemathesis, PyJWT and cryptography, pinned.
VENV="$(ensure_venv schemathesis "$ROOT/.ci/requirements-schemathesis.txt" "${PYTHON:-python3}")"

# 2. The gate.
if [ -z "${UPLOADGATE_BIN:-}" ]; then
  say "cargo build -p uploadgate"
  cargo build --locked -q -p uploadgate
  UPLOADGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/uploadgate"
fi
[ -x "$UPLOADGATE_BIN" ] || { say "no binary at $UPLOADGATE_BIN"; exit 1; }

RUN="$(mktemp -d "${TMPDIR:-/tmp}/uploadgate-schemathesis.XXXXXX")"
SERVER_PID=""
ok=0
cleanup() {
  set +e
  stop_group "$SERVER_PID" 10
  if [ "$ok" = 1 ] && [ -z "${KEEP_LOGS:-}" ]; then
    rm -rf "$RUN"
  else
    say "logs kept in $RUN"
  fi
}
trap cleanup EXIT

# 3. The issuer: a key pair for this run only.
"$VENV/bin/python" "$HERE/issuer.py" keys "$RUN"

# start_server NAME [FLAG ...]: `uploadgate serve` on 127.0.0.1:0 in jwt
# mode; sets SERVER_PID and BASE once /healthz answers.
start_server() {
  local name="$1" line="" _
  shift
  mkdir -p "$RUN/$name"
  # Created here: the background shell opens them only when it runs.
  : >"$RUN/$name/server.out"
  : >"$RUN/$name/server.err"
  setsid "$UPLOADGATE_BIN" serve \
    --listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 \
    --data-dir "$RUN/$name/data" --store memory \
    --identity jwt --jwt-issuer "$ISSUER" --jwt-audience "$AUDIENCE" \
    --jwt-public-key "$RUN/public.pem" \
    "$@" </dev/null >"$RUN/$name/server.out" 2>"$RUN/$name/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    [ -d "/proc/$SERVER_PID" ] || break
    line="$(sed -n 's|^uploadgate: api listening on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$RUN/$name/server.out")"
    [ -n "$line" ] && break
    sleep 0.1
  done
  if [ -z "$line" ] || ! curl -fsS -m 5 -o /dev/null "$line/healthz"; then
    say "$name: the server did not start"
    tail -n 20 "$RUN/$name/server.out" "$RUN/$name/server.err" >&2
    return 1
  fi
  BASE="$line"
}

# run_round NAME EXPECTED [SCHEMATHESIS FLAG ...]: every operation of the
# document, every check, against the server at BASE; then the statuses seen,
# which must include each of EXPECTED ("POST /v1/uploads=200 ...").
run_round() {
  local name="$1" expected=() extra=() status=0 e
  read -r -a expected <<<"$2"
  shift 2
  read -r -a extra <<<"${SCHEMATHESIS_ARGS:-}"
  say "$name: schemathesis run (seed $SEED, at most $MAX_EXAMPLES examples per operation and phase) against $BASE"
  # From the round's directory: Hypothesis and the reports write there.
  (cd "$RUN/$name" && "$VENV/bin/schemathesis" \
    --config-file "$HERE/schemathesis.toml" \
    run "$ROOT/docs/openapi.yaml" \
    --url "$BASE" \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
    --generation-database none \
    --report junit,ndjson --report-dir "$RUN/$name/report" \
    --checks all --no-color "$@" "${extra[@]}") || status=$?
  local args=()
  for e in "${expected[@]}"; do args+=(--expect "${e//_/ }"); done
  say "$name: statuses seen"
  "$VENV/bin/python" "$HERE/statuses.py" "$RUN/$name"/report/ndjson-*.ndjson "${args[@]}" >&2 ||
    status=1
  if [ "$status" != 0 ]; then
    say "$name: FAILED; server log: $RUN/$name/server.err"
  fi
  return "$status"
}

status=0
for round in $ROUNDS; do
  case "$round" in
    admitted)
      # Generous limits of every kind (user and ip, count and bytes, each
      # algorithm) under the token's tier; the default policy is tight, so
      # a token whose tier did not apply would show up as 429s.
      token="$("$VENV/bin/python" "$HERE/issuer.py" mint "$RUN" --issuer "$ISSUER" \
        --audience "$AUDIENCE" --subject schemathesis-admitted --ttl 3600 --claim plan=pro)"
      start_server admitted \
        --limits 'uploads=user:1/1h' \
        --tiers 'pro=uploads=user:1000000/1h:gcra;volume=user:100TiB/1d:fixed;burst=ip:1000/1m' \
        --tier-claim plan --max-object-bytes 5GiB
      # Charging on grant records no usage: GET /v1/usage is 404 here (and
      # Schemathesis warns of "missing test data" for it); the limited round,
      # charging on upload, reaches its 200 and 400.
      run_round admitted "POST_/v1/uploads=200 POST_/upload-check=200 GET_/v1/quota=200 GET_/v1/usage=404 GET_/healthz=200" \
        --header "Authorization: Bearer $token" || status=1
      ;;
    limited)
      # Tight limits: after the first admissions, 429 with Retry-After and
      # the RateLimit fields; a size over the byte limit is 413.
      token="$("$VENV/bin/python" "$HERE/issuer.py" mint "$RUN" --issuer "$ISSUER" \
        --audience "$AUDIENCE" --subject schemathesis-limited --ttl 3600)"
      start_server limited --charge upload \
        --limits 'uploads=user:3/1h;volume=user:1MiB/1d:gcra;burst=ip:20/1m:fixed'
      run_round limited "POST_/v1/uploads=200 POST_/v1/uploads=429 POST_/v1/uploads=413 POST_/upload-check=429 GET_/v1/quota=200 GET_/v1/usage=200 GET_/v1/usage=400" \
        --header "Authorization: Bearer $token" || status=1
      ;;
    unauthenticated)
      start_server unauthenticated --limits 'uploads=user:1000/1h:gcra'
      # Every answer is a 401 here, so Schemathesis's "missing auth"
      # warning is the point of the round, not news.
      run_round unauthenticated "POST_/v1/uploads=401 POST_/upload-check=401 GET_/v1/quota=401 GET_/v1/usage=401 GET_/healthz=200" \
        --warnings off || status=1
      ;;
    *)
      say "unknown round $round (admitted, limited, unauthenticated)"
      exit 2
      ;;
  esac
  stop_group "$SERVER_PID" 10
  SERVER_PID=""
done

say "finished in $((SECONDS - start)) s"
[ "$status" = 0 ] && ok=1
exit "$status"
