// The client library in the browser, from a web app on another origin than the
// gate: the gate's CORS must let the client send its headers and read the
// RateLimit/Retry-After fields; a disallowed origin is a NetworkError.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT, closedPort, launchBrowser, failureScreenshot, startGate } from "../lib/harness.mjs";

const WINDOW = 3 * 3600;

/** A tiny "web app" origin that serves the client and a page exposing it as window.ug. */
async function appServer() {
  const client = await readFile(path.join(ROOT, "clients/js/uploadgate.js"));
  const html = `<!doctype html><meta charset="utf-8"><title>app</title>
<script type="module">
  import * as ug from "/uploadgate.js";
  window.ug = ug;
  window.describe = (e) => ({
    name: e.name,
    isUploadgateError: e instanceof ug.UploadgateError,
    message: e.message,
    status: e.status,
    stage: e.stage,
    title: e.title,
    detail: e.detail,
    type: e.type,
    code: e.code,
    retryAfter: e.retryAfter,
    rateLimit: e.rateLimit,
    rateLimitPolicy: e.rateLimitPolicy,
    violatedPolicies: e.violatedPolicies,
    problem: e.problem,
  });
</script>`;
  const server = http.createServer((req, res) => {
    if (req.url === "/uploadgate.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      return res.end(client);
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

/** Run `body(ug, args)` in the page; returns {value} or {error: describe(e)}. */
function inPage(page, body, args = {}) {
  return page.evaluate(
    async ([src, a]) => {
      // eslint-disable-next-line no-new-func
      const fn = new Function("ug", "args", `return (async () => {${src}})();`);
      try {
        return { value: await fn(window.ug, a) };
      } catch (e) {
        return { error: window.describe(e) };
      }
    },
    [body, args],
  );
}

describe("client in the browser, cross-origin", () => {
  let gate;
  let app;
  let other;
  let browser;
  let page;
  before(async () => {
    app = await appServer();
    other = await appServer();
    gate = await startGate({
      env: {
        UPLOADGATE_CORS_ORIGINS: app.origin,
        UPLOADGATE_LIMITS: "uploads=user:1/3h",
        UPLOADGATE_MAX_OBJECT_BYTES: "4096",
      },
    });
    browser = await launchBrowser();
    page = browser.page;
    await page.goto(`${app.origin}/`);
    await page.waitForFunction(() => window.ug && window.describe);
  });
  after(async () => {
    await browser?.close();
    await gate?.stop();
    await app?.close();
    await other?.close();
  });

  async function check(t, fn) {
    try {
      await fn();
    } catch (err) {
      await failureScreenshot(page, t.fullName ?? t.name);
      throw err;
    }
  }

  test("upload() works across origins, with XHR progress and the ETag exposed by the bucket", (t) =>
    check(t, async () => {
      const r = await inPage(
        page,
        `const bytes = new Uint8Array(3000).map((_, i) => (i * 7) & 255);
         const progress = [];
         const res = await ug.upload(new File([bytes], "scan.png", { type: "image/png" }), {
           endpoint: args.endpoint, token: "browser-user", tokenHeader: "x-user-id", onProgress: (p) => progress.push(p) });
         return { res, progress };`,
        { endpoint: gate.api },
      );
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      const { res, progress } = r.value;
      assert.match(res.key, /^uploads\/browser-user\/[0-9a-f-]{36}\/scan\.png$/);
      assert.match(res.etag, /^"[0-9a-f]{32}"$/);
      assert.equal(res.size, 3000);
      assert.equal(res.contentType, "image/png");
      assert.deepEqual(progress[0], { phase: "uploading", loaded: 0, total: 3000 });
      assert.deepEqual(progress.at(-1), { phase: "uploading", loaded: 3000, total: 3000 });
      const stored = await readFile(gate.objectPath(res.key));
      assert.deepEqual([...stored.subarray(0, 4)], [0, 7, 14, 21]);
      assert.equal(stored.length, 3000);
    }));

  test("checksum: true hashes the file with crypto.subtle, reported as the hashing phase before the POST", (t) =>
    check(t, async () => {
      const r = await inPage(
        page,
        `const events = [];
         // Watch crypto.subtle (this origin is a secure context: 127.0.0.1)
         // and the POST to the gate, in the order they happen.
         const subtle = globalThis.crypto.subtle;
         const digest = subtle.digest.bind(subtle);
         subtle.digest = (alg, data) => {
           events.push("digest " + data.byteLength);
           return digest(alg, data);
         };
         const fetch0 = window.fetch;
         window.fetch = (url, init) => {
           if (String(url).endsWith("/v1/uploads")) events.push("POST " + JSON.parse(new TextDecoder().decode(init.body)).checksumSha256);
           return fetch0(url, init);
         };
         try {
           const bytes = new Uint8Array(2048).map((_, i) => (i * 13) & 255);
           const res = await ug.upload(new File([bytes], "sum.png", { type: "image/png" }), {
             endpoint: args.endpoint, token: "browser-sum", tokenHeader: "x-user-id", checksum: true,
             onProgress: (p) => events.push(p) });
           const expected = btoa(String.fromCharCode(...new Uint8Array(await digest("SHA-256", bytes))));
           return { res, events, expected };
         } finally {
           delete subtle.digest;
           window.fetch = fetch0;
         }`,
        { endpoint: gate.api },
      );
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      const { res, events, expected } = r.value;
      // Hashing (by crypto.subtle, of the whole file) comes first, then the
      // POST carrying that hash (its own body hashed too), then the PUT.
      assert.deepEqual(events.slice(0, 2), [{ phase: "hashing", loaded: 0, total: 2048 }, "digest 2048"]);
      assert.match(events[2], /^digest \d+$/);
      assert.equal(events[3], `POST ${expected}`);
      assert.deepEqual(events[4], { phase: "uploading", loaded: 0, total: 2048 });
      assert.deepEqual(events.at(-1), { phase: "uploading", loaded: 2048, total: 2048 });
      assert.ok(events.slice(4).every((e) => e.phase === "uploading"), JSON.stringify(events));
      const stored = await readFile(gate.objectPath(res.key));
      assert.equal(stored.length, 2048);
    }));

  test("429 across origins: Retry-After and RateLimit fields are readable (exposed by CORS)", (t) =>
    check(t, async () => {
      const r = await inPage(
        page,
        `await ug.upload(new File(["x"], "a.pdf", { type: "application/pdf" }), { endpoint: args.endpoint, token: "browser-user", tokenHeader: "x-user-id" });`,
        { endpoint: gate.api },
      );
      const e = r.error;
      assert.ok(e, "the second upload with a limit of 1 is refused");
      assert.equal(e.name, "QuotaExceededError");
      assert.equal(e.isUploadgateError, true);
      assert.equal(e.status, 429);
      assert.ok(e.retryAfter > WINDOW - 60 && e.retryAfter <= WINDOW, `retryAfter ${e.retryAfter}`);
      assert.deepEqual(e.rateLimitPolicy, [{ name: "uploads", params: { q: 1, w: WINDOW } }], "RateLimit-Policy exposed");
      assert.equal(e.rateLimit.length, 1, "RateLimit exposed");
      assert.equal(e.rateLimit[0].params.r, 0);
      assert.deepEqual(e.violatedPolicies, ["uploads"]);
    }));

  test("413 and 415 across origins become GateError with the problem's title", (t) =>
    check(t, async () => {
      const big = await inPage(
        page,
        `await ug.upload(new File([new Uint8Array(5000)], "big.pdf", { type: "application/pdf" }), { endpoint: args.endpoint, token: "b2", tokenHeader: "x-user-id" });`,
        { endpoint: gate.api },
      );
      assert.equal(big.error?.name, "GateError", JSON.stringify(big));
      assert.equal(big.error.status, 413);
      assert.ok(big.error.title && big.error.title !== "HTTP 413");
      const txt = await inPage(
        page,
        `await ug.upload(new File(["hi"], "a.txt", { type: "text/plain" }), { endpoint: args.endpoint, token: "b2", tokenHeader: "x-user-id" });`,
        { endpoint: gate.api },
      );
      assert.equal(txt.error?.name, "GateError", JSON.stringify(txt));
      assert.equal(txt.error.status, 415);
      assert.ok(txt.error.title && txt.error.title !== "HTTP 415");
    }));

  test("quota() across origins", (t) =>
    check(t, async () => {
      const r = await inPage(page, `return await ug.quota({ endpoint: args.endpoint, token: "browser-user", tokenHeader: "x-user-id" });`, { endpoint: gate.api });
      assert.equal(r.error, undefined, JSON.stringify(r.error));
      assert.equal(r.value.user, "browser-user");
      assert.deepEqual(
        r.value.limits.map((l) => [l.name, l.limit, l.remaining]),
        [["uploads", 1, 0]],
      );
      assert.equal(r.value.rateLimit[0].params.r, 0);
    }));

  test("a closed port is a NetworkError", (t) =>
    check(t, async () => {
      const endpoint = `http://127.0.0.1:${await closedPort()}`;
      const r = await inPage(page, `await ug.quota({ endpoint: args.endpoint, token: "u", tokenHeader: "x-user-id" });`, { endpoint });
      assert.equal(r.error?.name, "NetworkError", JSON.stringify(r));
      assert.equal(r.error.stage, "gate");
    }));

  test("an origin the gate does not allow gets a NetworkError (CORS), and is not charged", (t) =>
    check(t, async () => {
      const p2 = await browser.context.newPage();
      try {
        await p2.goto(`${other.origin}/`);
        await p2.waitForFunction(() => window.ug && window.describe);
        const r = await inPage(
          p2,
          `await ug.upload(new File(["x"], "a.pdf", { type: "application/pdf" }), { endpoint: args.endpoint, token: "cors-victim", tokenHeader: "x-user-id" });`,
          { endpoint: gate.api },
        );
        assert.equal(r.error?.name, "NetworkError", JSON.stringify(r));
        assert.equal(r.error.stage, "gate");
        assert.match(r.error.message, /CORS/);
      } finally {
        await p2.close();
      }
      const q = await inPage(page, `return await ug.quota({ endpoint: args.endpoint, token: "cors-victim", tokenHeader: "x-user-id" });`, { endpoint: gate.api });
      assert.equal(q.value?.limits[0].remaining, 1, JSON.stringify(q));
    }));
});
