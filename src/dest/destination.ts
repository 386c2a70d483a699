/**
 * Destinations: where each flush goes. One interface; local ones live here (null, stdout,
 * stderr, file with rotation, udp, unix stream, unixgram). Stream destinations reconnect; datagram
 * destinations never send more than a datagram can carry.
 *
 * @module
 */
import dgram from "node:dgram";
import { AF_UNIX_DGRAM, UnixDgramSocket } from "../../ffi/unix_dgram.ts";
import type { Counters, Logger } from "../daemon/log.ts";
import { splitFlush } from "./split.ts";

/** A place flushes are sent to. */
export interface Destination {
  /** Scheme, for counters and logs. */
  readonly scheme: string;
  /**
   * Sends one flush; resolves when handed to the OS. Errors are counted by the caller. `bytes`
   * is reused once the promise settles: a destination that keeps them longer copies them.
   */
  send(bytes: Uint8Array, framing: "message" | "lines"): Promise<void>;
  /** Flushes and releases everything. */
  close(): Promise<void>;
  /**
   * True when send() is done with the bytes by the time it returns (it writes synchronously and
   * throws its errors): the poller then hands it the envelope in place, without a copy.
   */
  readonly sync?: boolean;
}

/** Options that shape destinations. */
export interface DestOptions {
  /** protobufList writes one envelope per message, so files rotate at every flush. */
  marshal: string;
  /** Kafka topic / NATS subject / Valkey channel (`--topic`). */
  topic: string;
  /** `--kafkaCompression` (kafka: only). */
  kafkaCompression?: string;
  /** `--produceTimeout` in ms (kafka: only; 0 = 5 s). */
  produceTimeoutMs?: number;
  fileMaxBytes: number;
  fileMaxAgeMs: number;
  counters: Counters;
  log: Logger;
}

function writeAllSync(f: { writeSync(b: Uint8Array): number }, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += f.writeSync(b.subarray(off));
}

