/**
 * Test helpers: decode a capture into plain per-socket value maps (the allocating path), and
 * compare them with `ss` text.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decodeCapture } from "../../src/netlink/capture.ts";
import type { DumpSink } from "../../src/netlink/dump.ts";
import type { SocketView } from "../../src/netlink/socket_view.ts";
import { formatIp } from "../../src/record/ip.ts";
import { Stamp } from "../../src/record/stamp.ts";
import { type FieldValue, recordEntries } from "../../src/record/values.ts";
import type { CapturePair } from "./fixtures.ts";
import { parseSs, type SsSocket } from "./ss_text.ts";

/**
 * The Envelope inside one protobufList message (varint length ‖ Envelope), after checking that
 * the prefix is exactly the length of what follows.
 */
export function unframe(msg: Uint8Array, what = "protobufList message"): Uint8Array {
  let len = 0;
  let i = 0;
  for (let shift = 0;; i++, shift += 7) {
    len += (msg[i] & 0x7f) * 2 ** shift;
    if (msg[i] < 0x80) break;
  }
  assert.equal(len, msg.length - i - 1, `${what}: the prefix is the envelope's length`);
  return msg.subarray(i + 1);
}

/** One decoded socket: proto field name → value (absent fields missing). */
export type Rec = Map<string, FieldValue>;

/** Reads every present field of the socket in `view` into a map. */
export function viewToRec(view: SocketView, stamp = new Stamp({})): Rec {
  return new Map(recordEntries(view, stamp).map(([s, v]) => [s.name, v]));
}

/** A dump sink that keeps every socket as a value map (rolled back with its dump). */
export class RecSink implements DumpSink {
  /** The sockets so far. */
  recs: Rec[] = [];
  private mark = 0;
  /** Keeps one socket. */
  onSocket(v: SocketView): void {
    this.recs.push(viewToRec(v));
  }
  /** Remembers where a dump starts. */
  checkpoint(): void {
    this.mark = this.recs.length;
  }
  /** Drops what the interrupted dump gave. */
  rollback(): void {
    this.recs.length = this.mark;
  }
}

/** Decodes every socket of a capture file into value maps. */
export function decodeFile(path: string, mask = -1): Rec[] {
  const out: Rec[] = [];
  decodeCapture(Deno.readFileSync(path), path, mask, (v) => out.push(viewToRec(v)));
  return out;
}

/** ss state names → kernel TCP state numbers. */
export const SS_STATES: Record<string, number> = {
  "ESTAB": 1,
  "SYN-SENT": 2,
  "SYN-RECV": 3,
  "FIN-WAIT-1": 4,
  "FIN-WAIT-2": 5,
  "TIME-WAIT": 6,
  "UNCONN": 7,
  "CLOSE-WAIT": 8,
  "LAST-ACK": 9,
  "LISTEN": 10,
  "CLOSING": 11,
};

/** ss's state names as the kernel's (humanize writes these). */
export const SS_TO_KERNEL: Record<string, string> = {
  "ESTAB": "ESTABLISHED",
  "SYN-SENT": "SYN_SENT",
  "SYN-RECV": "SYN_RECV",
  "FIN-WAIT-1": "FIN_WAIT1",
  "FIN-WAIT-2": "FIN_WAIT2",
  "TIME-WAIT": "TIME_WAIT",
  "UNCONN": "CLOSE",
  "CLOSE-WAIT": "CLOSE_WAIT",
  "LAST-ACK": "LAST_ACK",
  "LISTEN": "LISTEN",
  "CLOSING": "CLOSING",
};

function num(r: Rec, name: string): number {
  const v = r.get(name);
  return v === undefined ? 0 : Number(v);
}

/** Address text of a record's source or destination, as ss prints it (without brackets). */
export function recAddr(r: Rec, which: "source" | "destination"): string {
  return formatIp(
    num(r, "inet_diag_msg_family"),
    r.get(`inet_diag_msg_socket_${which}`) as Uint8Array,
  );
}

/** Key that identifies a socket in both worlds: addresses, ports, inode. */
export function recKey(r: Rec): string {
  return `${recAddr(r, "source")}:${num(r, "inet_diag_msg_socket_source_port")}|${
    recAddr(r, "destination")
  }:${num(r, "inet_diag_msg_socket_destination_port")}|${num(r, "inet_diag_msg_inode")}`;
}

function addrMatches(ss: string, ours: string): boolean {
  if (ss === ours) return true;
  if (ss === "*") return ours === "::" || ours === "0.0.0.0";
  return false;
}

