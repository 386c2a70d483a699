/**
 * `xtcp2ctl`: change a running xtcp2 through its gRPC ConfigService.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { ConfigService, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { msToDuration, parseDuration } from "../util/duration.ts";
import { intFlag, runMain, TARGET_OPTIONS, transport } from "./client_common.ts";
import { normalizeGoFlags } from "./args.ts";

const USAGE = `Usage: xtcp2ctl [--target localhost] [--port 8889] [--token T] COMMAND [flags]

Commands:
  get                                        print the running config (protojson, secrets blank)
  set [--file PATH|-]                        apply a config (the JSON 'get' prints; stdin by default)
  set-poll-frequency --frequency D --timeout D   change the cadence now (timeout < frequency)
  trigger-poll                               one extra poll now
  poll-burst [--count 6] [--interval 10s]    COUNT polls INTERVAL apart (interval > poll timeout)
  set-s3-upload [--flush-interval D] [--threshold-bytes N]   (alias: set-s3)
`;

async function readAll(file: string): Promise<string> {
  if (file !== "-") return await Deno.readTextFile(file);
  return await new Response(Deno.stdin.readable).text();
}

/** Runs xtcp2ctl; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: normalizeGoFlags(argv),
    options: {
      ...TARGET_OPTIONS,
      file: { type: "string", default: "-" },
      frequency: { type: "string" },
      timeout: { type: "string" },
      count: { type: "string", default: "6" },
      interval: { type: "string", default: "10s" },
      "flush-interval": { type: "string" },
      "threshold-bytes": { type: "string" },
    },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const client = createClient(ConfigService, transport(values));
  const print = (cfg: Parameters<typeof toJsonString<typeof XtcpConfigSchema>>[1] | undefined) => {
    if (cfg) console.log(toJsonString(XtcpConfigSchema, cfg, { prettySpaces: 2 }));
  };
  switch (positionals[0]) {
    case "get":
      print((await client.get({})).config);
      return 0;
    case "set": {
      const config = fromJsonString(XtcpConfigSchema, await readAll(values.file));
      print((await client.set({ config })).config);
      return 0;
    }
    case "set-poll-frequency": {
      if (!values.frequency || !values.timeout) {
        console.error("xtcp2ctl: set-poll-frequency needs --frequency and --timeout");
        return 2;
      }
      const res = await client.setPollFrequency({
        pollFrequency: msToDuration(parseDuration(values.frequency)),
        pollTimeout: msToDuration(parseDuration(values.timeout)),
      });
      print(res.config);
      return 0;
    }
    case "trigger-poll":
      await client.triggerPoll({});
      console.log("poll triggered");
      return 0;
    case "poll-burst": {
      const res = await client.triggerPollBurst({
        count: intFlag("count", values.count, 1),
        interval: msToDuration(parseDuration(values.interval)),
      });
      console.log(`burst of ${res.count} polls every ${values.interval}`);
      return 0;
    }
    case "set-s3": // the original's name
    case "set-s3-upload": {
      const res = await client.setS3Upload({
        ...(values["flush-interval"]
          ? { s3FlushInterval: msToDuration(parseDuration(values["flush-interval"])) }
          : {}),
        s3ParquetFlushThresholdBytes: intFlag(
          "threshold-bytes",
          values["threshold-bytes"] ?? "0",
          0,
        ),
      });
      print(res.config);
      return 0;
    }
  }
  console.error(`xtcp2ctl: unknown command ${positionals[0]}\n${USAGE}`);
  return 2;
}

if (import.meta.main) await runMain("xtcp2ctl", main);
