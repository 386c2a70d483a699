/**
 * `--filter`: a socket filter in `ss`'s grammar (ss(8), "FILTER"), parsed, checked and compiled
 * to the inet_diag bytecode that `ss` sends (iproute2 misc/ss.c `ssfilter_bytecompile`), byte for
 * byte, as the request's INET_DIAG_REQ_BYTECODE attribute: the kernel runs it on every socket of
 * the walk and only dumps those it accepts.
 *
 * Grammar, as ss reads it: conditions joined by `and` (`&`, `&&`, or nothing) and `or` (`|`,
 * `||`) **from left to right, with equal precedence** (`a or b and c` is `(a or b) and c`), `not`
 * (`!`) before a condition, parentheses to group. Conditions:
 *
 * - `sport`/`dport` OP PORT, OP one of `=` `==` `eq` (or none), `!=` `ne` `neq`, `>=` `ge` `geq`,
 *   `<=` `le` `leq`, `>` `gt`, `<` `lt`; PORT `22` or `:22`;
 * - `src`/`dst` [`=` | `!=`] HOST: `10.0.0.0/8`, `10.1.2.3`, `10.1.2.3:22`, `[::1]`, `[::1]:22`,
 *   `fd00::/8`, `[fd00::/8]:22`, `*:22`, `:22` (a missing prefix length is the whole address);
 * - `autobound` (the port was chosen by the kernel); `fwmark` [`=` | `!=`] MARK[/MASK]
 *   (SO_MARK; the kernel asks for CAP_NET_ADMIN).
 *
 * @module
 */
import { AF_INET, AF_INET6, AF_UNSPEC } from "./constants.ts";

/** Bytecode operations (enum in linux/inet_diag.h). */
export const INET_DIAG_BC_NOP = 0;
export const INET_DIAG_BC_JMP = 1;
export const INET_DIAG_BC_S_GE = 2;
export const INET_DIAG_BC_S_LE = 3;
export const INET_DIAG_BC_D_GE = 4;
export const INET_DIAG_BC_D_LE = 5;
export const INET_DIAG_BC_AUTO = 6;
export const INET_DIAG_BC_S_COND = 7;
export const INET_DIAG_BC_D_COND = 8;
export const INET_DIAG_BC_DEV_COND = 9;
export const INET_DIAG_BC_MARK_COND = 10;
/**
 * Largest bytecode: the request (76 bytes, then the 4-byte attribute header) goes out of the
 * netlink socket's 4 KiB send buffer (ffi/netlink_socket.ts); jumps (u16) reach far enough.
 */
export const MAX_BYTECODE_LEN = 4096 - 76 - 4;

/** Comparison of a condition. */
export type FilterOp = "eq" | "ne" | "ge" | "le" | "gt" | "lt";

/** A parsed `--filter`. */
export type FilterNode =
  | { readonly kind: "and" | "or"; readonly left: FilterNode; readonly right: FilterNode }
  | { readonly kind: "not"; readonly expr: FilterNode }
  | {
    readonly kind: "port";
    readonly side: "src" | "dst";
    readonly op: FilterOp;
    readonly port: number;
  }
  | {
    readonly kind: "host";
    readonly side: "src" | "dst";
    readonly op: "eq" | "ne";
    /** AF_UNSPEC (port only), AF_INET or AF_INET6. */
    readonly family: number;
    readonly prefixLen: number;
    /** -1: any port. */
    readonly port: number;
    /** 4 bytes (AF_UNSPEC, AF_INET) or 16 (AF_INET6), network order. */
    readonly addr: Uint8Array;
    /** The host as written. */
    readonly text: string;
  }
  | { readonly kind: "autobound" }
  | {
    readonly kind: "mark";
    readonly op: "eq" | "ne";
    readonly mark: number;
    readonly mask: number;
  };

/** A `--filter` value that does not parse. */
export class FilterSpecError extends RangeError {
  /**
   * @param spec the whole value
   * @param position 0-based offset of the offending token in `spec`
   * @param detail what is wrong there
   */
  constructor(readonly spec: string, readonly position: number, readonly detail: string) {
    super(`Bad filter "${spec}" at character ${position + 1}: ${detail}`);
    this.name = "FilterSpecError";
  }
}

