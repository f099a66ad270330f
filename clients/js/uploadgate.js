// uploadgate browser client: ask the gate for a presigned URL, then PUT the
// file straight to S3. Dependency-free ES module; works in browsers, and in
// Node 20+ / Deno (where XMLHttpRequest is missing it PUTs with fetch and
// reports progress only at the end).

/** Base class of every error this module throws (except an abort). */
export class UploadgateError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The gate refused because a quota is used up (HTTP 429). */
export class QuotaExceededError extends UploadgateError {
  constructor({ retryAfter, rateLimit, rateLimitPolicy, problem, headers }) {
    const detail = (problem && (problem.detail || problem.title)) || "quota exceeded";
    super(`${detail} (retry after ${retryAfter ?? "?"} s)`);
    this.status = 429;
    /** Seconds until the caller may try again, or null if the gate did not say. */
    this.retryAfter = retryAfter;
    /** Parsed `RateLimit` field: [{ name, params: { r, t } }]. */
    this.rateLimit = rateLimit;
    /** Parsed `RateLimit-Policy` field: [{ name, params: { q, w, qu? } }]. */
    this.rateLimitPolicy = rateLimitPolicy;
    /** The application/problem+json body (includes `violated-policies` and `limits`). */
    this.problem = problem;
    this.violatedPolicies = (problem && problem["violated-policies"]) || [];
    this.limits = (problem && problem.limits) || [];
    this.headers = headers;
  }
}

/** Any other non-2xx answer of the gate (400, 401, 403, 413, 415, 5xx...). */
export class GateError extends UploadgateError {
  constructor({ status, problem, headers, message }) {
    const p = problem || {};
    const title = p.title || `HTTP ${status}`;
    super(message || (p.detail ? `${title}: ${p.detail}` : title));
    this.status = status;
    this.title = title;
    this.detail = p.detail ?? null;
    this.type = p.type ?? null;
    this.problem = problem;
    this.headers = headers;
  }
}

/** The storage (S3) answered the PUT with a non-2xx status. */
export class StorageError extends UploadgateError {
  constructor({ status, code, message, body, key, url }) {
    super(`storage refused the upload: ${status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`);
    this.status = status;
    /** S3 error code from the XML body, e.g. AccessDenied, SignatureDoesNotMatch, PreconditionFailed. */
    this.code = code;
    /** S3's own message from the XML body (the Error's `message` is a summary). */
    this.s3Message = message;
    this.body = body;
    this.key = key;
    this.url = url;
  }
}

/**
 * The request never got an HTTP answer: connection refused, DNS, offline, or
 * (in a browser) a CORS rejection, which browsers deliberately report the same way.
 */
export class NetworkError extends UploadgateError {
  constructor({ stage, url, cause }) {
    const where = stage === "storage" ? `storage at ${originOf(url)}` : `gate at ${originOf(url)}`;
    const hint =
      stage === "storage"
        ? " (network failure, or the bucket's CORS rules do not allow this origin, the PUT method or the signed headers)"
        : " (network failure, or the gate's CORS settings do not allow this origin)";
    super(`could not reach the ${where}${hint}`, cause ? { cause } : undefined);
    /** "gate" (POST /v1/uploads, GET /v1/quota) or "storage" (the PUT). */
    this.stage = stage;
    this.url = url;
  }
}

function originOf(url) {
  try {
    return new URL(url, globalThis.location?.href).origin;
  } catch {
    return String(url);
  }
}

// ---------------------------------------------------------------------------
// Structured field lists (RFC 8941 / RFC 9651), as used by RateLimit and
// RateLimit-Policy. Returns [] for a missing or unparsable field (RFC 8941
// says to ignore the whole field when it fails to parse).

/**
 * Parse a structured-field list such as `"uploads";q=5;w=10800, "volume";q=1000;qu="content-bytes"`.
 * @param {string|null|undefined} value
 * @returns {{name: string|number|boolean, params: Record<string, string|number|boolean>}[]}
 */
export function parseRateLimitList(value) {
  if (value == null) return [];
  try {
    return parseSfList(String(value));
  } catch {
    return [];
  }
}

