/**
 * Generates `encoder_gen.ts`: the kernel fields of {@link F.FIELDS} as straight-line code (one
 * read, one zero test and one tag write per field, constants folded), which V8 compiles to far
 * less work per socket than an interpreter over the table. Run `deno task gen:encoder` after
 * changing the field table; a test fails while the committed file is stale.
 *
 * @module
 */
import * as F from "./fields.ts";
import * as C from "../netlink/constants.ts";

const INET_DIAG_MSG_LEN = C.INET_DIAG_MSG_LEN;

/** Function names by attribute type: INET_DIAG_TCLASS → tclass. */
const ATTR_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(C).filter(([k, v]) =>
    k.startsWith("INET_DIAG_") && typeof v === "number" &&
    !/_(LEN|REQ|MSG)/.test(k)
  ).map(([k, v]) => [v, k.slice(10).toLowerCase()]),
);

function tagBytes(s: F.FieldSpec): number[] {
  let tag = (s.number << 3) | (s.type === "string" || s.type === "bytes" ? 2 : 0);
  const bytes: number[] = [];
  while (tag > 0x7f) {
    bytes.push((tag & 0x7f) | 0x80);
    tag >>>= 7;
  }
  bytes.push(tag);
  return bytes;
}

/** A varint of `lo` + `hi` × 2^32, inline (see {@link u32Field}). */
const VARINT64 = [
  "if (hi === 0) {",
  "while (lo > 0x7f) {",
  "o[p++] = (lo & 0x7f) | 0x80;",
  "lo >>>= 7;",
  "}",
  "o[p++] = lo;",
  "} else {",
  "o[p] = (lo & 0x7f) | 0x80;",
  "o[p + 1] = ((lo >>> 7) & 0x7f) | 0x80;",
  "o[p + 2] = ((lo >>> 14) & 0x7f) | 0x80;",
  "o[p + 3] = ((lo >>> 21) & 0x7f) | 0x80;",
  "p += 4;",
  "v = (lo >>> 28) | ((hi & 7) << 4);",
  "hi >>>= 3;",
  "if (hi === 0) {",
  "o[p++] = v;",
  "} else {",
  "o[p++] = v | 0x80;",
  "while (hi > 0x7f) {",
  "o[p++] = (hi & 0x7f) | 0x80;",
  "hi >>>= 7;",
  "}",
  "o[p++] = hi;",
  "}",
  "}",
];

const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

function writeTag(s: F.FieldSpec): string[] {
  const t = tagBytes(s);
  return [
    ...t.map((b, i) => `o[p${i ? ` + ${i}` : ""}] = ${hex(b)};`),
    `p += ${t.length};`,
  ];
}

/** A uint32 value already in `v`. */
function u32Field(s: F.FieldSpec, expr: string): string[] {
  // The varint is written inline: a call would box a uint32 above 2^30 into a heap number.
  const body = [
    ...writeTag(s),
    "while (v > 0x7f) {",
    "o[p++] = (v & 0x7f) | 0x80;",
    "v >>>= 7;",
    "}",
    "o[p++] = v;",
  ];
  return [
    `// ${s.number} ${s.name}`,
    `v = ${expr};`,
    ...(s.optional ? body : ["if (v !== 0) {", ...body, "}"]),
  ];
}

function field(s: F.FieldSpec, base: string): string[] {
  const a = (k: number) => `${base} + ${s.off + k}`;
  switch (s.read) {
    case F.READ_U8:
      return u32Field(s, `src[${a(0)}]`);
    case F.READ_U16:
      return u32Field(s, `src[${a(0)}] | (src[${a(1)}] << 8)`);
    case F.READ_U32:
      return u32Field(s, `dv.getUint32(${a(0)}, true)`);
    case F.READ_BE16:
      return u32Field(s, `(src[${a(0)}] << 8) | src[${a(1)}]`);
    case F.READ_NIB_LO:
      return u32Field(s, `src[${a(0)}] & 0x0f`);
    case F.READ_NIB_HI:
      return u32Field(s, `src[${a(0)}] >>> 4`);
    case F.READ_BIT0:
      return u32Field(s, `src[${a(0)}] & 1`);
    case F.READ_BITS12:
      return u32Field(s, `(src[${a(0)}] >>> 1) & 3`);
    case F.READ_CONG_ENUM:
      return u32Field(s, `congestionEnum(src, ${base}, ${base} + n)`);
    case F.READ_U64: {
      const body = [...writeTag(s), ...VARINT64];
      return [
        `// ${s.number} ${s.name}`,
        `lo = dv.getUint32(${a(0)}, true);`,
        `hi = dv.getUint32(${a(4)}, true);`,
        ...(s.optional ? body : ["if ((lo | hi) !== 0) {", ...body, "}"]),
      ];
    }
    case F.READ_ADDR16:
      return [
        `// ${s.number} ${s.name}`,
        ...writeTag(s),
        "o[p++] = 16;",
        // Four 32-bit copies rather than sixteen byte copies.
        ...[0, 4, 8, 12].map((k) => `od.setUint32(p + ${k}, dv.getUint32(${a(k)}, true), true);`),
        "p += 16;",
      ];
    case F.READ_CSTR: {
      const body = [
        ...writeTag(s),
        "p = asciiBytes(o, p, src, " + base + ", v);",
      ];
      return [
        `// ${s.number} ${s.name}`,
        `v = cstrLen(src, ${base}, ${base} + n);`,
        ...(s.optional ? body : ["if (v !== 0) {", ...body, "}"]),
      ];
    }
  }
  throw new Error(`No code for read kind ${s.read}: field ${s.name}`);
}