/** A tcp_info comparison: ss info key, our field, and how ours maps onto ss's unit. */
const INFO_MAP: [string, string, (v: number) => number][] = [
  ["rtoMs", "tcp_info_rto", (v) => v / 1000],
  ["atoMs", "tcp_info_ato", (v) => v / 1000],
  ["rttMs", "tcp_info_rtt", (v) => v / 1000],
  ["rttVarMs", "tcp_info_rtt_var", (v) => v / 1000],
  ["minRttMs", "tcp_info_min_rtt", (v) => v / 1000],
  ["mss", "tcp_info_snd_mss", (v) => v],
  ["pmtu", "tcp_info_pmtu", (v) => v],
  ["rcvMss", "tcp_info_rcv_mss", (v) => v],
  ["advMss", "tcp_info_adv_mss", (v) => v],
  ["cwnd", "tcp_info_snd_cwnd", (v) => v],
  ["ssthresh", "tcp_info_snd_ssthresh", (v) => v],
  ["segsOut", "tcp_info_segs_out", (v) => v],
  ["segsIn", "tcp_info_segs_in", (v) => v],
  ["dataSegsOut", "tcp_info_data_segs_out", (v) => v],
  ["dataSegsIn", "tcp_info_data_segs_in", (v) => v],
  ["retransNow", "tcp_info_retrans", (v) => v],
  ["retransTotal", "tcp_info_total_retrans", (v) => v],
  ["lastSndMs", "tcp_info_last_data_sent", (v) => v],
  ["lastRcvMs", "tcp_info_last_data_recv", (v) => v],
  ["lastAckMs", "tcp_info_last_ack_recv", (v) => v],
  ["rcvSpace", "tcp_info_rcv_space", (v) => v],
  ["rcvSsthresh", "tcp_info_rcv_ssthresh", (v) => v],
  ["notsent", "tcp_info_not_sent_bytes", (v) => v],
  ["delivered", "tcp_info_delivered", (v) => v],
  ["sndWnd", "tcp_info_snd_wnd", (v) => v],
  ["rcvWnd", "tcp_info_rcv_wnd", (v) => v],
  ["reordSeen", "tcp_info_reord_seen", (v) => v],
  ["dsackDups", "tcp_info_dsack_dups", (v) => v],
  ["rcvOoopack", "tcp_info_rcv_ooopack", (v) => v],
];
const BIG_MAP: [string, string][] = [
  ["bytesAcked", "tcp_info_bytes_acked"],
  ["bytesReceived", "tcp_info_bytes_received"],
  ["bytesSent", "tcp_info_bytes_sent"],
  ["bytesRetrans", "tcp_info_bytes_retrans"],
];
/** ss prints these only when non-zero: absent in ss means 0 in the kernel. */
const ZERO_WHEN_ABSENT = new Set([
  "tcp_info_last_data_sent",
  "tcp_info_last_data_recv",
  "tcp_info_last_ack_recv",
  "tcp_info_bytes_acked",
  "tcp_info_bytes_received",
  "tcp_info_segs_out",
  "tcp_info_segs_in",
  "tcp_info_data_segs_out",
  "tcp_info_data_segs_in",
]);
const TIME_DEPENDENT = new Set(["lastSndMs", "lastRcvMs", "lastAckMs"]);
const SKMEM: [string, string][] = [
  ["r", "sk_mem_info_rmem_alloc"],
  ["rb", "sk_mem_info_rcv_buf"],
  ["t", "sk_mem_info_wmem_alloc"],
  ["tb", "sk_mem_info_snd_buf"],
  ["f", "sk_mem_info_fwd_alloc"],
  ["w", "sk_mem_info_wmem_queued"],
  ["o", "sk_mem_info_optmem"],
  ["bl", "sk_mem_info_backlog"],
  ["d", "sk_mem_info_drops"],
];

/** Options of {@link compareWithSs}. */
export interface CompareOptions {
  /** Tolerance for lastsnd/lastrcv/lastack in ms (0 = exact). */
  lastTolMs?: number;
  /** Fields (ss info keys) to leave out because they move between two reads. */
  skip?: ReadonlySet<string>;
  /** Compare tcp_info and skmem (false: only identity fields). */
  info?: boolean;
}

/**
 * Asserts that one decoded socket agrees with `ss`'s view of it: state, addresses, ports, inode,
 * the tcp_info fields ss prints, skmem and the congestion algorithm. Returns the number of
 * values compared.
 */
