// The browser PUT against an independent S3 (LocalStack, which verifies SigV4
// and enforces bucket CORS like S3 does): it works only when the bucket's CORS
// rules allow the page's origin, and the page says why when they don't.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { announcement, axeViolations, localstack, makeFile, md5, sha256, startGate, withPage } from "../lib/harness.mjs";

const ls = localstack();

function skipOrFail(t) {
  const why = "LocalStack is not running (LOCALSTACK_ENDPOINT/LOCALSTACK_PYTHON unset): run e2e/run.sh";
  if (process.env.CI) assert.fail(why);
  t.skip(why);
}

test("bucket CORS decides whether the browser may PUT (LocalStack S3)", async (t) => {
  if (!ls) return skipOrFail(t);
  const bucket = `uploadgate-e2e-${randomBytes(4).toString("hex")}`;
  await ls.createBucket(bucket);
  const gate = await startGate({
    bucket: false,
    env: {
      UPLOADGATE_TARGET: "s3",
      UPLOADGATE_BUCKET: bucket,
      AWS_ENDPOINT_URL_S3: ls.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_REGION: "us-east-1",
    },
  });
  t.after(() => gate.stop());
  const pageOrigin = new URL(gate.api).origin;
  const s3Origin = new URL(ls.endpoint).origin;
  const file = await makeFile("contract.pdf", 96 * 1024 + 5);
  t.after(file.cleanup);

  /** Upload through the page; returns the gate's grant and the PUT's outcome. */
  async function uploadThroughPage(page) {
    await page.goto(`${gate.api}/`);
    await page.locator('.quota-item[data-limit="uploads"]').waitFor();
    await page.getByLabel("File", { exact: true }).setInputFiles(file.path);
    const putFailures = [];
    page.on("requestfailed", (req) => {
      if (req.method() === "PUT") putFailures.push(req.failure()?.errorText);
    });
    const [grantResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${gate.api}/v1/uploads`),
      page.getByRole("button", { name: "Upload", exact: true }).click(),
    ]);
    assert.equal(grantResponse.status(), 200, "the gate grants the upload in both cases");
    const grant = await grantResponse.json();
    assert.ok(grant.url.startsWith(`${s3Origin}/`), `presigned URL ${grant.url} points at LocalStack`);
    await page.waitForFunction(() => ["done", "error"].includes(document.body.dataset.state), null, { timeout: 30_000 });
    return { grant, putFailures };
  }

  await t.test("allowed origin: the upload succeeds and the bytes land in the bucket", async (t) => {
    await ls.putCors(bucket, pageOrigin);
    await withPage(
      t,
      async (page) => {
        const { grant } = await uploadThroughPage(page);
        assert.equal(await page.evaluate(() => document.body.dataset.state), "done", await page.locator("#error").innerText().catch(() => ""));
        assert.equal(await page.locator("#result-key").innerText(), grant.key);
        assert.equal(await page.locator("#result-etag").innerText(), `"${md5(file.bytes)}"`);
        const stored = await ls.getObject(bucket, grant.key);
        assert.ok(stored, `object ${grant.key} exists in ${bucket}`);
        assert.equal(sha256(stored), sha256(file.bytes));
      },
      { gate },
    );
  });

  await t.test("origin not in the bucket's CORS rules: the PUT is blocked and the page says so", async (t) => {
    await ls.putCors(bucket, "https://app.example.com");
    await withPage(
      t,
      async (page) => {
        const { grant, putFailures } = await uploadThroughPage(page);
        assert.equal(await page.evaluate(() => document.body.dataset.state), "error");
        assert.ok(putFailures.length >= 1, "the browser reports the PUT as failed");
        const error = page.locator("#error");
        assert.equal(await error.isVisible(), true);
        assert.equal(await page.locator("#error-title").innerText(), "The file could not be sent to storage");
        const detail = await page.locator("#error-detail").innerText();
        assert.match(detail, /CORS rules do not allow this page/);
        assert.ok(detail.includes(s3Origin) && detail.includes(pageOrigin), detail);
        assert.match(await announcement(page), /^The file could not be sent to storage\. /);
        assert.equal(await page.locator("#result").isHidden(), true);
        assert.equal(await ls.getObject(bucket, grant.key), null, "nothing was stored");
        assert.deepEqual(await axeViolations(page), [], "accessibility (axe) of the error state");
      },
      { gate },
    );
  });

  // Only the allowed upload is in the bucket.
  assert.equal((await ls.list(bucket)).length, 1);
});
