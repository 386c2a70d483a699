/**
 * The kernel fields of {@link F.FIELDS} as a WebAssembly module, assembled here from the field
 * table when the module loads (no build step, no binary to keep in sync). Three functions:
 *
 * - `encode` writes one record: straight-line code, one load and one zero test per field, a
 *   value below 128 written with its tag in one store, the varint loops inline, constants
 *   folded. It replaced straight-line JavaScript generated from the same table, which wrote the
 *   same bytes at about twice the cost per socket (570 against 345 ns per socket with parsing,
 *   on a 20,000-socket loopback dump).
 * - `locate` fills the attribute table of one message (parse.ts locateAttributes).
 * - `walk` takes a run of plain socket replies of a datagram in one call: the framing checks of
 *   parse.ts parseDatagram, `locate`, `encode` and the row's tag and length, until the first
 *   message it leaves to the TypeScript parser ({@link WasmKernelEncoder.walk}).
 *
 * Memories of an instance: the source (the attribute table, `attrOff` then `attrLen`, i32 × 32
 * each, at 0; the nominal attribute sizes, the walk's results and the stamp's bytes after it;
 * then the datagram) and the output (see {@link WasmKernelEncoder}).
 *
 * @module
 */
import * as F from "./fields.ts";
import * as C from "../netlink/constants.ts";
import { NOMINAL_ATTR_LEN } from "../netlink/parse.ts";
import type { AttributeLocator, SocketView } from "../netlink/socket_view.ts";
import { ROW_TAG } from "./envelope.ts";
import { OutBuf } from "./out_buf.ts";
import type { StampBytes } from "./stamp.ts";
import { varint32 } from "../util/varint.ts";

/** The tag of field `s` as varint bytes. */
export function tagBytes(s: F.FieldSpec): number[] {
  let tag = (s.number << 3) | (s.type === "string" || s.type === "bytes" ? 2 : 0);
  const bytes: number[] = [];
  while (tag > 0x7f) {
    bytes.push((tag & 0x7f) | 0x80);
    tag >>>= 7;
  }
  bytes.push(tag);
  return bytes;
}

/**
 * The kernel fields by source (the header, then each attribute), in the order the encoders
 * write them: sources by their first field's number, fields by number within each.
 */
export function kernelGroups(): { src: number; fields: F.FieldSpec[] }[] {
  const kernel = F.FIELDS.filter((s) => s.src >= F.SRC_MSG);
  const groups: number[] = [];
  for (const s of kernel) if (!groups.includes(s.src)) groups.push(s.src);
  return groups.map((src) => ({ src, fields: kernel.filter((s) => s.src === src) }));
}

// Opcodes.
const BLOCK = 0x02, LOOP = 0x03, IF = 0x04, ELSE = 0x05, END = 0x0b, BR = 0x0c, BR_IF = 0x0d;
const VOID = 0x40, I32 = 0x7f, I64 = 0x7e;
const GET = 0x20, SET = 0x21, TEE = 0x22;
const I32_LOAD = 0x28, I64_LOAD = 0x29, LOAD8 = 0x2d, LOAD16 = 0x2f;
const I32_STORE = 0x36, I64_STORE = 0x37, STORE8 = 0x3a, STORE16 = 0x3b, I64_STORE8 = 0x3c;
const I32_CONST = 0x41, I32_EQZ = 0x45, I32_EQ = 0x46, I32_LT_S = 0x48, I32_GT_S = 0x4a;
const I32_LT_U = 0x49, I32_GE_U = 0x4f, I32_LE_U = 0x4d;
const I64_EQZ = 0x50, I64_LE_U = 0x58, I64_LT_U = 0x54, I32_WRAP_I64 = 0xa7;
const ADD = 0x6a, AND = 0x71, OR = 0x72, SHL = 0x74, SHR_U = 0x76;
const I64_AND = 0x83, I64_OR = 0x84, I64_SHR_U = 0x88, I64_CONST = 0x42, SELECT = 0x1b;

// Locals: the parameters delta (source offset in memory), m (inet_diag_msg), p (output), index
// (record_counter), the stamp's offset and its head's and tail's lengths; then b (payload), n
// (its length), v, k, c0…c3, and w (i64).
const DELTA = 0, M = 1, P = 2, INDEX = 3, STAMP = 4, HEAD = 5, TAIL = 6;
const B = 7, N = 8, V = 9, K = 10, C0 = 11, W = 15;
/** memory.copy from the source memory (1) to the output memory (0). */
const COPY_IN = [0xfc, 10, 0, 1];

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const get = (l: number) => [GET, l];
const set = (l: number) => [SET, l];
const i32 = (n: number) => [I32_CONST, ...sleb(n)];
/**
 * A load from memory 1 (source, table; a memarg with bit 6 set names the memory): the address
 * is on the stack, `off` folded in.
 */
const mem = (op: number, off: number) => [op, 0x40, 1, ...uleb(off)];
/** i32.store, into the source memory (the locate function's table). */
const I32_STORE_SRC = I32_STORE;
/** A store to memory 0 (the output: the stores outnumber the loads, memory 0 is the cheaper). */
const out = (op: number, off: number) => [op, 0, ...uleb(off)];
const incP = (by: number) => [...get(P), ...i32(by), ADD, ...set(P)];
/** `off + align4(len)` of two locals (netlink's NLMSG_ALIGN / RTA_ALIGN), left on the stack. */
const plusAligned = (off: number, len: number) => [
  ...get(off),
  ...get(len),
  ...i32(3),
  ADD,
  ...i32(-4),
  AND,
  ADD,
];

