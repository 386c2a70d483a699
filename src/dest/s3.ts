/**
 * A small S3 client over `fetch`: AWS Signature Version 4 (signed here with node:crypto),
 * path-style requests (`ENDPOINT/BUCKET/KEY`, what Ceph RGW, MinIO and AWS all take), and the
 * calls the s3parquet destination needs: HeadBucket (the startup probe), PutObject, and the
 * multipart upload (create, upload part, complete, abort) for large objects. The server's error
 * (`<Error><Code>SignatureDoesNotMatch</Code>…`) is what a failed call throws, as an
 * {@link S3Error}; {@link uploadErrorClass} names the class of any failure for the counters.
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import { errorMessage } from "../util/errors.ts";

/** Where and as whom the client talks. */
export interface S3Config {
  /** `http(s)://host[:port]` (a path is kept as the prefix of every request). */
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** How long one request may take, in ms (default 60 s). */
  timeoutMs?: number;
}

/** A failed S3 call: the server's answer (HTTP status, its error code and message) or none. */
export class S3Error extends Error {
  /**
   * @param message what was asked and what the server said
   * @param status the HTTP status (0: no answer)
   * @param code the server's error code (`NoSuchBucket`, `SignatureDoesNotMatch`, …) or ""
   * @param options the underlying error, if any
   */
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "S3Error";
  }

  /** A 5xx, 408, 429 or no answer: the same call may succeed later. */
  get retriable(): boolean {
    return this.status === 0 || this.status >= 500 || this.status === 408 ||
      this.status === 429;
  }
}

/** Failure classes of `uploadErrorClass` (the reference's label values). */
export const UPLOAD_ERROR_CLASSES = [
  "tls",
  "timeout",
  "canceled",
  "dns",
  "refused",
  "other",
] as const;

/** An {@link UPLOAD_ERROR_CLASSES} value. */
export type UploadErrorClass = (typeof UPLOAD_ERROR_CLASSES)[number];

/** An error's message and those of its causes, joined. */
function chain(err: unknown): { text: string; names: string[] } {
  const parts: string[] = [];
  const names: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 6; depth++) {
    parts.push(errorMessage(e));
    if (e instanceof Error) names.push(e.name);
    e = e instanceof Error ? e.cause : undefined;
  }
  return { text: parts.join(": "), names };
}

/**
 * The class of a failed upload: tls, timeout, canceled, dns, refused (nothing listens), or other
 * (an error answer of the server among them).
 *
 * @example
 * ```ts
 * uploadErrorClass(new Deno.errors.ConnectionRefused("connect")); // "refused"
 * ```
 */
export function uploadErrorClass(err: unknown): UploadErrorClass {
  if (err instanceof S3Error && err.status !== 0) return "other";
  const { text, names } = chain(err);
  const t = text.toLowerCase();
  if (names.includes("TimeoutError") || /timed? ?out/.test(t)) return "timeout";
  if (names.includes("AbortError") || /cancel|abort/.test(t)) return "canceled";
  if (names.includes("ConnectionRefused") || /connection refused|econnrefused/.test(t)) {
    return "refused";
  }
  if (/dns|lookup|enotfound|eai_again|name or service not known|no such host/.test(t)) {
    return "dns";
  }
  if (/tls|ssl|certificate|handshake|corrupt message|unknownissuer|alert/.test(t)) return "tls";
  return "other";
}

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const hmac = (key: Uint8Array | string, s: string) =>
  new Uint8Array(createHmac("sha256", key).update(s).digest());

/** RFC 3986 encoding as SigV4 wants it (unreserved kept; `/` kept in paths). */
function uriEncode(s: string, keepSlash: boolean): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The text of the first `<tag>` of an XML answer ("" if none). */
export function xmlText(xml: string, tag: string): string {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  return m?.[1] ?? "";
}

