/**
 * `nstest`: a namespace churn generator for trying discovery (the daemon, `ns`) under churn:
 * creates `--initial` namespaces (`ip netns add`), then every `--sleep` deletes the oldest and
 * creates a new one. With `--conns N` each namespace holds N established loopback connections
 * (its loopback up); with `--traffic` bytes go both ways on each of them at every step. Stops
 * after `--steps` steps or at SIGINT/SIGTERM, and removes every namespace and socket it made.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { sysClose } from "../../ffi/libc.ts";
import { openNetnsFd, withNetns } from "../../ffi/netns.ts";
import {
  closeLoopbackConns,
  exchange,
  type LoopbackConns,
  openLoopbackConns,
} from "../netns/loopback.ts";
import { parseDuration } from "../util/duration.ts";
import { errorMessage } from "../util/errors.ts";
import { normalizeGoFlags, UsageError } from "./args.ts";
import { intFlag, runMain } from "./client_common.ts";

const USAGE = `Usage: nstest [flags]

Creates and deletes network namespaces (ip netns add/del) for trying discovery under churn.

  --initial N     namespaces created at the start, and kept at that count       [1000]
  --sleep D       time between churn steps (delete the oldest, add a new one)   [100ms]
  --conns N       established loopback TCP connections held in each namespace   [0]
  --traffic       send bytes both ways on every connection at every step (implies --conns 1 at least)
  --steps N       stop after N steps (0 = until SIGINT/SIGTERM)                 [0]
  --prefix NAME   namespace names: NAME-<pid>-<n>                               [nstest]
  -d N            0 quiet, 1 a summary line at the end (default), >10 one line per step

Every namespace and socket it made is removed when it stops.
`;

const PAYLOAD = new Uint8Array(64).fill(0x6e);

interface Made {
  name: string;
  conns?: LoopbackConns;
}

async function ip(args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Runs the tool; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeGoFlags(args),
    options: {
      initial: { type: "string", default: "1000" },
      sleep: { type: "string", default: "100ms" },
      conns: { type: "string", default: "0" },
      traffic: { type: "boolean", default: false },
      steps: { type: "string", default: "0" },
      prefix: { type: "string", default: "nstest" },
      d: { type: "string", default: "1" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const initial = intFlag("initial", values.initial, 1);
  const steps = intFlag("steps", values.steps, 0);
  const level = intFlag("d", values.d, 0);
  const conns = Math.max(intFlag("conns", values.conns, 0), values.traffic ? 1 : 0);
  if (!/^[A-Za-z0-9_.-]{1,40}$/.test(values.prefix)) {
    throw new UsageError(`Invalid value for --prefix: "${values.prefix}": letters, digits, _ . -`);
  }
  let sleepMs: number;
  try {
    sleepMs = parseDuration(values.sleep);
  } catch (err) {
    throw new UsageError(`Invalid value for --sleep: "${values.sleep}": ${errorMessage(err)}`);
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, onSignal);
  const made: Made[] = [];
  let created = 0;
  let deleted = 0;
  let n = 0;
  const add = async () => {
    const name = `${values.prefix}-${Deno.pid}-${n++}`;
    await ip(["netns", "add", name]);
    created++;
    const m: Made = { name };
    made.push(m);
    if (!conns) return;
    await ip(["-n", name, "link", "set", "lo", "up"]);
    const fd = openNetnsFd(`/run/netns/${name}`);
    try {
      m.conns = withNetns(fd, () => openLoopbackConns(conns, PAYLOAD), name);
    } finally {
      sysClose(fd);
    }
  };
  const remove = async (m: Made) => {
    if (m.conns) closeLoopbackConns(m.conns);
    await ip(["netns", "del", m.name]);
    deleted++;
  };
  let step = 0;
  let failure: unknown;
  let left = 0;
  try {
    while (made.length < initial && !stop.signal.aborted) await add();
    if (level > 10) console.error(`nstest: ${made.length} namespaces created`);
    while (!stop.signal.aborted && (steps === 0 || step < steps)) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, sleepMs);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      if (stop.signal.aborted) break;
      const oldest = made.shift();
      if (oldest) await remove(oldest);
      await add();
      if (values.traffic) { for (const m of made) if (m.conns) exchange(m.conns, PAYLOAD); }
      step++;
      if (level > 10) console.error(`nstest: step ${step}: ${made.length} namespaces`);
    }
  } catch (err) {
    failure = err;
  } finally {
    for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(sig, onSignal);
    // Everything made goes, whatever happened.
    for (const m of made.splice(0)) {
      try {
        await remove(m);
      } catch (err) {
        console.error(`nstest: cannot remove ${m.name}: ${errorMessage(err)}`);
        left++;
        failure ??= err;
      }
    }
  }
  if (level >= 1) {
    console.error(
      `nstest: ${step} steps; created ${created}, deleted ${deleted} namespaces${
        conns ? ` (${conns} connections each)` : ""
      }; ${left ? `${left} could not be removed` : "none left"}`,
    );
  }
  if (failure !== undefined) throw failure;
  return 0;
}

if (import.meta.main) await runMain("nstest", main);