/**
 * `while (!exit) body`: `exit` leaves an i32 on the stack; inside `body`, `BR_IF, 1` leaves the
 * loop too.
 */
const loop = (exit: number[], body: number[]) => [
  BLOCK,
  VOID,
  LOOP,
  VOID,
  ...exit,
  BR_IF,
  1,
  ...body,
  BR,
  0,
  END,
  END,
];

/** `v` (i32) as a varint at `p`, then `p` past it. */
const VARINT32 = [
  ...loop([...get(V), ...i32(0x7f), I32_LE_U], [
    ...get(P),
    ...get(V),
    ...i32(0x7f),
    AND,
    ...i32(0x80),
    OR,
    ...out(STORE8, 0),
    ...incP(1),
    ...get(V),
    ...i32(7),
    SHR_U,
    ...set(V),
  ]),
  ...get(P),
  ...get(V),
  ...out(STORE8, 0),
  ...incP(1),
];

/** `w` (i64) as a varint at `p`, then `p` past it. */
const VARINT64 = [
  ...loop([...get(W), I64_CONST, ...sleb(0x7f), I64_LE_U], [
    ...get(P),
    ...get(W),
    I64_CONST,
    ...sleb(0x7f),
    I64_AND,
    I64_CONST,
    ...sleb(0x80),
    I64_OR,
    ...out(I64_STORE8, 0),
    ...incP(1),
    ...get(W),
    I64_CONST,
    7,
    I64_SHR_U,
    ...set(W),
  ]),
  ...get(P),
  ...get(W),
  ...out(I64_STORE8, 0),
  ...incP(1),
];

/** The field's tag at `p`, then `p` past it (one store for tags of up to 4 bytes). */
function writeTag(s: F.FieldSpec): number[] {
  const t = tagBytes(s);
  const value = t.reduce((acc, b, i) => acc + b * 2 ** (8 * i), 0);
  const store = t.length === 1
    ? [...get(P), ...i32(value), ...out(STORE8, 0)]
    : t.length === 2
    ? [...get(P), ...i32(value), ...out(STORE16, 0)]
    : [...get(P), ...i32(value | 0), ...out(I32_STORE, 0)];
  return [...store, ...incP(t.length)];
}

/** Reads a u8 at `b + off`. */
const u8At = (off: number) => [...get(B), ...mem(LOAD8, off)];

/** The congestion name's CongestionAlgorithm value into `v` (fields.ts congestionEnum). */
function congestionEnum(): number[] {
  const code: number[] = [];
  // c_k = n > k ? src[b + k] : 0
  for (let k = 0; k < 4; k++) {
    code.push(...u8At(k), ...i32(0), ...get(N), ...i32(k), I32_GT_S, SELECT);
    code.push(...set(C0 + k));
  }
  const is3 = (a: number, b: number, c: number) => [
    ...get(C0),
    ...i32(a),
    I32_EQ,
    ...get(C0 + 1),
    ...i32(b),
    I32_EQ,
    AND,
    ...get(C0 + 2),
    ...i32(c),
    I32_EQ,
    AND,
  ];
  const ifThen = (cond: number[], value: number[], rest: number[]) => [
    ...cond,
    IF,
    I32,
    ...value,
    ELSE,
    ...rest,
    END,
  ];
  const bbr = [
    ...i32(7),
    ...i32(6),
    ...i32(5),
    ...get(C0 + 3),
    ...i32(0x32),
    I32_EQ,
    SELECT,
    ...get(C0 + 3),
    ...i32(0x33),
    I32_EQ,
    SELECT,
  ];
  code.push(
    ...ifThen(
      is3(0x62, 0x62, 0x72),
      bbr,
      ifThen(
        is3(0x63, 0x75, 0x62),
        i32(1),
        ifThen(
          is3(0x64, 0x63, 0x74),
          i32(2),
          ifThen(is3(0x76, 0x65, 0x67), i32(3), ifThen(is3(0x70, 0x72, 0x61), i32(4), i32(0))),
        ),
      ),
    ),
    ...set(V),
  );
  return code;
}

/** `v` = length of the NUL-terminated string filling the payload (fields.ts cstrLen). */
const CSTR_LEN = [
  ...i32(0),
  ...set(V),
  ...loop([...get(V), ...get(N), I32_GE_U], [
    ...get(B),
    ...get(V),
    ADD,
    ...mem(LOAD8, 0),
    I32_EQZ,
    BR_IF,
    1,
    ...get(V),
    ...i32(1),
    ADD,
    ...set(V),
  ]),
];

/** The string's length and its bytes, non-printable ones as "?" (wire.ts asciiBytes). */
const ASCII_BYTES = [
  ...get(V),
  ...set(K), // the length; v is consumed by the varint
  ...VARINT32,
  ...i32(0),
  ...set(V),
  ...loop([...get(V), ...get(K), I32_GE_U], [
    ...get(P),
    // select(c, 0x3f, 0x20 <= c < 0x7f)
    ...get(B),
    ...get(V),
    ADD,
    ...mem(LOAD8, 0),
    TEE,
    C0,
    ...i32(0x3f),
    ...get(C0),
    ...i32(0x20),
    I32_GE_U,
    ...get(C0),
    ...i32(0x7f),
    I32_LT_U,
    AND,
    SELECT,
    ...out(STORE8, 0),
    ...incP(1),
    ...get(V),
    ...i32(1),
    ADD,
    ...set(V),
  ]),
];

