/**
 * The standard gRPC services every tool expects: `grpc.health.v1.Health` (Check, List, Watch;
 * SERVING while the poll loop runs, NOT_SERVING before and during shutdown) and server
 * reflection, `grpc.reflection.v1` and `grpc.reflection.v1alpha` (list the services, the files
 * that declare a symbol or a file name, with their dependencies), so `grpcurl` and
 * `grpc_health_probe` work without the .proto files.
 *
 * @module
 */
import {
  create,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as Status,
  HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.ts";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionAlpha,
  ServerReflectionRequestSchema as AlphaRequestSchema,
  ServerReflectionResponseSchema as AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** The probe services themselves. */
export const PROBE_SERVICES: readonly DescService[] = [
  Health,
  ServerReflection,
  ServerReflectionAlpha,
];

/** How often Watch looks at the serving state. */
const WATCH_MS = 100;

/** Options of {@link registerHealth}. */
export interface HealthOptions {
  /** Whether the daemon serves now (its poll loop runs and it is not shutting down). */
  serving: () => boolean;
  /** Services that report the daemon's state besides the server as a whole (""). */
  services: readonly DescService[];
  /** Aborted when the server closes: open Watch streams end. */
  closing: AbortSignal;
}

/** Registers `grpc.health.v1.Health`. */
export function registerHealth(router: ConnectRouter, o: HealthOptions): void {
  const known = new Set(["", ...o.services.map((s) => s.typeName)]);
  const status = (): Status => (o.serving() ? Status.SERVING : Status.NOT_SERVING);
  const answer = (s: Status): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status: s });
  router.service(Health, {
    check(req) {
      if (!known.has(req.service)) {
        throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      }
      return answer(status());
    },
    list() {
      const s = status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, answer(s)])) };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      const signal = AbortSignal.any([ctx.signal, o.closing]);
      while (!signal.aborted) {
        const now = known.has(req.service) ? status() : Status.SERVICE_UNKNOWN;
        if (now !== last) yield answer(now);
        last = now;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, WATCH_MS);
          function done() {
            clearTimeout(t);
            signal.removeEventListener("abort", done);
            resolve();
          }
          signal.addEventListener("abort", done);
        });
      }
      // The server is closing: say so before the stream ends, as a last word.
      if (o.closing.aborted && !ctx.signal.aborted && last === Status.SERVING) {
        yield answer(Status.NOT_SERVING);
      }
    },
  });
}

/** Every file that `files` import, transitively, each once, the files first. */
function withDependencies(files: readonly DescFile[]): DescFile[] {
  const out = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (out.has(f.proto.name)) return;
    out.set(f.proto.name, f);
    f.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...out.values()];
}

/** Fully-qualified names declared in `file`: messages, fields, enums, services, methods. */
function symbols(file: DescFile): string[] {
  const out: string[] = [];
  const message = (m: DescMessage) => {
    out.push(m.typeName, ...m.fields.map((f) => `${m.typeName}.${f.name}`));
    out.push(...m.oneofs.map((o) => `${m.typeName}.${o.name}`));
    m.nestedMessages.forEach(message);
    out.push(...m.nestedEnums.map((e) => e.typeName));
    out.push(...m.nestedExtensions.map((e) => e.typeName));
  };
  file.messages.forEach(message);
  out.push(...file.enums.map((e) => e.typeName));
  out.push(...file.extensions.map((e) => e.typeName));
  for (const s of file.services) {
    out.push(s.typeName, ...s.methods.map((m) => `${s.typeName}.${m.name}`));
  }
  return out;
}

/**
 * Answers reflection requests about `services` (the probe services included): the data of
 * `grpc.reflection.v1` and, through the same wire format, `v1alpha`.
 */
export class Reflection {
  private readonly files: Map<string, DescFile>;
  private readonly bySymbol = new Map<string, DescFile>();
  private readonly messages = new Set<string>();
  private readonly names: string[];
  private readonly closure = new Map<string, Uint8Array[]>();

  /** @param services every service the server registers */
  constructor(services: readonly DescService[]) {
    this.names = services.map((s) => s.typeName).sort();
    const all = withDependencies(services.map((s) => s.file));
    this.files = new Map(all.map((f) => [f.proto.name, f]));
    for (const f of all) {
      for (const name of symbols(f)) this.bySymbol.set(name, f);
      const walk = (m: DescMessage) => {
        this.messages.add(m.typeName);
        m.nestedMessages.forEach(walk);
      };
      f.messages.forEach(walk);
    }
  }

  /** The serialized FileDescriptorProtos of `file` and of what it imports, transitively. */
  private descriptors(file: DescFile): Uint8Array[] {
    let d = this.closure.get(file.proto.name);
    if (!d) {
      d = withDependencies([file]).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
      this.closure.set(file.proto.name, d);
    }
    return d;
  }

  /** The answer to one request. */
  answer(req: ServerReflectionRequest): ServerReflectionResponse {
    const r = req.messageRequest;
    const base = { validHost: req.host, originalRequest: req };
    const files = (f: DescFile | undefined, what: string) =>
      f
        ? create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: this.descriptors(f) },
          },
        })
        : this.error(base, Code.NotFound, `${what} not found`);
    switch (r.case) {
      case "listServices":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: this.names.map((name) => ({ name })) },
          },
        });
      case "fileByFilename":
        return files(this.files.get(r.value), `file ${r.value}`);
      case "fileContainingSymbol":
        return files(this.bySymbol.get(r.value), `symbol ${r.value}`);
      case "fileContainingExtension":
        // No file here extends a message: every such question has no answer.
        return this.error(
          base,
          Code.NotFound,
          `extension ${r.value.extensionNumber} of ${r.value.containingType} not found`,
        );
      case "allExtensionNumbersOfType":
        if (!this.messages.has(r.value)) {
          return this.error(base, Code.NotFound, `type ${r.value} not found`);
        }
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value, extensionNumber: [] },
          },
        });
      default:
        return this.error(base, Code.InvalidArgument, "the request asks nothing");
    }
  }

  private error(
    base: { validHost: string; originalRequest: ServerReflectionRequest },
    code: Code,
    message: string,
  ): ServerReflectionResponse {
    return create(ServerReflectionResponseSchema, {
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode: code, errorMessage: message } },
    });
  }
}

/** Registers `grpc.reflection.v1` and `grpc.reflection.v1alpha` over `reflection`. */
export function registerReflection(router: ConnectRouter, reflection: Reflection): void {
  router.service(ServerReflection, {
    async *serverReflectionInfo(reqs) {
      for await (const req of reqs) yield reflection.answer(req);
    },
  });
  // v1alpha is v1 under another package name: the same bytes on the wire, so each message is
  // carried over through them.
  router.service(ServerReflectionAlpha, {
    async *serverReflectionInfo(reqs) {
      for await (const req of reqs) {
        const v1 = fromBinary(ServerReflectionRequestSchema, toBinary(AlphaRequestSchema, req));
        const res = reflection.answer(v1);
        yield fromBinary(AlphaResponseSchema, toBinary(ServerReflectionResponseSchema, res));
      }
    },
  });
}
