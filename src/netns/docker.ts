/**
 * The Docker Engine API over its unix socket (dockerd's, or the one `podman system service`
 * serves): HTTP/1.1 GETs, one connection each (`Connection: close`), every one bounded in time.
 * Only what container enrichment needs: the engine, the running containers, and each one's
 * name, image, first process and network namespace file.
 *
 * @module
 */
import { TimeoutError } from "../util/timeout.ts";

/** Largest answer read (a list of thousands of containers is a few MiB). */
const MAX_BODY = 32 << 20;

/** A non-2xx answer. */
export class DockerApiError extends Error {
  /**
   * @param status HTTP status
   * @param path the request path
   * @param body the start of the answer
   */
  constructor(readonly status: number, readonly path: string, body: string) {
    super(`Docker API GET ${path}: HTTP ${status}: ${body.slice(0, 200).trim()}`);
    this.name = "DockerApiError";
  }
}

function indexOf(hay: Uint8Array, needle: readonly number[], from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const CRLF = [13, 10];
const dec = new TextDecoder();

/** The body of a `Transfer-Encoding: chunked` answer. */
function dechunk(b: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const eol = indexOf(b, CRLF, at);
    if (eol < 0) throw new Error("Docker API: truncated chunked answer");
    const size = Number.parseInt(dec.decode(b.subarray(at, eol)).split(";")[0] ?? "", 16);
    if (!Number.isInteger(size) || size < 0) throw new Error("Docker API: bad chunk size");
    if (size === 0) break;
    if (eol + 2 + size > b.length) throw new Error("Docker API: truncated chunk");
    parts.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Splits a whole HTTP/1.1 answer into status and body. */
export function parseHttpAnswer(raw: Uint8Array): { status: number; body: string } {
  const end = indexOf(raw, [13, 10, 13, 10]);
  if (end < 0) throw new Error("Docker API: answer without a header end");
  const head = dec.decode(raw.subarray(0, end)).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "")?.[1]);
  if (!status) throw new Error(`Docker API: bad status line: ${head[0]}`);
  const headers = new Map<string, string>();
  for (const h of head.slice(1)) {
    const c = h.indexOf(":");
    if (c > 0) headers.set(h.slice(0, c).trim().toLowerCase(), h.slice(c + 1).trim());
  }
  let body = raw.subarray(end + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = dechunk(body);
  else if (headers.has("content-length")) {
    body = body.subarray(0, Number(headers.get("content-length")));
  }
  return { status, body: dec.decode(body) };
}

/** What enrichment needs of one container (`GET /containers/{id}/json`). */
export interface DockerContainer {
  id: string;
  /** Without the leading `/`. */
  name: string;
  image: string;
  /** Its first process (0 when not running). */
  pid: number;
  /** Its network namespace file (`/run/netns/…`, `/var/run/docker/netns/…`), or "". */
  sandboxKey: string;
}

function closeQuietly(c: Deno.UnixConn | undefined): void {
  try {
    c?.close();
  } catch {
    // Already closed (by the time bound, or after the answer).
  }
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" ? v as Record<string, unknown> : {};
}

/** A Docker Engine API client on one unix socket. */
export class DockerApi {
  private prefix = "";

  /**
   * @param socket the API's unix socket
   * @param timeoutMs bound of each request, connect included
   * @param signal aborts every request in flight
   */
  constructor(
    readonly socket: string,
    private readonly timeoutMs: number,
    private readonly signal?: AbortSignal,
  ) {}

  /** GET `path`; the parsed JSON of a 2xx answer, else throws (TimeoutError past the bound). */
  async get(path: string): Promise<unknown> {
    const target = this.prefix + path;
    let conn: Deno.UnixConn | undefined;
    let ended: Error | undefined;
    const ending = Promise.withResolvers<never>();
    ending.promise.catch(() => {/* raced below */});
    const end = (why: Error) => {
      ended ??= why;
      closeQuietly(conn);
      ending.reject(why);
    };
    const timer = setTimeout(
      () => end(new TimeoutError(`GET ${target} on ${this.socket}`, this.timeoutMs)),
      this.timeoutMs,
    );
    const onAbort = () => end(new Error(`GET ${target} on ${this.socket}: aborted`));
    this.signal?.addEventListener("abort", onAbort);
    try {
      const connecting = Deno.connect({ transport: "unix", path: this.socket });
      connecting.then((c) => ended && closeQuietly(c), () => {/* rejected in the race */});
      conn = await Promise.race([connecting, ending.promise]);
      const req = `GET ${target} HTTP/1.1\r\nHost: docker\r\nAccept: application/json\r\n` +
        `Connection: close\r\n\r\n`;
      const w = new TextEncoder().encode(req);
      for (let o = 0; o < w.length;) o += await conn.write(w.subarray(o));
      const chunks: Uint8Array[] = [];
      let total = 0;
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
        total += n;
        if (total > MAX_BODY) {
          throw new Error(`Docker API GET ${target}: answer over ${MAX_BODY} bytes`);
        }
      }
      const raw = new Uint8Array(total);
      let o = 0;
      for (const c of chunks) {
        raw.set(c, o);
        o += c.length;
      }
      const { status, body } = parseHttpAnswer(raw);
      if (status < 200 || status > 299) throw new DockerApiError(status, target, body);
      return JSON.parse(body);
    } catch (err) {
      throw ended ?? err; // a read on the connection the timer closed fails: say why
    } finally {
      clearTimeout(timer);
      this.signal?.removeEventListener("abort", onAbort);
      closeQuietly(conn);
    }
  }

  /**
   * `GET /version`: the engine ("podman" when it names a Podman component, else "docker");
   * later requests use the API version it announces.
   */
  async engine(): Promise<{ runtime: string; apiVersion: string }> {
    this.prefix = "";
    const v = obj(await this.get("/version"));
    const components = Array.isArray(v.Components) ? v.Components : [];
    const podman = components.some((c) => /podman/i.test(str(obj(c).Name)));
    const apiVersion = str(v.ApiVersion);
    if (/^\d+\.\d+$/.test(apiVersion)) this.prefix = `/v${apiVersion}`;
    return { runtime: podman ? "podman" : "docker", apiVersion };
  }

  /** Ids of the running containers (`GET /containers/json`). */
  async running(): Promise<string[]> {
    const list = await this.get("/containers/json");
    if (!Array.isArray(list)) throw new Error("Docker API /containers/json: not a list");
    return list.map((c) => str(obj(c).Id)).filter((id) => id);
  }

  /** One container (`GET /containers/{id}/json`). */
  async inspect(id: string): Promise<DockerContainer> {
    const d = obj(await this.get(`/containers/${encodeURIComponent(id)}/json`));
    const pid = obj(d.State).Pid;
    return {
      id: str(d.Id) || id,
      name: str(d.Name).replace(/^\//, ""),
      image: str(obj(d.Config).Image) || str(d.Image),
      pid: typeof pid === "number" ? pid : 0,
      sandboxKey: str(obj(d.NetworkSettings).SandboxKey),
    };
  }
}