/**
 * A value below 128 (most of them) and the field's tag of 1 or 2 bytes in one store, then `p`
 * past both. The store writes up to one byte past them, inside the room the caller ensured
 * (KERNEL_BYTES_BOUND). `value32` leaves the value (as i32) on the stack.
 */
function smallField(s: F.FieldSpec, value32: number[]): number[] {
  const t = tagBytes(s);
  const tag = t.reduce((acc, b, i) => acc + b * 2 ** (8 * i), 0);
  return [
    ...get(P),
    ...value32,
    ...i32(8 * t.length),
    SHL,
    ...i32(tag),
    OR,
    ...out(t.length === 1 ? STORE16 : I32_STORE, 0),
    ...incP(t.length + 1),
  ];
}

/**
 * A varint field: nothing for a 0 without presence; `small` (one store) when `isSmall` (the
 * value below 128) and the tag is of 1 or 2 bytes, else the tag and the varint loop (`big`).
 */
function varintField(
  s: F.FieldSpec,
  nonZero: number[],
  isSmall: number[],
  small: number[],
  big: number[],
): number[] {
  const body = tagBytes(s).length <= 2 ? [...isSmall, IF, VOID, ...small, ELSE, ...big, END] : big;
  return s.optional ? body : [...nonZero, IF, VOID, ...body, END];
}

/** One u32-valued field whose value the code in `value` leaves on the stack. */
function u32Field(s: F.FieldSpec, value: number[]): number[] {
  return [
    ...value,
    ...set(V),
    ...varintField(
      s,
      get(V),
      [...get(V), ...i32(0x80), I32_LT_U],
      smallField(s, get(V)),
      [...writeTag(s), ...VARINT32],
    ),
  ];
}

function field(s: F.FieldSpec): number[] {
  const o = s.off;
  switch (s.read) {
    case F.READ_U8:
      return u32Field(s, u8At(o));
    case F.READ_U16:
      return u32Field(s, [...get(B), ...mem(LOAD16, o)]);
    case F.READ_U32:
      return u32Field(s, [...get(B), ...mem(I32_LOAD, o)]);
    case F.READ_BE16:
      return u32Field(s, [...u8At(o), ...i32(8), SHL, ...u8At(o + 1), OR]);
    case F.READ_NIB_LO:
      return u32Field(s, [...u8At(o), ...i32(0x0f), AND]);
    case F.READ_NIB_HI:
      return u32Field(s, [...u8At(o), ...i32(4), SHR_U]);
    case F.READ_BIT0:
      return u32Field(s, [...u8At(o), ...i32(1), AND]);
    case F.READ_BITS12:
      return u32Field(s, [...u8At(o), ...i32(1), SHR_U, ...i32(3), AND]);
    case F.READ_CONG_ENUM:
      return u32Field(s, [...congestionEnum(), ...get(V)]);
    case F.READ_U64:
      return [
        ...get(B),
        ...mem(I64_LOAD, o),
        ...set(W),
        ...varintField(
          s,
          [...get(W), I64_EQZ, I32_EQZ],
          [...get(W), I64_CONST, ...sleb(0x80), I64_LT_U],
          smallField(s, [...get(W), I32_WRAP_I64]),
          [...writeTag(s), ...VARINT64],
        ),
      ];
    case F.READ_ADDR16:
      return [
        ...writeTag(s),
        ...get(P),
        ...i32(16),
        ...out(STORE8, 0),
        ...get(P),
        ...get(B),
        ...mem(I64_LOAD, o),
        ...out(I64_STORE, 1),
        ...get(P),
        ...get(B),
        ...mem(I64_LOAD, o + 8),
        ...out(I64_STORE, 9),
        ...incP(17),
      ];
    case F.READ_CSTR: {
      const body = [...writeTag(s), ...ASCII_BYTES];
      return [...CSTR_LEN, ...(s.optional ? body : [...get(V), IF, VOID, ...body, END])];
    }
  }
  throw new Error(`No code for read kind ${s.read}: field ${s.name}`);
}

