// Shared helpers for the e2e tests: start `uploadgate serve`, drive Debian's
// Chromium through playwright-core, save screenshots, talk to LocalStack.
import { spawn, execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const E2E = path.join(ROOT, "e2e");
export const ARTIFACTS = path.join(E2E, "artifacts");
/** Screenshots for docs/ are staged here; run.sh publishes them after a fully passing run. */
export const DOC_SHOTS = path.join(ARTIFACTS, "docs");

export const CHROMIUM = process.env.UPLOADGATE_CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function gateBinary() {
  if (process.env.UPLOADGATE_BIN) return process.env.UPLOADGATE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(ROOT, "target");
  return path.join(target, "debug", "uploadgate");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
export const md5 = (buf) => createHash("md5").update(buf).digest("hex");

/** The environment for a child server: ours without UPLOADGATE_* / AWS_* settings, plus `extra`. */
function serverEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("AWS_") || (k.startsWith("UPLOADGATE_") && k !== "UPLOADGATE_BIN")) continue;
    env[k] = v;
  }
  return { ...env, RUST_LOG: process.env.RUST_LOG || "warn", ...extra };
}

/**
 * Start `uploadgate serve` on loopback port 0 with a fresh data dir.
 * @param {{env?: Record<string,string>, bucket?: boolean}} opts bucket=false when the target is external S3
 */
export async function startGate({ env = {}, bucket = true } = {}) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "uploadgate-e2e-"));
  const bin = gateBinary();
  const args = ["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", dataDir];
  const child = spawn(bin, args, { env: serverEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const check = () => {
      const api = /^uploadgate: api listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(stdout);
      const s3 = /^uploadgate: local bucket "([^"]+)" at (http:\/\/127\.0\.0\.1:\d+)\s*$/m.exec(stdout);
      if (api && (!bucket || s3)) resolve({ api: api[1], bucketName: s3?.[1], bucketUrl: s3?.[2] });
    };
    child.stdout.on("data", (d) => {
      stdout += d;
      check();
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.once("error", reject);
    exited.then(({ code, signal }) =>
      reject(new Error(`${bin} exited early (code ${code}, signal ${signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`)),
    );
  });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${bin} did not print its addresses within 30 s\nstdout:\n${stdout}\nstderr:\n${stderr}`)), 30_000);
  });
  let addrs;
  try {
    addrs = await Promise.race([ready, timeout]);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    ...addrs,
    dataDir,
    logs: () => ({ stdout, stderr }),
    /** Path where the embedded target keeps an object. */
    objectPath: (key) => path.join(dataDir, "objects", addrs.bucketName, ...key.split("/")),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A loopback port with nothing listening on it. */
export async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** A file on disk: a small PDF header followed by random bytes. */
export async function makeFile(name, size) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "uploadgate-file-"));
  const file = path.join(dir, name);
  const head = Buffer.from("%PDF-1.7\n%uploadgate e2e\n");
  const body = Buffer.alloc(Math.max(0, size - head.length));
  for (let i = 0; i < body.length; i += 65536) {
    const chunk = createHash("sha512").update(`${name}:${i}:${Math.random()}`).digest();
    for (let j = 0; j < 65536 && i + j < body.length; j++) body[i + j] = chunk[j % chunk.length] ^ (j & 0xff);
  }
  const bytes = Buffer.concat([head, body]).subarray(0, size);
  await writeFile(file, bytes);
  return { path: file, bytes, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Launch Debian's Chromium (never a downloaded one) with a fresh profile. */
export async function launchBrowser() {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), "uploadgate-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1024, height: 900 },
    deviceScaleFactor: 1,
    locale: "en-US",
    timezoneId: "UTC",
  });
  context.setDefaultTimeout(20_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(err));
  return {
    context,
    page,
    pageErrors,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

function safeName(name) {
  return name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 100) || "test";
}

/** Screenshot for the person reading the CI log. */
export async function failureScreenshot(page, testName) {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `FAILED-${safeName(testName)}.png`);
  try {
    await page.screenshot({ path: file, fullPage: true });
    console.error(`# screenshot of the failing page: ${path.relative(ROOT, file)}`);
  } catch (err) {
    console.error(`# could not save a failure screenshot: ${err.message}`);
  }
}

