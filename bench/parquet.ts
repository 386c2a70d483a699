/**
 * Parquet cost: the sockets of this project's own captures (real kernel rows, all decoders),
 * encoded as protobufList envelopes with a fresh timestamp and record counter each time round, up
 * to ROWS rows (default 5,000, at most 5,000: the machine is shared), then built into one object
 * per codec. Prints rows per second (decode into columns + finish: compression, statistics,
 * footer), bytes per row of the object, and the protobufList bytes per row beside it.
 *
 * Usage: deno run --allow-read --allow-env=XTCP2_FIXTURES bench/parquet.ts [ROWS]
 */
import { loadCodec } from "../src/format/parquet.ts";
import { PARQUET_CODECS } from "../src/format/parquet_codec.ts";
import { ParquetObject } from "../src/format/parquet_records.ts";
import { decodeCapture } from "../src/netlink/capture.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { encodeVarint } from "../src/util/varint.ts";
import { ownCaptures } from "../tests/support/fixtures.ts";

const want = Math.min(5000, Number(Deno.args[0] ?? 5000) || 5000);
const flushes: { bytes: Uint8Array; rows: number; round: number }[] = [];
let rows = 0;
for (let round = 0; rows < want; round++) {
  for (const c of ownCaptures()) {
    if (rows >= want) break;
    const env = new EnvelopeWriter(1 << 22);
    const stamp = new Stamp({
      hostname: "bench-host",
      netns: "default",
      netns_inode: 4026531840n,
      label: "bench",
      timestamp_ns: 1_700_000_000_000_000_000n + BigInt(round) * 10_000_000_000n,
    });
    decodeCapture(Deno.readFileSync(c.pcap), c.pcap, -1, (v) => {
      if (rows + env.rows < want) env.add(v, stamp);
    });
    if (env.rows === 0) continue;
    const e = env.envelope();
    const prefix = encodeVarint(e.length);
    const f = new Uint8Array(prefix.length + e.length);
    f.set(prefix);
    f.set(e, prefix.length);
    flushes.push({ bytes: f, rows: env.rows, round });
    rows += env.rows;
  }
  if (round > 1000) throw new Error("no rows in tests/captures");
}

/** One object of `set` per codec: the table rows. */
async function table(title: string, set: typeof flushes): Promise<void> {
  const n = set.reduce((a, f) => a + f.rows, 0);
  const framed = set.reduce((a, f) => a + f.bytes.length, 0);
  console.log(
    `\n${title}: ${n} rows in ${set.length} flushes; protobufList ${
      (framed / n).toFixed(1)
    } bytes/row`,
  );
  console.log("| codec | rows/s | object bytes | bytes/row | vs protobufList |");
  console.log("|---|---:|---:|---:|---:|");
  for (const codec of PARQUET_CODECS) {
    await loadCodec(codec);
    const runs: number[] = [];
    let size = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const o = new ParquetObject(codec);
      for (const f of set) o.append(f.bytes);
      size = o.finish().length;
      runs.push(performance.now() - t0);
    }
    const ms = runs.sort((a, b) => a - b)[1] ?? 0;
    console.log(
      `| ${codec} | ${Math.round(n / (ms / 1000))} | ${size} | ${(size / n).toFixed(1)} | ${
        (size / framed * 100).toFixed(1)
      } % |`,
    );
  }
}

// Distinct rows (one pass over the captures), then the same rows again with new timestamps up to
// ROWS: the repeats compress better than a real host's next polls would (their counters move).
await table("one pass over the captures", flushes.filter((f) => f.round === 0));
await table(`${rows} rows (the pass repeated)`, flushes);
