// The client library on its own, in Node's test runner: against the real
// `uploadgate serve` for the error mapping, and against a scripted server for
// the exact bytes it sends and the header parsing.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import http from "node:http";
import { inspect } from "node:util";
import { after, before, describe, test } from "node:test";
import {
  GateError,
  NetworkError,
  QuotaExceededError,
  StorageError,
  UploadgateError,
  parseRateLimitList,
  putToStorage,
  quota,
  requestUpload,
  sha256Base64,
  sha256Fallback,
  sha256Hex,
  upload,
  usage,
} from "../../clients/js/uploadgate.js";
import { closedPort, md5, sha256, startGate } from "../lib/harness.mjs";

const WINDOW = 3 * 3600;
const QUOTA_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded";

const pdf = (name, bytes) => new File([bytes], name, { type: "application/pdf" });

describe("against uploadgate serve", () => {
  let gate;
  let endpoint;
  before(async () => {
    gate = await startGate({ env: { UPLOADGATE_LIMITS: "uploads=user:2/3h", UPLOADGATE_MAX_OBJECT_BYTES: "4096" } });
    endpoint = gate.api;
  });
  after(() => gate?.stop());

  test("upload() resolves with key, ETag, size and type, and the object holds the bytes", async () => {
    const bytes = randomBytes(3000);
    const progress = [];
    const result = await upload(pdf("report.pdf", bytes), {
      endpoint,
      token: "node-ok", tokenHeader: "x-user-id",
      onProgress: (p) => progress.push(p),
    });
    assert.match(result.key, /^uploads\/node-ok\/[0-9a-f-]{36}\/report\.pdf$/);
    assert.equal(result.etag, `"${md5(bytes)}"`);
    assert.equal(result.size, 3000);
    assert.equal(result.contentType, "application/pdf");
    // Without a checksum there is nothing to hash: the PUT alone.
    assert.deepEqual(progress[0], { phase: "uploading", loaded: 0, total: 3000 });
    assert.deepEqual(progress.at(-1), { phase: "uploading", loaded: 3000, total: 3000 });
    assert.ok(progress.every((p) => p.phase === "uploading"), JSON.stringify(progress));
    assert.deepEqual(
      result.limits.map((l) => [l.name, l.limit, l.remaining]),
      [["uploads", 2, 1]],
    );
    assert.deepEqual(await readFile(gate.objectPath(result.key)), bytes);
  });

  test("429 becomes QuotaExceededError with retryAfter, parsed RateLimit fields and the problem", async () => {
    const token = "node-limited";
    await requestUpload({ name: "a.pdf", type: "application/pdf", size: 10 }, { endpoint, token, tokenHeader: "x-user-id" });
    await requestUpload({ name: "b.pdf", type: "application/pdf", size: 10 }, { endpoint, token, tokenHeader: "x-user-id" });
    const err = await upload(pdf("c.pdf", randomBytes(10)), { endpoint, token, tokenHeader: "x-user-id" }).then(
      () => assert.fail("third upload should be refused"),
      (e) => e,
    );
    assert.ok(err instanceof QuotaExceededError, `got ${inspect(err)}`);
    assert.ok(err instanceof UploadgateError);
    assert.equal(err.name, "QuotaExceededError");
    assert.equal(err.status, 429);
    assert.ok(err.retryAfter > WINDOW - 60 && err.retryAfter <= WINDOW, `retryAfter ${err.retryAfter}`);
    assert.deepEqual(err.rateLimitPolicy, [{ name: "uploads", params: { q: 2, w: WINDOW } }]);
    assert.equal(err.rateLimit.length, 1);
    assert.equal(err.rateLimit[0].name, "uploads");
    assert.equal(err.rateLimit[0].params.r, 0);
    assert.ok(Math.abs(err.rateLimit[0].params.t - err.retryAfter) <= 1, JSON.stringify(err.rateLimit));
    assert.equal(err.problem.type, QUOTA_TYPE);
    assert.equal(err.problem.status, 429);
    assert.equal(typeof err.problem.title, "string");
    assert.deepEqual(err.violatedPolicies, ["uploads"]);
    assert.equal(err.limits[0].remaining, 0);

    // quota() reads the same state and consumes nothing.
    const q1 = await quota({ endpoint, token, tokenHeader: "x-user-id" });
    const q2 = await quota({ endpoint, token, tokenHeader: "x-user-id" });
    assert.equal(q1.user, token);
    assert.deepEqual(
      q1.limits.map((l) => [l.name, l.limit, l.remaining]),
      [["uploads", 2, 0]],
    );
    assert.equal(q2.limits[0].remaining, 0);
    assert.deepEqual(q1.rateLimitPolicy, [{ name: "uploads", params: { q: 2, w: WINDOW } }]);
    assert.equal(q1.rateLimit[0].params.r, 0);
  });

  test("413 (size over the maximum) becomes GateError with the problem's title, and charges nothing", async () => {
    const token = "node-413";
    const err = await upload(pdf("big.pdf", randomBytes(5000)), { endpoint, token, tokenHeader: "x-user-id" }).catch((e) => e);
    assert.ok(err instanceof GateError, `got ${inspect(err)}`);
    assert.ok(!(err instanceof QuotaExceededError));
    assert.equal(err.status, 413);
    assert.equal(err.problem.status, 413);
    assert.ok(err.title.length > 0 && err.title !== "HTTP 413", `title ${err.title}`);
    assert.equal(typeof err.type, "string");
    assert.equal(typeof err.detail, "string");
    assert.equal((await quota({ endpoint, token, tokenHeader: "x-user-id" })).limits[0].remaining, 2);
  });

  test("415 (content type not allowed) becomes GateError", async () => {
    const file = new File(["hello"], "notes.txt", { type: "text/plain" });
    const err = await upload(file, { endpoint, token: "node-415", tokenHeader: "x-user-id" }).catch((e) => e);
    assert.ok(err instanceof GateError, `got ${inspect(err)}`);
    assert.equal(err.status, 415);
    assert.equal(err.problem.status, 415);
    assert.ok(err.title.length > 0 && err.title !== "HTTP 415");
  });

  test("401 without a token becomes GateError", async () => {
    const err = await quota({ endpoint }).catch((e) => e);
    assert.ok(err instanceof GateError, `got ${inspect(err)}`);
    assert.equal(err.status, 401);
  });

  test("a custom token header is sent instead of x-user-id", async () => {
    // The gate reads x-user-id, so a token in another header is no identity.
    const err = await quota({ endpoint, token: "x", tokenHeader: "x-api-token" }).catch((e) => e);
    assert.ok(err instanceof GateError);
    assert.equal(err.status, 401);
  });

  test("a failed PUT becomes StorageError with the S3 status and code", async () => {
    const token = "node-storage";
    const body = new Blob([randomBytes(100)]);
    const grant = await requestUpload({ name: "once.pdf", type: "application/pdf", size: 100 }, { endpoint, token, tokenHeader: "x-user-id" });
    assert.equal(grant.method, "PUT");
    assert.equal(grant.headers["if-none-match"], "*");
    assert.equal(grant.headers["content-length"], "100");
    await putToStorage(grant, body);
    // The URL works once: the second PUT hits If-None-Match.
    const again = await putToStorage(grant, body).catch((e) => e);
    assert.ok(again instanceof StorageError, `got ${inspect(again)}`);
    assert.equal(again.status, 412);
    assert.equal(again.code, "PreconditionFailed");
    assert.equal(again.key, grant.key);

    // Bytes other than the signed size: refused by the signature check.
    const grant2 = await requestUpload({ name: "short.pdf", type: "application/pdf", size: 100 }, { endpoint, token, tokenHeader: "x-user-id" });
    const short = await putToStorage(grant2, new Blob([randomBytes(99)])).catch((e) => e);
    assert.ok(short instanceof StorageError, `got ${inspect(short)}`);
    assert.equal(short.status, 403);
    assert.ok(["SignatureDoesNotMatch", "AccessDenied"].includes(short.code), `code ${short.code}`);
  });

  test("checksum: true binds the URL to the file's SHA-256; other bytes of the same size are refused", async () => {
    const bytes = randomBytes(64);
    const grants = [];
    const events = [];
    const result = await upload(pdf("sum.pdf", bytes), {
      endpoint,
      token: "node-sum",
      tokenHeader: "x-user-id",
      checksum: true,
      onGrant: (g) => {
        events.push("grant");
        grants.push(g);
      },
      onProgress: (p) => events.push(p),
    });
    // Hashing is reported first, before the gate is asked; then the PUT.
    assert.deepEqual(events, [
      { phase: "hashing", loaded: 0, total: 64 },
      "grant",
      { phase: "uploading", loaded: 0, total: 64 },
      { phase: "uploading", loaded: 64, total: 64 },
    ]);
    const expected = createHash("sha256").update(bytes).digest("base64");
    assert.equal(await sha256Base64(new Blob([bytes])), expected);
    assert.equal(grants[0].headers["x-amz-checksum-sha256"], expected);
    assert.deepEqual(await readFile(gate.objectPath(result.key)), bytes);

    const grant = await requestUpload(
      { name: "sum2.pdf", type: "application/pdf", size: 64, checksumSha256: expected },
      { endpoint, token: "node-sum2", tokenHeader: "x-user-id" },
    );
    const err = await putToStorage(grant, new Blob([randomBytes(64)])).catch((e) => e);
    assert.ok(err instanceof StorageError, `got ${inspect(err)}`);
    assert.equal(err.status, 400);
    assert.equal(err.code, "BadDigest");
  });

  test("a tampered signature becomes StorageError 403", async () => {
    const grant = await requestUpload({ name: "t.pdf", type: "application/pdf", size: 5 }, { endpoint, token: "node-tamper", tokenHeader: "x-user-id" });
    const url = new URL(grant.url);
    const sig = url.searchParams.get("X-Amz-Signature");
    url.searchParams.set("X-Amz-Signature", sig.replace(/^./, (c) => (c === "0" ? "1" : "0")));
    const err = await putToStorage({ ...grant, url: url.toString() }, new Blob(["12345"])).catch((e) => e);
    assert.ok(err instanceof StorageError, `got ${inspect(err)}`);
    assert.equal(err.status, 403);
    assert.ok(err.code, "an S3 error code");
  });
});