/** The function's body: every group in the order of {@link kernelGroups}. */
function body(): number[] {
  // The stamp's head, record_counter (60) when not 0, the stamp's tail.
  const code: number[] = [
    ...get(P),
    ...get(STAMP),
    ...get(HEAD),
    ...COPY_IN,
    ...get(P),
    ...get(HEAD),
    ADD,
    ...set(P),
    ...get(INDEX),
    IF,
    VOID,
    ...get(P),
    ...i32(0x03e0),
    ...out(STORE16, 0),
    ...incP(2),
    ...get(INDEX),
    ...set(V),
    ...VARINT32,
    END,
    ...get(P),
    ...get(STAMP),
    ...get(HEAD),
    ADD,
    ...get(TAIL),
    ...COPY_IN,
    ...get(P),
    ...get(TAIL),
    ADD,
    ...set(P),
  ];
  for (const { src, fields } of kernelGroups()) {
    const inner: number[] = [];
    if (src === F.SRC_MSG) {
      for (const s of fields) inner.push(...field(s));
    } else {
      // Each field is read only if the attribute holds it. Where it holds them all (always, on
      // the kernels of today), one test instead of one per field: if (n >= end) all, else each.
      const end = Math.max(...fields.map((s) => s.off + s.width));
      const checked: number[] = [];
      const all: number[] = [];
      for (const s of fields) {
        const code = field(s);
        all.push(...code);
        checked.push(...get(N), ...i32(s.off + s.width), I32_GE_U, IF, VOID, ...code, END);
      }
      inner.push(...get(N), ...i32(end), I32_GE_U, IF, VOID, ...all, ELSE, ...checked, END);
    }
    if (src === F.SRC_MSG) {
      code.push(...get(M), ...get(DELTA), ADD, ...set(B), ...inner);
    } else {
      // b = attrOff[src]; if (b >= 0) { n = attrLen[src]; b += delta; … }
      code.push(
        ...i32(0),
        ...mem(I32_LOAD, src * 4),
        TEE,
        B,
        ...i32(0),
        I32_LT_S,
        I32_EQZ,
        IF,
        VOID,
        ...i32(0),
        ...mem(I32_LOAD, (C.MAX_ATTR_TYPE + src) * 4),
        ...set(N),
        ...get(B),
        ...get(DELTA),
        ADD,
        ...set(B),
        ...inner,
        END,
      );
    }
  }
  return [...code, ...get(P), END];
}

/**
 * The body of `locate(delta, start, end, mask) → counts`: parse.ts locateAttributes over the
 * source memory, into the table at 0 (cleared first); returns attrErrors | attrShort << 2 |
 * attrSkipped << 8.
 */
function locateBody(): number[] {
  const [D, S, E, MASK, OFF, RLEN, TYPE, ERR, SHORT, SKIP] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const MEMORY_FILL_SRC = [0xfc, 11, 1];
  const at = (l: number) => [...get(D), ...get(l), ADD];
  const pack = [...get(ERR), ...get(SHORT), ...i32(2), SHL, OR, ...get(SKIP), ...i32(8), SHL, OR];
  return [
    ...i32(0),
    ...i32(0xff),
    ...i32(4 * C.MAX_ATTR_TYPE),
    ...MEMORY_FILL_SRC,
    ...get(S),
    ...set(OFF),
    // while (end - off >= 4)
    ...loop(
      [
        ...get(E),
        ...get(OFF),
        0x6b, // i32.sub
        ...i32(4),
        I32_LT_S,
      ],
      [
        ...at(OFF),
        ...mem(LOAD16, 0),
        ...set(RLEN),
        ...at(OFF),
        ...mem(LOAD16, 2),
        ...i32(0x3fff),
        AND,
        ...set(TYPE),
        // a bad length ends the walk
        ...get(RLEN),
        ...i32(4),
        I32_LT_U,
        ...get(RLEN),
        ...get(E),
        ...get(OFF),
        0x6b,
        0x4b, // i32.gt_u
        OR,
        IF,
        VOID,
        ...get(ERR),
        ...i32(1),
        ADD,
        ...set(ERR),
        ...pack,
        0x0f, // return
        END,
        ...get(TYPE),
        ...i32(C.MAX_ATTR_TYPE),
        I32_LT_U,
        IF,
        I32,
        ...get(MASK),
        ...get(TYPE),
        SHR_U,
        ...i32(1),
        AND,
        ELSE,
        ...i32(0),
        END,
        IF,
        VOID,
        // plen = rlen - 4; short when below the struct's nominal size
        ...get(RLEN),
        ...i32(4),
        0x6b,
        ...get(TYPE),
        ...i32(2),
        SHL,
        ...mem(I32_LOAD, NOMINAL_AT),
        I32_LT_S,
        ...get(SHORT),
        ADD,
        ...set(SHORT),
        ...get(TYPE),
        ...i32(2),
        SHL,
        ...get(OFF),
        ...i32(4),
        ADD,
        ...mem(I32_STORE_SRC, 0),
        ...get(TYPE),
        ...i32(2),
        SHL,
        ...get(RLEN),
        ...i32(4),
        0x6b,
        ...mem(I32_STORE_SRC, 4 * C.MAX_ATTR_TYPE),
        ELSE,
        ...get(SKIP),
        ...i32(1),
        ADD,
        ...set(SKIP),
        END,
        // off += (rlen + 3) & ~3
        ...plusAligned(OFF, RLEN),
        ...set(OFF),
      ],
    ),
    // 1–3 stray bytes
    ...get(ERR),
    ...get(OFF),
    ...get(E),
    I32_LT_S,
    ADD,
    ...set(ERR),
    ...pack,
    END,
  ];
}

/** Room reserved per record for the kernel fields, excluding strings (their length is added). */
export const KERNEL_BYTES_BOUND = 2048;

/** The walk function's results, in the source memory: out', rows, index', short, skipped. */
const RESULTS = 5;

/**
 * The body of `walk(delta, off, end, seq, pid, mask, out, limit, flushAt, rowsLeft, index,
 * stamp, headLen, tailLen) → off'`: parse.ts parseDatagram, locate and encode fused, for a run
 * of plain socket messages of the datagram at `delta` from `off` on. Each becomes an
 * Envelope.row at `out` (tag, length, record: as EnvelopeWriter.add writes it). It stops at the
 * first message it leaves to the caller: one that is not a socket reply of this dump (another
 * type, a request, NLM_F_DUMP_INTR, another seq or port id, short or broken framing), one with
 * a bad attribute, one whose congestion name is longer than 4 KiB, one whose row may not fit
 * below `limit` (an `out` past which a row of `limit`'s bound may not start; the caller
 * subtracts the bound but the name's length), after `rowsLeft` rows, and after the row that
 * ends past `flushAt`. Returns the offset of the message it stopped at (or `end`).
 */