function parseSfList(input) {
  let i = 0;
  const s = input;
  const out = [];
  const fail = () => {
    throw new SyntaxError(`invalid structured field at ${i}: ${s}`);
  };
  const skipSp = () => {
    while (s[i] === " ") i++;
  };
  const skipOws = () => {
    while (s[i] === " " || s[i] === "\t") i++;
  };
  const key = () => {
    if (!/[a-z*]/.test(s[i] || "")) fail();
    const start = i;
    while (/[a-z0-9_\-.*]/.test(s[i] || "")) i++;
    return s.slice(start, i);
  };
  const bare = () => {
    const c = s[i];
    if (c === '"') {
      i++;
      let str = "";
      for (;;) {
        const ch = s[i++];
        if (ch === undefined) fail();
        if (ch === "\\") {
          const n = s[i++];
          if (n !== '"' && n !== "\\") fail();
          str += n;
        } else if (ch === '"') return str;
        else str += ch;
      }
    }
    if (c === "-" || /[0-9]/.test(c || "")) {
      const m = /^-?[0-9]{1,15}(\.[0-9]{1,3})?/.exec(s.slice(i));
      if (!m) fail();
      i += m[0].length;
      return Number(m[0]);
    }
    if (c === "?") {
      const b = s[i + 1];
      if (b !== "0" && b !== "1") fail();
      i += 2;
      return b === "1";
    }
    if (c === ":") {
      const end = s.indexOf(":", i + 1);
      if (end < 0) fail();
      const b64 = s.slice(i + 1, end);
      i = end + 1;
      return b64; // byte sequences are kept base64-encoded
    }
    if (/[A-Za-z*]/.test(c || "")) {
      const start = i;
      while (/[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/.test(s[i] || "")) i++;
      return s.slice(start, i);
    }
    return fail();
  };
  const params = () => {
    const p = {};
    while (s[i] === ";") {
      i++;
      skipSp();
      const k = key();
      let v = true;
      if (s[i] === "=") {
        i++;
        v = bare();
      }
      p[k] = v;
    }
    return p;
  };
  skipSp();
  if (i >= s.length) return out;
  for (;;) {
    let name;
    if (s[i] === "(") {
      i++;
      name = [];
      for (;;) {
        skipSp();
        if (s[i] === ")") {
          i++;
          break;
        }
        name.push({ name: bare(), params: params() });
        if (s[i] !== " " && s[i] !== ")") fail();
      }
    } else {
      name = bare();
    }
    out.push({ name, params: params() });
    skipOws();
    if (i >= s.length) return out;
    if (s[i] !== ",") fail();
    i++;
    skipOws();
    if (i >= s.length) fail();
  }
}

/** Retry-After is either delay-seconds or an HTTP-date. */
function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === "") return null;
  const v = String(value).trim();
  if (/^\d+$/.test(v)) return Number(v);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

// ---------------------------------------------------------------------------
// SHA-256. crypto.subtle exists only in secure contexts (https, localhost,
// 127.0.0.1); a page served over plain http on a LAN address has no
// crypto.subtle, so fall back to a small pure-JS implementation.

/**
 * Lowercase hex SHA-256 of the given bytes.
 * @param {Uint8Array} bytes
 * @returns {Promise<string>}
 */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) {
    return toHex(new Uint8Array(await subtle.digest("SHA-256", bytes)));
  }
  return toHex(sha256Fallback(bytes));
}

/**
 * Base64 SHA-256 of a file's bytes: the `checksumSha256` the gate binds into
 * the URL (S3 then refuses any other bytes).
 * @param {Blob} blob
 * @returns {Promise<string>}
 */
export async function sha256Base64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  const digest = subtle ? new Uint8Array(await subtle.digest("SHA-256", bytes)) : sha256Fallback(bytes);
  let bin = "";
  for (const b of digest) bin += String.fromCharCode(b);
  return btoa(bin);
}

