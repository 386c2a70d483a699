/**
 * Parses the text of iproute2 `ss -ti…` (with or without -H, -O, -m, -e, -a, -p) into records, so
 * tests can compare the netlink decoder with `ss`, an independent reader of the same kernel
 * data.
 *
 * @module
 */

/** One socket as ss printed it. */
export interface SsSocket {
  /** "ESTAB", "LISTEN", "TIME-WAIT", … exactly as ss prints it. */
  state: string;
  recvQ: number;
  sendQ: number;
  /** Address without brackets or %iface; "*" stays "*". */
  localAddr: string;
  localPort: number;
  peerAddr: string;
  /** "*" port → 0. */
  peerPort: number;
  localIface?: string;
  peerIface?: string;
  /** ino: */
  inode?: number;
  /** uid: */
  uid?: number;
  /** sk: (the socket cookie, hex in the text). */
  cookie?: bigint;
  /** Every other token: key → raw value ("" for bare words). */
  fields: Map<string, string>;
  /** Congestion control name, when printed. */
  cc?: string;
  /** Typed numbers derived from `fields`. */
  info: SsInfo;
}

/** Typed values of the info tokens; undefined where ss printed nothing. */
export interface SsInfo {
  rtoMs?: number;
  atoMs?: number;
  rttMs?: number;
  rttVarMs?: number;
  minRttMs?: number;
  mss?: number;
  pmtu?: number;
  rcvMss?: number;
  advMss?: number;
  cwnd?: number;
  ssthresh?: number;
  bytesSent?: bigint;
  bytesRetrans?: bigint;
  bytesAcked?: bigint;
  bytesReceived?: bigint;
  segsOut?: number;
  segsIn?: number;
  dataSegsOut?: number;
  dataSegsIn?: number;
  retransNow?: number;
  retransTotal?: number;
  lastSndMs?: number;
  lastRcvMs?: number;
  lastAckMs?: number;
  rcvSpace?: number;
  rcvSsthresh?: number;
  rcvRttMs?: number;
  notsent?: number;
  delivered?: number;
  deliveredCe?: number;
  dsackDups?: number;
  reordSeen?: number;
  reordering?: number;
  rcvOoopack?: number;
  sndWnd?: number;
  rcvWnd?: number;
  busyMs?: number;
  unacked?: number;
  lost?: number;
  sacked?: number;
  sndWscale?: number;
  rcvWscale?: number;
  tos?: number;
  tclass?: number;
  classId?: number;
  skmem?: {
    r: number;
    rb: number;
    t: number;
    tb: number;
    f: number;
    w: number;
    o: number;
    bl: number;
    d: number;
  };
  bbr?: { bw?: string; mrttMs?: number; pacingGain?: number; cwndGain?: number };
}

const STATES = new Set([
  "ESTAB",
  "SYN-SENT",
  "SYN-RECV",
  "FIN-WAIT-1",
  "FIN-WAIT-2",
  "TIME-WAIT",
  "UNCONN",
  "CLOSE-WAIT",
  "LAST-ACK",
  "LISTEN",
  "CLOSING",
]);
const CC = new Set([
  "cubic",
  "bbr",
  "bbr2",
  "bbr3",
  "dctcp",
  "vegas",
  "reno",
  "htcp",
  "bic",
  "westwood",
  "illinois",
  "hybla",
  "prague",
  "highspeed",
  "lp",
  "nv",
  "scalable",
  "veno",
  "yeah",
  "cdg",
]);
/** Keys ss separates from their value with a space instead of a colon. */
const SPACE_KEYS = new Set(["send", "pacing_rate", "delivery_rate", "max_pacing_rate"]);

