/**
 * The attribute decoders a user can enable (`--deserializers`), and the `idiag_ext` bitmask of
 * the dump request derived from them.
 *
 * @module
 */
import * as C from "./constants.ts";

/** Decoder name (as on the command line) → the inet_diag attribute type it decodes. */
export const DECODERS: Readonly<Record<string, number>> = {
  meminfo: C.INET_DIAG_MEMINFO,
  info: C.INET_DIAG_INFO,
  vegas: C.INET_DIAG_VEGASINFO,
  cong: C.INET_DIAG_CONG,
  tos: C.INET_DIAG_TOS,
  tc: C.INET_DIAG_TCLASS,
  skmem: C.INET_DIAG_SKMEMINFO,
  shut: C.INET_DIAG_SHUTDOWN,
  dctcp: C.INET_DIAG_DCTCPINFO,
  bbr: C.INET_DIAG_BBRINFO,
  classid: C.INET_DIAG_CLASS_ID,
  cgroup: C.INET_DIAG_CGROUP_ID,
  sockopt: C.INET_DIAG_SOCKOPT,
};

/** Every decoder name, in the reference's order. */
export const DECODER_NAMES: readonly string[] = Object.keys(DECODERS);

/** Error for a `--deserializers` value that names an unknown decoder. */
export class DeserializerSpecError extends Error {
  /** Creates the error for `spec`, naming `bad`. */
  constructor(readonly spec: string, readonly bad: string) {
    super(
      `Unknown deserializer "${bad}" in "${spec}": valid names are default, all, or a comma list of ${
        DECODER_NAMES.join(", ")
      }`,
    );
    this.name = "DeserializerSpecError";
  }
}

/**
 * The decoder names a `--deserializers` value enables: `default` every decoder but meminfo
 * (deprecated, duplicates skmem), `all` every one, `""` none, and a comma list exactly the
 * decoders it names. Throws DeserializerSpecError naming an unknown one.
 *
 * @example
 * ```ts
 * decoderNames("info, cong"); // ["info", "cong"]
 * ```
 */
export function decoderNames(spec: string): string[] {
  const s = spec.trim();
  if (s === "all") return [...DECODER_NAMES];
  if (s === "default") return DECODER_NAMES.filter((n) => n !== "meminfo");
  const names = s.split(",").map((n) => n.trim()).filter((n) => n !== "");
  for (const name of names) if (!(name in DECODERS)) throw new DeserializerSpecError(spec, name);
  return names;
}

/**
 * The bitmask of attribute types (bit N set = attribute type N decoded) of decoder names;
 * unknown names are ignored.
 *
 * @example
 * ```ts
 * decoderMask(["info", "cong"]); // (1 << 2) | (1 << 4)
 * ```
 */
export function decoderMask(names: Iterable<string>): number {
  let mask = 0;
  for (const name of names) {
    const type = DECODERS[name];
    if (type !== undefined) mask |= 1 << type;
  }
  return mask;
}

/**
 * Parses a `--deserializers` value (see {@link decoderNames}) into a bitmask of enabled
 * attribute types.
 *
 * @example
 * ```ts
 * const mask = parseDeserializers("info,cong"); // (1 << 2) | (1 << 4)
 * ```
 */
export function parseDeserializers(spec: string): number {
  return decoderMask(decoderNames(spec));
}

/**
 * The `idiag_ext` byte for a decoder mask: bit (N−1) for each enabled extension N in 1..8, and the
 * VEGASINFO bit whenever vegas, dctcp or bbr is enabled (the kernel gates all three congestion
 * control info attributes behind that one bit). The other attributes are sent unconditionally.
 *
 * @example
 * ```ts
 * idiagExt(parseDeserializers("default")); // 0xfe
 * ```
 */
export function idiagExt(mask: number): number {
  let ext = 0;
  for (let t = 1; t <= 8; t++) if (mask & (1 << t)) ext |= 1 << (t - 1);
  const ccInfo = (1 << C.INET_DIAG_VEGASINFO) | (1 << C.INET_DIAG_DCTCPINFO) |
    (1 << C.INET_DIAG_BBRINFO);
  if (mask & ccInfo) ext |= 1 << (C.INET_DIAG_VEGASINFO - 1);
  return ext;
}
