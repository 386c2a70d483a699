/**
 * The Kafka schema registry step (`-kafkaSchemaUrl`, `-xtcpProtoFile`). No schema registry can be
 * installed here (Confluent's and Redpanda's are not in Debian or on npm), so the registry is a
 * small HTTP server in this test implementing the two endpoints the daemon calls, as the
 * Confluent REST API defines them: `POST /subjects/<subject>/versions` (register; answers the
 * id, the same id for the same schema) and `GET /subjects/<subject>/versions/latest`. The
 * broker is librdkafka's mock cluster (a real Kafka-protocol broker).
 *
 * @module
 */
import assert from "node:assert/strict";
import { registerSchema } from "../src/dest/schema_registry.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { daemon, morePolls, stopDaemon } from "./support/delivery.ts";
import { RDKAFKA, startMockKafka } from "./support/kafka_mock.ts";
import { freePort } from "./support/run.ts";

const PROTO = new URL("../proto/xtcp_flat_record/v1/xtcp_flat_record.proto", import.meta.url)
  .pathname;

function missing(path: string, pkg: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.error(`SKIP: ${path} missing (apt install ${pkg})`);
    return true;
  }
}

interface Version {
  id: number;
  version: number;
  schema: string;
  schemaType: string;
}

/** The two registry endpoints, on a free loopback port. */
class FakeRegistry implements AsyncDisposable {
  readonly subjects = new Map<string, Version[]>();
  readonly requests: { method: string; path: string; body: string; type: string }[] = [];
  /** Answer every request with this status instead (e.g. 500). */
  failWith = 0;
  private nextId = 1;
  private readonly server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  /** Registers a schema as another producer would. */
  add(subject: string, schema: string): number {
    const list = this.subjects.get(subject) ?? [];
    const same = list.find((v) => v.schema === schema);
    if (same) return same.id;
    const v = { id: this.nextId++, version: list.length + 1, schema, schemaType: "PROTOBUF" };
    list.push(v);
    this.subjects.set(subject, list);
    return v.id;
  }

  private async handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    this.requests.push({
      method: req.method,
      path,
      body,
      type: req.headers.get("content-type") ?? "",
    });
    const json = (status: number, o: unknown) =>
      new Response(JSON.stringify(o), {
        status,
        headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
      });
    if (this.failWith) return json(this.failWith, { error_code: 50001, message: "store error" });
    const m = /^\/subjects\/([^/]+)\/versions(\/latest)?$/.exec(path);
    if (!m?.[1]) return json(404, { error_code: 404, message: "HTTP 404 Not Found" });
    const subject = decodeURIComponent(m[1]);
    if (req.method === "POST" && !m[2]) {
      const { schema, schemaType } = JSON.parse(body) as { schema?: string; schemaType?: string };
      if (typeof schema !== "string" || schemaType !== "PROTOBUF") {
        return json(422, { error_code: 42201, message: "Invalid schema" });
      }
      return json(200, { id: this.add(subject, schema) });
    }
    if (req.method === "GET" && m[2]) {
      const latest = this.subjects.get(subject)?.at(-1);
      if (!latest) {
        return json(404, { error_code: 40401, message: `Subject '${subject}' not found.` });
      }
      return json(200, { subject, ...latest });
    }
    return json(405, { error_code: 405, message: "Method Not Allowed" });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.shutdown();
  }
}

Deno.test({
  name:
    "kafka: the daemon registers the .proto as <topic>-value (PROTOBUF) and finds it is the latest; a registry answering 500 is logged and not fatal",
  ignore: missing(RDKAFKA, "librdkafka1"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using registry = new FakeRegistry();
    await using mock = await startMockKafka(["xtcp-sr"]);
    const proto = await Deno.readTextFile(PROTO);
    const flags = ["-topic", "xtcp-sr", "-kafkaSchemaUrl", registry.url, "-xtcpProtoFile", PROTO];

    const d = daemon(`kafka:${mock.bootstrap}`, "protobufList", flags);
    await morePolls(d, 2, 0);
    const log = await stopDaemon(d);
    assert.match(
      log,
      /schema registry: xtcp-sr-value registered as id 1, the latest \(version 1\)/,
      log,
    );
    const post = registry.requests.find((r) => r.method === "POST");
    assert.ok(post, "the daemon registered nothing");
    assert.equal(post.path, "/subjects/xtcp-sr-value/versions");
    assert.equal(post.type, "application/vnd.schemaregistry.v1+json");
    assert.deepEqual(JSON.parse(post.body), { schemaType: "PROTOBUF", schema: proto });
    assert.ok(
      registry.requests.some((r) =>
        r.method === "GET" && r.path === "/subjects/xtcp-sr-value/versions/latest"
      ),
    );

    registry.failWith = 500;
    const f = daemon(`kafka:${mock.bootstrap}`, "protobufList", flags);
    await morePolls(f, 2, 0);
    const failed = await stopDaemon(f);
    assert.match(
      failed,
      /schema registry \(not fatal\): register of subject xtcp-sr-value failed: HTTP 500/,
    );
  },
});

Deno.test("schema registry: a newer version by someone else, nothing listening, and no proto file are each logged, never thrown", async () => {
  await using registry = new FakeRegistry();
  const lines: string[] = [];
  const log = new Logger(1, (l: string) => lines.push(l));
  const counters = new Counters();
  const o = { url: `${registry.url}/`, protoFile: PROTO, topic: "t", counters, log };

  assert.deepEqual(await registerSchema(o), { result: "match", id: 1, version: 1 });
  // The same text again is the same id; then another producer registers a newer schema.
  assert.deepEqual(await registerSchema(o), { result: "match", id: 1, version: 1 });
  registry.add("t-value", 'syntax = "proto3"; message Other {}');
  assert.deepEqual(await registerSchema(o), {
    result: "mismatch",
    id: 1,
    latestId: 2,
    version: 2,
  });
  assert.match(lines.at(-1) ?? "", /registered as id 1, but the latest \(version 2\) is id 2/);

  const nobody = await registerSchema({ ...o, url: `http://127.0.0.1:${freePort()}` });
  assert.equal(nobody.result, "failed");
  assert.equal(nobody.result === "failed" && nobody.step, "register");
  const noFile = await registerSchema({ ...o, protoFile: "/nonexistent/x.proto" });
  assert.deepEqual(noFile.result === "failed" && noFile.step, "read");
  assert.match(lines.at(-1) ?? "", /cannot read \/nonexistent\/x\.proto/);
  assert.equal(counters.values.get("destKafkaSchemaRegistry/match/count"), 2);
  assert.equal(counters.values.get("destKafkaSchemaRegistry/mismatch/count"), 1);
  assert.equal(counters.values.get("destKafkaSchemaRegistry/register/error"), 1);
  assert.equal(counters.values.get("destKafkaSchemaRegistry/read/error"), 1);
});
