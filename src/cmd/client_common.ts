/**
 * What xtcp2ctl and xtcp2client share: the connection to the daemon's gRPC API.
 *
 * @module
 */
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, type Http2SessionManager } from "@connectrpc/connect-node";

/** Where the daemon's API is. */
export interface Target {
  target: string;
  port: string;
  token: string;
}

/** `http://host:port` of the daemon's API. */
export function baseUrl(t: Pick<Target, "target" | "port">): string {
  const host = t.target.includes(":") && !t.target.startsWith("[") ? `[${t.target}]` : t.target;
  return `http://${host}:${t.port}`;
}

/**
 * gRPC (HTTP/2) transport to the daemon, with the bearer token when one is given. Pass a session
 * manager to be able to close the connection yourself.
 */
export function transport(t: Target, sessionManager?: Http2SessionManager): Transport {
  const auth: Interceptor = (next) => (req) => {
    if (t.token) req.header.set("authorization", `Bearer ${t.token}`);
    return next(req);
  };
  return createGrpcTransport({
    baseUrl: baseUrl(t),
    interceptors: [auth],
    ...(sessionManager ? { sessionManager } : {}),
  });
}

/** Options every client takes. */
export const TARGET_OPTIONS = {
  target: { type: "string", default: "localhost" },
  port: { type: "string", default: "8889" },
  token: { type: "string", default: "" },
  help: { type: "boolean", short: "h" },
} as const;

/** One line for an error: the gRPC status name and message, or the error's message. */
export function describeError(err: unknown): string {
  if (err instanceof ConnectError) return `${Code[err.code]}: ${err.rawMessage}`;
  return err instanceof Error ? err.message : String(err);
}

/** A whole-number flag value at least `min`; throws a RangeError naming the flag otherwise. */
export function intFlag(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(`Invalid value for --${name}: "${value}": must be an integer >= ${min}`);
  }
  return n;
}

/**
 * Runs a client's `main` as the program: exits with its status, or prints the error as one line
 * (`name: CODE: message`) and exits 1.
 *
 * @example
 * ```ts
 * if (import.meta.main) await runMain("xtcp2ctl", main);
 * ```
 */
export async function runMain(name: string, main: (args: string[]) => Promise<number>) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`${name}: ${describeError(err)}`);
    Deno.exit(1);
  }
}