describe("network failures", () => {
  test("a closed gate port becomes NetworkError (stage gate)", async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const err = await upload(pdf("x.pdf", randomBytes(10)), { endpoint, token: "u" }).catch((e) => e);
    assert.ok(err instanceof NetworkError, `got ${inspect(err)}`);
    assert.equal(err.stage, "gate");
    assert.equal(err.url, `${endpoint}/v1/uploads`);
    assert.ok(err.cause, "keeps the underlying error");
    const q = await quota({ endpoint, token: "u" }).catch((e) => e);
    assert.ok(q instanceof NetworkError);
    assert.equal(q.stage, "gate");
  });

  test("a closed storage port becomes NetworkError (stage storage)", async () => {
    const url = `http://127.0.0.1:${await closedPort()}/bucket/key`;
    const err = await putToStorage({ url, method: "PUT", headers: { "content-type": "application/pdf" }, key: "key" }, new Blob(["x"])).catch((e) => e);
    assert.ok(err instanceof NetworkError, `got ${inspect(err)}`);
    assert.equal(err.stage, "storage");
    assert.match(err.message, /CORS/);
  });

  test("an aborted signal rejects with AbortError, not an UploadgateError", async () => {
    const ac = new AbortController();
    ac.abort();
    const err = await upload(pdf("x.pdf", randomBytes(10)), { endpoint: "http://127.0.0.1:9", signal: ac.signal }).catch((e) => e);
    assert.equal(err.name, "AbortError");
    assert.ok(!(err instanceof UploadgateError));
  });
});

