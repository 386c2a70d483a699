/**
 * The dump driver: sends the inet_diag dump request (one for both address families where the
 * kernel takes the compat request, else one v2 request per family) and reads the multipart reply
 * until NLMSG_DONE, into one preallocated receive buffer. Pure over a
 * {@link NetlinkTransport}, so the FFI socket (or a test double built on real captured
 * datagrams) plugs in.
 *
 * @module
 */
import { AF_INET, AF_INET6, AF_UNSPEC, COMPAT_REQUEST_LEN, DUMP_REQUEST_LEN } from "./constants.ts";
import { NetlinkError, TruncatedDatagramError } from "./errors.ts";
import { releaseAfter } from "../util/errors.ts";
import {
  PARSE_DONE,
  PARSE_INTR,
  parseDatagram,
  type ParseOptions,
  ParseStats,
  type SocketRun,
} from "./parse.ts";
import { bytecodeAttrLen, writeCompatDumpRequest, writeDumpRequest } from "./request.ts";
import { SocketView } from "./socket_view.ts";

/** What the dump driver needs from a netlink socket. */
export interface NetlinkTransport {
  /** Port id the kernel assigned to the socket (replies carry it in nlmsg_pid). */
  readonly portId: number;
  /** Sends one request datagram to the kernel. */
  send(msg: Uint8Array): void;
  /** Receives one datagram into `buf`; returns its length. Throws on error or timeout. */
  recv(buf: Uint8Array): number;
  /** Whether the last received datagram was truncated (MSG_TRUNC). */
  readonly lastTruncated: boolean;
  /** Called once a dump is over (io_uring cancels its receives still in flight). */
  idle?(): void;
}

/** Where dumped sockets go. */
export interface DumpSink {
  /** One socket; `view` is only valid during the call. */
  onSocket(view: SocketView): void;
  /** Takes runs of plain socket messages in one call each (parse.ts SocketRun), if it can. */
  onSockets?: SocketRun;
  /** Called before each family's dump: remember the position to roll back to. */
  checkpoint(): void;
  /** Drop what was received since the last checkpoint (the dump is retried). */
  rollback(): void;
}

/**
 * Where a pipelined dump receives: each datagram goes into a buffer of the pipe, is checked for
 * its status (done, interrupted, errors) on this thread, and handed to the pipe's consumer.
 */
export interface DatagramPipe {
  /** The next receive buffer (waits for the consumer while every buffer is in use). */
  acquire(): { u8: Uint8Array; dv: DataView };
  /** Hands over the datagram just received into the last acquired buffer. */
  publish(length: number, expectSeq: number, expectPid: number): void;
}

/** Options of {@link Dumper}. */
export interface DumperOptions {
  /** Receive buffer size in bytes (at least 32 KiB; default 32 KiB). */
  bufferSize?: number;
  /** Bitmask of attribute types to decode (bit N = type N). */
  mask: number;
  /** `idiag_ext` of the request. */
  ext: number;
  /**
   * Address families to dump with one v2 request each. Default: both families from ONE walk of
   * the kernel's TCP tables with the compat request (TCPDIAG_GETSOCK, AF_UNSPEC), falling back,
   * on a transport whose kernel refuses it, to AF_INET then AF_INET6 with v2 requests.
   */
  families?: readonly number[];
  /** false: always the two v2 requests, never the compat one (default true). */
  oneWalk?: boolean;
  /** `idiag_states` of the requests (default: every state). */
  states?: number;
  /**
   * Filter bytecode (filter.ts `compileFilter`) appended to every request, compat and v2, as
   * its INET_DIAG_REQ_BYTECODE attribute: the kernel dumps only the sockets it accepts.
   */
  bytecode?: ArrayLike<number>;
  /** First nlmsg_seq; every request uses the next one. */
  seq?: number;
  /** Retries of a family's dump interrupted by NLM_F_DUMP_INTR before its data is kept as is. */
  maxIntrRetries?: number;
  /** Sees every datagram sent and received (for captures). */
  onDatagram?: (bytes: Uint8Array, outgoing: boolean) => void;
  /** Pipelined: receive into the pipe's buffers and let its consumer decode (the sink's onSocket is not called). */
  pipe?: DatagramPipe;
  /**
   * Where to receive and locate (default: a buffer of `bufferSize` and a view of the dumper's
   * own): the encoder's memory, which then reads each socket in place.
   */
  source?: { recv: Uint8Array; view: SocketView };
}