function walkBody(): number[] {
  const [D, OFF, E, SEQ, PID, MASK, P_, LIMIT, FLUSH_AT, LEFT, IDX, STAMP_, HEAD_, TAIL_] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
  ];
  const [LEN, R, Q, BODY, ROWS, SHORT, SKIP, CONG] = [14, 15, 16, 17, 18, 19, 20, 21];
  const CALL = 0x10, SUB = 0x6b, I32_NE = 0x47, I32_GT_U = 0x4b, MIN_LEN = 16 + 72;
  const MEMORY_COPY_OUT = [0xfc, 10, 0, 0];
  const at = (off: number) => [...get(D), ...get(OFF), ADD, ...mem(I32_LOAD, off)];
  const at16 = (off: number) => [...get(D), ...get(OFF), ADD, ...mem(LOAD16, off)];
  const inc = (l: number, by: number[]) => [...get(l), ...by, ADD, ...set(l)];
  const exitIf = (cond: number[]) => [...cond, BR_IF, 1];
  const result = (
    i: number,
    l: number,
  ) => [...i32(0), ...get(l), ...mem(I32_STORE_SRC, RESULT_AT + 4 * i)];
  return [
    ...loop(
      [...get(E), ...get(OFF), SUB, ...i32(C.NLMSG_HDRLEN), I32_LT_S],
      [
        ...at(0),
        TEE,
        LEN,
        ...i32(MIN_LEN),
        I32_LT_U,
        ...get(LEN),
        ...get(E),
        ...get(OFF),
        SUB,
        I32_GT_U,
        OR,
        BR_IF,
        1,
        ...at16(4),
        TEE,
        R,
        ...i32(C.SOCK_DIAG_BY_FAMILY),
        I32_EQ,
        ...get(R),
        ...i32(C.TCPDIAG_GETSOCK),
        I32_EQ,
        OR,
        I32_EQZ,
        ...exitIf([]),
        ...exitIf([...at16(6), ...i32(C.NLM_F_REQUEST | C.NLM_F_DUMP_INTR), AND]),
        ...exitIf([...at(8), ...get(SEQ), I32_NE]),
        ...exitIf([...at(12), ...get(PID), I32_NE]),
        ...exitIf([...get(LEFT), I32_EQZ]),
        // The attributes: a bad one is left to the caller, who counts each kind.
        ...get(D),
        ...get(OFF),
        ...i32(MIN_LEN),
        ADD,
        ...get(OFF),
        ...get(LEN),
        ADD,
        ...get(MASK),
        CALL,
        1,
        TEE,
        R,
        ...i32(3),
        AND,
        ...exitIf([]),
        // cong = the name's length, if any
        ...i32(0),
        ...i32(0),
        ...mem(I32_LOAD, 4 * (C.MAX_ATTR_TYPE + C.INET_DIAG_CONG)),
        ...i32(0),
        ...mem(I32_LOAD, 4 * C.INET_DIAG_CONG),
        ...i32(0),
        I32_LT_S,
        SELECT,
        TEE,
        CONG,
        ...i32(4096),
        I32_GT_U,
        ...exitIf([]),
        ...exitIf([...get(P_), ...get(CONG), ADD, ...get(LIMIT), I32_GT_U]),
        ...inc(SHORT, [...get(R), ...i32(2), SHR_U, ...i32(0x3f), AND]),
        ...inc(SKIP, [...get(R), ...i32(8), SHR_U]),
        // The row: its tag, 2 bytes for its length, the record.
        ...get(P_),
        ...i32(ROW_TAG),
        ...out(STORE8, 0),
        ...get(D),
        ...get(OFF),
        ...i32(C.NLMSG_HDRLEN),
        ADD,
        ...get(P_),
        ...i32(3),
        ADD,
        TEE,
        BODY,
        ...get(IDX),
        ...get(STAMP_),
        ...get(HEAD_),
        ...get(TAIL_),
        CALL,
        0,
        TEE,
        Q,
        ...get(BODY),
        SUB,
        TEE,
        R,
        ...i32(0x80),
        I32_LT_U,
        IF,
        VOID,
        // one length byte: the record moves back by one
        ...get(P_),
        ...get(R),
        ...out(STORE8, 1),
        ...get(P_),
        ...i32(2),
        ADD,
        ...get(BODY),
        ...get(R),
        ...MEMORY_COPY_OUT,
        ...get(Q),
        ...i32(1),
        SUB,
        ...set(P_),
        ELSE,
        ...get(P_),
        ...get(R),
        ...i32(0x7f),
        AND,
        ...i32(0x80),
        OR,
        ...out(STORE8, 1),
        ...get(P_),
        ...get(R),
        ...i32(7),
        SHR_U,
        ...out(STORE8, 2),
        ...get(Q),
        ...set(P_),
        END,
        ...inc(IDX, i32(1)),
        ...inc(ROWS, i32(1)),
        ...inc(LEFT, i32(-1)),
        // off = min(end, off + align4(len))
        ...plusAligned(OFF, LEN),
        TEE,
        OFF,
        ...get(E),
        ...get(OFF),
        ...get(E),
        I32_LT_S,
        SELECT,
        ...set(OFF),
        ...exitIf([...get(P_), ...get(FLUSH_AT), I32_GT_U]),
      ],
    ),
    ...result(0, P_),
    ...result(1, ROWS),
    ...result(2, IDX),
    ...result(3, SHORT),
    ...result(4, SKIP),
    ...get(OFF),
    END,
  ];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}
