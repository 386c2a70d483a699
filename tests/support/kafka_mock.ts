/**
 * librdkafka's mock Kafka cluster (ffi/rdkafka_mock.ts) as a side process for tests: a real
 * Kafka-protocol broker on a free loopback port.
 *
 * @module
 */

const MOCK = new URL("../../ffi/rdkafka_mock.ts", import.meta.url).pathname;

/** Where librdkafka lives on Debian (package librdkafka1). */
export const RDKAFKA = "/usr/lib/x86_64-linux-gnu/librdkafka.so.1";

/** A running mock broker. */
export interface MockKafka extends AsyncDisposable {
  /** `host:port`. */
  bootstrap: string;
  /** Stops it (idempotent). */
  close(): Promise<void>;
  /** Takes the broker down (connections closed, new ones refused) or back up. */
  setBroker(up: boolean): Promise<void>;
}

/** Starts a mock broker with `topics` created. */
export async function startMockKafka(topics: string[]): Promise<MockKafka> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", MOCK, ...topics],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  const stderr = new Response(child.stderr).text();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await stdin.close().catch(() => {});
    await child.status;
    await out.cancel().catch(() => {});
    await stderr.catch(() => "");
  };
  let text = "";
  while (!/bootstrap (\S+)\n/.test(text)) {
    const { value, done } = await out.read();
    if (done) {
      await close();
      throw new Error(`mock Kafka broker did not start: ${await stderr}`);
    }
    text += value;
  }
  const bootstrap = /bootstrap (\S+)\n/.exec(text)?.[1] ?? "";
  const setBroker = async (up: boolean) => {
    await stdin.write(new TextEncoder().encode(up ? "up\n" : "down\n"));
    const want = new RegExp(`^${up ? "up" : "down"} (-?\\d+)$`, "m");
    for (;;) {
      const m = want.exec(text);
      if (m) {
        text = text.slice((m.index ?? 0) + m[0].length);
        if (m[1] !== "0") throw new Error(`mock broker ${up ? "up" : "down"}: error ${m[1]}`);
        return;
      }
      const { value, done } = await out.read();
      if (done) throw new Error("mock Kafka broker exited");
      text += value;
    }
  };
  return { bootstrap, close, setBroker, [Symbol.asyncDispose]: close };
}