export function compareWithSs(
  r: Rec,
  s: SsSocket,
  where: string,
  opts: CompareOptions = {},
): number {
  let n = 0;
  const eq = (a: unknown, b: unknown, what: string) => {
    assert.equal(a, b, `${where}: ${what}: ours ${String(a)}, ss ${String(b)}`);
    n++;
  };
  eq(num(r, "inet_diag_msg_state"), SS_STATES[s.state], `state ${s.state}`);
  assert.ok(
    addrMatches(s.localAddr, recAddr(r, "source")),
    `${where}: local ${s.localAddr} vs ${recAddr(r, "source")}`,
  );
  assert.ok(
    addrMatches(s.peerAddr, recAddr(r, "destination")),
    `${where}: peer ${s.peerAddr} vs ${recAddr(r, "destination")}`,
  );
  eq(num(r, "inet_diag_msg_socket_source_port"), s.localPort, "local port");
  eq(num(r, "inet_diag_msg_socket_destination_port"), s.peerPort, "peer port");
  if (s.inode !== undefined) eq(num(r, "inet_diag_msg_inode"), s.inode, "inode");
  if (s.cookie !== undefined) eq(r.get("inet_diag_msg_socket_cookie"), s.cookie, "cookie");
  if (opts.info === false) return n;
  const info = s.info as unknown as Record<string, unknown>;
  for (const [key, field, conv] of INFO_MAP) {
    if (opts.skip?.has(key)) continue;
    const ssv = info[key] as number | undefined;
    const ours = r.get(field);
    if (ssv === undefined) {
      if (ZERO_WHEN_ABSENT.has(field) && ours !== undefined) {
        eq(Number(ours), 0, `${field} (not printed by ss)`);
      }
      continue;
    }
    assert.ok(ours !== undefined, `${where}: ${field} absent, ss has ${key}=${ssv}`);
    const v = conv(Number(ours));
    const tol = TIME_DEPENDENT.has(key) ? (opts.lastTolMs ?? 0) : 0;
    if (tol > 0) {
      assert.ok(
        Math.abs(v - ssv) <= tol,
        `${where}: ${field}: ours ${v}, ss ${ssv}, tolerance ${tol}`,
      );
      n++;
    } else if (key.endsWith("Ms")) {
      // ss prints milliseconds with %g (6 significant digits).
      assert.ok(
        Math.abs(v - ssv) <= Math.abs(ssv) * 1e-5,
        `${where}: ${field}: ours ${v}, ss ${ssv}`,
      );
      n++;
    } else {
      eq(v, ssv, field);
    }
  }
  for (const [key, field] of BIG_MAP) {
    if (opts.skip?.has(key)) continue;
    const ssv = info[key] as bigint | undefined;
    const ours = r.get(field);
    if (ssv === undefined) {
      if (ZERO_WHEN_ABSENT.has(field) && ours !== undefined) {
        eq(ours, 0n, `${field} (not printed by ss)`);
      }
      continue;
    }
    eq(ours, ssv, field);
  }
  if (s.info.skmem && !opts.skip?.has("skmem")) {
    const sk = s.info.skmem as unknown as Record<string, number>;
    for (const [k, field] of SKMEM) eq(num(r, field), sk[k], `skmem ${k}`);
  }
  if (s.cc !== undefined && !opts.skip?.has("cc")) {
    eq(r.get("congestion_algorithm_string"), s.cc, "congestion algorithm");
  }
  return n;
}

/**
 * Asserts that a capture and the `ss` text taken at the same moment hold the same sockets (by
 * cookie) with the same values; returns how many sockets and values were compared.
 */
export function checkCapturePair(pair: CapturePair): { sockets: number; values: number } {
  const recs = decodeFile(pair.pcap);
  const ss = parseSs(Deno.readTextFileSync(pair.ss!));
  assert.equal(recs.length, ss.length, `${pair.name}: socket count, ours vs ss`);
  const byCookie = new Map<bigint, SsSocket>();
  for (const s of ss) {
    assert.ok(s.cookie !== undefined, `${pair.name}: ss line without sk: cookie`);
    byCookie.set(s.cookie, s);
  }
  let values = 0;
  const seen = new Set<bigint>();
  for (const r of recs) {
    const cookie = r.get("inet_diag_msg_socket_cookie") as bigint;
    const s = byCookie.get(cookie);
    assert.ok(s, `${pair.name}: socket with cookie ${cookie.toString(16)} not in the ss text`);
    assert.ok(!seen.has(cookie), `${pair.name}: cookie ${cookie} twice`);
    seen.add(cookie);
    values += compareWithSs(r, s, `${pair.name} sk:${cookie.toString(16)}`, {
      lastTolMs: pair.lastTolMs,
    });
  }
  console.log(`${pair.name}: ${recs.length} sockets, ${values} values agree with ss`);
  return { sockets: recs.length, values };
}