function toHex(bytes) {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** @internal exported for tests: pure-JS SHA-256 used without crypto.subtle. */
export function sha256Fallback(bytes) {
  const len = bytes.length;
  const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[len] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(len / 0x20000000), false);
  view.setUint32(padded.length - 4, (len << 3) >>> 0, false);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getUint32(off + t * 4, false);
    for (let t = 16; t < 64; t++) {
      const s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t] + w[t]) >>> 0;
      const S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let t = 0; t < 8; t++) ov.setUint32(t * 4, h[t], false);
  return out;
}

// ---------------------------------------------------------------------------
// The gate.

function gateUrl(endpoint, path) {
  const base = endpoint == null ? "" : String(endpoint).replace(/\/+$/, "");
  return `${base}${path}`;
}

function abortReason(signal) {
  if (signal && signal.reason !== undefined) return signal.reason;
  return new DOMException("The upload was aborted.", "AbortError");
}

async function gateFetch(url, init, signal) {
  if (signal && signal.aborted) throw abortReason(signal);
  let res;
  try {
    res = await fetch(url, { ...init, signal, credentials: "omit", cache: "no-store" });
  } catch (err) {
    if (signal && signal.aborted) throw abortReason(signal);
    throw new NetworkError({ stage: "gate", url, cause: err });
  }
  let text;
  try {
    text = await res.text();
  } catch (err) {
    if (signal && signal.aborted) throw abortReason(signal);
    throw new NetworkError({ stage: "gate", url, cause: err });
  }
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (res.ok) {
    if (!json || typeof json !== "object") {
      throw new GateError({
        status: res.status,
        problem: null,
        headers: res.headers,
        message: `the gate answered ${res.status} without a JSON body`,
      });
    }
    return { res, json };
  }
  if (res.status === 429) {
    throw new QuotaExceededError({
      retryAfter: parseRetryAfter(res.headers.get("retry-after")) ?? numberOrNull(json && json.retryAfter),
      rateLimit: parseRateLimitList(res.headers.get("ratelimit")),
      rateLimitPolicy: parseRateLimitList(res.headers.get("ratelimit-policy")),
      problem: json,
      headers: res.headers,
    });
  }
  const problem = json && typeof json === "object" ? json : text ? { title: `HTTP ${res.status}`, detail: text.slice(0, 500) } : null;
  throw new GateError({ status: res.status, problem, headers: res.headers });
}

function numberOrNull(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/**
 * The header that carries the caller's identity. By default a bearer token
 * in `Authorization`; with `tokenHeader` set, the token as is in that header
 * (behind CloudFront origin access control, which overwrites
 * `Authorization`, e.g. "x-upload-token"; or "x-user-id" for a gate in
 * `header` identity mode behind a trusted upstream).
 */
function tokenHeaders(token, tokenHeader) {
  const h = {};
  if (token == null || token === "") return h;
  const name = (tokenHeader || "authorization").toLowerCase();
  h[name] = name === "authorization" ? `Bearer ${token}` : String(token);
  return h;
}

/**
 * Ask the gate for a presigned PUT (charges the quota).
 * @param {{name: string, type: string, size: number, checksumSha256?: string}} file
 *   `checksumSha256` (base64, see `sha256Base64`) binds the URL to these bytes.
 * @param {{endpoint?: string, token?: string, tokenHeader?: string, signal?: AbortSignal}} options
 */
export async function requestUpload(file, { endpoint = "", token, tokenHeader = "authorization", signal } = {}) {
  const fields = { filename: file.name, contentType: file.type, size: file.size };
  if (file.checksumSha256) fields.checksumSha256 = file.checksumSha256;
  const body = new TextEncoder().encode(JSON.stringify(fields));
  // CloudFront origin access control in front of a Lambda function URL signs
  // the request but needs the payload hash from the viewer; without it: 403.
  const digest = await sha256Hex(body);
  const url = gateUrl(endpoint, "/v1/uploads");
  const { json } = await gateFetch(
    url,
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-amz-content-sha256": digest,
        ...tokenHeaders(token, tokenHeader),
      },
      body,
    },
    signal,
  );
  if (typeof json.url !== "string" || !json.key) {
    throw new GateError({ status: 200, problem: json, message: "the gate's answer has no url or key" });
  }
  return json;
}