/** Splits a host:port (IPv6 as [addr]:port or a bare literal with the port last). */
export function splitHostPort(addr: string): { host: string; port: number } {
  const a = addr.replace(/^\/\//, "");
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(a) ?? /^(.*):(\d+)$/.exec(a);
  if (!m) throw new Error(`Not HOST:PORT: ${addr}`);
  return { host: m[1], port: Number(m[2]) };
}

class Stdio implements Destination {
  readonly sync = true;
  constructor(readonly scheme: "stdout" | "stderr") {}
  send(bytes: Uint8Array): Promise<void> {
    writeAllSync(this.scheme === "stdout" ? Deno.stdout : Deno.stderr, bytes);
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `file:PATH`. Line formats append to PATH and rotate it to `PATH.<time>` above fileMaxBytes or
 * after fileMaxAge. protobufList (exactly one envelope per file, or ClickHouse cannot read it)
 * writes each flush to its own `PATH.<time>-<n>.binpb` via a temporary name, so a reader never
 * sees a half-written file.
 */
export class FileDest implements Destination {
  readonly scheme = "file";
  readonly sync = true;
  private file: Deno.FsFile | undefined;
  private size = 0;
  private openedAt = 0;
  private seq = 0;

  constructor(private readonly path: string, private readonly opts: DestOptions) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    if (dir) Deno.mkdirSync(dir, { recursive: true });
  }

  private stamp(): string {
    return new Date().toISOString().replace(/:/g, "-");
  }

  send(bytes: Uint8Array, framing: "message" | "lines"): Promise<void> {
    if (
      this.opts.marshal === "protobufList" ||
      (framing === "message" && this.opts.marshal !== "protoJson")
    ) {
      const name = `${this.path}.${this.stamp()}-${String(this.seq++).padStart(6, "0")}.binpb`;
      const tmp = `${name}.tmp`;
      Deno.writeFileSync(tmp, bytes, { mode: 0o600 });
      Deno.renameSync(tmp, name);
      this.opts.counters.inc("destFile", "files");
      return Promise.resolve();
    }
    const now = Date.now();
    if (
      this.file && (this.size + bytes.length > this.opts.fileMaxBytes ||
        now - this.openedAt > this.opts.fileMaxAgeMs)
    ) {
      this.file.close();
      this.file = undefined;
      Deno.renameSync(this.path, `${this.path}.${this.stamp()}`);
      this.opts.counters.inc("destFile", "rotate");
    }
    if (!this.file) {
      this.file = Deno.openSync(this.path, { append: true, create: true, mode: 0o600 });
      this.size = Deno.statSync(this.path).size;
      this.openedAt = now;
    }
    writeAllSync(this.file, bytes);
    this.size += bytes.length;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.file?.close();
    this.file = undefined;
    return Promise.resolve();
  }
}

/** Largest payload of one UDP datagram over IPv4 (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD = 65507;

abstract class DatagramDest implements Destination {
  abstract readonly scheme: string;
  constructor(protected readonly opts: DestOptions, protected readonly max: number) {}
  protected abstract sendOne(b: Uint8Array): Promise<void>;
  async send(bytes: Uint8Array, framing: "message" | "lines"): Promise<void> {
    const { pieces, dropped } = splitFlush(bytes, this.max, this.opts.marshal, framing);
    if (dropped) {
      this.opts.counters.inc(this.scheme, "tooLarge", "error", dropped);
      this.opts.log.error(
        `${this.scheme}: ${dropped} ${
          this.opts.marshal === "protobufList" || framing === "lines" ? "record(s)" : "flush(es)"
        } larger than a datagram (${this.max} bytes) not sent`,
      );
    }
    if (pieces.length > 1) this.opts.counters.inc(this.scheme, "split", "count", pieces.length);
    for (const p of pieces) {
      await this.sendOne(p);
      this.opts.counters.inc(this.scheme, "Writes");
      this.opts.counters.inc(this.scheme, "WriteBytes", "count", p.length);
    }
  }
  abstract close(): Promise<void>;
}

class UdpDest extends DatagramDest {
  readonly scheme = "udp";
  private constructor(
    private readonly sock: dgram.Socket,
    private readonly host: string,
    private readonly port: number,
    opts: DestOptions,
  ) {
    super(opts, MAX_UDP_PAYLOAD);
  }
  static open(addr: string, opts: DestOptions): UdpDest {
    const { host, port } = splitHostPort(addr);
    const sock = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    sock.on("error", (err) => opts.log.error(`udp ${addr}: ${err.message}`));
    return new UdpDest(sock, host, port, opts);
  }
  protected sendOne(b: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.sock.send(b, this.port, this.host, (err) => (err ? reject(err) : resolve()))
    );
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}

class UnixgramDest extends DatagramDest {
  readonly scheme = "unixgram";
  constructor(private readonly sock: UnixDgramSocket, opts: DestOptions) {
    super(opts, AF_UNIX_DGRAM.maxPayload);
  }
  protected sendOne(b: Uint8Array): Promise<void> {
    this.sock.send(b);
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.sock.close();
    return Promise.resolve();
  }
}

/** `unix:PATH`: a stream; each flush is uvarint(len) ‖ bytes. Reconnects after a failure. */
class UnixDest implements Destination {
  readonly scheme = "unix";
  private conn: Deno.UnixConn | undefined;
  constructor(private readonly path: string, private readonly opts: DestOptions) {}
  /** Connects if not connected. */
  async connect(): Promise<Deno.UnixConn> {
    if (!this.conn) {
      this.conn = await Deno.connect({ transport: "unix", path: this.path });
      this.opts.counters.inc("unix", "connect");
    }
    return this.conn;
  }
  async send(bytes: Uint8Array): Promise<void> {
    const head: number[] = [];
    let n = bytes.length;
    while (n > 0x7f) {
      head.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    head.push(n);
    const conn = await this.connect();
    try {
      const frame = new Uint8Array(head.length + bytes.length);
      frame.set(head);
      frame.set(bytes, head.length);
      let off = 0;
      while (off < frame.length) off += await conn.write(frame.subarray(off));
      this.opts.counters.inc("unix", "Writes");
      this.opts.counters.inc("unix", "WriteBytes", "count", frame.length);
    } catch (err) {
      try {
        conn.close();
      } catch { /* already broken */ }
      this.conn = undefined; // reconnect on the next flush
      throw err;
    }
  }
  close(): Promise<void> {
    try {
      this.conn?.close();
    } catch { /* already closed */ }
    this.conn = undefined;
    return Promise.resolve();
  }
}

/**
 * Opens the destination named by a `--dest` value (validated by the config layer).
 * `scheme://address` is accepted as well as `scheme:address`.
 */
export async function openDestination(spec: string, opts: DestOptions): Promise<Destination> {
  if (spec === "null" || spec === "null:") {
    return {
      scheme: "null",
      sync: true,
      send: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
  }
  if (spec === "stdout" || spec === "stderr") return new Stdio(spec);
  const i = spec.indexOf(":");
  const scheme = spec.slice(0, i);
  const addr = spec.slice(i + 1).replace(/^\/\//, "");
  switch (scheme) {
    case "file":
      return new FileDest(addr, opts);
    case "udp":
      return UdpDest.open(addr, opts);
    case "unix": {
      const d = new UnixDest(addr, opts);
      // Fail at startup if nobody listens, as the original does; later failures reconnect.
      await d.connect();
      return d;
    }
    case "unixgram":
      return new UnixgramDest(UnixDgramSocket.connect(addr), opts);
    // The broker clients are loaded only when used: the other destinations start without them.
    case "kafka":
      return await (await import("./brokers.ts")).KafkaDest.open(
        addr,
        opts.kafkaCompression ?? "",
        opts.produceTimeoutMs ?? 0,
        opts,
      );
    case "nats":
      return await (await import("./brokers.ts")).NatsDest.open(addr, opts);
    case "nsq":
      return await (await import("./nsq.ts")).NsqDest.open(addr, opts);
    case "valkey":
    case "redis":
      return await (await import("./brokers.ts")).ValkeyDest.open(scheme, addr, opts);
  }
  throw new Error(`Destination ${scheme} is not available in this build`);
}
