/**
 * `http://…` and `https://…`: one POST of each flush to the URL as given (path and query
 * included, e.g. ClickHouse's `/?query=INSERT INTO t FORMAT ProtobufList`), with the
 * marshaller's Content-Type, through Deno's `fetch` (keep-alive connections).
 *
 * A 2xx answer acknowledges the flush. Any other answer is a failure that goes back to the
 * delivery queue: a 4xx other than 401, 403, 408 and 429 says the server will never take these bytes (a
 * RefusedError: dropped after a few attempts, counted); 5xx, 408, 429, network and TLS errors and
 * a whole exchange longer than `--produceTimeout` (10 s by default here) are retried. The answer's
 * body is always read, so the connection can be reused. https verifies the server's certificate
 * against Deno's default roots plus those of `--httpCaFile`. Credentials in the URL
 * (`https://user:password@host/`) are sent as HTTP basic authentication.
 *
 * Nothing listening at the URL's host and port at startup is an error, as for the other
 * destinations (a TCP connect; no request is made).
 *
 * @module
 */
import { marshaller } from "../format/marshal.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { TimeoutError, withTimeout } from "../util/timeout.ts";
import { type Destination, type DestOptions, sendTimeoutMs } from "./destination.ts";

/** How long one POST may take when `--produceTimeout` is 0 (the original's 10 s). */
export const HTTP_TIMEOUT_MS = 10_000;

/** A failed POST that may succeed later (a 5xx, 408 or 429 answer; no answer at all). */
export class HttpSendError extends Error {
  /** Always true: the server may take it the next time. */
  readonly retriable = true;
  /**
   * @param message what happened
   * @param status the HTTP status, if the server answered
   * @param options the underlying error, if any
   */
  constructor(message: string, readonly status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "HttpSendError";
  }
}

/**
 * Whether a non-2xx status says the same bytes will never be taken: a 4xx other than 401 and 403
 * (credentials or permissions, which an operator fixes: the flushes wait in the queue, or the
 * spool, meanwhile), 408 (Request Timeout) and 429 (Too Many Requests).
 *
 * @example
 * ```ts
 * refusedStatus(400); // true
 * refusedStatus(403); // false
 * refusedStatus(429); // false
 * refusedStatus(503); // false
 * ```
 */
export function refusedStatus(status: number): boolean {
  return status >= 400 && status < 500 && ![401, 403, 408, 429].includes(status);
}

/** An error's message followed by those of its causes (fetch says only "fetch failed"). */
function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(errorMessage(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ");
}

/** The first line or so of an answer's body, for messages. */
function excerpt(body: string): string {
  const t = body.replace(/\s+/g, " ").trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

/** POSTs flushes to a URL. */
export class HttpDest implements Destination {
  /** "http" or "https". */
  readonly scheme: "http" | "https";
  private readonly url: URL;
  /** The URL without credentials and query (they may hold a password), for messages. */
  private readonly where: string;
  private readonly headers: Headers;
  private readonly timeoutMs: number;

  private constructor(
    url: URL,
    private readonly opts: DestOptions,
    private readonly client: Deno.HttpClient | undefined,
  ) {
    this.scheme = url.protocol === "https:" ? "https" : "http";
    this.headers = new Headers({ "content-type": marshaller(opts.marshal).contentType });
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${pass}`)));
      this.headers.set("authorization", `Basic ${basic}`);
    }
    this.url = new URL(url);
    this.url.username = "";
    this.url.password = "";
    this.where = `${this.url.origin}${this.url.pathname}`;
    this.timeoutMs = sendTimeoutMs(opts, HTTP_TIMEOUT_MS);
  }

  /**
   * Checks that something listens at the URL's host and port, reads `--httpCaFile`; throws
   * when either fails.
   */
  static async open(address: string, opts: DestOptions): Promise<HttpDest> {
    const url = new URL(address);
    const where = `${url.protocol}//${url.host}`;
    let client: Deno.HttpClient | undefined;
    if (opts.httpCaFile) {
      let pem: string;
      try {
        pem = await Deno.readTextFile(opts.httpCaFile);
      } catch (err) {
        const why = `cannot read --httpCaFile ${opts.httpCaFile}: ${errorMessage(err)}`;
        throw new Error(`${where}: ${why}`, { cause: err });
      }
      client = Deno.createHttpClient({ caCerts: [pem] });
    }
    const d = new HttpDest(url, opts, client);
    try {
      const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
      const conn = await withTimeout(
        Deno.connect({ hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port }),
        sendTimeoutMs(opts),
        `connect to ${url.host}`,
      );
      conn.close();
    } catch (err) {
      client?.close();
      throw new Error(`${where}: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  /** POSTs one flush; resolves on a 2xx answer, its body read. */
  async send(bytes: Uint8Array): Promise<void> {
    const c = this.opts.counters;
    const abort = new AbortController();
    const timeout = new TimeoutError(`POST ${this.where}`, this.timeoutMs);
    const timer = setTimeout(() => abort.abort(timeout), this.timeoutMs);
    // fetch takes bytes of an ArrayBuffer (a view of shared memory is copied).
    const buf = bytes.buffer;
    const payload = buf instanceof ArrayBuffer
      ? new Uint8Array(buf, bytes.byteOffset, bytes.byteLength)
      : bytes.slice();
    let status: number;
    let body: string;
    try {
      const res = await fetch(this.url, {
        method: "POST",
        headers: this.headers,
        body: payload,
        signal: abort.signal,
        ...(this.client ? { client: this.client } : {}),
      });
      status = res.status;
      body = await res.text();
    } catch (err) {
      c.inc("destHTTP", "Post", "error");
      if (abort.signal.aborted) throw timeout;
      throw new HttpSendError(`POST ${this.where}: ${describe(err)}`, undefined, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    if (status >= 200 && status < 300) {
      c.inc("destHTTP", "Post");
      c.inc("destHTTP", "PostBytes", "count", bytes.length);
      return;
    }
    c.inc("destHTTP", "Post", "error");
    c.inc("destHTTP", `status${status}`, "error");
    const message = `POST ${this.where}: HTTP ${status}${body ? `: ${excerpt(body)}` : ""}`;
    throw refusedStatus(status) ? new RefusedError(message) : new HttpSendError(message, status);
  }

  /** Closes the HTTP client (and its connections) of `--httpCaFile`. */
  [Symbol.asyncDispose](): Promise<void> {
    this.client?.close();
    return Promise.resolve();
  }
}