function splitAddr(text: string): { addr: string; port: number; iface?: string } {
  const i = text.lastIndexOf(":");
  let addr = text.slice(0, i);
  const portText = text.slice(i + 1);
  let iface: string | undefined;
  const pct = addr.indexOf("%");
  if (pct >= 0) {
    iface = addr.slice(pct + 1);
    addr = addr.slice(0, pct);
  }
  if (addr.startsWith("[") && addr.endsWith("]")) addr = addr.slice(1, -1);
  if (iface?.endsWith("]")) iface = iface.slice(0, -1);
  const port = portText === "*" ? 0 : Number(portText);
  return iface === undefined ? { addr, port } : { addr, port, iface };
}

function tokens(text: string): string[] {
  // Split on whitespace outside parentheses (users:(("a b",pid=1)) stays one token).
  const out: string[] = [];
  let cur = "";
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted) {
      if (ch === "(") depth++;
      if (ch === ")") depth--;
    }
    if (/\s/.test(ch) && depth <= 0 && !quoted) {
      if (cur) out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = Number(v.replace(/ms$/, ""));
  return Number.isFinite(n) ? n : undefined;
}

function big(v: string | undefined): bigint | undefined {
  return v === undefined || !/^\d+$/.test(v) ? undefined : BigInt(v);
}

function parseInfo(f: Map<string, string>): SsInfo {
  const info: SsInfo = {};
  const set = <K extends keyof SsInfo>(k: K, v: SsInfo[K] | undefined) => {
    if (v !== undefined) info[k] = v;
  };
  set("rtoMs", num(f.get("rto")));
  set("atoMs", num(f.get("ato")));
  const rtt = f.get("rtt");
  if (rtt) {
    const [a, b] = rtt.split("/");
    set("rttMs", num(a));
    set("rttVarMs", num(b));
  }
  set("minRttMs", num(f.get("minrtt")));
  set("mss", num(f.get("mss")));
  set("pmtu", num(f.get("pmtu")));
  set("rcvMss", num(f.get("rcvmss")));
  set("advMss", num(f.get("advmss")));
  set("cwnd", num(f.get("cwnd")));
  set("ssthresh", num(f.get("ssthresh")));
  set("bytesSent", big(f.get("bytes_sent")));
  set("bytesRetrans", big(f.get("bytes_retrans")));
  set("bytesAcked", big(f.get("bytes_acked")));
  set("bytesReceived", big(f.get("bytes_received")));
  set("segsOut", num(f.get("segs_out")));
  set("segsIn", num(f.get("segs_in")));
  set("dataSegsOut", num(f.get("data_segs_out")));
  set("dataSegsIn", num(f.get("data_segs_in")));
  const retrans = f.get("retrans");
  if (retrans) {
    const [a, b] = retrans.split("/");
    set("retransNow", num(a));
    set("retransTotal", num(b));
  }
  set("lastSndMs", num(f.get("lastsnd")));
  set("lastRcvMs", num(f.get("lastrcv")));
  set("lastAckMs", num(f.get("lastack")));
  set("rcvSpace", num(f.get("rcv_space")));
  set("rcvSsthresh", num(f.get("rcv_ssthresh")));
  set("rcvRttMs", num(f.get("rcv_rtt")));
  set("notsent", num(f.get("notsent")));
  set("delivered", num(f.get("delivered")));
  set("deliveredCe", num(f.get("delivered_ce")));
  set("dsackDups", num(f.get("dsack_dups")));
  set("reordSeen", num(f.get("reord_seen")));
  set("reordering", num(f.get("reordering")));
  set("rcvOoopack", num(f.get("rcv_ooopack")));
  set("sndWnd", num(f.get("snd_wnd")));
  set("rcvWnd", num(f.get("rcv_wnd")));
  set("busyMs", num(f.get("busy")));
  set("unacked", num(f.get("unacked")));
  set("lost", num(f.get("lost")));
  set("sacked", num(f.get("sacked")));
  const ws = f.get("wscale");
  if (ws) {
    const [a, b] = ws.split(",");
    set("sndWscale", num(a));
    set("rcvWscale", num(b));
  }
  const tos = f.get("tos");
  if (tos) set("tos", Number(tos));
  const tclass = f.get("tclass");
  if (tclass) set("tclass", Number(tclass));
  set("classId", num(f.get("class_id")));
  const sk = f.get("skmem");
  if (sk) {
    const m = /^\(r(\d+),rb(\d+),t(\d+),tb(\d+),f(\d+),w(\d+),o(\d+),bl(\d+),d(\d+)\)$/.exec(sk);
    if (m) {
      const [r, rb, t, tb, ff, w, o, bl, d] = m.slice(1).map(Number);
      info.skmem = { r, rb, t, tb, f: ff, w, o, bl, d };
    }
  }
  const bbr = f.get("bbr");
  if (bbr && bbr.startsWith("(")) {
    const kv = new Map(bbr.slice(1, -1).split(",").map((p) => p.split(":") as [string, string]));
    info.bbr = {};
    const bw = kv.get("bw");
    if (bw !== undefined) info.bbr.bw = bw;
    const mrtt = num(kv.get("mrtt"));
    if (mrtt !== undefined) info.bbr.mrttMs = mrtt;
    const pg = num(kv.get("pacing_gain"));
    if (pg !== undefined) info.bbr.pacingGain = pg;
    const cg = num(kv.get("cwnd_gain"));
    if (cg !== undefined) info.bbr.cwndGain = cg;
  }
  return info;
}

