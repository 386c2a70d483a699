/**
 * Destinations by `--dest` spec: `null`, `stdout`, `stderr`, or `scheme:address` (also
 * `scheme://address`). The broker and archive destinations (kafka: over kafkajs; nats, nsq,
 * valkey/redis: their protocols written here; s3parquet: Parquet and S3 written here) are not in
 * this module's graph: an entrypoint adds them with {@link registerDestinations} (brokers.ts; the
 * full `xtcp2` does, `xtcp2_minimal` does not), the way the original's build tags add them. Each
 * is loaded only when its destination is opened.
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import type { Destination, DestOptions } from "./destination.ts";
import { FileDest } from "./file.ts";
import { HttpDest } from "./http.ts";
import { NullDest } from "./null.ts";
import { StdioDest } from "./stdio.ts";
import { TcpDest } from "./tcp.ts";
import { UdpDest } from "./udp.ts";
import { UnixDest } from "./unix.ts";
import { UnixgramDest } from "./unixgram.ts";

/** Schemes this build opens. */
export const DEST_SCHEMES = [
  "null",
  "stdout",
  "stderr",
  "file",
  "udp",
  "unix",
  "unixgram",
  "tcp",
  "http",
  "https",
  "kafka",
  "nats",
  "nsq",
  "valkey",
  "redis",
  "valkey-stream",
  "redis-stream",
  "s3parquet",
] as const;

/** A destination scheme. */
export type DestScheme = (typeof DEST_SCHEMES)[number];

const PATH_SCHEMES: readonly string[] = ["file", "unix", "unixgram"];

/** A `--dest` value taken apart. */
export interface DestSpec {
  scheme: DestScheme;
  /**
   * Path, HOST:PORT, the whole URL for http and https, the endpoint URL for s3parquet ("" for
   * null, stdout, stderr, and s3parquet with -s3Endpoint).
   */
  address: string;
}

/** Checks an http(s) destination: the whole value is the URL. */
function parseUrlDest(scheme: "http" | "https", dest: string): DestSpec {
  let url: URL;
  try {
    url = new URL(dest);
  } catch (err) {
    throw new RangeError(`${scheme}: not a URL: "${dest}"`, { cause: err });
  }
  if (url.protocol !== `${scheme}:` || !url.hostname) {
    throw new RangeError(`${scheme}: needs ${scheme}://HOST[:PORT][/PATH][?QUERY]`);
  }
  return { scheme, address: dest };
}

/** s3parquet: nothing (the endpoint comes from -s3Endpoint) or an http(s) URL. */
function parseS3Dest(address: string): DestSpec {
  if (address === "") return { scheme: "s3parquet", address };
  let url: URL | undefined;
  try {
    url = new URL(address);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) {
    throw new RangeError(
      `s3parquet: needs s3parquet: (with -s3Endpoint) or s3parquet:http(s)://HOST[:PORT], not "${address}"`,
    );
  }
  return { scheme: "s3parquet", address };
}

function isScheme(s: string): s is DestScheme {
  return (DEST_SCHEMES as readonly string[]).includes(s);
}

/**
 * Parses and checks a `--dest` value; throws a RangeError saying what is wrong.
 *
 * @example
 * ```ts
 * parseDest("udp://[::1]:9000"); // { scheme: "udp", address: "[::1]:9000" }
 * parseDest("http://127.0.0.1:8123/?query=SELECT%201"); // the address is the whole URL
 * ```
 */
