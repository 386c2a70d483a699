/**
 * `xtcp2client`: stream live records from a running xtcp2, as JSON lines (plain or humanised),
 * csv/tsv, or a refreshing table of the top sockets.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  type XtcpFlatRecord,
  XTCPFlatRecordService,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { parseDuration } from "../util/duration.ts";
import { formatIp } from "../record/ip.ts";
import { columnSpecs, type RowFormat, rowWriter, tcpStateName } from "../format/humanize.ts";
import { writeAllSync } from "../util/write_all.ts";
import { describeError, intFlag, runMain, TARGET_OPTIONS, transport } from "./client_common.ts";
import { normalizeGoFlags } from "./args.ts";

const USAGE = `Usage: xtcp2client [--target localhost] [--port 8889] [--token T] [flags]

  --format F                 json: JSON lines (proto field names); humanize: the same
                             with addresses, states, congestion control and time as
                             text; csv, tsv (humanised, header first); table: a
                             refreshing table; null: count only                     [json]
  --columns A,B,...          csv/tsv: these fields only, in this order (proto or
                             lowerCamelCase names)                                  [all]
  --sort rtt|retrans|bytes   table order                                            [rtt]
  --top N                    table rows                                             [20]
  --refresh D                table refresh interval                                 [2s]
  --poll                     drive polls (PollFlatRecords) every --pollFrequency
  --pollFrequency D                                                                  [10s]
  --count N                  exit after N records (0 = run until interrupted)       [0]
`;

const FORMATS: readonly string[] = ["json", "humanize", "csv", "tsv", "table", "null"];
/** The formats written line by line, and their row format. */
const ROW_FORMAT: Record<string, RowFormat> = {
  json: "jsonl",
  humanize: "humanize",
  csv: "csv",
  tsv: "tsv",
};

const SORTS: Record<string, (r: XtcpFlatRecord) => number> = {
  rtt: (r) => r.tcpInfoRtt,
  retrans: (r) => r.tcpInfoTotalRetrans,
  bytes: (r) => Number(r.tcpInfoBytesAcked + r.tcpInfoBytesReceived),
};

function endpoint(r: XtcpFlatRecord, src: boolean): string {
  const b = src ? r.inetDiagMsgSocketSource : r.inetDiagMsgSocketDestination;
  const port = src ? r.inetDiagMsgSocketSourcePort : r.inetDiagMsgSocketDestinationPort;
  const ip = b.length ? formatIp(r.inetDiagMsgFamily, b) : "?";
  return r.inetDiagMsgFamily === 10 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The table view: latest record per socket, top N by the chosen key. */
export function renderTable(
  latest: Map<string, XtcpFlatRecord>,
  sort: string,
  top: number,
): string {
  const key = SORTS[sort];
  const rows = [...latest.values()].sort((a, b) => key(b) - key(a)).slice(0, top);
  const head = [
    "NETNS",
    "STATE",
    "LOCAL",
    "PEER",
    "RTT ms",
    "RETRANS",
    "BYTES ACKED",
    "BYTES RCVD",
    "CC",
  ];
  const body = rows.map((r) => [
    r.netns,
    tcpStateName(r.inetDiagMsgState),
    endpoint(r, true),
    endpoint(r, false),
    (r.tcpInfoRtt / 1000).toFixed(3),
    String(r.tcpInfoTotalRetrans),
    String(r.tcpInfoBytesAcked),
    String(r.tcpInfoBytesReceived),
    r.congestionAlgorithmString,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...body.map(line)].join("\n");
}

/** Runs xtcp2client; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeGoFlags(argv),
    options: {
      ...TARGET_OPTIONS,
      format: { type: "string", default: "json" },
      columns: { type: "string", default: "" },
      sort: { type: "string", default: "rtt" },
      top: { type: "string", default: "20" },
      refresh: { type: "string", default: "2s" },
      poll: { type: "boolean", default: false },
      pollFrequency: { type: "string", default: "10s" },
      count: { type: "string", default: "0" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!FORMATS.includes(values.format)) {
    console.error(
      `xtcp2client: invalid value for --format: "${values.format}": use ${FORMATS.join(", ")}`,
    );
    return 2;
  }
  const csv = values.format === "csv" || values.format === "tsv";
  if (values.columns && !csv) {
    console.error("xtcp2client: --columns goes with --format csv or tsv");
    return 2;
  }
  if (csv) columnSpecs(values.columns); // an unknown column fails here, before connecting
  if (!(values.sort in SORTS)) {
    console.error(
      `xtcp2client: invalid value for --sort: "${values.sort}": use rtt, retrans or bytes`,
    );
    return 2;
  }
  const client = createClient(XTCPFlatRecordService, transport(values));
  const limit = intFlag("count", values.count, 0);
  const top = intFlag("top", values.top, 1);
  const refreshMs = parseDuration(values.refresh);
  const enc = new TextEncoder();
  const latest = new Map<string, XtcpFlatRecord>();
  let seen = 0;
  let lastError = "";
  let timer: ReturnType<typeof setInterval> | undefined;
  const rowFormat = ROW_FORMAT[values.format];
  const write = rowFormat ? rowWriter(rowFormat, values.columns) : undefined;
  if (values.format === "table") {
    timer = setInterval(() => {
      Deno.stdout.writeSync(
        enc.encode("\x1b[2J\x1b[H" + renderTable(latest, values.sort, top) + "\n"),
      );
    }, refreshMs);
  }
  const ctl = new AbortController();
  const pollMs = parseDuration(values.pollFrequency);
  async function* polls(): AsyncGenerator<Record<string, never>> {
    while (!ctl.signal.aborted) {
      yield {};
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
  try {
    for (;;) {
      try {
        const stream = values.poll
          ? client.pollFlatRecords(polls(), { signal: ctl.signal })
          : client.flatRecords({}, { signal: ctl.signal });
        for await (const msg of stream) {
          if (lastError) console.error("xtcp2client: connected");
          lastError = "";
          const r = msg.xtcpFlatRecord;
          if (!r) continue;
          seen++;
          if (write) {
            writeAllSync(Deno.stdout, enc.encode(write([r])));
          } else if (values.format === "table") {
            latest.set(`${r.netns}/${r.inetDiagMsgSocketCookie}`, r);
          }
          if (limit > 0 && seen >= limit) {
            ctl.abort();
            return 0;
          }
        }
      } catch (err) {
        if (ctl.signal.aborted) return 0;
        if (err instanceof Deno.errors.BrokenPipe) return 0; // the reader went away (| head)
        if (!(err instanceof ConnectError)) throw err;
        if (err.code === Code.Unauthenticated || err.code === Code.Unimplemented) {
          console.error(`xtcp2client: ${describeError(err)}`);
          return 1;
        }
        // Say it once per kind of failure, not every 2 s while the daemon is away.
        const text = describeError(err);
        if (text !== lastError) console.error(`xtcp2client: ${text}; reconnecting every 2 s`);
        lastError = text;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  } finally {
    if (timer !== undefined) clearInterval(timer);
  }
}

if (import.meta.main) await runMain("xtcp2client", main);