describe("against a scripted server", () => {
  let server;
  let base;
  const seen = [];
  let next = () => ({ status: 500, headers: {}, body: "" });
  before(async () => {
    server = http.createServer(async (req, res) => {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      const r = next(req);
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => new Promise((r) => server.close(r)));

  test("POST body, x-amz-content-sha256, token header; PUT with the signed headers except content-length", async () => {
    seen.length = 0;
    next = (req) =>
      req.method === "POST"
        ? {
            status: 200,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              url: `${base}/bucket/k?X-Amz-Signature=00`,
              method: "PUT",
              headers: { "content-type": "image/png", "content-length": "4", "if-none-match": "*", "x-amz-meta-owner": "owner" },
              key: "uploads/tok/1/a b.png",
              expiresAt: "2030-01-01T00:00:00Z",
              limits: [],
            }),
          }
        : { status: 200, headers: { etag: '"abc"' }, body: "" };
    const file = new File([new Uint8Array([1, 2, 3, 4])], "a b \"ü\".png", { type: "image/png" });
    const result = await upload(file, { endpoint: `${base}/`, token: "tok-1", tokenHeader: "x-api-token" });
    assert.deepEqual(result, {
      key: "uploads/tok/1/a b.png",
      etag: '"abc"',
      size: 4,
      contentType: "image/png",
      expiresAt: "2030-01-01T00:00:00Z",
      limits: [],
    });
    const [post, put] = seen;
    assert.equal(post.method, "POST");
    assert.equal(post.url, "/v1/uploads", "trailing slash of the endpoint is dropped");
    const expectedBody = JSON.stringify({ filename: 'a b "ü".png', contentType: "image/png", size: 4 });
    assert.equal(post.body.toString("utf8"), expectedBody);
    assert.equal(post.headers["x-amz-content-sha256"], createHash("sha256").update(post.body).digest("hex"));
    assert.equal(post.headers["content-type"], "application/json");
    assert.equal(post.headers["x-api-token"], "tok-1");
    assert.equal(post.headers["x-user-id"], undefined);
    assert.equal(put.method, "PUT");
    assert.equal(put.url, "/bucket/k?X-Amz-Signature=00");
    assert.equal(put.headers["content-type"], "image/png");
    assert.equal(put.headers["if-none-match"], "*");
    assert.equal(put.headers["x-amz-meta-owner"], "owner");
    assert.equal(put.headers["content-length"], "4", "set by the HTTP stack from the body");
    assert.deepEqual([...put.body], [1, 2, 3, 4]);
  });

  test("429 with an HTTP-date Retry-After, a byte limit and a problem body", async () => {
    const when = new Date(Date.now() + 90_000).toUTCString();
    next = () => ({
      status: 429,
      headers: {
        "content-type": "application/problem+json",
        "retry-after": when,
        "ratelimit-policy": '"uploads";q=5;w=10800, "volume";q=52428800;w=86400;qu="content-bytes"',
        ratelimit: '"uploads";r=3;t=100, "volume";r=0;t=90',
      },
      body: JSON.stringify({ type: QUOTA_TYPE, title: "Quota exceeded", status: 429, detail: "volume used up", "violated-policies": ["volume"], retryAfter: 90 }),
    });
    const err = await requestUpload({ name: "a.pdf", type: "application/pdf", size: 1 }, { endpoint: base, token: "t" }).catch((e) => e);
    assert.ok(err instanceof QuotaExceededError);
    assert.ok(err.retryAfter >= 88 && err.retryAfter <= 91, `retryAfter ${err.retryAfter}`);
    assert.deepEqual(err.rateLimitPolicy, [
      { name: "uploads", params: { q: 5, w: 10800 } },
      { name: "volume", params: { q: 52428800, w: 86400, qu: "content-bytes" } },
    ]);
    assert.deepEqual(err.rateLimit, [
      { name: "uploads", params: { r: 3, t: 100 } },
      { name: "volume", params: { r: 0, t: 90 } },
    ]);
    assert.deepEqual(err.violatedPolicies, ["volume"]);
    assert.match(err.message, /volume used up/);
  });

  test("429 without headers (e.g. not exposed by CORS) falls back to the body's retryAfter", async () => {
    next = () => ({
      status: 429,
      headers: { "content-type": "application/problem+json" },
      body: JSON.stringify({ type: QUOTA_TYPE, title: "Quota exceeded", status: 429, retryAfter: 42 }),
    });
    seen.length = 0;
    const err = await requestUpload({ name: "a.pdf", type: "application/pdf", size: 1 }, { endpoint: base, token: "t" }).catch((e) => e);
    assert.ok(err instanceof QuotaExceededError);
    assert.equal(err.retryAfter, 42);
    assert.deepEqual(err.rateLimit, []);
    // By default the token is a bearer token in Authorization.
    assert.equal(seen[0].headers.authorization, "Bearer t");
    assert.equal(seen[0].headers["x-user-id"], undefined);
  });

  test("a non-JSON error body still becomes GateError with the status", async () => {
    next = () => ({ status: 502, headers: { "content-type": "text/html" }, body: "<h1>Bad gateway</h1>" });
    const err = await quota({ endpoint: base, token: "t" }).catch((e) => e);
    assert.ok(err instanceof GateError);
    assert.equal(err.status, 502);
    assert.equal(err.detail, "<h1>Bad gateway</h1>");
  });

  test("usage() sends its range, page size and cursor, and returns the page with the totals", async () => {
    const answer = {
      user: "ana",
      since: "2026-12-01T00:00:00Z",
      until: null,
      uploads: 1,
      bytes: 10,
      records: [{ key: "uploads/ana/x/a.pdf", bytes: 10, contentType: "application/pdf", tier: null, landedAt: "2026-12-01T08:00:00Z" }],
      next: "AQID",
      month: { start: "2026-12-01T00:00:00Z", uploads: 3, bytes: 30 },
      windows: [{ policy: "uploads", window: "3h", uploads: 2, bytes: 20 }],
    };
    next = () => ({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(answer) });
    seen.length = 0;
    const u = await usage({
      endpoint: `${base}/`,
      token: "ana",
      tokenHeader: "x-user-id",
      since: new Date(Date.UTC(2026, 11, 1)),
      until: "2026-12-02T00:00:00+01:00",
      limit: 5,
      cursor: "AQID",
    });
    assert.deepEqual(u, answer);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].method, "GET");
    assert.equal(
      seen[0].url,
      "/v1/usage?since=2026-12-01T00%3A00%3A00.000Z&until=2026-12-02T00%3A00%3A00%2B01%3A00&limit=5&cursor=AQID",
    );
    assert.equal(seen[0].headers["x-user-id"], "ana");
    // No options, no query string; a gate without a ledger is a GateError 404.
    next = () => ({
      status: 404,
      headers: { "content-type": "application/problem+json" },
      body: JSON.stringify({ type: "https://uploadgate.dev/problems/usage-not-recorded", title: "Usage not recorded", status: 404 }),
    });
    const err = await usage({ endpoint: base, token: "t" }).catch((e) => e);
    assert.equal(seen.at(-1).url, "/v1/usage");
    assert.ok(err instanceof GateError, `got ${inspect(err)}`);
    assert.equal(err.status, 404);
    assert.equal(err.type, "https://uploadgate.dev/problems/usage-not-recorded");
  });

  test("an S3 XML error body is parsed into code and message", async () => {
    next = () => ({
      status: 403,
      headers: { "content-type": "application/xml" },
      body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired &amp; more</Message></Error>',
    });
    const err = await putToStorage({ url: `${base}/b/k`, headers: {}, key: "k" }, new Blob(["x"])).catch((e) => e);
    assert.ok(err instanceof StorageError);
    assert.equal(err.status, 403);
    assert.equal(err.code, "AccessDenied");
    assert.equal(err.s3Message, "Request has expired & more");
  });
});