const name = (s: string) => [...uleb(s.length), ...new TextEncoder().encode(s)];

/**
 * The module's bytes: `encode(delta, msg, out, index, stamp, headLen, tailLen) → out'` (the
 * stamp's bytes at `stamp` of the source memory), the source memory imported as `e.m`,
 * the output memory as `e.o` (multi-memory), shared memory if `shared`.
 */
export function encoderWasm(shared = false): Uint8Array<ArrayBuffer> {
  const locals = [2, 8, I32, 1, I64]; // 8 i32 (b, n, v, k, c0…c3), 1 i64 (w)
  const fn = [...locals, ...body()];
  const loc = [1, 6, I32, ...locateBody()]; // off, rlen, type, errors, short, skipped
  const walk = [1, 8, I32, ...walkBody()]; // len, r, q, body, rows, short, skipped, cong
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...section(1, [
      3,
      0x60,
      7,
      I32,
      I32,
      I32,
      I32,
      I32,
      I32,
      I32,
      1,
      I32,
      0x60,
      4,
      I32,
      I32,
      I32,
      I32,
      1,
      I32,
      0x60,
      14,
      ...new Array(14).fill(I32),
      1,
      I32,
    ]),
    ...section(2, [
      2,
      ...name("e"),
      ...name("o"),
      0x02,
      ...(shared ? [0x03, 1, ...uleb(OUT_MAX_PAGES)] : [0x00, 1]), // shared memory has a maximum
      ...name("e"),
      ...name("m"),
      0x02,
      0x00,
      1,
    ]),
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [
      3,
      ...name("encode"),
      0x00,
      0,
      ...name("locate"),
      0x00,
      1,
      ...name("walk"),
      0x00,
      2,
    ]),
    ...section(10, [
      3,
      ...uleb(fn.length),
      ...fn,
      ...uleb(loc.length),
      ...loc,
      ...uleb(walk.length),
      ...walk,
    ]),
  ]);
}

/** The module, compiled once for each kind of output memory. */
const compiled: { plain?: WebAssembly.Module; shared?: WebAssembly.Module } = {};

const PAGE = 65536;
/**
 * The most pages of a shared output memory (4 GiB, all of wasm32): address space reserved, not
 * memory. Shared memory, because growing it never detaches a view of it: the envelopes a delivery
 * queue holds on loan are such views (EnvelopeWriter.lend), read while the next poll writes
 * further on. It costs the encoder a few per cent (measured: 1.2–1.3 ms against 1.1–1.2 for the
 * bench's 4,904 sockets), so only writers that lend have one.
 */
const OUT_MAX_PAGES = 65536;
/** The attribute table's size (attrOff then attrLen), at 0 of the source memory. */
const TABLE_BYTES = 8 * C.MAX_ATTR_TYPE;
/** parse.ts NOMINAL_ATTR_LEN, for the locate function, after the table. */
const NOMINAL_AT = TABLE_BYTES;
/** Where the walk function leaves its results, after that. */
const RESULT_AT = NOMINAL_AT + 4 * C.MAX_ATTR_TYPE;
/** Where the stamp's bytes are in the source memory, and their room. */
const STAMP_AT = RESULT_AT + 4 * RESULTS;
const STAMP_ROOM = 8192;
/** Where datagrams are in the source memory. */
const SOURCE_AT = STAMP_AT + STAMP_ROOM;

/**
 * An output buffer in the output memory of a {@link WasmKernelEncoder}, where its function
 * writes the kernel fields in place. Grows with the memory (its views are replaced, as OutBuf's
 * are).
 */
export class WasmOutBuf extends OutBuf {
  /** @internal */
  constructor(
    private readonly memory: WebAssembly.Memory,
    capacity: number,
    shared: boolean,
  ) {
    super(0);
    this.at(capacity);
    this.keepsViews = shared;
  }

  /** @internal Points the views at the first `capacity` bytes of the memory (grown to fit). */
  at(capacity: number): void {
    grow(this.memory, capacity);
    this.u8 = new Uint8Array(this.memory.buffer, 0, capacity);
    this.dv = new DataView(this.memory.buffer, 0, capacity);
  }

  override ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.u8.length) return;
    let cap = this.u8.length * 2 || PAGE;
    while (cap < need) cap *= 2;
    this.at(cap);
  }
}

/** Grows `m` to at least `bytes`; whether it grew (every view of it is then stale). */
function grow(m: WebAssembly.Memory, bytes: number): boolean {
  const have = m.buffer.byteLength;
  if (bytes <= have) return false;
  m.grow(Math.ceil((bytes - have) / PAGE));
  return true;
}

/** A receive buffer and a socket view whose bytes and attribute table the function reads in place. */
export interface PinnedSource {
  /** Where the dumper receives. */
  recv: Uint8Array;
  /** The attribute table (the view's attrOff and attrLen). */
  attrOff: Int32Array;
  attrLen: Int32Array;
  /** Locates a message's attributes of the receive buffer into the table (SocketView.locate). */
  locate: AttributeLocator;
}