/**
 * Read the caller's quota (`GET /v1/quota`); consumes nothing.
 * @param {{endpoint?: string, token?: string, tokenHeader?: string, signal?: AbortSignal}} options
 */
export async function quota({ endpoint = "", token, tokenHeader = "authorization", signal } = {}) {
  const url = gateUrl(endpoint, "/v1/quota");
  const { res, json } = await gateFetch(
    url,
    { method: "GET", headers: { accept: "application/json", ...tokenHeaders(token, tokenHeader) } },
    signal,
  );
  return {
    user: json.user,
    limits: Array.isArray(json.limits) ? json.limits : [],
    rateLimit: parseRateLimitList(res.headers.get("ratelimit")),
    rateLimitPolicy: parseRateLimitList(res.headers.get("ratelimit-policy")),
  };
}

/**
 * Read the caller's settled uploads and totals (`GET /v1/usage`, upload
 * mode); consumes nothing. A gate that keeps no usage answers 404
 * (`GateError`).
 * @param {{endpoint?: string, token?: string, tokenHeader?: string, signal?: AbortSignal,
 *          since?: string|Date, until?: string|Date, limit?: number, cursor?: string}} options
 */
export async function usage({ endpoint = "", token, tokenHeader = "authorization", signal, since, until, limit, cursor } = {}) {
  const params = new URLSearchParams();
  const time = (t) => (t instanceof Date ? t.toISOString() : String(t));
  if (since != null) params.set("since", time(since));
  if (until != null) params.set("until", time(until));
  if (limit != null) params.set("limit", String(limit));
  if (cursor != null) params.set("cursor", cursor);
  const query = params.toString();
  const url = gateUrl(endpoint, `/v1/usage${query ? `?${query}` : ""}`);
  const { json } = await gateFetch(
    url,
    { method: "GET", headers: { accept: "application/json", ...tokenHeaders(token, tokenHeader) } },
    signal,
  );
  return {
    user: json.user,
    since: json.since ?? null,
    until: json.until ?? null,
    uploads: json.uploads,
    bytes: json.bytes,
    records: Array.isArray(json.records) ? json.records : [],
    next: json.next ?? null,
    month: json.month ?? null,
    windows: Array.isArray(json.windows) ? json.windows : [],
  };
}

// ---------------------------------------------------------------------------
// The storage PUT.

// Browsers compute Content-Length from the body (and refuse to let scripts set
// it); the gate signed exactly file.size, so they agree.
const NOT_SENT = new Set(["content-length", "host"]);

function s3Error(status, text) {
  const pick = (tag) => {
    const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(text || "");
    return m ? unescapeXml(m[1].trim()) : null;
  };
  return { code: pick("Code"), message: pick("Message") };
}

function unescapeXml(s) {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");
}

/**
 * PUT a body to the URL the gate returned, with exactly its signed headers.
 * @param {{url: string, method?: string, headers?: Record<string,string>, key: string}} grant
 * @param {Blob} body
 * @param {{onProgress?: (p: {loaded: number, total: number}) => void, signal?: AbortSignal}} options
 * @returns {Promise<{etag: string|null, status: number}>}
 */
