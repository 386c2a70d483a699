/**
 * The netlink and deserialize counters of the original, in `xtcp_counts` under its own names
 * (reference §8.2), so its dashboards read them: `Netlinker` (or `NetlinkerIoUring`) `packets`,
 * `n` (bytes), `p` (records), `RecvfromCalls` (`recv`), `Timeout`, `complete`; `Deserialize`
 * `start`, `envelopeAppend`, `skipUnknownType` and the framing errors; `DeserializeAttributes`
 * the attribute errors. They are taken from the parse and dump counters once per poll: nothing is
 * counted per socket in a Map.
 *
 * @module
 */
import type { Dumper } from "../netlink/dump.ts";
import type { ParseStats } from "../netlink/parse.ts";
import type { Counters } from "../util/log.ts";

type Triple = readonly [fn: string, variable: string, type: string];

/** The numeric counters of a parse. */
type StatName = Exclude<keyof ParseStats, "add">;

/** Message-level parse counters: counted where the datagrams are received. */
const MESSAGES: readonly (readonly [StatName, Triple])[] = [
  ["datagrams", ["Deserialize", "start", "count"]],
  ["skippedType", ["Deserialize", "skipUnknownType", "count"]],
  ["shortInetDiagMsg", ["Deserialize", "inetDiagNlhLenTooSmall", "error"]],
  ["truncatedHeader", ["Deserialize", "truncatedAtHeader", "error"]],
  ["nlmsgLenTooSmall", ["Deserialize", "DeserializeNlMsgHdr", "error"]],
  ["nlmsgLenOverflow", ["Deserialize", "inetDiagNlhLenOverflow", "error"]],
];

/** Attribute-level parse counters: counted where the records are decoded. */
const ATTRIBUTES: readonly (readonly [StatName, Triple])[] = [
  ["attrLenTooSmall", ["DeserializeAttributes", "rtaLenTooSmall", "error"]],
  ["attrLenOverflow", ["DeserializeAttributes", "rtaLenOverflow", "error"]],
  ["attrTruncatedHeader", ["DeserializeAttributes", "truncatedRTAttrHeader", "error"]],
];

/** Adds to `counters` what each total (by its source's name) grew by since the last call. */
class Deltas {
  private readonly last = new Map<string, number>();
  add(counters: Counters, [fn, variable, type]: Triple, total: number, key: string): void {
    const delta = total - (this.last.get(key) ?? 0);
    if (delta <= 0) return;
    this.last.set(key, total);
    counters.inc(fn, variable, type, delta);
  }
}

/** Exports one thread's counters: call {@link NetlinkCounts.received} and/or {@link NetlinkCounts.decoded} per poll. */
export class NetlinkCounts {
  private readonly deltas = new Deltas();
  /** Records appended to envelopes (Deserialize/envelopeAppend), counted by the caller. */
  appended = 0;

  /** @param counters where they go */
  constructor(private readonly counters: Counters) {}

  /**
   * The receiving side: the Netlinker triples (`NetlinkerIoUring` when `uring`) and the
   * message-level Deserialize ones, from the dumper's totals.
   */
  received(d: Dumper, uring: boolean): void {
    const fn = uring ? "NetlinkerIoUring" : "Netlinker";
    const c = this.counters;
    const s = d.stats;
    const add = (variable: string, total: number, key: string) =>
      this.deltas.add(c, [fn, variable, "count"], total, key);
    add(uring ? "recv" : "RecvfromCalls", d.recvCalls, "recvCalls");
    add("packets", s.datagrams, "datagrams");
    add("n", s.bytes, "bytes");
    add("p", s.sockets, "sockets");
    add("Timeout", d.recvTimeouts, "recvTimeouts");
    add("complete", d.completed, "completed");
    for (const [k, t] of MESSAGES) this.deltas.add(c, t, s[k], `message.${k}`);
  }

  /** The decoding side: attribute errors and the records appended. */
  decoded(s: ParseStats): void {
    for (const [k, t] of ATTRIBUTES) this.deltas.add(this.counters, t, s[k], k);
    this.deltas.add(
      this.counters,
      ["Deserialize", "envelopeAppend", "count"],
      this.appended,
      "appended",
    );
  }
}
