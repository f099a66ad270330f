// Demo page for uploadgate: plain DOM, no framework, no build step.
import {
  upload,
  quota,
  usage,
  QuotaExceededError,
  GateError,
  StorageError,
  NetworkError,
} from "/assets/uploadgate.js";

const $ = (id) => document.getElementById(id);
const els = {
  form: $("upload-form"),
  user: $("user-id"),
  file: $("file-input"),
  button: $("upload-button"),
  progressBox: $("progress-box"),
  progressLabel: $("progress-label"),
  progress: $("upload-progress"),
  progressText: $("progress-text"),
  status: $("status"),
  limited: $("limited"),
  limitedDetail: $("limited-detail"),
  limitedCountdown: $("limited-countdown"),
  limitedAt: $("limited-at"),
  error: $("error"),
  errorTitle: $("error-title"),
  errorDetail: $("error-detail"),
  result: $("result"),
  resultKey: $("result-key"),
  resultSize: $("result-size"),
  resultType: $("result-type"),
  resultEtag: $("result-etag"),
  quotaList: $("quota-list"),
  quotaEmpty: $("quota-empty"),
  quotaRefresh: $("quota-refresh"),
  usageMonth: $("usage-month"),
  cancel: $("cancel-button"),
};

const endpoint = window.location.origin;
let busy = false;
let controller = null;
let quotaSeq = 0;
let lastQuotaRefresh = 0;
let usageSeq = 0;
/** This month's settled uploads as last shown, or null if not shown. */
let monthUploads = null;

function gateOptions() {
  return { endpoint, token: els.user.value.trim(), tokenHeader: "x-user-id" };
}

function setState(state) {
  document.body.dataset.state = state;
}

// ---------------------------------------------------------------------------
// Formatting

const nf = new Intl.NumberFormat("en");