/** One signed request. */
interface Call {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** The key ("" for the bucket itself). */
  key: string;
  query?: Record<string, string>;
  body?: Uint8Array;
  headers?: Record<string, string>;
}

/** An S3 client for one bucket. */
export class S3Client {
  private readonly base: URL;
  private readonly timeoutMs: number;

  /** @param c endpoint, bucket, region, credentials */
  constructor(private readonly c: S3Config) {
    let url: URL;
    try {
      url = new URL(c.endpoint);
    } catch (err) {
      throw new RangeError(`s3parquet: endpoint is not a URL: "${c.endpoint}"`, { cause: err });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new RangeError(`s3parquet: endpoint must be http(s)://HOST[:PORT]: "${c.endpoint}"`);
    }
    this.base = url;
    this.timeoutMs = c.timeoutMs ?? 60_000;
  }

  /** The endpoint and bucket, for messages. */
  get where(): string {
    return `${this.base.origin}/${this.c.bucket}`;
  }

  /** The request's URL and SigV4 headers, signed at `now`. */
  sign(call: Call, now = new Date()): { url: string; headers: Headers } {
    const path = `${this.base.pathname.replace(/\/$/, "")}/${this.c.bucket}${
      call.key ? `/${call.key}` : ""
    }`;
    const canonicalUri = uriEncode(path, true);
    const query = Object.entries(call.query ?? {}).map((
      [k, v],
    ) => [uriEncode(k, false), uriEncode(v, false)])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const canonicalQuery = query.map(([k, v]) => `${k}=${v}`).join("&");
    const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const payloadHash = sha256(call.body ?? new Uint8Array(0));
    const h: Record<string, string> = {
      host: this.base.host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": amzDate,
    };
    for (const [k, v] of Object.entries(call.headers ?? {})) h[k.toLowerCase()] = v.trim();
    const names = Object.keys(h).sort();
    const canonicalHeaders = names.map((n) => `${n}:${h[n]}\n`).join("");
    const signedHeaders = names.join(";");
    const canonical = [
      call.method,
      canonicalUri,
      canonicalQuery,
      canonicalHeaders,
      signedHeaders,
      payloadHash,
    ].join("\n");
    const scope = `${day}/${this.c.region}/s3/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
    let key = hmac(`AWS4${this.c.secretKey}`, day);
    for (const part of [this.c.region, "s3", "aws4_request"]) key = hmac(key, part);
    const signature = createHmac("sha256", key).update(toSign).digest("hex");
    const headers = new Headers();
    for (const n of names) if (n !== "host") headers.set(n, h[n] ?? "");
    headers.set(
      "authorization",
      `AWS4-HMAC-SHA256 Credential=${this.c.accessKey}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    );
    return {
      url: `${this.base.origin}${canonicalUri}${canonicalQuery ? `?${canonicalQuery}` : ""}`,
      headers,
    };
  }

  /** Sends `call`; resolves with the answer (any status), its body read. */
  private async send(call: Call): Promise<{ status: number; headers: Headers; text: string }> {
    const { url, headers } = this.sign(call);
    const what = `${call.method} ${this.where}${call.key ? `/${call.key}` : ""}`;
    try {
      // fetch takes bytes of an ArrayBuffer (a view of shared memory is copied).
      const b = call.body;
      const body = b &&
        (b.buffer instanceof ArrayBuffer
          ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
          : b.slice());
      const res = await fetch(url, {
        method: call.method,
        headers,
        ...(body ? { body } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = call.method === "HEAD" ? (await res.body?.cancel(), "") : await res.text();
      return { status: res.status, headers: res.headers, text };
    } catch (err) {
      throw new S3Error(`${what}: ${chain(err).text}`, 0, "", { cause: err });
    }
  }

  /** Sends `call`; throws an S3Error naming the server's code unless it answers 2xx. */
  private async ok(call: Call): Promise<{ headers: Headers; text: string }> {
    const r = await this.send(call);
    // CompleteMultipartUpload may answer 200 with an <Error> body.
    if (r.status >= 200 && r.status < 300 && !/^\s*(<\?xml[^>]*>\s*)?<Error>/.test(r.text)) {
      return r;
    }
    const code = xmlText(r.text, "Code");
    const message = xmlText(r.text, "Message");
    const what = `${call.method} ${this.where}${call.key ? `/${call.key}` : ""}`;
    throw new S3Error(
      `${what}: HTTP ${r.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""}`,
      r.status,
      code,
    );
  }

  /**
   * Checks the bucket exists and the credentials may use it (HeadBucket). A HEAD answer has no
   * body: when it fails, a GetBucketLocation asks again for the server's error code.
   */
  async headBucket(): Promise<void> {
    const r = await this.send({ method: "HEAD", key: "" });
    if (r.status >= 200 && r.status < 300) return;
    try {
      await this.ok({ method: "GET", key: "", query: { location: "" } });
    } catch (err) {
      if (err instanceof S3Error && err.status !== 0) {
        throw new S3Error(
          `HEAD ${this.where}: HTTP ${r.status} ${err.code || "(no code)"}`,
          r.status,
          err.code,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
    throw new S3Error(`HEAD ${this.where}: HTTP ${r.status}`, r.status, "");
  }

  /** Creates the bucket (tests only: the daemon never creates one). */
  async createBucket(): Promise<void> {
    await this.ok({ method: "PUT", key: "" });
  }

  /** Stores `body` at `key` in one PUT. */
  async putObject(key: string, body: Uint8Array, contentType = "application/octet-stream") {
    await this.ok({ method: "PUT", key, body, headers: { "content-type": contentType } });
  }

  /**
   * Stores `body` at `key` as a multipart upload of `partBytes` parts (at least 5 MiB, S3's
   * smallest part but the last); aborted when a part or the completion fails.
   */
  async putMultipart(
    key: string,
    body: Uint8Array,
    partBytes: number,
    contentType = "application/octet-stream",
  ): Promise<number> {
    const created = await this.ok({
      method: "POST",
      key,
      query: { uploads: "" },
      headers: { "content-type": contentType },
    });
    const uploadId = xmlText(created.text, "UploadId");
    if (!uploadId) throw new S3Error(`POST ${key}?uploads: no UploadId in the answer`, 200, "");
    try {
      const etags: string[] = [];
      for (let at = 0, n = 1; at < body.length; at += partBytes, n++) {
        const r = await this.ok({
          method: "PUT",
          key,
          query: { partNumber: String(n), uploadId },
          body: body.subarray(at, Math.min(body.length, at + partBytes)),
        });
        const etag = r.headers.get("etag");
        if (!etag) throw new S3Error(`PUT ${key} part ${n}: no ETag in the answer`, 200, "");
        etags.push(etag);
      }
      const xml = `<CompleteMultipartUpload>${
        etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`)
          .join("")
      }</CompleteMultipartUpload>`;
      await this.ok({
        method: "POST",
        key,
        query: { uploadId },
        body: new TextEncoder().encode(xml),
        headers: { "content-type": "application/xml" },
      });
      return etags.length;
    } catch (err) {
      await this.ok({ method: "DELETE", key, query: { uploadId } }).catch(() => {});
      throw err;
    }
  }

  /** Keys (and sizes) under `prefix`, all pages (tests and tools). */
  async list(prefix = ""): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let token = "";
    for (;;) {
      const query: Record<string, string> = { "list-type": "2", prefix };
      if (token) query["continuation-token"] = token;
      const r = await this.ok({ method: "GET", key: "", query });
      for (const m of r.text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const c = m[1] ?? "";
        out.push({ key: xmlText(c, "Key"), size: Number(xmlText(c, "Size")) });
      }
      token = xmlText(r.text, "NextContinuationToken");
      if (!token) return out;
    }
  }
}
