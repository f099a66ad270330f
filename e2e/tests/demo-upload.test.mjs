// The whole first experience: `uploadgate serve`, open the page, pick a file,
// upload it to the embedded local bucket.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import {
  announcement,
  axeViolations,
  docScreenshot,
  makeFile,
  md5,
  recordRequests,
  sha256,
  startGate,
  withPage,
} from "../lib/harness.mjs";

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";

test("demo page uploads a real file to the embedded bucket, showing progress and the result", async (t) => {
  const gate = await startGate();
  t.after(() => gate.stop());
  const size = 3 * 1024 * 1024 + 4321;
  const file = await makeFile("invoice-2026.pdf", size);
  t.after(file.cleanup);

  await withPage(
    t,
    async (page, context) => {
      const requests = recordRequests(page);
      const posts = [];
      page.on("request", (req) => {
        if (req.method() === "POST" && req.url().endsWith("/v1/uploads")) posts.push(req);
      });
      await page.goto(`${gate.api}/`);
      assert.match(await page.title(), /uploadgate/);

      // Labelled controls, found by their accessible names.
      const user = page.getByLabel("User id");
      assert.equal(await user.inputValue(), "demo-user");
      const picker = page.getByLabel("File", { exact: true });
      const button = page.getByRole("button", { name: "Upload", exact: true });

      // The quota meter comes from GET /v1/quota (default limit: 5 uploads per 3 h).
      const quotaItem = page.locator('.quota-item[data-limit="uploads"]');
      await quotaItem.waitFor();
      assert.match(await quotaItem.locator(".quota-remaining").innerText(), /^5 uploads left of 5 uploads$/);
      assert.equal(await quotaItem.locator("meter").evaluate((m) => [m.value, m.max].join("/")), "5/5");

      assert.deepEqual(await axeViolations(page), [], "accessibility (axe) of the idle page");

      // Slow the upload down so progress is visible (and photographable).
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: 640 * 1024,
      });

      await picker.setInputFiles(file.path);
      await button.click();

      const progress = page.locator("#upload-progress");
      await page.waitForFunction(
        () => {
          const p = document.getElementById("upload-progress");
          return p && !p.closest("[hidden]") && p.value >= 20 && p.value <= 80;
        },
        null,
        { polling: 50, timeout: 30_000 },
      );
      const midValue = await progress.evaluate((p) => p.value);
      const midText = await page.locator("#progress-text").innerText();
      assert.ok(midValue >= 20 && midValue <= 80, `mid-upload progress ${midValue}`);
      assert.match(midText, /^\d+% · [\d.]+ (KiB|MiB) of 3\.0 MiB$/);
      assert.match(await page.getByRole("status").innerText(), /^Uploading invoice-2026\.pdf \(3\.0 MiB\) to storage…$/);
      await docScreenshot(page, "uploading.png");

      const result = page.locator("#result");
      await result.waitFor({ state: "visible", timeout: 60_000 });
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

      assert.equal(await progress.evaluate((p) => p.value), 100);
      assert.match(await page.locator("#progress-text").innerText(), /^100% · 3\.0 MiB of 3\.0 MiB$/);

      const key = await page.locator("#result-key").innerText();
      assert.match(key, new RegExp(`^uploads/demo-user/${UUID}/invoice-2026\\.pdf$`));
      assert.equal(await page.locator("#result-size").getAttribute("data-bytes"), String(size));
      assert.match(await page.locator("#result-size").innerText(), /^3,150,049 bytes \(3\.0 MiB\)$/);
      assert.equal(await page.locator("#result-type").innerText(), "application/pdf");
      assert.equal(await page.locator("#result-etag").innerText(), `"${md5(file.bytes)}"`);
      assert.equal(await announcement(page), `Uploaded invoice-2026.pdf: 3,150,049 bytes, key ${key}.`);

      assert.deepEqual(await axeViolations(page), [], "accessibility (axe) with the result shown");

      // The bytes on disk are the file's bytes.
      const stored = await readFile(gate.objectPath(key));
      assert.equal(stored.length, size);
      assert.equal(sha256(stored), sha256(file.bytes));

      // One POST to the gate, with the body hash CloudFront OAC needs.
      assert.equal(posts.length, 1);
      const post = posts[0];
      const body = post.postDataBuffer();
      assert.deepEqual(JSON.parse(body.toString()), { filename: "invoice-2026.pdf", contentType: "application/pdf", size });
      const postHeaders = await post.allHeaders();
      assert.equal(postHeaders["x-amz-content-sha256"], sha256(body));
      assert.equal(postHeaders["x-user-id"], "demo-user");
      assert.equal(postHeaders["content-type"], "application/json");

      // One PUT straight to the bucket, with the signed headers.
      const puts = requests.filter((r) => r.method === "PUT");
      assert.equal(puts.length, 1);
      assert.ok(puts[0].url.startsWith(`${gate.bucketUrl}/`), `PUT went to ${puts[0].url}`);
      assert.match(puts[0].url, /[?&]X-Amz-Signature=[0-9a-f]{64}(&|$)/);

      // The meter shows the charge, with a live countdown to the next reset.
      assert.match(await quotaItem.locator(".quota-remaining").innerText(), /^4 uploads left of 5 uploads$/);
      const countdown = quotaItem.locator(".quota-countdown");
      assert.match(await countdown.innerText(), /^[23]:\d{2}:\d{2}$/);
    },
    { gate },
  );
});

test("Cancel stops the upload mid-way; nothing is stored and focus returns to the Upload button", async (t) => {
  const gate = await startGate();
  t.after(() => gate.stop());
  const file = await makeFile("large-scan.pdf", 2 * 1024 * 1024);
  t.after(file.cleanup);

  await withPage(
    t,
    async (page, context) => {
      await page.goto(`${gate.api}/`);
      await page.locator('.quota-item[data-limit="uploads"]').waitFor();
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.enable");
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 128 * 1024 });
      await page.getByLabel("File", { exact: true }).setInputFiles(file.path);
      const [grantResponse] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${gate.api}/v1/uploads`),
        page.getByRole("button", { name: "Upload", exact: true }).click(),
      ]);
      const { key } = await grantResponse.json();
      await page.waitForFunction(() => document.getElementById("upload-progress").value >= 5, null, { polling: 50 });
      const cancel = page.getByRole("button", { name: "Cancel" });
      assert.equal(await cancel.isVisible(), true);
      await cancel.click();
      await page.waitForFunction(() => document.body.dataset.state === "idle");
      assert.equal(await announcement(page), "Upload cancelled.");
      assert.equal(await page.locator("#progress-box").isHidden(), true);
      assert.equal(await cancel.isHidden(), true);
      assert.equal(await page.evaluate(() => document.activeElement.id), "upload-button");
      assert.equal(await page.locator("#result").isHidden(), true);
      await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await assert.rejects(readFile(gate.objectPath(key)), { code: "ENOENT" });
    },
    { gate },
  );
});