export function putToStorage(grant, body, { onProgress, signal } = {}) {
  const method = grant.method || "PUT";
  const headers = Object.entries(grant.headers || {}).filter(([k]) => !NOT_SENT.has(k.toLowerCase()));
  const total = body.size;
  if (typeof XMLHttpRequest === "undefined") return putWithFetch(grant, method, headers, body, total, onProgress, signal);
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortReason(signal));
    const xhr = new XMLHttpRequest();
    xhr.open(method, grant.url, true);
    xhr.responseType = "text";
    for (const [k, v] of headers) xhr.setRequestHeader(k, v);
    const onAbortSignal = () => xhr.abort();
    const cleanup = () => signal && signal.removeEventListener("abort", onAbortSignal);
    if (signal) signal.addEventListener("abort", onAbortSignal, { once: true });
    if (onProgress) {
      xhr.upload.addEventListener("progress", (e) => {
        onProgress({ loaded: e.loaded, total: e.lengthComputable ? e.total : total });
      });
    }
    xhr.addEventListener("load", () => {
      cleanup();
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress({ loaded: total, total });
        resolve({ status: xhr.status, etag: xhr.getResponseHeader("etag") });
      } else {
        const text = xhr.responseText || "";
        const { code, message } = s3Error(xhr.status, text);
        reject(new StorageError({ status: xhr.status, code, message, body: text, key: grant.key, url: grant.url }));
      }
    });
    xhr.addEventListener("error", () => {
      cleanup();
      reject(new NetworkError({ stage: "storage", url: grant.url }));
    });
    xhr.addEventListener("timeout", () => {
      cleanup();
      reject(new NetworkError({ stage: "storage", url: grant.url, cause: new Error("timeout") }));
    });
    xhr.addEventListener("abort", () => {
      cleanup();
      reject(abortReason(signal));
    });
    xhr.send(body);
  });
}

async function putWithFetch(grant, method, headers, body, total, onProgress, signal) {
  if (signal && signal.aborted) throw abortReason(signal);
  let res;
  try {
    res = await fetch(grant.url, { method, headers: Object.fromEntries(headers), body, signal, credentials: "omit" });
  } catch (err) {
    if (signal && signal.aborted) throw abortReason(signal);
    throw new NetworkError({ stage: "storage", url: grant.url, cause: err });
  }
  const text = await res.text().catch(() => "");
  if (!res.ok) {
    const { code, message } = s3Error(res.status, text);
    throw new StorageError({ status: res.status, code, message, body: text, key: grant.key, url: grant.url });
  }
  if (onProgress) onProgress({ loaded: total, total });
  return { status: res.status, etag: res.headers.get("etag") };
}

// ---------------------------------------------------------------------------

/**
 * Upload a file: get a presigned URL from the gate, then PUT the file to S3.
 * @param {File|Blob & {name?: string}} file
 * @param {{endpoint?: string, token?: string, tokenHeader?: string,
 *          onProgress?: (p: {loaded: number, total: number}) => void,
 *          onGrant?: (grant: object) => void, signal?: AbortSignal, checksum?: boolean}} options
 *   `checksum: true` reads the file once to hash it and has the URL bind
 *   that SHA-256 (required by a gate with UPLOADGATE_REQUIRE_CHECKSUM=true).
 *   `onProgress` gets `{phase, loaded, total}`: `phase` is "hashing" (once,
 *   before the gate is asked, with `checksum: true`) or "uploading" (the PUT).
 * @returns {Promise<{key: string, etag: string|null, size: number, contentType: string, expiresAt?: string, limits: object[]}>}
 */
export async function upload(
  file,
  { endpoint = "", token, tokenHeader = "authorization", onProgress, onGrant, signal, checksum = false } = {},
) {
  if (!file || typeof file.size !== "number") throw new TypeError("upload(file): file must be a File or Blob");
  const meta = { name: file.name || "upload", type: file.type || "", size: file.size };
  if (checksum) {
    // Reading and hashing a large file takes a moment before anything is
    // sent; report it as its own phase.
    if (onProgress) onProgress({ phase: "hashing", loaded: 0, total: meta.size });
    meta.checksumSha256 = await sha256Base64(file);
    if (signal && signal.aborted) throw abortReason(signal);
  }
  const grant = await requestUpload(meta, { endpoint, token, tokenHeader, signal });
  if (onGrant) onGrant(grant);
  const uploading = onProgress && ((p) => onProgress({ phase: "uploading", ...p }));
  if (uploading) uploading({ loaded: 0, total: meta.size });
  const { etag } = await putToStorage(grant, file, { onProgress: uploading, signal });
  const signedType = grant.headers && (grant.headers["content-type"] || grant.headers["Content-Type"]);
  return {
    key: grant.key,
    etag,
    size: meta.size,
    contentType: signedType || meta.type,
    expiresAt: grant.expiresAt,
    limits: Array.isArray(grant.limits) ? grant.limits : [],
  };
}
