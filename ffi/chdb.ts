/**
 * ClickHouse's embedded engine (libchdb, npm `@chdb/lib-linux-x64-gnu`) through Deno.dlopen:
 * binary-safe queries (`chdb_query_n`), used to prove ClickHouse reads xtcp2's output.
 *
 * @module
 */

const SYMBOLS = {
  /** chdb_connection *chdb_connect(int argc, char **argv) */
  chdb_connect: { parameters: ["i32", "buffer"], result: "pointer" },
  /** void chdb_close_conn(chdb_connection *conn) */
  chdb_close_conn: { parameters: ["pointer"], result: "void" },
  /** chdb_result *chdb_query_n(chdb_connection conn, const char *query, size_t query_len, const char *format, size_t format_len) */
  chdb_query_n: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "pointer",
  },
  /** char *chdb_result_buffer(chdb_result *result) */
  chdb_result_buffer: { parameters: ["pointer"], result: "pointer" },
  /** size_t chdb_result_length(chdb_result *result) */
  chdb_result_length: { parameters: ["pointer"], result: "usize" },
  /** const char *chdb_result_error(chdb_result *result) */
  chdb_result_error: { parameters: ["pointer"], result: "pointer" },
  /** void chdb_destroy_query_result(chdb_result *result) */
  chdb_destroy_query_result: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** A ClickHouse query failed. */
export class ChdbError extends Error {
  /** @param message ClickHouse's error text */
  constructor(message: string) {
    super(message);
    this.name = "ChdbError";
  }
}

/** An embedded ClickHouse session over a scratch directory. */
export class Chdb implements Disposable {
  private readonly lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  private readonly connPP: Deno.PointerValue;
  private readonly conn: Deno.PointerValue;
  private readonly keep: Uint8Array[] = [];

  /**
   * @param libPath path of libchdb.so
   * @param dataDir scratch directory for the session's databases
   */
  constructor(libPath: string, dataDir: string) {
    this.lib = Deno.dlopen(libPath, SYMBOLS);
    const args = ["clickhouse", `--path=${dataDir}`].map((a) => new TextEncoder().encode(a + "\0"));
    this.keep.push(...args);
    const argv = new BigUint64Array(
      args.map((a) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(a)))),
    );
    this.connPP = this.lib.symbols.chdb_connect(args.length, new Uint8Array(argv.buffer));
    if (this.connPP === null) throw new ChdbError("chdb_connect failed");
    this.conn = new Deno.UnsafePointerView(this.connPP).getPointer(0);
  }

  /** Runs `query` (text, optionally followed by binary data) and returns the output bytes. */
  queryBytes(query: string | Uint8Array, format = "TSV"): Uint8Array {
    const q = typeof query === "string" ? new TextEncoder().encode(query) : query;
    const f = new TextEncoder().encode(format);
    const res = this.lib.symbols.chdb_query_n(this.conn, q, BigInt(q.length), f, BigInt(f.length));
    if (res === null) throw new ChdbError("chdb_query_n returned no result");
    try {
      const err = this.lib.symbols.chdb_result_error(res);
      if (err !== null) throw new ChdbError(new Deno.UnsafePointerView(err).getCString());
      const len = Number(this.lib.symbols.chdb_result_length(res));
      const buf = this.lib.symbols.chdb_result_buffer(res);
      if (len === 0 || buf === null) return new Uint8Array(0);
      return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(buf, len).slice(0));
    } finally {
      this.lib.symbols.chdb_destroy_query_result(res);
    }
  }

  /** Runs a query and returns its TSV output as text. */
  query(sql: string, format = "TSV"): string {
    return new TextDecoder().decode(this.queryBytes(sql, format));
  }

  /** Closes the session and the library. */
  [Symbol.dispose](): void {
    this.lib.symbols.chdb_close_conn(this.connPP);
    this.lib.close();
  }
}
