// Type declarations for uploadgate.js.

/** One limit as the gate reports it (in the 200 answer, the 429 problem and GET /v1/quota). */
export interface Limit {
  name: string;
  subject?: "user" | "ip" | string;
  unit?: "uploads" | "bytes" | string;
  limit: number;
  remaining: number;
  /** Seconds until capacity next frees up. */
  resetSeconds: number;
  windowSeconds?: number;
}

/** One member of a structured-field list (RFC 9651), e.g. `"uploads";q=5;w=10800`. */
export interface RateLimitItem {
  name: string | number | boolean | RateLimitItem[];
  /** `RateLimit`: r (remaining), t (seconds to reset). `RateLimit-Policy`: q (quota), w (window), qu (quota unit). */
  params: Record<string, string | number | boolean>;
}

/** An RFC 9457 problem document. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [extension: string]: unknown;
}

export interface QuotaProblem extends Problem {
  "violated-policies"?: string[];
  retryAfter?: number;
  limits?: Limit[];
}

export interface UploadProgress {
  /**
   * What `upload()` is doing: "hashing" the file (once, before the gate is
   * asked, with `checksum: true`; `loaded` is 0) or "uploading" it (the
   * PUT's progress). `putToStorage` alone reports no phase.
   */
  phase?: "hashing" | "uploading";
  loaded: number;
  total: number;
}

export interface GateOptions {
  /** Base URL of the gate, e.g. "https://uploads.example.com". "" (default) means same origin. */
  endpoint?: string;
  /** The caller's identity: a JWT from your identity provider (e.g. Cognito), or the user id for a gate in `header` mode. */
  token?: string;
  /**
   * Header that carries the token; match the gate's UPLOADGATE_TOKEN_HEADER
   * (or UPLOADGATE_IDENTITY_HEADER in `header` mode). Default "authorization",
   * sent as `Bearer <token>`; any other header gets the token as is (behind
   * CloudFront origin access control, which overwrites Authorization, use e.g.
   * "x-upload-token").
   */
  tokenHeader?: string;
  signal?: AbortSignal;
}

export interface UploadOptions extends GateOptions {
  /**
   * Hash the file (SHA-256, read once in memory) and have the URL bind it:
   * storage then refuses any other bytes. Required by a gate with
   * UPLOADGATE_REQUIRE_CHECKSUM=true.
   */
  checksum?: boolean;
  /** Progress: the hashing phase (with `checksum`), then the PUT's (XMLHttpRequest upload events). */
  onProgress?: (progress: UploadProgress) => void;
  /** Called with the gate's answer before the PUT starts (the quota is charged by then). */
  onGrant?: (grant: UploadGrant) => void;
}

export interface UploadResult {
  /** Object key chosen by the gate, e.g. "uploads/<user>/<uuid>/<name>". */
  key: string;
  /** ETag from storage, or null when the bucket's CORS rules do not expose it. */
  etag: string | null;
  size: number;
  contentType: string;
  expiresAt?: string;
  /** The caller's limits after this upload was charged. */
  limits: Limit[];
}

/** The gate's 200 answer to POST /v1/uploads. */
export interface UploadGrant {
  url: string;
  method: string;
  headers: Record<string, string>;
  key: string;
  expiresAt: string;
  limits: Limit[];
}

export interface QuotaResult {
  user: string;
  limits: Limit[];
  rateLimit: RateLimitItem[];
  rateLimitPolicy: RateLimitItem[];
}

/** Ask the gate for a URL, PUT the file to storage, resolve with the key and ETag. */
export function upload(file: Blob & { name?: string }, options?: UploadOptions): Promise<UploadResult>;

/** Read the caller's limits with GET /v1/quota; consumes nothing. */
export function quota(options?: GateOptions): Promise<QuotaResult>;

/** One settled upload, as GET /v1/usage lists it. */
export interface UsageRecord {
  key: string;
  bytes: number;
  contentType: string;
  tier: string | null;
  /** RFC 3339, UTC. */
  landedAt: string;
}

export interface UsageTotal {
  uploads: number;
  bytes: number;
}

export interface UsageResult {
  user: string;
  since: string | null;
  until: string | null;
  /** Records on this page, and their bytes. */
  uploads: number;
  bytes: number;
  records: UsageRecord[];
  /** Pass as `cursor` for the next page; null after the last. */
  next: string | null;
  /** The caller's settled uploads this UTC calendar month (`start`: its first instant). */
  month: (UsageTotal & { start: string }) | null;
  /** Per limit of the caller on the user: settled uploads in the window it counts now. */
  windows: (UsageTotal & { policy: string; window: string })[];
}

/**
 * Read the caller's settled uploads and totals with GET /v1/usage (upload
 * mode); consumes nothing. A gate that keeps no usage answers 404 (GateError).
 */
export function usage(
  options?: GateOptions & { since?: string | Date; until?: string | Date; limit?: number; cursor?: string },
): Promise<UsageResult>;

/** First half of `upload`: POST /v1/uploads (charges the quota). */
export function requestUpload(
  file: { name: string; type: string; size: number; checksumSha256?: string },
  options?: GateOptions,
): Promise<UploadGrant>;

/** Second half of `upload`: PUT the body with exactly the grant's signed headers. */
export function putToStorage(
  grant: Pick<UploadGrant, "url" | "headers" | "key"> & { method?: string },
  body: Blob,
  options?: { onProgress?: (progress: UploadProgress) => void; signal?: AbortSignal },
): Promise<{ status: number; etag: string | null }>;

/** Parse a RateLimit / RateLimit-Policy field; [] when missing or malformed. */
export function parseRateLimitList(value: string | null | undefined): RateLimitItem[];

/** Lowercase hex SHA-256 (crypto.subtle when available, pure JS otherwise). */
export function sha256Hex(bytes: Uint8Array): Promise<string>;

/** @internal */
export function sha256Fallback(bytes: Uint8Array): Uint8Array;

export class UploadgateError extends Error {}

/** HTTP 429 from the gate. */
export class QuotaExceededError extends UploadgateError {
  readonly status: 429;
  /** Seconds until the caller may try again (Retry-After, else the problem's retryAfter). */
  readonly retryAfter: number | null;
  readonly rateLimit: RateLimitItem[];
  readonly rateLimitPolicy: RateLimitItem[];
  readonly problem: QuotaProblem | null;
  readonly violatedPolicies: string[];
  readonly limits: Limit[];
  readonly headers: Headers;
}

/** Any other non-2xx answer from the gate. */
export class GateError extends UploadgateError {
  readonly status: number;
  readonly title: string;
  readonly detail: string | null;
  readonly type: string | null;
  readonly problem: Problem | null;
  readonly headers?: Headers;
}

/** Storage answered the PUT with a non-2xx status. */
export class StorageError extends UploadgateError {
  readonly status: number;
  /** S3 error code, e.g. "AccessDenied", "SignatureDoesNotMatch", "PreconditionFailed". */
  readonly code: string | null;
  /** S3's `<Message>`. */
  readonly s3Message: string | null;
  readonly body: string;
  readonly key: string;
  readonly url: string;
}

/** No HTTP answer at all: network failure or (in browsers) a CORS rejection. */
export class NetworkError extends UploadgateError {
  readonly stage: "gate" | "storage";
  readonly url: string;
}

/** Base64 SHA-256 of a file's bytes, the `checksumSha256` a URL can bind. */
export function sha256Base64(blob: Blob): Promise<string>;