function formatBytes(n) {
  if (!Number.isFinite(n)) return String(n);
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${nf.format(n)} ${n === 1 ? "byte" : "bytes"}`;
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function formatAmount(limit, n) {
  return limit.unit === "bytes" ? formatBytes(n) : `${nf.format(n)} ${limit.unit === "uploads" || !limit.unit ? (n === 1 ? "upload" : "uploads") : limit.unit}`;
}

function formatWindow(seconds) {
  if (!seconds) return "";
  const parts = [
    [86400, "d"],
    [3600, "h"],
    [60, "min"],
  ];
  for (const [size, unit] of parts) {
    if (seconds % size === 0) return `${seconds / size} ${unit}`;
  }
  return `${seconds} s`;
}

/** 2:59:50, 4:05, or 1 d 02:03:04 */
function formatCountdown(totalSeconds) {
  const s = Math.max(0, Math.ceil(totalSeconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (x) => String(x).padStart(2, "0");
  if (d > 0) return `${d} d ${pad(h)}:${pad(m)}:${pad(sec)}`;
  if (h > 0) return `${h}:${pad(m)}:${pad(sec)}`;
  return `${m}:${pad(sec)}`;
}

/** "2 hours 59 minutes" for announcements. */
function spokenDuration(totalSeconds) {
  const s = Math.max(0, Math.ceil(totalSeconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const part = (n, w) => (n ? `${n} ${w}${n === 1 ? "" : "s"}` : "");
  const out = [part(d, "day"), part(h, "hour"), part(m, "minute")].filter(Boolean);
  if (out.length === 0 || (d === 0 && h === 0 && m < 2)) out.push(part(sec, "second") || "0 seconds");
  return out.join(" ");
}

function isoDuration(totalSeconds) {
  const s = Math.max(0, Math.ceil(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `PT${h}H${m}M${s % 60}S`;
}

function clockTime(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// ---------------------------------------------------------------------------
// Live countdowns: every element with data-deadline (ms since epoch) ticks.

function startCountdown(el, seconds, onDone) {
  el.dataset.deadline = String(Date.now() + seconds * 1000);
  el._onDone = onDone || null;
  renderCountdown(el);
}

function renderCountdown(el) {
  const left = (Number(el.dataset.deadline) - Date.now()) / 1000;
  el.textContent = formatCountdown(left);
  el.setAttribute("datetime", isoDuration(left));
  return left;
}

setInterval(() => {
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const left = renderCountdown(el);
    if (left <= 0) {
      delete el.dataset.deadline;
      const done = el._onDone;
      el._onDone = null;
      if (done) done();
    }
  }
}, 250);

// ---------------------------------------------------------------------------
// Notices

function announce(text) {
  // Clearing first makes screen readers repeat an identical message.
  els.status.textContent = "";
  requestAnimationFrame(() => {
    els.status.textContent = text;
  });
}

function hideNotices() {
  els.limited.hidden = true;
  delete els.limitedCountdown.dataset.deadline;
  els.error.hidden = true;
  els.result.hidden = true;
}

function showError(title, detail) {
  hideNotices();
  els.errorTitle.textContent = title;
  els.errorDetail.textContent = detail;
  els.error.hidden = false;
  announce(`${title}. ${detail}`);
  setState("error");
}

function showLimited(err) {
  hideNotices();
  const limits = err.limits || [];
  const violated = err.violatedPolicies.length ? err.violatedPolicies : limits.filter((l) => l.remaining === 0).map((l) => l.name);
  const parts = violated.map((name) => {
    const l = limits.find((x) => x.name === name);
    if (!l) return `the "${name}" limit`;
    const per = l.windowSeconds ? ` per ${formatWindow(l.windowSeconds)}` : "";
    if (l.unit === "bytes") {
      return `the "${name}" limit (${formatBytes(l.limit)}${per}; ${formatBytes(l.remaining)} left)`;
    }
    const all = l.limit === 1 ? "your" : "all";
    return `${all} ${formatAmount(l, l.limit)} allowed${per} ("${name}")`;
  });
  const what = parts.length ? `You have used ${parts.join(" and ")}.` : err.problem?.detail || "A quota is used up.";
  let wait = err.retryAfter;
  if (wait == null) {
    const resets = limits.filter((l) => violated.includes(l.name)).map((l) => l.resetSeconds);
    wait = resets.length ? Math.max(...resets) : 0;
  }
  els.limitedDetail.textContent = what;
  const at = new Date(Date.now() + wait * 1000);
  els.limitedAt.textContent = `(at ${clockTime(at)})`;
  startCountdown(els.limitedCountdown, wait, () => {
    els.limited.hidden = true;
    announce("You can upload again now.");
    setState("idle");
    refreshQuota();
  });
  els.limited.hidden = false;
  announce(`Upload limit reached. ${what} You can upload again in ${spokenDuration(wait)}, at ${clockTime(at)}.`);
  setState("limited");
}

function describeError(err) {
  if (err instanceof GateError) {
    const detail = err.detail ? `${err.detail}` : "";
    return {
      title: `The gate refused the upload: ${err.title}`,
      detail: `${detail}${detail ? " " : ""}(HTTP ${err.status})`,
    };
  }
  if (err instanceof StorageError) {
    const hints = {
      PreconditionFailed: "An object already exists under this key; the URL works once.",
      AccessDenied: "The URL expired, was altered, or the bucket refused it.",
      SignatureDoesNotMatch: "The request does not match what the gate signed (size, type or URL changed).",
    };
    const code = err.code ? ` ${err.code}` : "";
    const s3 = err.s3Message ? ` ${err.s3Message}.` : "";
    return {
      title: "Storage refused the upload",
      detail: `HTTP ${err.status}${code}.${s3} ${hints[err.code] || ""} This attempt still counted against your quota.`.trim(),
    };
  }
  if (err instanceof NetworkError && err.stage === "storage") {
    return {
      title: "The file could not be sent to storage",
      detail:
        `The browser got no answer from the bucket at ${new URL(err.url).origin}. Either the network failed, ` +
        `or the bucket's CORS rules do not allow this page (${window.location.origin}) to PUT there ` +
        `(they must allow the PUT method and the content-disposition, content-type, if-none-match and x-amz-checksum-sha256 headers). ` +
        `This attempt still counted against your quota.`,
    };
  }
  if (err instanceof NetworkError) {
    return { title: "Cannot reach the gate", detail: `No answer from ${err.url}. Is uploadgate serve running?` };
  }
  return { title: "Upload failed", detail: String(err && err.message ? err.message : err) };
}

// ---------------------------------------------------------------------------
// Quota meter