interface Token {
  readonly text: string;
  readonly pos: number;
}

const OP_CHARS = "=!<>&|";
const OPERATORS: ReadonlyMap<string, FilterOp> = new Map([
  ["=", "eq"],
  ["==", "eq"],
  ["eq", "eq"],
  ["!=", "ne"],
  ["ne", "ne"],
  ["neq", "ne"],
  [">=", "ge"],
  ["ge", "ge"],
  ["geq", "ge"],
  ["<=", "le"],
  ["le", "le"],
  ["leq", "le"],
  [">", "gt"],
  ["gt", "gt"],
  ["<", "lt"],
  ["lt", "lt"],
]);
const AND = new Set(["and", "&", "&&"]);
const OR = new Set(["or", "|", "||"]);
const NOT = new Set(["not", "!"]);
const OP_WORDS: Record<FilterOp, string> = {
  eq: "=",
  ne: "!=",
  ge: ">=",
  le: "<=",
  gt: ">",
  lt: "<",
};

/** Splits a filter into words, parentheses and operators (`sport>=:22` is three tokens). */
function tokenize(spec: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < spec.length) {
    const c = spec[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "(" || c === ")") {
      out.push({ text: c, pos: i++ });
    } else {
      const start = i;
      const isOp = OP_CHARS.includes(c);
      while (
        i < spec.length && !/\s/.test(spec[i]) && spec[i] !== "(" && spec[i] !== ")" &&
        OP_CHARS.includes(spec[i]) === isOp
      ) i++;
      out.push({ text: spec.slice(start, i), pos: start });
    }
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(private readonly spec: string, private readonly toks: Token[]) {}

  fail(detail: string, tok: Token | undefined = this.toks[this.i]): never {
    throw new FilterSpecError(this.spec, tok?.pos ?? this.spec.length, detail);
  }

  peek(): Token | undefined {
    return this.toks[this.i];
  }

  next(): Token | undefined {
    return this.toks[this.i++];
  }

  /** exprlist: expr, then (`and` | `or` | nothing) expr, left to right. */
  list(): FilterNode {
    let node = this.expr();
    for (;;) {
      const t = this.peek();
      if (t === undefined || t.text === ")") return node;
      let kind: "and" | "or" = "and";
      if (AND.has(t.text) || OR.has(t.text)) {
        kind = OR.has(t.text) ? "or" : "and";
        this.i++;
      }
      node = { kind, left: node, right: this.expr() };
    }
  }

  expr(): FilterNode {
    const t = this.next();
    if (t === undefined) return this.fail("a condition is missing at the end");
    if (t.text === "(") {
      if (this.peek()?.text === ")") this.fail("empty parentheses");
      const inner = this.list();
      if (this.next()?.text !== ")") this.fail(`"(" at character ${t.pos + 1} is not closed`, t);
      return inner;
    }
    if (NOT.has(t.text)) return { kind: "not", expr: this.expr() };
    switch (t.text) {
      case "sport":
      case "dport":
        return this.port(t.text === "sport" ? "src" : "dst");
      case "src":
      case "dst":
        return this.host(t.text);
      case "autobound":
        return { kind: "autobound" };
      case "fwmark":
        return this.mark();
    }
    return this.fail(
      `expected a condition (sport, dport, src, dst, autobound, fwmark), "not" or "(", got "${t.text}"`,
      t,
    );
  }

  /** An optional comparison operator (absent = `eq`). */
  op(): { op: FilterOp; tok: Token | undefined } {
    const t = this.peek();
    const op = t && OPERATORS.get(t.text);
    if (op === undefined) return { op: "eq", tok: undefined };
    this.i++;
    return { op, tok: t };
  }

  value(what: string): Token {
    const t = this.next();
    if (t === undefined) return this.fail(`${what} is missing at the end`);
    if (
      t.text === "(" || t.text === ")" || OP_CHARS.includes(t.text[0]) || AND.has(t.text) ||
      OR.has(t.text) || NOT.has(t.text)
    ) {
      return this.fail(`expected ${what}, got "${t.text}"`, t);
    }
    return t;
  }

  port(side: "src" | "dst"): FilterNode {
    const { op } = this.op();
    const t = this.value("a port (22 or :22)");
    const port = parsePort(t.text.startsWith(":") ? t.text.slice(1) : t.text);
    if (port === undefined) this.fail(`"${t.text}" is not a port (0 to 65535, as 22 or :22)`, t);
    return { kind: "port", side, op, port };
  }

  /** The `=` or `!=` of an address or mark condition. */
  eqOrNe(what: string): "eq" | "ne" {
    const { op, tok } = this.op();
    if (op !== "eq" && op !== "ne") this.fail(`${what} takes = or !=, not "${tok?.text}"`, tok);
    return op;
  }

  host(side: "src" | "dst"): FilterNode {
    const op = this.eqOrNe(side);
    const t = this.value("an address (10.0.0.0/8, [::1]:22, *:22)");
    const h = parseHost(t.text);
    if (typeof h === "string") return this.fail(h, t);
    return { kind: "host", side, op, ...h, text: t.text };
  }

  mark(): FilterNode {
    const op = this.eqOrNe("fwmark");
    const t = this.value("a mark (0x10 or 0x10/0xff)");
    const [m, k, extra] = t.text.split("/");
    const mark = parseU32(m);
    const mask = k === undefined ? 0xffffffff : parseU32(k);
    if (mark === undefined || mask === undefined || extra !== undefined) {
      this.fail(`"${t.text}" is not a mark (a number, or number/mask)`, t);
    }
    return { kind: "mark", op, mark, mask };
  }
}

