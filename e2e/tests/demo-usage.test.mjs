// Upload mode (UPLOADGATE_CHARGE=upload) on the demo page: the embedded bucket
// settles what lands, and the "this month" line under the quota meter (from
// GET /v1/usage) counts each upload once it has settled.
import assert from "node:assert/strict";
import { test } from "node:test";
import { axeViolations, makeFile, startGate, withPage } from "../lib/harness.mjs";

test("in upload mode the page shows this month's settled uploads, refreshed after each upload settles", async (t) => {
  const gate = await startGate({
    env: {
      UPLOADGATE_CHARGE: "upload",
      UPLOADGATE_URL_TTL: "20s",
      UPLOADGATE_SETTLE_GRACE: "1m",
      UPLOADGATE_LIMITS: "uploads=user:5/3h",
    },
  });
  t.after(() => gate.stop());
  const first = await makeFile("scan-1.pdf", 1536 * 1024);
  const second = await makeFile("scan-2.pdf", 300 * 1024);
  t.after(first.cleanup);
  t.after(second.cleanup);

  await withPage(
    t,
    async (page) => {
      const usageCalls = [];
      page.on("response", (res) => {
        if (new URL(res.url()).pathname === "/v1/usage") usageCalls.push(res.status());
      });
      await page.goto(`${gate.api}/`);
      const month = page.locator("#usage-month");
      await page.locator('.quota-item[data-limit="uploads"]').waitFor();
      await month.waitFor({ state: "visible" });
      assert.equal(await month.innerText(), "This month: 0 uploads, 0 bytes");

      const picker = page.getByLabel("File", { exact: true });
      const button = page.getByRole("button", { name: "Upload", exact: true });
      const waitForLine = (text) =>
        page.waitForFunction((want) => document.getElementById("usage-month").textContent === want, text, {
          polling: 100,
          timeout: 20_000,
        });

      await picker.setInputFiles(first.path);
      await button.click();
      await page.locator("#result").waitFor({ state: "visible", timeout: 30_000 });
      await waitForLine("This month: 1 upload, 1.5 MiB");
      assert.equal(await month.getAttribute("data-bytes"), String(1536 * 1024));
      // The reservation was charged when the URL was handed out, and stays.
      const remaining = page.locator('.quota-item[data-limit="uploads"] .quota-remaining');
      assert.match(await remaining.innerText(), /^4 uploads left of 5 uploads$/);

      await picker.setInputFiles(second.path);
      await button.click();
      await page.waitForFunction(() => document.body.dataset.state === "done" && !document.getElementById("result-key").textContent.includes("scan-1"));
      await waitForLine("This month: 2 uploads, 1.8 MiB");
      assert.equal(await month.getAttribute("data-bytes"), String(1836 * 1024));
      assert.equal(await month.getAttribute("data-uploads"), "2");
      assert.match(await remaining.innerText(), /^3 uploads left of 5 uploads$/);

      // Another user has settled nothing.
      await page.getByLabel("User id").fill("someone-else");
      await page.getByLabel("User id").dispatchEvent("change");
      await waitForLine("This month: 0 uploads, 0 bytes");

      assert.ok(usageCalls.length >= 3 && usageCalls.every((s) => s === 200), `GET /v1/usage answers: ${usageCalls}`);
      assert.deepEqual(await axeViolations(page), [], "accessibility (axe) with the month's line");
    },
    { gate },
  );
});

test("in grant mode (no usage ledger answers) the line stays hidden", async (t) => {
  const gate = await startGate();
  t.after(() => gate.stop());
  await withPage(
    t,
    async (page) => {
      const usage = page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/usage");
      await page.goto(`${gate.api}/`);
      await page.locator('.quota-item[data-limit="uploads"]').waitFor();
      assert.equal((await usage).status(), 404);
      assert.equal(await page.locator("#usage-month").isHidden(), true);
    },
    { gate },
  );
});
