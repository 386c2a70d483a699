/**
 * librdkafka's mock cluster through FFI: a real Kafka-protocol broker (its own threads, a real
 * TCP port on 127.0.0.1) for tests, since Debian ships no Kafka broker. Needs `librdkafka.so.1`
 * (Debian package librdkafka1). Run as its own process:
 *
 *   deno run --allow-ffi ffi/rdkafka_mock.ts TOPIC…   prints `bootstrap HOST:PORT`, serves until stdin
 *                                                     closes; a line `down` or `up` on stdin takes
 *                                                     the broker down or back up
 *
 * @module
 */

const LIB = "librdkafka.so.1";

const SYMBOLS = {
  rd_kafka_conf_new: { parameters: [], result: "pointer" },
  rd_kafka_conf_set: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: "i32",
  },
  rd_kafka_new: { parameters: ["i32", "pointer", "buffer", "usize"], result: "pointer" },
  rd_kafka_destroy: { parameters: ["pointer"], result: "void" },
  rd_kafka_mock_cluster_new: { parameters: ["pointer", "i32"], result: "pointer" },
  rd_kafka_mock_cluster_destroy: { parameters: ["pointer"], result: "void" },
  rd_kafka_mock_cluster_bootstraps: { parameters: ["pointer"], result: "pointer" },
  rd_kafka_mock_topic_create: { parameters: ["pointer", "buffer", "i32", "i32"], result: "i32" },
  /** rd_kafka_resp_err_t rd_kafka_mock_broker_set_down(rd_kafka_mock_cluster_t *, int32_t broker_id) */
  rd_kafka_mock_broker_set_down: { parameters: ["pointer", "i32"], result: "i32" },
  /** rd_kafka_resp_err_t rd_kafka_mock_broker_set_up(rd_kafka_mock_cluster_t *, int32_t broker_id) */
  rd_kafka_mock_broker_set_up: { parameters: ["pointer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/** A mock Kafka cluster in this process. */
export class MockKafkaCluster implements Disposable {
  /** `host:port` of its brokers. */
  readonly bootstrap: string;
  private readonly lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  private readonly rk: Deno.PointerObject;
  private readonly mc: Deno.PointerObject;

  /** Starts `brokers` mock brokers; throws if librdkafka is missing. */
  constructor(brokers = 1) {
    this.lib = Deno.dlopen(LIB, SYMBOLS);
    const s = this.lib.symbols;
    const err = new Uint8Array(512);
    const conf = s.rd_kafka_conf_new();
    // Quiet: the handle only hosts the cluster, it has no bootstrap servers of its own.
    s.rd_kafka_conf_set(conf, cstr("log_level"), cstr("0"), err, 512n);
    const rk = s.rd_kafka_new(1, /* consumer */ conf, err, 512n);
    if (rk === null) {
      throw new Error(
        `Cannot create the librdkafka handle: ${new TextDecoder().decode(err).split("\0")[0]}`,
      );
    }
    this.rk = rk;
    const mc = s.rd_kafka_mock_cluster_new(rk, brokers);
    if (mc === null) {
      throw new Error("Cannot create the mock cluster: rd_kafka_mock_cluster_new failed");
    }
    this.mc = mc;
    const b = s.rd_kafka_mock_cluster_bootstraps(mc);
    if (b === null) {
      throw new Error(
        "Cannot read the mock cluster's address: rd_kafka_mock_cluster_bootstraps failed",
      );
    }
    this.bootstrap = Deno.UnsafePointerView.getCString(b);
  }

  /** Creates a topic (partitions, replication factor); returns librdkafka's error code (0 = ok). */
  createTopic(name: string, partitions = 1, replication = 1): number {
    return this.lib.symbols.rd_kafka_mock_topic_create(
      this.mc,
      cstr(name),
      partitions,
      replication,
    );
  }

  /**
   * Takes broker `id` (from 1) down (its connections closed, new ones refused) or back up;
   * returns librdkafka's error code (0 = ok).
   */
  setBroker(id: number, up: boolean): number {
    const s = this.lib.symbols;
    return up
      ? s.rd_kafka_mock_broker_set_up(this.mc, id)
      : s.rd_kafka_mock_broker_set_down(this.mc, id);
  }

  /** Stops the brokers and unloads the library. */
  close(): void {
    this.lib.symbols.rd_kafka_mock_cluster_destroy(this.mc);
    this.lib.symbols.rd_kafka_destroy(this.rk);
    this.lib.close();
  }

  /** Same as {@link MockKafkaCluster.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

if (import.meta.main) {
  const cluster = new MockKafkaCluster(1);
  for (const t of Deno.args) {
    const rc = cluster.createTopic(t);
    if (rc !== 0) throw new Error(`Cannot create topic ${t}: librdkafka error ${rc}`);
  }
  console.log(`bootstrap ${cluster.bootstrap}`);
  // Serves until stdin closes; the lines "down" and "up" take the broker down and back up.
  for await (const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    for (const cmd of line.split("\n").map((l) => l.trim()).filter((l) => l)) {
      const rc = cluster.setBroker(1, cmd === "up");
      console.log(`${cmd} ${rc}`);
    }
  }
  cluster.close();
}
