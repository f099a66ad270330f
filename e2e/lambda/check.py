"""Checks of the Lambda end-to-end test (run by e2e/lambda/run.sh with
LocalStack's venv python, which has boto3).

The function runs under `cargo lambda watch` (the real binary, talking to
the emulated Lambda runtime API), on DynamoDB (moto) and S3 (LocalStack,
which verifies presigned signatures). Requests go through the emulated
function URL, so the function sees payload 2.0 events.

Identity is the function's default, `jwt`: every user is a user of a pool
in moto's Cognito (e2e/lambda/cognito.py), created on first use, and every
request carries that user's access token in `x-upload-token`, as a browser
behind CloudFront would (origin access control overwrites Authorization).
The gate's user id is the token's `sub`.

Environment (set by run.sh):
  LAMBDA_BASE          http://127.0.0.1:PORT/lambda-url/uploadgate-lambda
  LOCALSTACK_ENDPOINT  the S3 endpoint
  BUCKET               the bucket the function signs for
  URL_TTL_SECONDS      UPLOADGATE_URL_TTL of the function, in seconds
  WATCH_OUT/WATCH_ERR  files with cargo lambda watch's stdout/stderr (the
                       function's EMF lines / JSON log lines)
  COGNITO_ENDPOINT     moto, whose Cognito issues the tokens
  COGNITO_POOL_ID, COGNITO_CLIENT_ID, COGNITO_ISSUER
                       the pool, its app client (the function's audience)
                       and the issuer the function accepts
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
                       the function's credentials, which must not be logged
  SETTLE_INVOKE        the settle function's Invoke URL (its own emulator)
  SETTLE_OUT           the settle function's stdout (EMF lines)
  EVENTS_QUEUE_URL, EVENTS_QUEUE_ARN
                       the queue LocalStack sends the bucket's events to
  ACCEPTED_QUEUE_URL   the queue the settle function hands accepted uploads to

The gate charges on upload (UPLOADGATE_CHARGE=upload): each URL is a
reservation, which the settle function settles when it is invoked with
the bucket's event, as an SQS event source mapping would invoke it.

Prints one line per check and ends with "N passed, N failed".
"""

import base64
import hashlib
import http.client
import json
import os
import re
import sys
import time
import traceback
import urllib.parse
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from cognito import Users, claims

BASE = os.environ["LAMBDA_BASE"]
BUCKET = os.environ["BUCKET"]
TTL = int(os.environ["URL_TTL_SECONDS"])
SECRETS = [
    os.environ["AWS_ACCESS_KEY_ID"],
    os.environ["AWS_SESSION_TOKEN"],
]
SECRET_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
USERS = Users(os.environ["COGNITO_ENDPOINT"], os.environ["COGNITO_POOL_ID"], os.environ["COGNITO_CLIENT_ID"])
TOKEN_HEADER = "x-upload-token"

# Request ids of decided requests (200 or 429 on POST /v1/uploads), with
# the decision, for the log and metric checks.
DECIDED = []
# Every signature handed out, which must appear in no log line.
SIGNATURES = []