/** A number as C's strtol with base 0 reads it (`22`, `0x16`, `026`), or undefined. */
function parseInteger(s: string): number | undefined {
  if (/^0x[0-9a-f]+$/i.test(s)) return parseInt(s.slice(2), 16);
  if (/^0[0-7]+$/.test(s)) return parseInt(s.slice(1), 8);
  if (/^(0|[1-9][0-9]*)$/.test(s)) return Number(s);
  return undefined;
}

function parsePort(s: string): number | undefined {
  const n = parseInteger(s);
  return n !== undefined && n <= 0xffff ? n : undefined;
}

function parseU32(s: string): number | undefined {
  const n = parseInteger(s);
  return n !== undefined && n <= 0xffffffff ? n : undefined;
}

function parseIpv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p))) {
    return undefined;
  }
  const b = parts.map(Number);
  return b.every((x) => x <= 255) ? new Uint8Array(b) : undefined;
}

function parseIpv6(s: string): Uint8Array | undefined {
  let text = s;
  const tail: number[] = [];
  if (text.includes(".")) {
    // An IPv4 address in the last 32 bits (::ffff:10.0.0.1).
    const c = text.lastIndexOf(":");
    const v4 = c < 0 ? undefined : parseIpv4(text.slice(c + 1));
    if (!v4) return undefined;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    text = text.slice(0, c + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const words = (h: string) => (h === "" ? [] : h.split(":"));
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  if (![...head, ...rest].every((w) => /^[0-9a-f]{1,4}$/i.test(w))) return undefined;
  const given = head.length + rest.length + tail.length;
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  const all = [
    ...head.map((w) => parseInt(w, 16)),
    ...new Array(8 - given).fill(0),
    ...rest.map((w) => parseInt(w, 16)),
    ...tail,
  ];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

type Host = Pick<
  Extract<FilterNode, { kind: "host" }>,
  "family" | "prefixLen" | "port" | "addr"
>;

/**
 * A `src`/`dst` value, split as ss splits it (brackets, `*`, else the last `:` after any `/`),
 * or what is wrong with it.
 */
function parseHost(text: string): Host | string {
  let addr = text;
  let portText: string | undefined;
  if (addr.startsWith("[")) {
    const close = addr.indexOf("]");
    if (close < 0) return `"${text}": "[" without "]"`;
    portText = addr.slice(close + 1);
    addr = addr.slice(1, close);
    if (portText !== "" && !portText.startsWith(":")) {
      return `"${text}": only ":PORT" may follow "]" (a prefix goes inside: [fd00::/8]:22)`;
    }
  } else if (addr.startsWith("*")) {
    portText = addr.slice(1);
    addr = "";
    if (portText !== "" && !portText.startsWith(":")) return `"${text}": expected *:PORT`;
  } else {
    const slash = addr.indexOf("/");
    const colon = addr.lastIndexOf(":");
    if (colon >= 0 && colon > slash) {
      portText = addr.slice(colon);
      addr = addr.slice(0, colon);
      if (addr.includes(":") && slash < 0) {
        return `"${text}": an IPv6 address goes in brackets ([::1], [::1]:22) or has a prefix length (::1/128)`;
      }
    }
  }
  let port = -1;
  if (portText !== undefined && portText.length > 1) {
    const p = portText.slice(1);
    if (p !== "*") {
      const n = parsePort(p);
      if (n === undefined) return `"${p}" is not a port (0 to 65535)`;
      port = n;
    }
  }
  if (addr === "") {
    if (port === -1) return `"${text}" gives neither an address nor a port`;
    return { family: AF_UNSPEC, prefixLen: 0, port, addr: new Uint8Array(4) };
  }
  const [a, len, extra] = addr.split("/");
  if (extra !== undefined) return `"${addr}": more than one "/"`;
  const v4 = parseIpv4(a);
  const bytes = v4 ?? parseIpv6(a);
  if (bytes === undefined) return `"${a}" is not an IPv4 or IPv6 address`;
  const bits = bytes.length * 8;
  let prefixLen = bits;
  if (len !== undefined) {
    const n = /^(0|[1-9][0-9]{0,2})$/.test(len) ? Number(len) : NaN;
    if (!(n <= bits)) {
      return `"/${len}" is not a prefix length of an ${
        v4 ? "IPv4" : "IPv6"
      } address (0 to ${bits})`;
    }
    prefixLen = n;
  }
  return { family: v4 ? AF_INET : AF_INET6, prefixLen, port, addr: bytes };
}

/**
 * The filter of a `--filter` value, or undefined for an empty one. Throws a
 * {@link FilterSpecError} that gives the position of what does not parse.
 *
 * @example
 * ```ts
 * parseFilter("dport = :443 or sport = :22"); // { kind: "or", left: …, right: … }
 * ```
 */
export function parseFilter(spec: string): FilterNode | undefined {
  const toks = tokenize(spec);
  if (toks.length === 0) return undefined;
  const p = new Parser(spec, toks);
  const node = p.list();
  const extra = p.peek();
  if (extra !== undefined) p.fail(`unexpected "${extra.text}" (a ")" without "(")`, extra);
  return node;
}

function op(code: number, yes: number, no: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = code;
  b[1] = yes;
  new DataView(b.buffer).setUint16(2, no, true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `x`, then a jump that turns its "true" (fall through) into "false" and back. */
function negate(x: Uint8Array): Uint8Array {
  return concat(x, op(INET_DIAG_BC_JMP, 4, 8));
}

/** A hostcond: op, family, prefix length, 2 zero bytes, port (-1 = any), address. */
function hostcond(code: number, family: number, prefixLen: number, port: number, addr: Uint8Array) {
  const len = 4 + 8 + addr.length;
  const b = new Uint8Array(len);
  b.set(op(code, len, len + 4));
  b[4] = family;
  b[5] = prefixLen;
  new DataView(b.buffer).setInt32(8, port, true);
  b.set(addr, 12);
  return b;
}

/** A port comparison: op, then an op whose `no` is the port. */
function portCompare(code: number, port: number): Uint8Array {
  return concat(op(code, 8, 12), op(0, 0, port));
}

/**
 * Points every "false" exit of `a` (a jump to its end + 4) past `reloc` more bytes, as ss's
 * `ssfilter_patch` does when `a` is followed by the right side of an `and`.
 */
function patchFalseExits(a: Uint8Array, reloc: number): void {
  const dv = new DataView(a.buffer, a.byteOffset, a.length);
  let at = 0;
  while (at < a.length) {
    const left = a.length - at;
    if (dv.getUint16(at + 2, true) === left + 4) dv.setUint16(at + 2, left + 4 + reloc, true);
    at += a[at + 1];
  }
}

/** The bytecode of one node: true falls through to its end, false jumps to its end + 4. */
function compile(n: FilterNode): Uint8Array {
  switch (n.kind) {
    case "and": {
      const a = compile(n.left);
      const b = compile(n.right);
      patchFalseExits(a, b.length);
      return concat(a, b);
    }
    case "or": {
      const a = compile(n.left);
      const b = compile(n.right);
      return concat(a, op(INET_DIAG_BC_JMP, 4, b.length + 4), b);
    }
    case "not":
      return negate(compile(n.expr));
    case "autobound":
      return op(INET_DIAG_BC_AUTO, 4, 8);
    case "mark": {
      const b = new Uint8Array(12);
      b.set(op(INET_DIAG_BC_MARK_COND, 12, 16));
      const dv = new DataView(b.buffer);
      dv.setUint32(4, n.mark, true);
      dv.setUint32(8, n.mask, true);
      return n.op === "ne" ? negate(b) : b;
    }
    case "host": {
      const code = n.side === "src" ? INET_DIAG_BC_S_COND : INET_DIAG_BC_D_COND;
      const c = hostcond(code, n.family, n.prefixLen, n.port, n.addr);
      return n.op === "ne" ? negate(c) : c;
    }
    case "port": {
      const src = n.side === "src";
      const ge = src ? INET_DIAG_BC_S_GE : INET_DIAG_BC_D_GE;
      const le = src ? INET_DIAG_BC_S_LE : INET_DIAG_BC_D_LE;
      switch (n.op) {
        case "ge":
          return portCompare(ge, n.port);
        case "le":
          return portCompare(le, n.port);
        case "gt":
          return negate(portCompare(le, n.port));
        case "lt":
          return negate(portCompare(ge, n.port));
      }
      const eq = hostcond(
        src ? INET_DIAG_BC_S_COND : INET_DIAG_BC_D_COND,
        AF_UNSPEC,
        0,
        n.port,
        new Uint8Array(4),
      );
      return n.op === "ne" ? negate(eq) : eq;
    }
  }
}

/**
 * The inet_diag bytecode of a filter (the payload of INET_DIAG_REQ_BYTECODE), as `ss` compiles
 * the same filter. Throws a RangeError past {@link MAX_BYTECODE_LEN} bytes.
 *
 * @example
 * ```ts
 * compileFilter(parseFilter("sport >= :1024")!); // 02 08 0c 00 00 00 00 04
 * ```
 */
export function compileFilter(node: FilterNode): Uint8Array {
  const bc = compile(node);
  if (bc.length > MAX_BYTECODE_LEN) {
    throw new RangeError(
      `Filter compiles to ${bc.length} bytes of bytecode: at most ${MAX_BYTECODE_LEN}`,
    );
  }
  return bc;
}

/**
 * A filter in words, fully parenthesised so that ss's left-to-right reading shows (`(dport = :443
 * or sport = :22) and src 10.0.0.0/8`).
 */
export function filterInWords(n: FilterNode): string {
  const sub = (c: FilterNode, sameOk: boolean) =>
    (c.kind === "and" || c.kind === "or") && !(sameOk && c.kind === n.kind)
      ? `(${filterInWords(c)})`
      : filterInWords(c);
  switch (n.kind) {
    case "and":
    case "or":
      return `${sub(n.left, true)} ${n.kind} ${sub(n.right, false)}`;
    case "not":
      return `not ${sub(n.expr, false)}`;
    case "autobound":
      return "autobound";
    case "mark":
      return `fwmark ${OP_WORDS[n.op]} 0x${n.mark.toString(16)}/0x${n.mask.toString(16)}`;
    case "host":
      return `${n.side} ${n.op === "ne" ? "!= " : ""}${n.text}`;
    case "port":
      return `${n.side === "src" ? "sport" : "dport"} ${OP_WORDS[n.op]} :${n.port}`;
  }
}

/**
 * The bytecode of a `--filter` value (undefined when empty), checked: throws a
 * {@link FilterSpecError} or, for a filter too long, a RangeError.
 */
export function filterBytecode(spec: string): Uint8Array | undefined {
  const node = parseFilter(spec);
  return node === undefined ? undefined : compileFilter(node);
}
