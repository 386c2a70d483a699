/**
 * The HTTP listener: /metrics (Prometheus), /healthz (200 once serving), /readyz (200 while the
 * poll loop runs, 503 before and during shutdown). Loopback by default; the bearer token, when
 * set, guards /metrics (probes stay open).
 *
 * @module
 */
import { parseListen } from "../util/address.ts";
import type { Metrics } from "./metrics.ts";

/** Options of {@link serveHttp}. */
export interface HttpOptions {
  listen: string;
  metricsPath: string;
  token: string;
  metrics: Metrics;
  ready: () => boolean;
}

/** Starts the listener (bound when this returns; throws if the address is taken). */
export function serveHttp(o: HttpOptions): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const { hostname, port } = parseListen(o.listen);
  return Promise.resolve(
    Deno.serve({ hostname, port, onListen: () => {} }, async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/healthz") return new Response("ok\n");
      if (path === "/readyz") {
        return o.ready() ? new Response("ready\n") : new Response("not ready\n", { status: 503 });
      }
      if (path === o.metricsPath) {
        if (o.token && req.headers.get("authorization") !== `Bearer ${o.token}`) {
          return new Response("missing or invalid bearer token\n", { status: 401 });
        }
        const { text, contentType } = await o.metrics.expose();
        return new Response(text, { headers: { "content-type": contentType } });
      }
      return new Response("not found\n", { status: 404 });
    }),
  );
}

/**
 * `--healthcheck`: asks the running daemon's /readyz (3 s timeout). Returns the exit status:
 * 0 when ready, 1 otherwise.
 */
export async function healthcheck(listen: string): Promise<number> {
  const { port } = parseListen(listen);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, {
      signal: AbortSignal.timeout(3000),
    });
    await res.body?.cancel();
    return res.status === 200 ? 0 : 1;
  } catch {
    return 1;
  }
}
