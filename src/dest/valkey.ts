/**
 * `valkey:HOST:PORT` (also `redis:`): each flush PUBLISHed on channel `--topic`, acknowledged by
 * the server's reply. PUBLISH reaches only the subscribers connected at that moment (pub/sub by
 * design); `valkey-stream:HOST:PORT` (also `redis-stream:`) is the durable mode: each flush is an
 * entry (field `data`) of the stream `--topic`, `XADD … MAXLEN ~ --valkeyStreamMaxLen`, so a
 * consumer that was away reads what it missed with XREAD/XREADGROUP.
 *
 * The RESP protocol is written here ({@link ReplyConnection}): one command at a time, its bulk
 * argument written straight from the delivery queue's bytes. Fails at startup without a server
 * (a PING answers `+PONG`). Afterwards a lost connection fails the command in flight (the
 * delivery queue retries, with backoff) and the next command reconnects: no offline queue.
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { type Destination, type DestOptions, sendTimeoutMs } from "./destination.ts";
import { ascii, findCrlf, type Parsed, ReplyConnection } from "./reply_conn.ts";

const enc = new TextEncoder();
const CRLF = enc.encode("\r\n");

/** A RESP reply: a simple string, an error (`-…`), an integer, a bulk string or an array. */
export type RespReply = string | number | null | RespError | RespReply[];

/** The server's `-ERR …` (or `-WRONGTYPE …`, `-LOADING …`). */
export class RespError {
  /** @param message the error line without its `-` */
  constructor(readonly message: string) {}
}

/**
 * The first RESP reply in `buf[start, end)`, or undefined while it is incomplete.
 *
 * @example
 * ```ts
 * const b = new TextEncoder().encode(":1\r\n");
 * parseResp(b, 0, b.length); // { reply: 1, used: 4 }
 * ```
 */
export function parseResp(
  buf: Uint8Array,
  start: number,
  end: number,
): Parsed<RespReply> | undefined {
  const at = findCrlf(buf, start, end);
  if (at < 0) return undefined;
  const line = ascii(buf, start + 1, at);
  const next = at + 2;
  switch (buf[start]) {
    case 43: // +
      return { reply: line, used: next - start };
    case 45: // -
      return { reply: new RespError(line), used: next - start };
    case 58: // :
      return { reply: Number(line), used: next - start };
    case 36: { // $
      const n = Number(line);
      if (n < 0) return { reply: null, used: next - start };
      if (next + n + 2 > end) return undefined;
      return {
        reply: new TextDecoder().decode(buf.subarray(next, next + n)),
        used: next + n + 2 - start,
      };
    }
    case 42: { // *
      const n = Number(line);
      const items: RespReply[] = [];
      let off = next;
      for (let i = 0; i < n; i++) {
        const item = parseResp(buf, off, end);
        if (!item) return undefined;
        items.push(item.reply);
        off += item.used;
      }
      return { reply: n < 0 ? null : items, used: off - start };
    }
    default:
      throw new Error(`not a RESP reply: "${ascii(buf, start, Math.min(at, start + 40))}"`);
  }
}

/** Errors a later attempt may get past (the server is starting, busy or failing over). */
const TRANSIENT = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|READONLY)\b/;

/** `*N\r\n` + `$len\r\narg\r\n` per argument, the last one's size only (its bytes follow). */
function commandHead(args: string[], lastLen: number): Uint8Array {
  let s = `*${args.length + 1}\r\n`;
  for (const a of args) s += `$${enc.encode(a).length}\r\n${a}\r\n`;
  return enc.encode(`${s}$${lastLen}\r\n`);
}

/** Publishes flushes to a Valkey or Redis server. */
export class ValkeyDest implements Destination {
  /** Socket writes take views of shared memory. */
  readonly sharedViews = true;
  private readonly conn: ReplyConnection<RespReply>;
  private readonly stream: boolean;
  private readonly peer: string;

  private constructor(readonly scheme: string, addr: string, private readonly opts: DestOptions) {
    const { host, port } = splitHostPort(addr);
    this.stream = scheme.endsWith("-stream");
    this.peer = `${scheme} ${addr}`;
    this.conn = new ReplyConnection<RespReply>({
      dial: async () => {
        const c = await Deno.connect({ hostname: host, port });
        c.setNoDelay(true);
        c.setKeepAlive(true);
        return c;
      },
      peer: this.peer,
      fn: "destValKey",
      timeoutMs: sendTimeoutMs(opts),
      counters: opts.counters,
      parse: parseResp,
      handshake: async (c) => {
        await c.write(enc.encode("*1\r\n$4\r\nPING\r\n"));
        const r = await c.reply();
        if (r !== "PONG") throw this.failure(r, "PING");
      },
    });
  }

  /** Connects and PINGs (failing at startup if the server does not answer). */
  static async open(scheme: string, addr: string, opts: DestOptions): Promise<ValkeyDest> {
    const d = new ValkeyDest(scheme, addr, opts);
    try {
      await d.conn.connect();
    } catch (err) {
      throw new Error(`${scheme} ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  private failure(r: RespReply, what: string): Error {
    if (r instanceof RespError) {
      const message = `${this.peer}: ${what}: the server said: ${r.message}`;
      return TRANSIENT.test(r.message) ? new Error(message) : new RefusedError(message);
    }
    return new Error(`${this.peer}: ${what}: unexpected reply ${JSON.stringify(r)}`);
  }

  /** PUBLISHes (or XADDs) one flush; resolves with the server's reply. */
  async send(bytes: Uint8Array): Promise<void> {
    const topic = this.opts.topic;
    const args = this.stream
      ? ["XADD", topic, "MAXLEN", "~", String(this.opts.streamMaxLen ?? 100), "*", "data"]
      : ["PUBLISH", topic];
    const what = args[0]!;
    await this.conn.connect();
    await this.conn.write(commandHead(args, bytes.length), bytes, CRLF);
    const r = await this.conn.reply();
    const ok = this.stream ? typeof r === "string" : typeof r === "number";
    if (!ok) {
      this.opts.counters.inc("destValKey", this.stream ? "XAdd" : "Publish", "error");
      throw this.failure(r, what);
    }
    this.opts.counters.inc("destValKey", this.stream ? "XAdd" : "Publish");
  }

  /** Closes the connection (every command before was answered: nothing is pending). */
  [Symbol.asyncDispose](): Promise<void> {
    this.conn.drop();
    return Promise.resolve();
  }
}
