/**
 * The decoding side of the pipelined poll (see pipeline.ts): waits on the ring, parses each
 * datagram, encodes its sockets into envelopes with the current stamp, and flushes them — to the
 * destination itself when it is synchronous (null, stdout, stderr, file:), else back to the main
 * thread. It never allocates per socket. Its counters go back with each poll's account.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { collectYoung } from "../util/idle_gc.ts";
import { isSync, type SyncDestination } from "../dest/destination.ts";
import { openDestination } from "../dest/registry.ts";
import { marshaller } from "../format/marshal.ts";
import { parseDatagram, ParseStats, type SocketRun } from "../netlink/parse.ts";
import { NetlinkCounts } from "./netlink_counts.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import { EnvelopeWriter } from "../record/encoder.ts";
import { errorMessage } from "../util/errors.ts";
import { Counters, Logger } from "../util/log.ts";
import {
  HEAD,
  META,
  type PipelineInit,
  type Reason,
  REASONS,
  SLOT_CHECKPOINT,
  SLOT_CONFIG,
  SLOT_DATA,
  SLOT_END_POLL,
  SLOT_NS_DROP,
  SLOT_NS_END,
  SLOT_ROLLBACK,
  SLOT_STAMP,
  STOP,
  TAIL,
  WANT_ENVELOPES,
  type WorkerReply,
} from "./pipeline.ts";
import { RowBatcher } from "./batch.ts";

function reply(m: WorkerReply, transfer: Transferable[] = []): void {
  self.postMessage(m, transfer);
}

async function openWorkerDest(
  init: PipelineInit,
  counters: Counters,
  log: Logger,
): Promise<SyncDestination | undefined> {
  const w = init.workerDest;
  if (!w) return undefined;
  const dest = await openDestination(w.spec, {
    marshal: init.marshal,
    topic: "",
    fileMaxBytes: w.fileMaxBytes,
    fileMaxAgeMs: w.fileMaxAgeMs,
    counters,
    log,
  });
  if (!isSync(dest)) {
    await dest[Symbol.asyncDispose]();
    throw new TypeError(`Pipeline worker can only write in place: ${w.spec}`);
  }
  return dest;
}

async function run(init: PipelineInit): Promise<void> {
  const ctl = new Int32Array(init.ctl);
  const meta = new Uint32Array(init.ctl);
  const u8s: Uint8Array[] = [];
  const dvs: DataView[] = [];
  for (let i = 0; i < init.slots; i++) {
    u8s.push(new Uint8Array(init.data, i * init.slotSize, init.slotSize));
    dvs.push(new DataView(init.data, i * init.slotSize, init.slotSize));
  }
  const counters = new Counters();
  const log = new Logger(1);
  const m = marshaller(init.marshal, init.columns);
  await using dest = await openWorkerDest(init, counters, log);
  const env = new EnvelopeWriter(1 << 20);
  // Each datagram is copied into the encoder's own memory, where it reads it in place.
  const { recv, view } = env.source(init.slotSize);
  const recvDv = new DataView(recv.buffer, recv.byteOffset, recv.length);
  const stats = new ParseStats();
  const counts = new NetlinkCounts(counters);
  let mark = env.mark();
  let flushesAtMark = 0;
  let flushes = 0;
  const sendErrors: string[] = [];
  const decodeErrors: string[] = [];

  const flush = (reason: Reason) => {
    if (env.rows === 0) return;
    const rows = env.rows;
    const bytes = m.marshal(env);
    flushes++;
    const want = Atomics.load(ctl, WANT_ENVELOPES) === 1;
    if (dest) {
      try {
        dest.sendSync(bytes, m.framing);
      } catch (err) {
        sendErrors.push(`${rows} rows lost: ${errorMessage(err)}`);
      }
      if (want) {
        const envelope = env.envelope().slice();
        reply({ t: "envelope", envelope, rows, size: bytes.length, reason }, [envelope.buffer]);
      } else {
        reply({ t: "envelope", rows, size: bytes.length, reason });
      }
    } else {
      const copy = bytes.slice();
      const envelope = want ? env.envelope().slice() : undefined;
      reply(
        {
          t: "envelope",
          bytes: copy,
          ...(envelope ? { envelope } : {}),
          rows,
          size: copy.length,
          reason,
        },
        envelope ? [copy.buffer, envelope.buffer] : [copy.buffer],
      );
    }
    env.reset();
  };
  const batch = new RowBatcher(env, init.rows, counts, flush);
  const rows = batch.rows;
  const onSocket = (v: SocketView) => batch.onSocket(v);
  const onSockets: SocketRun = batch.onSockets.bind(batch);

  reply({ t: "ready" });
  let tail = 0;
  while (Atomics.load(ctl, STOP) === 0) {
    const head = Atomics.load(ctl, HEAD);
    if (head === tail) {
      Atomics.wait(ctl, HEAD, head, 1000);
      continue;
    }
    const slot = tail % init.slots;
    const at = META + slot * 4;
    const kind = meta[at];
    const len = meta[at + 1] ?? 0;
    const a1 = meta[at + 2] ?? 0;
    const a2 = meta[at + 3] ?? 0;
    const u8 = u8s[slot];
    const dv = dvs[slot];
    if (!u8 || !dv) throw new RangeError(`Pipeline slot out of range: ${slot}`);
    switch (kind) {
      case SLOT_DATA:
        try {
          recv.set(len === u8.length ? u8 : u8.subarray(0, len));
          parseDatagram(
            view,
            recv,
            recvDv,
            0,
            len,
            { mask: init.mask, expectSeq: a1, expectPid: a2 },
            stats,
            onSocket,
            onSockets,
          );
        } catch (err) {
          // The receiving thread checked the framing already; report, never stop.
          if (decodeErrors.length < 10) decodeErrors.push(errorMessage(err));
        }
        break;
      case SLOT_STAMP:
        batch.stamp = { head: u8.slice(0, a1), tail: u8.slice(a1, len) };
        rows?.beginNamespace(a2);
        break;
      case SLOT_NS_END:
        rows?.endNamespace(a1 === 1);
        break;
      case SLOT_NS_DROP:
        rows?.drop(a2);
        break;
      case SLOT_CHECKPOINT:
        mark = env.mark();
        flushesAtMark = flushes;
        break;
      case SLOT_ROLLBACK:
        if (flushes === flushesAtMark) env.rollback(mark);
        else env.reset(); // rows already flushed arrive twice; counted on the main thread
        rows?.rollback();
        break;
      case SLOT_CONFIG:
        batch.beginPoll(a1, a2, dv.getInt32(0, true));
        rows?.beginPoll(dv.getInt32(4, true) === 1);
        break;
      case SLOT_END_POLL: {
        flush(REASONS[a1] ?? "poll_end");
        counts.decoded(stats);
        rows?.account(counters);
        reply({
          t: "polled",
          id: a2,
          sendErrors: sendErrors.splice(0),
          decodeErrors: decodeErrors.splice(0),
          counters: counters.takeDeltas(),
        });
        collectYoung(); // idle until the next poll: collect now rather than in it
        break;
      }
    }
    tail++;
    Atomics.store(ctl, TAIL, tail);
    Atomics.notify(ctl, TAIL);
  }
}

self.onmessage = (e: MessageEvent<PipelineInit>) => {
  if (e.data.t !== "init") return;
  run(e.data).then(
    () => self.close(),
    (err) => reply({ t: "fatal", message: errorMessage(err) }),
  );
};
