/**
 * The shutdown guard: when shutdown hangs, the daemon exits with status 1 after 5 s and says
 * what hung. The hang is a real one: a NATS server (Debian's nats-server, on a free loopback
 * port) stopped with SIGSTOP while the daemon publishes to it, with a send timeout and a shutdown
 * drain longer than the guard: the flush in flight waits for a server that never answers, and the
 * delivery queue cannot drain.
 */
import assert from "node:assert/strict";
import { startDaemon } from "./support/daemon.ts";
import { EVERY_SECOND, freePort, until } from "./support/run.ts";
import { missing, NATS, startServer } from "./support/servers.ts";

Deno.test({
  name:
    "shutdown that hangs (nats-server stopped with SIGSTOP) ends with status 1 after the 5 s guard, naming what hung",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const nats = {
      port,
      child: await startServer(NATS, ["-a", "127.0.0.1", "-p", String(port)], /Server is ready/),
    };
    try {
      await using d = startDaemon([
        ...EVERY_SECOND,
        "-dest",
        `nats:127.0.0.1:${nats.port}`,
        "-marshal",
        "protobufList",
        // Both longer than the guard: the drain waits on a send to a server that never answers.
        "-shutdownDrain",
        "20s",
        "-produceTimeout",
        "20s",
      ]);
      await until("two polls delivered", () => /poll 2: /.test(d.log()), 20_000);
      nats.child.kill("SIGSTOP");
      // Polls go on, and their envelopes wait behind a flush the server never answers.
      await until("a backlog", () => /; backlog \d+ envelopes/.test(d.log()), 20_000);
      const { code, ms } = await d.stop("SIGTERM");
      const log = d.log();
      assert.equal(code, 1, log);
      assert.ok(ms >= 4500, `exited ${ms.toFixed(0)} ms after SIGTERM: before the guard?\n${log}`);
      assert.ok(ms < 8000, `exited ${ms.toFixed(0)} ms after SIGTERM\n${log}`);
      assert.match(log, /SIGTERM caught: flushing and stopping/);
      const m = /xtcp2: error: Shutdown did not finish within 5 s: stuck (.+)/.exec(log);
      assert.ok(m, log);
      assert.match(
        m[1] ?? "",
        /^draining the delivery queue of nats \(\d+ ms\)$/,
      );
    } finally {
      nats.child.kill("SIGCONT");
      nats.child.kill("SIGTERM");
      await nats.child.status;
    }
  },
});