def s3():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["LOCALSTACK_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def sqs():
    return boto3.client(
        "sqs",
        endpoint_url=os.environ["LOCALSTACK_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def request(method, url, headers=None, body=None):
    """One HTTP request with exactly these headers (http.client adds only
    Host, Accept-Encoding and, for a body, Content-Length)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    target = u.path + ("?" + u.query if u.query else "")
    conn.request(method, target, body=body, headers=headers or {})
    res = conn.getresponse()
    data = res.read()
    hdrs = {k.lower(): v for k, v in res.getheaders()}
    conn.close()
    return res.status, hdrs, data


def ask(user, size, content_type="application/pdf", filename="doc.pdf", extra=None, token=None, fields=None):
    """POST /v1/uploads as Cognito user `user` (its access token in
    x-upload-token), or with `token` as the whole x-upload-token value;
    `extra` headers last (None removes one); `fields` join the body."""
    headers = {TOKEN_HEADER: token if token is not None else USERS.get(user)["access"],
               "content-type": "application/json"}
    headers.update(extra or {})
    headers = {k: v for k, v in headers.items() if v is not None}
    body = json.dumps({"filename": filename, "contentType": content_type, "size": size, **(fields or {})})
    status, hdrs, data = request("POST", BASE + "/v1/uploads", headers, body.encode())
    answer = json.loads(data) if data else None
    if status in (200, 429):
        DECIDED.append((hdrs.get("x-request-id"), "allowed" if status == 200 else "denied"))
    if status == 200:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(answer["url"]).query)
        SIGNATURES.append(q["X-Amz-Signature"][0])
    return status, hdrs, answer


def put(answer, body, headers=None, url=None):
    h = dict(answer["headers"]) if headers is None else headers
    # http.client sets Content-Length from the body itself, as browsers do.
    h.pop("content-length", None)
    return request("PUT", url or answer["url"], h, body)


def s3_error(data):
    m = re.search(rb"<Code>([^<]+)</Code>", data)
    return m.group(1).decode() if m else data[:200].decode(errors="replace")


def object_exists(key):
    try:
        s3().head_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def uid(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- checks


def quota(token):
    status, _, data = request("GET", BASE + "/v1/quota", {TOKEN_HEADER: token})
    return status, json.loads(data) if data else None


def key_user(answer):
    """The user segment of the key: uploads/<user>/<uuid>/<file>."""
    return answer["key"].split("/")[1]


def a_cognito_token_names_its_user():
    user = USERS.get(uid("token"))
    expect(claims(user["access"])["iss"] == os.environ["COGNITO_ISSUER"], claims(user["access"]))
    status, _, answer = ask(None, 10, token=user["access"])
    expect(status == 200, f"{status} {answer}")
    # The user is the token's sub, which Cognito reports for this user.
    expect(claims(user["access"])["sub"] == user["sub"], claims(user["access"]))
    expect(key_user(answer) == user["sub"], answer["key"])
    status, q = quota(user["access"])
    expect(status == 200 and q["user"] == user["sub"], f"{status} {q}")
    # "Bearer <token>" in the token header is the same token.
    status, _, answer = ask(None, 10, token="Bearer " + user["access"])
    expect(status == 200 and key_user(answer) == user["sub"], f"{status} {answer}")
    # The ID token (aud instead of client_id) names the same user too.
    status, _, answer = ask(None, 10, token=user["id"])
    expect(status == 200 and key_user(answer) == user["sub"], f"{status} {answer}")
    expect([l["remaining"] for l in answer["limits"] if l["name"] == "uploads"] == [2], answer["limits"])


def a_tampered_or_missing_token_gets_401_and_costs_nothing():
    victim, attacker = USERS.get(uid("victim")), USERS.get(uid("attacker"))
    header, _, signature = attacker["access"].split(".")
    forged_claims = dict(claims(attacker["access"]), sub=victim["sub"])
    payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).decode().rstrip("=")
    forged = f"{header}.{payload}.{signature}"
    status, hdrs, answer = ask(None, 10, token=forged)
    expect(status == 401, f"{status} {answer}")
    expect(answer["detail"] == "the token's signature does not verify", answer)
    expect(hdrs.get("www-authenticate", "").startswith('Bearer error="invalid_token"'), hdrs)
    expect(forged not in open(os.environ["WATCH_ERR"], encoding="utf-8", errors="replace").read(), "token logged")
    # Behind CloudFront a token in Authorization never arrives (OAC
    # overwrites it); the function does not look there either.
    status, _, answer = ask(None, 10, token="", extra={TOKEN_HEADER: None,
                                                       "authorization": "Bearer " + victim["access"]})
    expect(status == 401, f"{status} {answer}")
    expect(answer["detail"] == "no token: send it in the `x-upload-token` header", answer)
    status, q = quota(victim["access"])
    expect(status == 200, f"{status} {q}")
    expect([l["remaining"] for l in q["limits"] if l["name"] == "uploads"] == [5], f"charged: {q}")


def five_allowed_then_429_with_retry_after():
    user = uid("limit")
    for i in range(1, 6):
        status, hdrs, answer = ask(user, 100)
        expect(status == 200, f"request {i}: {status} {answer}")
        uploads = [l for l in answer["limits"] if l["name"] == "uploads"][0]
        expect(uploads["remaining"] == 5 - i, f"request {i}: {answer['limits']}")
    status, hdrs, answer = ask(user, 100)
    expect(status == 429, f"sixth: {status} {answer}")
    retry = int(hdrs["retry-after"])
    expect(0 < retry <= 3 * 3600, f"retry-after {retry}")
    expect(hdrs["content-type"] == "application/problem+json", hdrs)
    expect(answer["violated-policies"] == ["uploads"], answer)
    expect('"uploads";q=5;w=10800' in hdrs["ratelimit-policy"], hdrs)
    expect(hdrs["ratelimit"].startswith('"uploads";r=0;t='), hdrs)
    # Another user's token spends its own quota.
    status, _, answer = ask(uid("other"), 100)
    expect(status == 200, f"another user: {status} {answer}")
    expect([l["remaining"] for l in answer["limits"] if l["name"] == "uploads"] == [4], answer["limits"])
    expect(key_user(answer) != USERS.get(user)["sub"], answer["key"])


def the_url_works_once_and_get_returns_the_bytes():
    data = os.urandom(4321)
    status, _, answer = ask(uid("once"), len(data), "application/pdf", "report.pdf")
    expect(status == 200, answer)
    expect(answer["method"] == "PUT", answer)
    expect(answer["headers"] == {
        "content-disposition": 'attachment; filename="report.pdf"',
        "content-length": "4321",
        "content-type": "application/pdf",
        "if-none-match": "*",
    }, answer["headers"])
    expect(answer["url"].startswith(os.environ["LOCALSTACK_ENDPOINT"] + "/" + BUCKET + "/"), answer["url"])
    status, _, body = put(answer, data)
    expect(status == 200, f"first PUT: {status} {s3_error(body)}")
    status, _, body = put(answer, data)
    expect(status == 412, f"second PUT: {status} {s3_error(body)}")
    got = s3().get_object(Bucket=BUCKET, Key=answer["key"])["Body"].read()
    expect(got == data, f"GET returned {len(got)} bytes, not the {len(data)} sent")


def a_tampered_signature_is_refused():
    status, _, answer = ask(uid("tamper"), 10)
    expect(status == 200, answer)
    url = answer["url"]
    sig = re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1)
    forged = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    status, _, body = put(answer, b"0123456789", url=url.replace(sig, forged))
    expect(status == 403, f"{status} {s3_error(body)}")
    expect(s3_error(body) == "SignatureDoesNotMatch", s3_error(body))
    expect(not object_exists(answer["key"]), "the object exists")


def another_size_or_type_is_refused():
    status, _, answer = ask(uid("size"), 10)
    expect(status == 200, answer)
    status, _, body = put(answer, b"01234567890")
    expect(status == 403, f"11 bytes on a 10-byte URL: {status} {s3_error(body)}")
    expect(s3_error(body) == "SignatureDoesNotMatch", s3_error(body))
    status, _, body = put(answer, b"012345678")
    expect(status == 403, f"9 bytes: {status} {s3_error(body)}")
    retyped = dict(answer["headers"], **{"content-type": "image/png"})
    status, _, body = put(answer, b"0123456789", headers=retyped)
    expect(status == 403, f"another type: {status} {s3_error(body)}")
    expect(not object_exists(answer["key"]), "the object exists")
    # The right size and type still work: the refusals were about them.
    status, _, body = put(answer, b"0123456789")
    expect(status == 200, f"the signed size: {status} {s3_error(body)}")


def the_disposition_and_checksum_are_signed_and_metadata_refused():
    data = os.urandom(300)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    status, _, answer = ask(uid("sum"), len(data), filename="scan.pdf", fields={"checksumSha256": digest})
    expect(status == 200, answer)
    expect(answer["headers"]["x-amz-checksum-sha256"] == digest, answer["headers"])
    expect(answer["headers"]["content-disposition"] == 'attachment; filename="scan.pdf"', answer["headers"])
    # One flipped byte, same length: the signed checksum refuses it.
    flipped = bytes([data[0] ^ 1]) + data[1:]
    status, _, body = put(answer, flipped)
    expect(status == 400, f"one flipped byte: {status} {s3_error(body)}")
    expect(s3_error(body) == "BadDigest", s3_error(body))
    # Another disposition breaks the signature.
    inline = dict(answer["headers"], **{"content-disposition": "inline"})
    status, _, body = put(answer, data, headers=inline)
    expect(status == 403, f"inline: {status} {s3_error(body)}")
    # Unsigned x-amz-* headers (metadata, tagging) are refused.
    for name, value in (("x-amz-meta-owner", "mallory"), ("x-amz-tagging", "public=yes")):
        status, _, body = put(answer, data, headers=dict(answer["headers"], **{name: value}))
        expect(status == 403, f"{name}: {status} {s3_error(body)}")
    expect(not object_exists(answer["key"]), "the object exists")
    status, _, body = put(answer, data)
    expect(status == 200, f"the signed PUT: {status} {s3_error(body)}")
    head = s3().head_object(Bucket=BUCKET, Key=answer["key"])
    expect(head["ContentDisposition"] == 'attachment; filename="scan.pdf"', head)
    expect(head.get("Metadata") == {}, head.get("Metadata"))


def the_request_id_is_the_invocation_id():
    status, hdrs, _ = ask(uid("rid"), 10, extra={"x-request-id": "chosen-by-the-client"})
    expect(status == 200, status)
    rid = hdrs["x-request-id"]
    expect(rid != "chosen-by-the-client", rid)
    expect(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rid), rid)
    status, hdrs2, _ = ask(uid("rid"), 10)
    expect(hdrs2["x-request-id"] != rid, "two invocations, one id")


def the_viewer_address_is_the_ip_subject():
    def burst(user, viewer):
        status, _, answer = ask(user, 10, extra={"cloudfront-viewer-address": viewer})
        expect(status == 200, answer)
        return [l["remaining"] for l in answer["limits"] if l["name"] == "burst"][0]

    expect(burst(uid("v"), "198.51.100.7:50001") == 99, "first request of a viewer")
    expect(burst(uid("v"), "198.51.100.7:50002") == 98, "same viewer, another user and port")
    expect(burst(uid("v"), "2001:db8:1:2::7:443") == 99, "an IPv6 viewer")
    expect(burst(uid("v"), "2001:db8:1:2:ffff::8:443") == 98, "same /64")
    expect(burst(uid("v"), "2001:db8:1:3::7:443") == 99, "another /64")


def log_lines():
    lines = []
    with open(os.environ["WATCH_ERR"], encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def the_json_logs_carry_request_id_decision_and_limits():
    lines = log_lines()
    decisions = {}
    for l in lines:
        if "decision" in l:
            expect(l.get("limits"), f"no limits: {l}")
            decisions[l.get("span", {}).get("request_id")] = l["decision"]
    for rid, decision in DECIDED:
        expect(decisions.get(rid) == decision, f"{rid}: logged {decisions.get(rid)}, answered {decision}")
    expect("denied" in decisions.values(), "no denial logged")


def all_values(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from all_values(x)
    elif isinstance(v, list):
        for x in v:
            yield from all_values(x)
    else:
        yield v


def no_url_signature_or_credential_is_logged():
    texts = []
    for name in ("WATCH_ERR", "WATCH_OUT"):
        with open(os.environ[name], encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    text = "\n".join(texts)
    low = text.lower()
    for needle in ("x-amz-signature", "x-amz-credential", "x-amz-security-token", "aws_secret_access_key"):
        expect(needle not in low, f"{needle} in the output")
    tokens = [u[kind] for u in USERS.known.values() for kind in ("access", "id")]
    expect(len(tokens) >= 10, "tokens were collected")
    for secret in SECRETS + SIGNATURES + tokens:
        expect(secret not in text, f"a credential, signature or token in the output: {secret[:8]}...")
    # The secret key itself ("test" for LocalStack) as any logged value.
    for l in log_lines():
        expect(SECRET_KEY not in [str(x) for x in all_values(l)], f"the secret key in {l}")
    expect(len(SIGNATURES) >= 5, "signatures were collected")


def emf_lines_on_stdout():
    emf = []
    with open(os.environ["WATCH_OUT"], encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                v = json.loads(line)
                if "_aws" in v:
                    emf.append(v)
    by_id = {v["requestId"]: v for v in emf}
    for rid, decision in DECIDED:
        v = by_id.get(rid)
        expect(v is not None, f"no EMF line for {rid}")
        expect(v["Allowed" if decision == "allowed" else "Denied"] == 1, v)
        expect(v["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "uploadgate", v)


def event_for(key, wait=20):
    """The body of the bucket's event for `key` on the events queue (other
    events are taken off the queue and dropped)."""
    unique = key.split("/")[2]
    deadline = time.monotonic() + wait
    q = sqs()
    while time.monotonic() < deadline:
        out = q.receive_message(QueueUrl=os.environ["EVENTS_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        found = None
        for m in out.get("Messages", []):
            q.delete_message(QueueUrl=os.environ["EVENTS_QUEUE_URL"], ReceiptHandle=m["ReceiptHandle"])
            if unique in m["Body"] and found is None:
                found = m["Body"]
        if found is not None:
            return found
    raise AssertionError(f"no event for {key} within {wait} s")


def invoke_settle(messages):
    """Invokes the settle function with an SQS event of `messages`, (id,
    body) pairs, as an event source mapping does; its answer."""
    records = [
        {
            "messageId": mid,
            "receiptHandle": f"handle-{mid}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": os.environ["EVENTS_QUEUE_ARN"],
            "awsRegion": "us-east-1",
        }
        for mid, body in messages
    ]
    status, _, data = request(
        "POST", os.environ["SETTLE_INVOKE"], {"content-type": "application/json"},
        json.dumps({"Records": records}).encode(),
    )
    expect(status == 200, f"{status} {data[:300]}")
    return json.loads(data)


def accepted_messages(wait):
    """Every message on the accepted queue within `wait` seconds, taken off."""
    q = sqs()
    got = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        out = q.receive_message(QueueUrl=os.environ["ACCEPTED_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in out.get("Messages", []):
            got.append(json.loads(m["Body"]))
            q.delete_message(QueueUrl=os.environ["ACCEPTED_QUEUE_URL"], ReceiptHandle=m["ReceiptHandle"])
    return got


def an_upload_is_settled_once_by_the_settle_function():
    user = uid("settle")
    body = b"%PDF-1.7 settled from S3's event"
    status, _, answer = ask(user, len(body))
    expect(status == 200, f"{status} {answer}")
    status, _, data = put(answer, body)
    expect(status == 200, f"{status} {s3_error(data)}")
    event = event_for(answer["key"])
    expect(invoke_settle([("m-1", event)]) == {"batchItemFailures": []}, "the first delivery failed")
    got = accepted_messages(3)
    expect(len(got) == 1, got)
    m = got[0]
    expect(m["key"] == answer["key"] and m["bucket"] == BUCKET, m)
    expect(m["user"] == key_user(answer) and m["size"] == len(body), m)
    expect(m["contentType"] == "application/pdf" and m["late"] is False and m["version"] == 1, m)
    # The same event again (SQS delivers at least once): settled once.
    expect(invoke_settle([("m-2", event)]) == {"batchItemFailures": []}, "the redelivery failed")
    expect(accepted_messages(2) == [], "a second hand-off")


def a_mismatched_object_is_quarantined_and_a_bad_message_fails_alone():
    status, _, answer = ask(uid("mismatch"), 10)
    expect(status == 200, f"{status} {answer}")
    # 12 bytes where 10 were reserved, written past the URL.
    s3().put_object(Bucket=BUCKET, Key=answer["key"], Body=b"x" * 12, ContentType="application/pdf")
    event = event_for(answer["key"])
    out = invoke_settle([("m-3", event), ("m-4", "not an S3 event")])
    expect(out == {"batchItemFailures": [{"itemIdentifier": "m-4"}]}, out)
    tags = s3().get_object_tagging(Bucket=BUCKET, Key=answer["key"])["TagSet"]
    expect(tags == [{"Key": "uploadgate-quarantine", "Value": "size"}], tags)
    expect(accepted_messages(2) == [], "a quarantined upload was handed off")


def the_settle_function_emits_its_verdicts():
    counted = set()
    with open(os.environ["SETTLE_OUT"], encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                v = json.loads(line)
                if v.get("Route") == "settle":
                    counted |= {n for n in ("Settled", "Duplicate", "Quarantined", "SettleFailed") if v.get(n) == 1}
    expect(counted == {"Settled", "Duplicate", "Quarantined"}, counted)

def main():
    # Signed first, used last: the wait for expiry overlaps the other checks.
    status, _, expiring = ask(uid("expire"), 10)
    issued = time.monotonic()
    checks = [
        a_cognito_token_names_its_user,
        a_tampered_or_missing_token_gets_401_and_costs_nothing,
        five_allowed_then_429_with_retry_after,
        the_url_works_once_and_get_returns_the_bytes,
        a_tampered_signature_is_refused,
        another_size_or_type_is_refused,
        the_disposition_and_checksum_are_signed_and_metadata_refused,
        the_request_id_is_the_invocation_id,
        the_viewer_address_is_the_ip_subject,
        an_upload_is_settled_once_by_the_settle_function,
        a_mismatched_object_is_quarantined_and_a_bad_message_fails_alone,
        the_settle_function_emits_its_verdicts,
    ]

    def an_expired_url_is_refused():
        expect(status == 200, expiring)
        time.sleep(max(0.0, issued + TTL + 2 - time.monotonic()))
        st, _, body = put(expiring, b"0123456789")
        expect(st == 403, f"{st} {s3_error(body)}")
        expect(s3_error(body) == "AccessDenied" and b"expired" in body, body[:300])
        expect(not object_exists(expiring["key"]), "the object exists")

    checks += [
        an_expired_url_is_refused,
        the_json_logs_carry_request_id_decision_and_limits,
        emf_lines_on_stdout,
        no_url_signature_or_credential_is_logged,
    ]
    passed = failed = 0
    for check in checks:
        try:
            check()
            passed += 1
            print(f"ok - {check.__name__}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure, go on
            failed += 1
            print(f"FAIL - {check.__name__}", flush=True)
            traceback.print_exc(file=sys.stdout)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