/** The locate function's signature (see {@link locateBody}). */
type Locate = (delta: number, start: number, end: number, mask: number) => number;
/** The walk function's signature (see {@link walkBody}). */
type Walk = (
  delta: number,
  off: number,
  end: number,
  seq: number,
  pid: number,
  mask: number,
  out: number,
  limit: number,
  flushAt: number,
  rowsLeft: number,
  index: number,
  stamp: number,
  headLen: number,
  tailLen: number,
) => number;

/**
 * One instance of the function, with its two memories: the source (the attribute table at 0,
 * the stamp's bytes, then the datagram) and the output ({@link WasmOutBuf}, then scratch room
 * for other buffers). A datagram is read in place when it lies in the source memory
 * ({@link WasmKernelEncoder.pin}: the dumper receives there), else it is copied in, once, at the
 * first of its sockets.
 */
export class WasmKernelEncoder {
  private readonly src: WebAssembly.Memory;
  private readonly dst: WebAssembly.Memory;
  private readonly fn: Encode;
  private readonly locateFn: Locate;
  private readonly walkFn: Walk;
  private results: Uint32Array;
  /** What the last {@link WasmKernelEncoder.walk} wrote and counted. */
  readonly walked: WalkCounts = { rows: 0, attrShort: 0, attrSkipped: 0 };
  private srcU8: Uint8Array;
  private table: Int32Array;
  private out: WasmOutBuf | undefined;
  private pinned: PinnedSource | undefined;
  private lastSrc: Uint8Array | undefined;
  private lastDatagram = -1;
  private lastStamp: StampBytes | undefined;
  /** Whether the last stamp is in the source memory (else its bytes are written here). */
  private stampIn = false;

  /** @param shared whether the output memory is shared memory (see OUT_MAX_PAGES) */
  constructor(readonly shared = false) {
    const kind = shared ? "shared" : "plain";
    const module = compiled[kind] ??= new WebAssembly.Module(encoderWasm(shared));
    this.src = new WebAssembly.Memory({ initial: 2 });
    this.dst = shared
      ? new WebAssembly.Memory({ initial: 1, maximum: OUT_MAX_PAGES, shared: true })
      : new WebAssembly.Memory({ initial: 1 });
    const inst = new WebAssembly.Instance(module, { e: { m: this.src, o: this.dst } });
    this.fn = inst.exports.encode as Encode;
    this.locateFn = inst.exports.locate as Locate;
    this.walkFn = inst.exports.walk as Walk;
    this.results = new Uint32Array(this.src.buffer, RESULT_AT, RESULTS);
    new Int32Array(this.src.buffer, NOMINAL_AT, C.MAX_ATTR_TYPE).set(NOMINAL_ATTR_LEN);
    this.srcU8 = new Uint8Array(this.src.buffer);
    this.table = new Int32Array(this.src.buffer, 0, 2 * C.MAX_ATTR_TYPE);
  }

  /** The output buffer in the output memory (one per encoder: the same one each call). */
  outBuf(capacity: number): WasmOutBuf {
    this.out ??= new WasmOutBuf(this.dst, capacity, this.shared);
    return this.out;
  }

  /**
   * A receive buffer of `bytes` and an attribute table in the source memory, read in place (no
   * copy); the memory never grows after (datagrams from elsewhere are copied past the buffer).
   * Once per encoder.
   */
  pin(bytes: number): PinnedSource {
    if (this.pinned) throw new Error("The encoder's source memory is already pinned");
    // Room for the buffer, and as much again for a copy of a datagram from elsewhere.
    this.sourceRoom(SOURCE_AT + 2 * bytes + 16);
    const locate = this.locateFn;
    this.pinned = {
      recv: new Uint8Array(this.src.buffer, SOURCE_AT, bytes),
      attrOff: new Int32Array(this.src.buffer, 0, C.MAX_ATTR_TYPE),
      attrLen: new Int32Array(this.src.buffer, 4 * C.MAX_ATTR_TYPE, C.MAX_ATTR_TYPE),
      locate: (start, end, mask) => locate(SOURCE_AT, start, end, mask),
    };
    return this.pinned;
  }

  private sourceRoom(bytes: number): void {
    if (!grow(this.src, bytes)) return;
    if (this.pinned) throw new Error("Pinned source memory cannot grow");
    this.srcU8 = new Uint8Array(this.src.buffer);
    this.table = new Int32Array(this.src.buffer, 0, 2 * C.MAX_ATTR_TYPE);
    this.results = new Uint32Array(this.src.buffer, RESULT_AT, RESULTS);
    this.lastSrc = undefined;
  }

  /** Where the function reads the view's datagram (copied in first when it lies elsewhere). */
  private load(view: SocketView): number {
    if (view.attrOff !== this.pinned?.attrOff) {
      this.table.set(view.attrOff, 0);
      this.table.set(view.attrLen, C.MAX_ATTR_TYPE);
    }
    const src = view.u8;
    if (src === this.pinned?.recv) return SOURCE_AT;
    // Past the pinned buffer, if any.
    const at = SOURCE_AT + (this.pinned?.recv.length ?? 0);
    if (src !== this.lastSrc || view.datagram !== this.lastDatagram) {
      const n = view.end;
      this.sourceRoom(at + n + 16);
      this.srcU8.set(n === src.length ? src : src.subarray(0, n), at);
      this.lastSrc = src;
      this.lastDatagram = view.datagram;
    }
    return at;
  }