/** Minimum receive buffer: the kernel fills up to 32 KiB per dump datagram. */
export const MIN_RECV_BUFFER = 32 * 1024;

/**
 * Dumps the TCP sockets of a netlink socket's namespace. Reuse one per namespace socket (or one
 * for all, since dumps are sequential): its buffers are allocated once.
 */
export class Dumper {
  /** The receive buffer (off-heap, stable address for FFI). */
  readonly recvBuf: Uint8Array;
  /** Counters over every dump made. */
  readonly stats: ParseStats = new ParseStats();
  /** Dumps restarted because of NLM_F_DUMP_INTR. */
  intrRetries = 0;
  /** Dumps kept although still interrupted after the last retry. */
  intrGaveUp = 0;
  /** Next nlmsg_seq. */
  seq: number;
  /** Dumps made with one walk (compat request) and with two (v2 requests). */
  readonly walks = { one: 0, two: 0 };
  /** Transports whose kernel refused the compat request (answered with an error). */
  compatRefused = 0;
  /** Receive calls made (each datagram is one; a failed call counts too). */
  recvCalls = 0;
  /** Receives that timed out (SO_RCVTIMEO expired: EAGAIN). */
  recvTimeouts = 0;
  /** Dumps read to their NLMSG_DONE. */
  completed = 0;
  private readonly recvDv: DataView;
  private readonly recv: { u8: Uint8Array; dv: DataView };
  private readonly reqBuf: Uint8Array;
  private readonly bytecode: Uint8Array | undefined;
  /** Transports on which the compat request was refused: they get the v2 requests. */
  private readonly twoWalk = new WeakSet<NetlinkTransport>();
  private readonly view: SocketView;
  private readonly opts: DumperOptions;
  private readonly families: readonly number[];

  /** @param opts see {@link DumperOptions} */
  constructor(opts: DumperOptions) {
    const size = opts.source?.recv.length ?? opts.bufferSize ?? MIN_RECV_BUFFER;
    if (size < MIN_RECV_BUFFER) {
      throw new RangeError(`Receive buffer must be at least ${MIN_RECV_BUFFER} bytes: got ${size}`);
    }
    this.opts = opts;
    this.bytecode = opts.bytecode === undefined ? undefined : Uint8Array.from(opts.bytecode);
    this.reqBuf = new Uint8Array(
      new ArrayBuffer(
        Math.max(COMPAT_REQUEST_LEN, DUMP_REQUEST_LEN) + bytecodeAttrLen(this.bytecode),
      ),
    );
    this.families = opts.families ?? [AF_INET, AF_INET6];
    this.seq = opts.seq ?? 666;
    this.recvBuf = opts.source?.recv ?? new Uint8Array(new ArrayBuffer(size));
    this.recvDv = new DataView(this.recvBuf.buffer, this.recvBuf.byteOffset, size);
    this.view = opts.source?.view ?? new SocketView();
    this.recv = { u8: this.recvBuf, dv: this.recvDv };
  }

  /**
   * Dumps every configured family through `t` into `sink`. Returns the number of sockets
   * delivered. Kernel errors (NetlinkError), transport errors (OsError, e.g. EAGAIN on a receive
   * timeout), truncation (TruncatedDatagramError) and broken framing (DecodeError) are thrown.
   *
   * `t.idle()` runs after every dump, failed or not. When the dump failed, its own error is
   * thrown unchanged (the same object, class and message) and an error thrown by `idle()` is
   * appended to that error's `suppressed` array (`suppressed?: unknown[]`, created when absent;
   * dropped only when the dump's error is not an extensible object): a failing cleanup never
   * hides what broke the dump. When the dump succeeded and only `idle()` failed, the error of
   * `idle()` is thrown.
   */
  dump(t: NetlinkTransport, sink: DumpSink): number {
    let sockets: number;
    try {
      sockets = this.dumpFamilies(t, sink);
    } catch (err) {
      releaseAfter(err, () => t.idle?.());
      throw err;
    }
    t.idle?.();
    return sockets;
  }