/**
 * Parses ss text. The header line (if any) is skipped; a socket's info is either on its own
 * tab-indented line (default) or on the main line (-O).
 *
 * @example
 * ```ts
 * const sockets = parseSs(await Deno.readTextFile("ss.txt"));
 * ```
 */
export function parseSs(text: string): SsSocket[] {
  const out: SsSocket[] = [];
  let cur: SsSocket | undefined;
  const absorb = (s: SsSocket, toks: string[]) => {
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i];
      if (t === "<->" || t === "->" || t === "<-") continue;
      if (SPACE_KEYS.has(t) && i + 1 < toks.length) {
        s.fields.set(t, toks[++i]);
        continue;
      }
      const c = t.indexOf(":");
      if (c < 0) {
        if (CC.has(t)) s.cc = t;
        s.fields.set(t, "");
        continue;
      }
      const k = t.slice(0, c);
      const v = t.slice(c + 1);
      if (k === "ino") s.inode = Number(v);
      else if (k === "uid") s.uid = Number(v);
      else if (k === "sk") s.cookie = BigInt("0x" + v);
      else if (!s.fields.has(k)) s.fields.set(k, v);
    }
  };
  const finish = () => {
    if (cur) {
      cur.info = parseInfo(cur.fields);
      out.push(cur);
    }
    cur = undefined;
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (/^\s/.test(line)) {
      if (cur) absorb(cur, tokens(line));
      continue;
    }
    const toks = tokens(line);
    if (toks[0] === "State" || toks[0] === "Netid") continue;
    finish();
    if (!STATES.has(toks[0]) || toks.length < 5) {
      throw new Error(`Unrecognised ss line: ${line.slice(0, 120)}`);
    }
    const local = splitAddr(toks[3]);
    const peer = splitAddr(toks[4]);
    const s: SsSocket = {
      state: toks[0],
      recvQ: Number(toks[1]),
      sendQ: Number(toks[2]),
      localAddr: local.addr,
      localPort: local.port,
      peerAddr: peer.addr,
      peerPort: peer.port,
      fields: new Map(),
      info: {},
    };
    if (local.iface !== undefined) s.localIface = local.iface;
    if (peer.iface !== undefined) s.peerIface = peer.iface;
    absorb(s, toks.slice(5));
    cur = s;
  }
  finish();
  return out;
}

/** `${localAddr}:${localPort}|${peerAddr}:${peerPort}|${inode ?? 0}` */
export function ssAddrKey(s: SsSocket): string {
  return `${s.localAddr}:${s.localPort}|${s.peerAddr}:${s.peerPort}|${s.inode ?? 0}`;
}