function renderQuota(limits) {
  els.quotaList.replaceChildren();
  if (!limits.length) {
    els.quotaEmpty.textContent = "No limits apply to this user.";
    els.quotaEmpty.hidden = false;
    return;
  }
  els.quotaEmpty.hidden = true;
  for (const l of limits) {
    const id = `quota-${l.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const li = document.createElement("li");
    li.className = "quota-item";
    li.dataset.limit = l.name;
    if (l.remaining === 0) li.classList.add("exhausted");

    const head = document.createElement("div");
    head.className = "quota-head";
    const name = document.createElement("span");
    name.className = "quota-name";
    name.id = `${id}-label`;
    name.textContent = l.name;
    const policy = document.createElement("span");
    policy.className = "quota-policy";
    const per = l.windowSeconds ? ` per ${formatWindow(l.windowSeconds)}` : "";
    policy.textContent = `${formatAmount(l, l.limit)}${per}${l.subject ? ` · by ${l.subject}` : ""}`;
    head.append(name, policy);

    const meter = document.createElement("meter");
    meter.id = `${id}-meter`;
    meter.min = 0;
    meter.max = Math.max(1, l.limit);
    meter.value = Math.max(0, l.remaining);
    meter.low = Math.max(1, l.limit) * 0.25;
    meter.high = Math.max(1, l.limit) * 0.5;
    meter.optimum = Math.max(1, l.limit);
    meter.setAttribute("aria-labelledby", `${id}-label ${id}-remaining`);

    const text = document.createElement("p");
    text.className = "quota-text";
    const remaining = document.createElement("span");
    remaining.id = `${id}-remaining`;
    remaining.className = "quota-remaining";
    remaining.textContent = `${formatAmount(l, l.remaining)} left of ${formatAmount(l, l.limit)}`;
    text.append(remaining);

    if (l.remaining < l.limit && l.resetSeconds > 0) {
      const reset = document.createElement("span");
      reset.className = "quota-reset";
      reset.append(l.remaining === 0 ? " · next one frees up in " : " · next reset in ");
      const t = document.createElement("time");
      t.setAttribute("role", "timer");
      t.className = "quota-countdown";
      reset.append(t);
      text.append(reset);
      startCountdown(t, l.resetSeconds, () => refreshQuota({ throttle: true }));
    } else {
      const full = document.createElement("span");
      full.className = "quota-reset";
      full.textContent = " · full";
      text.append(full);
    }
    li.append(head, meter, text);
    els.quotaList.append(li);
  }
}

async function refreshQuota({ throttle = false } = {}) {
  const now = Date.now();
  if (throttle && now - lastQuotaRefresh < 2000) return;
  lastQuotaRefresh = now;
  const seq = ++quotaSeq;
  if (!els.user.value.trim()) {
    hideUsage();
    els.quotaList.replaceChildren();
    els.quotaEmpty.textContent = "Enter a user id to see its quota.";
    els.quotaEmpty.hidden = false;
    return;
  }
  refreshUsage();
  try {
    const q = await quota(gateOptions());
    if (seq !== quotaSeq) return;
    renderQuota(q.limits);
  } catch (err) {
    if (seq !== quotaSeq) return;
    els.quotaList.replaceChildren();
    els.quotaEmpty.hidden = false;
    els.quotaEmpty.textContent =
      err instanceof NetworkError
        ? "Cannot reach the gate to read the quota."
        : `Could not read the quota: ${err.message}`;
  }
}

// ---------------------------------------------------------------------------
// This month's usage (upload mode: the gate keeps a usage ledger)

function hideUsage() {
  els.usageMonth.hidden = true;
  els.usageMonth.textContent = "";
  monthUploads = null;
}

/**
 * Reads GET /v1/usage and shows the month's line; hides it where the gate
 * keeps no usage (404 in grant mode) or cannot say. Resolves with the
 * month's settled uploads, null without them, or undefined if a newer read
 * overtook this one.
 */
async function refreshUsage() {
  const seq = ++usageSeq;
  if (!els.user.value.trim()) {
    hideUsage();
    return null;
  }
  try {
    const u = await usage({ ...gateOptions(), limit: 1 });
    if (seq !== usageSeq) return undefined;
    if (!u.month) {
      hideUsage();
      return null;
    }
    const n = u.month.uploads;
    els.usageMonth.textContent = `This month: ${nf.format(n)} ${n === 1 ? "upload" : "uploads"}, ${formatBytes(u.month.bytes)}`;
    els.usageMonth.dataset.uploads = String(n);
    els.usageMonth.dataset.bytes = String(u.month.bytes);
    els.usageMonth.hidden = false;
    monthUploads = n;
    return n;
  } catch {
    if (seq !== usageSeq) return undefined;
    hideUsage();
    return null;
  }
}

/**
 * After an upload, the gate settles it once the bucket reports the object
 * (in-process for the embedded bucket, from the event queue on S3): poll
 * the month's line until it counts one more than `before`, for at most
 * 15 s.
 */
async function awaitSettled(before) {
  if (before == null) return;
  const user = els.user.value.trim();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    if (els.user.value.trim() !== user) return;
    const n = await refreshUsage();
    if (n === null || n > before) return;
  }
}

// ---------------------------------------------------------------------------
// Upload

function setBusy(on) {
  busy = on;
  els.button.setAttribute("aria-disabled", on ? "true" : "false");
  els.form.setAttribute("aria-busy", on ? "true" : "false");
  els.button.textContent = on ? "Uploading…" : "Upload";
  els.cancel.hidden = !on;
}

function showProgress(loaded, total) {
  const pct = total > 0 ? Math.min(100, Math.floor((loaded / total) * 100)) : 0;
  els.progress.value = pct;
  els.progressText.textContent = `${pct}% · ${formatBytes(loaded)} of ${formatBytes(total)}`;
}

els.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (busy) return;
  const file = els.file.files && els.file.files[0];
  const user = els.user.value.trim();
  if (!user) {
    showError("Enter a user id", "The gate needs an identity to charge the quota to.");
    els.user.focus();
    return;
  }
  if (!file) {
    showError("Choose a file", "Pick a file to upload first.");
    els.file.focus();
    return;
  }

  hideNotices();
  setBusy(true);
  setState("requesting");
  controller = new AbortController();
  els.progressLabel.textContent = `Uploading ${file.name}`;
  showProgress(0, file.size);
  els.progressBox.hidden = false;
  announce(`Asking the gate for an upload URL for ${file.name}…`);

  let announcedUpload = false;
  const settledBefore = monthUploads;
  try {
    const result = await upload(file, {
      ...gateOptions(),
      signal: controller.signal,
      onGrant: (grant) => {
        if (Array.isArray(grant.limits) && grant.limits.length) renderQuota(grant.limits);
      },
      onProgress: ({ loaded, total }) => {
        if (!announcedUpload) {
          announcedUpload = true;
          setState("uploading");
          announce(`Uploading ${file.name} (${formatBytes(file.size)}) to storage…`);
        }
        showProgress(loaded, total);
      },
    });
    showProgress(result.size, result.size);
    els.resultKey.textContent = result.key;
    els.resultSize.textContent = `${nf.format(result.size)} bytes${result.size >= 1024 ? ` (${formatBytes(result.size)})` : ""}`;
    els.resultSize.dataset.bytes = String(result.size);
    els.resultType.textContent = result.contentType;
    els.resultEtag.textContent = result.etag ?? "(not exposed by the bucket's CORS rules)";
    els.result.hidden = false;
    announce(`Uploaded ${file.name}: ${nf.format(result.size)} bytes, key ${result.key}.`);
    setState("done");
    if (result.limits.length) renderQuota(result.limits);
    else refreshQuota();
    awaitSettled(settledBefore);
  } catch (err) {
    if (err && err.name === "AbortError") {
      announce("Upload cancelled.");
      setState("idle");
      els.progressBox.hidden = true;
      els.button.focus();
      refreshQuota();
    } else if (err instanceof QuotaExceededError) {
      els.progressBox.hidden = true;
      showLimited(err);
      if (err.limits.length) renderQuota(err.limits);
      else refreshQuota();
    } else {
      els.progressBox.hidden = true;
      const { title, detail } = describeError(err);
      showError(title, detail);
      refreshQuota();
    }
  } finally {
    controller = null;
    setBusy(false);
  }
});

let userTimer = null;
els.user.addEventListener("input", () => {
  clearTimeout(userTimer);
  userTimer = setTimeout(() => refreshQuota(), 400);
});
els.user.addEventListener("change", () => {
  clearTimeout(userTimer);
  hideNotices();
  refreshQuota();
});
els.quotaRefresh.addEventListener("click", () => refreshQuota());
els.cancel.addEventListener("click", () => controller && controller.abort());
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && controller) controller.abort();
});

setState("idle");
refreshQuota();
