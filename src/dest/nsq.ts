/**
 * `nsq:HOST:PORT`: each flush is published (PUB) on topic `--topic` of an nsqd, over its TCP
 * protocol, written here (nothing to install): the `"  V2"` magic, `PUB <topic>\n` + u32 size +
 * body, answered by a frame (u32 size, u32 type: 0 response, 1 error, 2 message) whose response
 * must be `OK`; `_heartbeat_` responses are answered with `NOP\n`. Bodies above nsqd's 1 MiB
 * message limit are split at rows (protobufList) or lines.
 *
 * Like the other brokers ({@link ReplyConnection}): no nsqd at startup is an error; a later
 * failure closes the connection, the send fails (the delivery queue retries) and the next send
 * reconnects. Heartbeats are answered as they come, also between sends.
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { type Destination, type DestOptions, type Framing, sendTimeoutMs } from "./destination.ts";
import { type Parsed, ReplyConnection } from "./reply_conn.ts";
import { splitFlush } from "./split.ts";

const MAGIC = new TextEncoder().encode("  V2");
const NOP = new TextEncoder().encode("NOP\n");
/** nsqd's default --max-msg-size. */
export const NSQ_MAX_MESSAGE = 1024 * 1024;
const FRAME_RESPONSE = 0;
const FRAME_ERROR = 1;

/** Valid NSQ topic names. */
export const NSQ_TOPIC = /^[.a-zA-Z0-9_-]{1,64}(#ephemeral)?$/;

/** nsqd answered with an error frame: E_BAD_* for good (refused), others (E_PUB_FAILED) not. */
function nsqError(frame: string): Error {
  const message = `Nsqd refused the command: ${frame}`;
  return frame.startsWith("E_BAD_") ? new RefusedError(message) : new Error(message);
}

/** One nsqd frame: its type and its data as text (responses and errors are short words). */
interface NsqFrame {
  type: number;
  data: string;
}

/** The first frame in `buf[start, end)`: u32 size (type + data), u32 type, data. */
function parseFrame(buf: Uint8Array, start: number, end: number): Parsed<NsqFrame> | undefined {
  if (end - start < 8) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset + start, end - start);
  const size = view.getUint32(0);
  if (size < 4 || size > 60 * 1024) throw new Error(`Bad nsqd frame size: ${size}`);
  if (end - start < 4 + size) return undefined;
  const data = new TextDecoder().decode(buf.subarray(start + 8, start + 4 + size));
  return { reply: { type: view.getUint32(4), data }, used: 4 + size };
}

/** Publishes flushes to an nsqd. */
export class NsqDest implements Destination {
  /** Always "nsq". */
  readonly scheme = "nsq";
  /** Socket writes take views of shared memory. */
  readonly sharedViews = true;
  private readonly conn: ReplyConnection<NsqFrame>;
  private readonly head: Uint8Array;

  private constructor(host: string, port: number, private readonly opts: DestOptions) {
    this.head = new TextEncoder().encode(`PUB ${opts.topic}\n`);
    this.conn = new ReplyConnection<NsqFrame>({
      dial: () => Deno.connect({ hostname: host, port }),
      peer: `nsq ${host}:${port}`,
      fn: "destNSQ",
      timeoutMs: sendTimeoutMs(opts),
      counters: opts.counters,
      parse: parseFrame,
      unsolicited: (f, c) => {
        if (f.type !== FRAME_RESPONSE || f.data !== "_heartbeat_") return false;
        c.write(NOP).catch(() => {/* the connection dropped: the next send reconnects */});
        return true;
      },
      handshake: (c) => c.write(MAGIC),
    });
  }

  /** Connects (failing at startup if nsqd does not answer). */
  static async open(addr: string, opts: DestOptions): Promise<NsqDest> {
    if (!NSQ_TOPIC.test(opts.topic)) {
      throw new RangeError(`Invalid NSQ topic: "${opts.topic}": use 1 to 64 of [.a-zA-Z0-9_-]`);
    }
    const { host, port } = splitHostPort(addr);
    const d = new NsqDest(host, port, opts);
    try {
      await d.conn.connect();
    } catch (err) {
      throw new Error(`nsq ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  /** PUBlishes one flush (split at nsqd's message limit); resolves on each piece's `OK`. */
  async send(bytes: Uint8Array, framing: Framing): Promise<void> {
    const { pieces, dropped } = splitFlush(bytes, NSQ_MAX_MESSAGE, this.opts.marshal, framing);
    if (dropped) this.opts.counters.inc("destNSQ", "tooLarge", "error", dropped);
    try {
      await this.conn.connect();
      for (const p of pieces) {
        const size = new Uint8Array(4);
        new DataView(size.buffer).setUint32(0, p.length);
        await this.conn.write(this.head, size, p);
        const f = await this.conn.reply();
        if (f.type === FRAME_ERROR) {
          this.conn.drop(); // nsqd closes after most errors: start clean
          throw nsqError(f.data);
        }
        if (f.type !== FRAME_RESPONSE || f.data !== "OK") {
          this.conn.drop(); // out of step with the server
          throw new Error(`Unexpected nsqd frame: type ${f.type}: ${f.data.slice(0, 80)}`);
        }
        this.opts.counters.inc("destNSQ", "Publish");
      }
    } catch (err) {
      this.opts.counters.inc("destNSQ", "Publish", "error");
      throw err;
    }
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.conn.drop();
    return Promise.resolve();
  }
}
