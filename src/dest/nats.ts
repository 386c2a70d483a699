/**
 * `nats:HOST:PORT`: each flush published on subject `--topic`, acknowledged by a `PING`/`PONG`
 * round trip after it (the server answers a PING only once it processed what came before it on
 * the connection: NATS's own flush). NATS's client protocol is written here
 * ({@link ReplyConnection}): `INFO` from the server, `CONNECT` (not verbose: no `+OK` per
 * message), then `PUB <subject> <size>\r\n` + payload + `\r\n` per piece, the payload written
 * straight from the delivery queue's bytes. The server's own PINGs are answered at once.
 *
 * Fails at startup without a server. Afterwards a lost connection fails the send in flight (the
 * delivery queue retries, with backoff) and the next send reconnects, then waits
 * {@link RECONNECT_GRACE_MS} before it publishes, as the NATS clients do between reconnect
 * attempts: what a subscriber that is not back yet would miss is lost in core NATS. Messages above the server's
 * `max_payload` are split at rows (protobufList) or lines. Servers that require TLS or
 * authentication are refused with a message (the original connects without either).
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { type Destination, type DestOptions, type Framing, sendTimeoutMs } from "./destination.ts";
import { ascii, findCrlf, type Parsed, ReplyConnection } from "./reply_conn.ts";
import { splitFlush } from "./split.ts";

const enc = new TextEncoder();
const CRLF = enc.encode("\r\n");
const PING = enc.encode("PING\r\n");
const PONG = enc.encode("PONG\r\n");
const CRLF_PING = enc.encode("\r\nPING\r\n");

/**
 * After a reconnect, how long the first send waits: the NATS clients' default reconnect wait
 * (nats.go and nats.js: 2 s). Core NATS hands a message only to the subscribers connected at
 * that moment; subscribers that lost the server with us are back by then, and the backlog does
 * not flow into a server nobody listens to yet.
 */
export const RECONNECT_GRACE_MS = 2000;

/** A NATS server's default max_payload. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Valid subjects to publish on: tokens of printable characters, no wildcards. */
export const NATS_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

/** One protocol line from the server (`INFO {…}`, `PING`, `PONG`, `+OK`, `-ERR '…'`). */
function parseLine(buf: Uint8Array, start: number, end: number): Parsed<string> | undefined {
  const at = findCrlf(buf, start, end);
  return at < 0 ? undefined : { reply: ascii(buf, start, at), used: at + 2 - start };
}

/** The server's `-ERR '…'`, as an error: refused for good when retrying cannot help. */
function serverError(line: string, peer: string): Error {
  const what = line.slice(4).trim().replace(/^'|'$/g, "");
  const message = `${peer}: the server said: ${what}`;
  return /Permissions Violation|Authorization Violation|Maximum Payload|Invalid Subject/i.test(what)
    ? new RefusedError(message)
    : new Error(message);
}

/** Publishes flushes to a NATS server. */
export class NatsDest implements Destination {
  /** Always "nats". */
  readonly scheme = "nats";
  /** Socket writes take views of shared memory. */
  readonly sharedViews = true;
  private readonly conn: ReplyConnection<string>;
  private maxPayload = DEFAULT_MAX_PAYLOAD;
  /** The handshake of the current connection is done (a later INFO is the server's news). */
  private ready = false;
  /** Connections made (the first at startup). */
  private connections = 0;
  private readonly head: string;

  private constructor(private readonly addr: string, private readonly opts: DestOptions) {
    const { host, port } = splitHostPort(addr);
    const peer = `nats ${addr}`;
    this.head = `PUB ${opts.topic} `;
    this.conn = new ReplyConnection<string>({
      dial: async () => {
        const c = await Deno.connect({ hostname: host, port });
        c.setNoDelay(true);
        c.setKeepAlive(true);
        return c;
      },
      peer,
      fn: "destNATS",
      timeoutMs: sendTimeoutMs(opts),
      counters: opts.counters,
      parse: parseLine,
      unsolicited: (line, c) => {
        if (line.startsWith("INFO ")) return this.ready; // cluster news after the handshake
        if (line !== "PING") return line === "+OK"; // +OK: only if a server forces verbose
        c.write(PONG).catch(() => {/* the connection dropped: the next send reconnects */});
        return true;
      },
      handshake: (c) => this.handshake(c, peer),
    });
  }

  /** `INFO` → `CONNECT` → `PING` → `PONG`. */
  private async handshake(c: ReplyConnection<string>, peer: string): Promise<void> {
    this.ready = false;
    const info = await c.reply();
    if (!info.startsWith("INFO ")) throw new Error(`${peer}: not a NATS server: "${info}"`);
    let parsed: { max_payload?: number; tls_required?: boolean; auth_required?: boolean };
    try {
      parsed = JSON.parse(info.slice(5));
    } catch (err) {
      throw new Error(`${peer}: a bad INFO: ${errorMessage(err)}`, { cause: err });
    }
    if (parsed.tls_required) throw new RefusedError(`${peer}: the server requires TLS`);
    if (parsed.auth_required) throw new RefusedError(`${peer}: the server requires auth`);
    if (typeof parsed.max_payload === "number" && parsed.max_payload > 0) {
      this.maxPayload = parsed.max_payload;
    }
    const connect = {
      verbose: false,
      pedantic: false,
      name: "xtcp2",
      lang: "deno",
      version: "1",
      protocol: 1,
      headers: false,
    };
    await c.write(enc.encode(`CONNECT ${JSON.stringify(connect)}\r\n`), PING);
    await this.pong(c);
    this.ready = true;
    if (this.connections++ > 0) {
      this.opts.log.info(`${peer}: connected again; sending in ${RECONNECT_GRACE_MS} ms`);
      await new Promise((r) => setTimeout(r, RECONNECT_GRACE_MS));
    }
  }

  /** Waits for the PONG that acknowledges everything written before the PING. */
  private async pong(c: ReplyConnection<string>): Promise<void> {
    const line = await c.reply();
    if (line === "PONG") return;
    c.drop(); // after -ERR the server closes; anything else leaves the stream out of step
    if (line.startsWith("-ERR")) throw serverError(line, `nats ${this.addr}`);
    throw new Error(`nats ${this.addr}: unexpected "${line.slice(0, 80)}"`);
  }

  /** Connects (failing at startup if the server does not answer). */
  static async open(addr: string, opts: DestOptions): Promise<NatsDest> {
    if (!NATS_SUBJECT.test(opts.topic)) {
      throw new RangeError(
        `Invalid NATS subject: "${opts.topic}": no spaces, wildcards or empty tokens`,
      );
    }
    const d = new NatsDest(addr, opts);
    try {
      await d.conn.connect();
    } catch (err) {
      throw new Error(`nats ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  /** Publishes one flush (split to max_payload) and waits for the PONG after it. */
  async send(bytes: Uint8Array, framing: Framing): Promise<void> {
    await this.conn.connect();
    const { pieces, dropped } = splitFlush(bytes, this.maxPayload, this.opts.marshal, framing);
    if (dropped) this.opts.counters.inc("destNATS", "tooLarge", "error", dropped);
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      const last = i === pieces.length - 1;
      await this.conn.write(enc.encode(`${this.head}${p.length}\r\n`), p, last ? CRLF_PING : CRLF);
      this.opts.counters.inc("destNATS", "Publish");
    }
    if (pieces.length) await this.pong(this.conn);
  }

  /** Closes the connection (every send before resolved on its PONG: nothing is pending). */
  [Symbol.asyncDispose](): Promise<void> {
    this.conn.drop();
    return Promise.resolve();
  }
}