  private dumpFamilies(t: NetlinkTransport, sink: DumpSink): number {
    if (!this.opts.families && this.opts.oneWalk !== false && !this.twoWalk.has(t)) {
      try {
        const n = this.dumpRetrying(t, AF_UNSPEC, true, sink);
        this.walks.one++;
        return n;
      } catch (err) {
        // The kernel answered the compat request with an error: the v2 requests, from now on
        // for this transport once they work.
        if (!(err instanceof NetlinkError)) throw err;
        this.compatRefused++;
        const n = this.dumpTwoWalks(t, sink);
        this.twoWalk.add(t);
        return n;
      }
    }
    return this.dumpTwoWalks(t, sink);
  }

  private dumpTwoWalks(t: NetlinkTransport, sink: DumpSink): number {
    let total = 0;
    for (const family of this.families) total += this.dumpRetrying(t, family, false, sink);
    this.walks.two++;
    return total;
  }

  /** One dump, restarted (at most maxIntrRetries times) while NLM_F_DUMP_INTR says it changed. */
  private dumpRetrying(t: NetlinkTransport, family: number, compat: boolean, sink: DumpSink) {
    const maxRetries = this.opts.maxIntrRetries ?? 3;
    for (let attempt = 0;; attempt++) {
      sink.checkpoint();
      const { sockets, intr } = this.dumpFamily(t, family, compat, sink);
      if (!intr) return sockets;
      if (attempt >= maxRetries) {
        this.intrGaveUp++;
        return sockets;
      }
      this.intrRetries++;
      sink.rollback();
    }
  }

  private dumpFamily(
    t: NetlinkTransport,
    family: number,
    compat: boolean,
    sink: DumpSink,
  ): { sockets: number; intr: boolean } {
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0;
    const req = {
      family,
      ext: this.opts.ext,
      seq,
      ...(this.opts.states === undefined ? {} : { states: this.opts.states }),
      ...(this.bytecode === undefined ? {} : { bytecode: this.bytecode }),
    };
    const msg = this.reqBuf.subarray(
      0,
      compat ? writeCompatDumpRequest(this.reqBuf, 0, req) : writeDumpRequest(this.reqBuf, 0, req),
    );
    this.opts.onDatagram?.(msg, true);
    t.send(msg);
    const pipe = this.opts.pipe;
    const popts: ParseOptions = {
      mask: this.opts.mask,
      expectSeq: seq,
      expectPid: t.portId,
      ...(pipe ? { countOnly: true } : {}),
    };
    const stats = this.stats;
    const before = stats.sockets;
    const onSocket = (v: SocketView) => sink.onSocket(v);
    const run = pipe ? undefined : sink.onSockets?.bind(sink);
    let intr = false;
    for (;;) {
      const { u8, dv } = pipe ? pipe.acquire() : this.recv;
      this.recvCalls++;
      let n: number;
      try {
        n = t.recv(u8);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === "EAGAIN" || code === "ETIME") this.recvTimeouts++; // recvmsg, io_uring
        throw err;
      }
      if (t.lastTruncated) throw new TruncatedDatagramError(u8.length);
      this.opts.onDatagram?.(u8.subarray(0, n), false);
      const status = parseDatagram(this.view, u8, dv, 0, n, popts, stats, onSocket, run);
      pipe?.publish(n, seq, t.portId);
      if (status & PARSE_INTR) intr = true;
      if (status & PARSE_DONE) break;
    }
    this.completed++;
    return { sockets: stats.sockets - before, intr };
  }
}