/** Stage a screenshot for docs/screenshots (published by run.sh after a passing run). */
export async function docScreenshot(page, name) {
  await mkdir(DOC_SHOTS, { recursive: true });
  const file = path.join(DOC_SHOTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Run `fn` with a browser page; on failure save a screenshot and the server logs.
 * Fails the test if the page threw an uncaught error.
 */
export async function withPage(t, fn, { gate } = {}) {
  const b = await launchBrowser();
  try {
    await fn(b.page, b.context);
    if (b.pageErrors.length) throw new Error(`uncaught errors in the page: ${b.pageErrors.map((e) => e.stack || e).join("\n")}`);
  } catch (err) {
    await failureScreenshot(b.page, t.fullName ?? t.name);
    if (gate) {
      const { stdout, stderr } = gate.logs();
      console.error(`# uploadgate stdout:\n${stdout}\n# uploadgate stderr:\n${stderr.slice(-4000)}`);
    }
    throw err;
  } finally {
    await b.close();
  }
}

/** Record every request the page makes (method, url). */
/**
 * The status line's text once announced. The page's `announce` clears the
 * live region, then fills it on the next animation frame (so a screen
 * reader repeats an identical message): a read right after the state
 * changes can see it empty.
 */
export async function announcement(page) {
  await page.waitForFunction(() => document.getElementById("status").textContent !== "", null, { polling: 20 });
  return page.getByRole("status").textContent();
}

export function recordRequests(page) {
  const log = [];
  page.on("request", (req) => log.push({ method: req.method(), url: req.url() }));
  return log;
}

// ---------------------------------------------------------------------------
// LocalStack (started by e2e/run.sh through e2e/scripts/localstack.sh)

const execFileP = promisify(execFile);

export function localstack() {
  const endpoint = process.env.LOCALSTACK_ENDPOINT;
  const python = process.env.LOCALSTACK_PYTHON;
  if (!endpoint || !python) return null;
  const admin = async (...args) => {
    const { stdout } = await execFileP(python, [path.join(E2E, "scripts", "s3admin.py"), endpoint, ...args]);
    return stdout;
  };
  return {
    endpoint,
    createBucket: (bucket) => admin("create-bucket", bucket),
    putCors: (bucket, ...origins) => admin("put-cors", bucket, ...origins),
    list: async (bucket) => (await admin("list", bucket)).split("\n").filter(Boolean),
    async getObject(bucket, key) {
      const dir = await mkdtemp(path.join(os.tmpdir(), "uploadgate-get-"));
      const out = path.join(dir, "object");
      try {
        await admin("get-object", bucket, key, out);
        return await readFile(out);
      } catch (err) {
        if (err.code === 3) return null;
        throw err;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Parse "2:59:50", "4:05" or "1 d 02:03:04" into seconds. */
export function parseCountdown(text) {
  const m = /^(?:(\d+) d )?(?:(\d+):)?(\d+):(\d{2})$/.exec(text.trim());
  if (!m) throw new Error(`not a countdown: ${JSON.stringify(text)}`);
  const [, d = 0, h = 0, min, s] = m;
  return Number(d) * 86400 + Number(h) * 3600 + Number(min) * 60 + Number(s);
}

// ---------------------------------------------------------------------------
// Accessibility: axe-core's WCAG 2.1 A/AA rules and best practices.

const AXE = path.join(E2E, "node_modules", "axe-core", "axe.min.js");

/** Run axe on the page as it is now; returns the violations, each as "rule: target (summary)". */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return r.violations.map((v) => ({ id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return violations.map((v) => `${v.id}: ${v.nodes.join(", ")} (${v.help})`);
}