export function parseDest(dest: string): DestSpec {
  if (dest === "null" || dest === "null:" || dest === "stdout" || dest === "stderr") {
    return { scheme: dest === "null:" ? "null" : dest, address: "" };
  }
  const m = /^([a-z0-9-]+):(.*)$/.exec(dest);
  if (!m || m[1] === undefined || m[2] === undefined) {
    throw new RangeError(
      `must be null, stdout, stderr or scheme:address (schemes: ${DEST_SCHEMES.join(", ")})`,
    );
  }
  const scheme = m[1];
  const address = m[2].replace(/^\/\//, "");
  if (!isScheme(scheme)) {
    throw new RangeError(
      `unknown destination scheme "${scheme}"; valid schemes are ${DEST_SCHEMES.join(", ")}`,
    );
  }
  if (scheme === "null" || scheme === "stdout" || scheme === "stderr") return { scheme, address };
  if (scheme === "http" || scheme === "https") return parseUrlDest(scheme, dest);
  if (scheme === "s3parquet") return parseS3Dest(m[2]);
  if (PATH_SCHEMES.includes(scheme)) {
    if (!address) throw new RangeError(`${scheme}: needs a path`);
    return { scheme, address };
  }
  try {
    const { port } = splitHostPort(address);
    if (port < 1) throw new RangeError("port 0");
  } catch (err) {
    throw new RangeError(`${scheme}: needs HOST:PORT (IPv6 as [addr]:port, port 1 to 65535)`, {
      cause: err,
    });
  }
  return { scheme, address };
}

/** Opens a destination that an entrypoint registered. */
export type DestOpener = (
  scheme: DestScheme,
  address: string,
  opts: DestOptions,
) => Promise<Destination>;

/** Schemes whose destination is registered by the entrypoint (brokers.ts). */
export const REGISTERED_SCHEMES = [
  "kafka",
  "nats",
  "nsq",
  "valkey",
  "redis",
  "valkey-stream",
  "redis-stream",
  "s3parquet",
] as const satisfies readonly DestScheme[];

/** A scheme registered by the entrypoint. */
export type RegisteredScheme = (typeof REGISTERED_SCHEMES)[number];

const registered = new Map<RegisteredScheme, DestOpener>();

/**
 * Adds the openers of destinations whose clients this module does not import; an entrypoint
 * calls it once at startup.
 *
 * @example
 * ```ts
 * registerDestinations(BROKER_DESTINATIONS); // src/dest/brokers.ts
 * ```
 */
export function registerDestinations(
  openers: Readonly<Record<RegisteredScheme, DestOpener>>,
): void {
  for (const scheme of REGISTERED_SCHEMES) registered.set(scheme, openers[scheme]);
}

function openRegistered(scheme: RegisteredScheme, address: string, opts: DestOptions) {
  const open = registered.get(scheme);
  if (!open) {
    throw new RangeError(
      `destination ${scheme} is not in this build (the minimal one has no broker or s3parquet destinations): use the full xtcp2`,
    );
  }
  return open(scheme, address, opts);
}

/** Whether a destination writes in place without the delivery queue (null, stdio, file). */
export function isLocalScheme(scheme: DestScheme): boolean {
  return scheme === "null" || scheme === "stdout" || scheme === "stderr" || scheme === "file";
}

/**
 * Opens the destination named by a `--dest` value. Throws what parseDest throws, or the
 * destination's own error when it cannot start (a broker that does not answer).
 *
 * @example
 * ```ts
 * await using dest = await openDestination("file:/var/lib/xtcp2/xtcp", options);
 * ```
 */
export async function openDestination(dest: string, opts: DestOptions): Promise<Destination> {
  const { scheme, address } = parseDest(dest);
  switch (scheme) {
    case "null":
      return new NullDest();
    case "stdout":
    case "stderr":
      return new StdioDest(scheme);
    case "file":
      return new FileDest(address, opts);
    case "udp":
      return UdpDest.open(address, opts);
    case "unix":
      return await UnixDest.open(address, opts);
    case "unixgram":
      return UnixgramDest.open(address, opts);
    case "tcp":
      return await TcpDest.open(address, opts);
    case "http":
    case "https":
      return await HttpDest.open(address, opts);
    case "kafka":
    case "nats":
    case "nsq":
    case "valkey":
    case "redis":
    case "valkey-stream":
    case "redis-stream":
    case "s3parquet":
      return await openRegistered(scheme, address, opts);
  }
}