const PARAMS: [string, string][] = [
  ["src", "Uint8Array"],
  ["dv", "DataView"],
  ["b", "number"],
  ["n", "number"],
  ["o", "Uint8Array"],
  ["od", "DataView"],
  ["p", "number"],
];

/**
 * The source of `encoder_gen.ts`: one function per source (the header, each attribute), each
 * small enough for V8's optimizing compiler (one function of every field would not be), and
 * `encodeKernelFields` calling them in order.
 */
export function encoderSource(): string {
  const kernel = F.FIELDS.filter((s) => s.src >= F.SRC_MSG);
  const groups: number[] = [];
  for (const s of kernel) if (!groups.includes(s.src)) groups.push(s.src);
  const fns: string[] = [];
  const calls: string[] = [];
  for (const g of groups) {
    const fields = kernel.filter((s) => s.src === g);
    const lines: string[] = [];
    for (const s of fields) {
      if (g === F.SRC_MSG) {
        if (s.off + s.width > INET_DIAG_MSG_LEN) {
          throw new Error(`Field past the inet_diag_msg header: ${s.name}`);
        }
        lines.push(...field(s, "b"));
      } else {
        // A field the attribute is too short for (an older kernel's struct) is absent.
        lines.push(`if (n >= ${s.off + s.width}) {`, ...field(s, "b"), "}");
      }
    }
    const text = lines.join("\n");
    const used = (name: string) => new RegExp(`\\b${name}\\b`).test(text);
    const params = PARAMS.filter(([name]) => used(name));
    const locals = ["v", "lo", "hi"].filter(used).map((l) => `  let ${l} = 0;`);
    const name = g === F.SRC_MSG ? "header" : ATTR_NAMES[g] ?? `attr${g}`;
    const what = g === F.SRC_MSG
      ? "struct inet_diag_msg (always whole: the parser checked its length)"
      : `attribute ${name}`;
    fns.push(
      `/** Fields of ${what}. */
function ${name}(${params.map(([p, t]) => `${p}: ${t}`).join(", ")}): number {
${locals.join("\n")}
${lines.map((l) => `  ${l}`).join("\n")}
  return p;
}`,
    );
    const args = params.map(([p]) =>
      p === "b" ? (g === F.SRC_MSG ? "m" : "b") : p === "n" ? `attrLen[${g}]` : p
    ).join(", ");
    calls.push(
      g === F.SRC_MSG
        ? `  p = ${name}(${args});`
        : `  b = attrOff[${g}];\n  if (b >= 0) p = ${name}(${args});`,
    );
  }
  return `// Generated by src/record/encoder_codegen.ts from the field table (deno task gen:encoder).
// Do not edit: change src/record/fields.ts and regenerate.
import { congestionEnum, cstrLen } from "./fields.ts";
import { asciiBytes } from "./wire.ts";

/**
 * Writes the kernel fields of one XtcpFlatRecord (field-number order within each source) from a
 * parsed socket into \`o\` at \`p\`; returns the new position. The caller ensured the room.
 */
export function encodeKernelFields(
  src: Uint8Array,
  dv: DataView,
  m: number,
  attrOff: Int32Array,
  attrLen: Int32Array,
  o: Uint8Array,
  od: DataView,
  p: number,
): number {
  let b = 0;
${calls.join("\n")}
  return p;
}

${fns.join("\n\n")}
`;
}

if (import.meta.main) console.log(encoderSource().trimEnd());
