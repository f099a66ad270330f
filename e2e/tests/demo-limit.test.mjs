// With a limit of 2, the third attempt is refused by the gate: the page says
// so with a live countdown, and nothing reaches the bucket.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import {
  announcement,
  axeViolations,
  docScreenshot,
  makeFile,
  parseCountdown,
  recordRequests,
  sleep,
  startGate,
  withPage,
} from "../lib/harness.mjs";

const WINDOW = 3 * 3600;

test("third upload with a limit of 2 shows the limit message with a countdown and never touches the bucket", async (t) => {
  const gate = await startGate({ env: { UPLOADGATE_LIMITS: "uploads=user:2/3h" } });
  t.after(() => gate.stop());
  const file = await makeFile("scan.pdf", 200 * 1024 + 17);
  t.after(file.cleanup);

  await withPage(
    t,
    async (page) => {
      const requests = recordRequests(page);
      const toBucket = () => requests.filter((r) => r.url.startsWith(`${gate.bucketUrl}/`));
      // Listening for the file chooser turns on its interception (a CDP
      // call of its own); started here, before the page loads, so it is on
      // well before Space is pressed (listening and pressing together raced
      // once in CI: the chooser opened uninterceptedly, no event came).
      const chooserOpened = page.waitForEvent("filechooser", { timeout: 60_000 });
      chooserOpened.catch(() => {}); // awaited below; a test failing earlier leaves it unawaited
      await page.goto(`${gate.api}/`);
      const status = page.getByRole("status");
      const quotaItem = page.locator('.quota-item[data-limit="uploads"]');
      await quotaItem.waitFor();
      assert.equal(await quotaItem.locator(".quota-remaining").innerText(), "2 uploads left of 2 uploads");
      assert.equal(await quotaItem.locator(".quota-policy").innerText(), "2 uploads per 3 h · by user");

      // First upload entirely by keyboard: Tab from the user id to the file
      // picker, open it with Space, Tab to the button, press Enter.
      await page.getByLabel("User id").focus();
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement.id), "file-input");
      await page.keyboard.press("Space");
      const chooser = await chooserOpened;
      await chooser.setFiles(file.path);
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement.id), "upload-button");
      await page.keyboard.press("Enter");
      await page.locator("#result").waitFor({ state: "visible" });
      assert.match(await announcement(page), /^Uploaded scan\.pdf: 204,817 bytes, key uploads\/demo-user\//);
      await page.waitForFunction(() => document.querySelector('.quota-item[data-limit="uploads"] .quota-remaining')?.textContent === "1 upload left of 2 uploads");

      // Second upload, by mouse.
      await page.getByRole("button", { name: "Upload", exact: true }).click();
      await page.waitForFunction(() => document.body.dataset.state === "done" && document.querySelector('.quota-item[data-limit="uploads"] .quota-remaining')?.textContent === "0 uploads left of 2 uploads");
      const putsBefore = toBucket().filter((r) => r.method === "PUT").length;
      assert.equal(putsBefore, 2);
      const bucketRequestsBefore = toBucket().length;

      // Third attempt: the gate answers 429.
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${gate.api}/v1/uploads` && r.request().method() === "POST"),
        page.getByRole("button", { name: "Upload", exact: true }).click(),
      ]);
      assert.equal(response.status(), 429);
      const retryAfter = Number(await response.headerValue("retry-after"));
      assert.ok(retryAfter > WINDOW - 120 && retryAfter <= WINDOW, `Retry-After ${retryAfter}`);

      const limited = page.locator("#limited");
      await limited.waitFor({ state: "visible" });
      assert.equal(await limited.locator("h3").innerText(), "Upload limit reached");
      assert.match(await page.locator("#limited-detail").innerText(), /You have used all 2 uploads allowed per 3 h \("uploads"\)\./);
      assert.equal(await page.locator("#result").isHidden(), true);
      assert.equal(await page.locator("#progress-box").isHidden(), true);

      // Announced once through the live region.
      await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("Upload limit reached."));
      assert.match(
        await status.innerText(),
        /^Upload limit reached\. You have used all 2 uploads allowed per 3 h \("uploads"\)\. You can upload again in (2 hours 59 minutes|3 hours), at \d\d:\d\d( [AP]M)?\.$/,
      );
      assert.equal(await status.getAttribute("aria-live"), "polite");

      // The countdown is live and starts at Retry-After.
      const countdown = page.locator("#limited-countdown");
      assert.equal(await countdown.getAttribute("role"), "timer");
      const first = parseCountdown(await countdown.innerText());
      assert.ok(first <= retryAfter && first >= retryAfter - 3, `countdown ${first} vs Retry-After ${retryAfter}`);
      assert.match(await countdown.getAttribute("datetime"), /^PT(2H59M\d+S|3H0M0S)$/);
      await sleep(2300);
      const second = parseCountdown(await countdown.innerText());
      assert.ok(first - second >= 2 && first - second <= 8, `countdown went from ${first} to ${second}`);

      await docScreenshot(page, "limited.png");
      assert.deepEqual(await axeViolations(page), [], "accessibility (axe) of the limited page");

      // Nothing reached the bucket after the refusal, and only two objects exist.
      await sleep(300);
      assert.equal(toBucket().length, bucketRequestsBefore);
      const userDir = path.join(gate.dataDir, "objects", gate.bucketName, "uploads", "demo-user");
      const objects = await readdir(userDir, { recursive: true, withFileTypes: true });
      assert.equal(objects.filter((e) => e.isFile()).length, 2);

      // The meter agrees: nothing left, with its own countdown to the next free slot.
      assert.equal(await quotaItem.locator(".quota-remaining").innerText(), "0 uploads left of 2 uploads");
      assert.ok(await quotaItem.evaluate((li) => li.classList.contains("exhausted")));
      const meterCountdown = parseCountdown(await quotaItem.locator(".quota-countdown").innerText());
      assert.ok(Math.abs(meterCountdown - second) <= 3, `meter ${meterCountdown} vs notice ${second}`);

      // Another user has their own quota.
      await page.getByLabel("User id").fill("someone-else");
      await page.getByLabel("User id").press("Tab");
      await page.waitForFunction(() => document.querySelector('.quota-item[data-limit="uploads"] .quota-remaining')?.textContent === "2 uploads left of 2 uploads");
      assert.equal(await limited.isHidden(), true);
    },
    { gate },
  );
});
