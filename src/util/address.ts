/**
 * Network addresses as the flags write them: `HOST:PORT`, `[v6]:PORT`, a bare IPv6 literal with
 * the port after its last colon, and (for listeners) `:PORT`.
 *
 * @module
 */

/** A host and a port. */
export interface HostPort {
  /** Name or address, without brackets. */
  host: string;
  /** 0 to 65535. */
  port: number;
}

const BRACKETED = /^\[([^\]]+)\]:(\d+)$/;
const PLAIN = /^([^\[\]]*):(\d+)$/;

/**
 * Splits `HOST:PORT` (IPv6 as `[addr]:port`, or a bare literal with the port last; a leading
 * `//` is ignored). Throws a RangeError naming the text when it is not of that shape or the port
 * is out of range; an empty host is allowed only with `allowEmptyHost` (listeners: `:9088`).
 *
 * @example
 * ```ts
 * splitHostPort("[::1]:4222"); // { host: "::1", port: 4222 }
 * splitHostPort("127.0.0.1:9000"); // { host: "127.0.0.1", port: 9000 }
 * ```
 */
export function splitHostPort(text: string, allowEmptyHost = false): HostPort {
  const a = text.replace(/^\/\//, "");
  const m = BRACKETED.exec(a) ?? PLAIN.exec(a);
  if (!m || m[1] === undefined || m[2] === undefined || (!m[1] && !allowEmptyHost)) {
    throw new RangeError(`Not HOST:PORT: "${text}" (IPv6 as [addr]:port)`);
  }
  const port = Number(m[2]);
  if (port > 65535) throw new RangeError(`Port out of range: "${text}": must be at most 65535`);
  return { host: m[1], port };
}

/**
 * A listen address (`HOST:PORT`, `:PORT` for every address, `[v6]:PORT`) as Deno.serve takes it.
 *
 * @example
 * ```ts
 * parseListen(":9088"); // { hostname: "0.0.0.0", port: 9088 }
 * ```
 */
export function parseListen(text: string): { hostname: string; port: number } {
  const { host, port } = splitHostPort(text, true);
  return { hostname: host || "0.0.0.0", port };
}