  /** Puts the stamp's bytes in the source memory, where they fit (`stampIn`). */
  private useStamp(stamp: StampBytes): void {
    if (stamp === this.lastStamp) return;
    this.lastStamp = stamp;
    this.stampIn = stamp.head.length + stamp.tail.length <= STAMP_ROOM;
    if (this.stampIn) {
      this.srcU8.set(stamp.head, STAMP_AT);
      this.srcU8.set(stamp.tail, STAMP_AT + stamp.head.length);
    }
  }

  /**
   * Writes Envelope rows (as EnvelopeWriter.add does) for the plain socket messages of the
   * view's datagram from `off` on, up to `end`, in one call: the framing checks of parse.ts
   * parseDatagram, locate and encode in one WebAssembly function (see walkBody for where it
   * stops: at the first message it leaves to the caller, after `rowsLeft` rows, after a row that
   * ends past `flushAt`, before a row that might not end below `limit`). Only for the pinned
   * receive buffer and this encoder's own output buffer, and a stamp that fits its room;
   * elsewhere it writes nothing. Moves `out.pos` and `view.index` on; returns the offset it
   * stopped at, and its counts in {@link WasmKernelEncoder.walked}.
   */
  walk(
    view: SocketView,
    stamp: StampBytes,
    out: OutBuf,
    off: number,
    end: number,
    expect: WalkExpect,
    limit: number,
    flushAt: number,
    rowsLeft: number,
  ): number {
    const w = this.walked;
    w.rows = w.attrShort = w.attrSkipped = 0;
    if (view.u8 !== this.pinned?.recv || out !== this.out) return off;
    this.useStamp(stamp);
    if (!this.stampIn) return off;
    const head = stamp.head.length;
    // The bound of a row but its name's length, from the last place a row may start.
    const last = Math.min(limit, out.u8.length) - KERNEL_BYTES_BOUND - head - stamp.tail.length;
    // Addresses are unsigned in the function (a shared output memory may pass 2 GiB).
    if (last < out.pos) return off;
    const next = this.walkFn(
      SOURCE_AT,
      off,
      end,
      expect.seq,
      expect.pid,
      expect.mask,
      out.pos,
      last,
      Math.min(flushAt, 0xffff_ffff),
      Math.min(rowsLeft, 0x7fff_ffff),
      view.index,
      STAMP_AT,
      head,
      stamp.tail.length,
    );
    const r = this.results;
    out.pos = r[0];
    w.rows = r[1];
    view.index = r[2];
    w.attrShort = r[3];
    w.attrSkipped = r[4];
    return next;
  }

  /**
   * Writes the record of `view` (the stamp's bytes, record_counter, the kernel fields) into
   * `out` at its position (any OutBuf; `room`: bytes it needs, ensured by the caller).
   */
  encodeInto(view: SocketView, stamp: StampBytes, out: OutBuf, room: number): void {
    const delta = this.load(view);
    this.useStamp(stamp);
    let p = out.pos;
    let index = view.index;
    let head = stamp.head.length;
    let tail = stamp.tail.length;
    if (!this.stampIn) {
      // A stamp too large for its room (kilobytes of labels): written here, the rest in there.
      const o = out.u8;
      o.set(stamp.head, p);
      p += head;
      if (index !== 0) {
        o[p] = 0xe0; // record_counter (60): tag e0 03
        o[p + 1] = 0x03;
        p = varint32(o, p + 2, index);
      }
      o.set(stamp.tail, p);
      p += tail;
      index = head = tail = 0;
    }
    if (out === this.out) {
      out.pos = this.fn(delta, view.msg, p, index, STAMP_AT, head, tail) >>> 0;
      return;
    }
    // Another buffer: through scratch room past the output buffer, then copied.
    const scratch = this.out?.u8.length ?? 0;
    if (grow(this.dst, scratch + room)) this.out?.at(this.out.u8.length);
    const end = this.fn(delta, view.msg, scratch, index, STAMP_AT, head, tail) >>> 0;
    out.u8.set(new Uint8Array(this.dst.buffer, scratch, end - scratch), p);
    out.pos = p + end - scratch;
  }
}

/** What {@link WasmKernelEncoder.walk} takes: the dump's nlmsg_seq and port id, the attributes. */
export interface WalkExpect {
  /** nlmsg_seq of the dump's replies. */
  seq: number;
  /** nlmsg_pid of the dump's replies (the socket's port id). */
  pid: number;
  /** Attribute types to locate (parse.ts ParseOptions.mask). */
  mask: number;
}

/** What {@link WasmKernelEncoder.walk} did besides moving `out.pos` and `view.index` on. */
export interface WalkCounts {
  /** Rows written (one per socket message). */
  rows: number;
  /** Attributes shorter than their struct (parse.ts ParseStats.attrShort). */
  attrShort: number;
  /** Attributes no decoder wants (ParseStats.attrSkipped). */
  attrSkipped: number;
}

/** The function's signature (see {@link encoderWasm}). */
type Encode = (
  delta: number,
  msg: number,
  out: number,
  index: number,
  stamp: number,
  headLen: number,
  tailLen: number,
) => number;