describe("helpers", () => {
  test("the pure-JS SHA-256 matches crypto.subtle and node:crypto", async () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 65537]) {
      const bytes = new Uint8Array(randomBytes(n));
      const expected = sha256(bytes);
      assert.equal(Buffer.from(sha256Fallback(bytes)).toString("hex"), expected, `length ${n}`);
      assert.equal(await sha256Hex(bytes), expected);
    }
  });

  test("parseRateLimitList parses structured-field lists and rejects malformed ones", () => {
    assert.deepEqual(parseRateLimitList('"a";r=1;t=2,"b";r=0;t=9'), [
      { name: "a", params: { r: 1, t: 2 } },
      { name: "b", params: { r: 0, t: 9 } },
    ]);
    assert.deepEqual(parseRateLimitList('"x";q=1;flag;qu="content-bytes";pk=:AQID:'), [
      { name: "x", params: { q: 1, flag: true, qu: "content-bytes", pk: "AQID" } },
    ]);
    assert.deepEqual(parseRateLimitList(null), []);
    assert.deepEqual(parseRateLimitList(""), []);
    assert.deepEqual(parseRateLimitList('"a";r=1,'), []);
    assert.deepEqual(parseRateLimitList('"a";R=1'), []);
    assert.deepEqual(parseRateLimitList('"unterminated'), []);
  });
});
