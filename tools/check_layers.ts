/**
 * The layering checker: every module of the project (each `.ts` file under `src/` and `ffi/`, and
 * `mod.ts`) belongs to a package, packages are ordered in layers, and a module may import only
 * modules of its own package or of a strictly lower layer. Import cycles between modules are
 * errors too.
 *
 * Imports are found by a plain scan of the source text (comments, strings, template literals and
 * regular expressions are skipped): `import … from`, `import type … from`, `import "…"`,
 * `export … from`, `import("…")`, and Worker scripts named as
 * `new URL("./x.ts", import.meta.url)`. Worker references count for layering but not for cycles:
 * a worker runs in its own isolate. Only relative specifiers (`./`, `../`) are checked; bare ones
 * (`npm:`, `node:`, `jsr:`, import-map names) are ignored.
 *
 * ```sh
 * deno run --allow-read tools/check_layers.ts [--root DIR]
 * ```
 *
 * Prints one line per problem and exits 1, or prints a one-line summary and exits 0.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";

/** Packages by layer, lowest first: each entry is a directory or a single file, relative to the root. */
export type LayerTable = readonly (readonly string[])[];

/**
 * The project's layer table, lowest layer first. A package is a directory (every module below it
 * belongs to it, subdirectories included) or a single top-level file. A module belongs to the
 * longest entry that contains it. Packages in the same layer are independent of each other.
 *
 * @example
 * ```ts
 * import { LAYERS } from "./tools/check_layers.ts";
 * console.log(LAYERS.findIndex((layer) => layer.includes("src/poll"))); // 7
 * ```
 */
export const LAYERS: LayerTable = [
  ["src/gen", "src/version.ts", "src/util"],
  ["src/netlink"],
  ["src/record"],
  ["ffi"],
  ["src/format"],
  ["src/netns"],
  ["src/dest"],
  ["src/poll"],
  ["src/config"],
  ["src/api"],
  ["src/daemon"],
  ["src/cmd"],
  ["mod.ts"],
];

/** One module reference found in a source text. */
export interface ImportRef {
  /** The specifier as written, e.g. `"./x.ts"` or `"npm:kafkajs"`. */
  specifier: string;
  /** Line (1-based) of the `import`, `export` or `new` keyword that starts the reference. */
  line: number;
  /**
   * `static` (`import`/`export … from`, type-only included), `dynamic` (`import("…")`) or
   * `worker` (`new URL("…", import.meta.url)`).
   */
  kind: "static" | "dynamic" | "worker";
}

/** What {@link checkLayers} found. */
export interface LayerReport {
  /** Number of modules checked. */
  modules: number;
  /** Number of relative module references checked. */
  imports: number;
  /** One line per problem, empty when the tree is clean. */
  problems: string[];
}

interface Token {
  kind: "id" | "str" | "punct" | "other";
  value: string;
  line: number;
}

/** Keywords after which a `/` starts a regular expression rather than a division. */
const REGEX_AFTER = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

function isIdentChar(c: string): boolean {
  return /[\w$]/.test(c) || c.charCodeAt(0) > 127;
}

/**
 * Splits source text into identifiers, string literals and punctuation, skipping comments and
 * whitespace. Template literals and regular expressions become opaque tokens; the code inside a
 * template's `${…}` is tokenized as usual.
 */
function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const templates: number[] = []; // brace depth at which each open `${` closes
  let depth = 0;
  let line = 1;
  let i = 0;
  const push = (kind: Token["kind"], value: string, at: number) =>
    out.push({ kind, value, line: at });

  /** Scans template text from `i` to its closing backtick or the next `${`. */
  const template = () => {
    const start = line;
    while (i < src.length) {
      const c = src[i];
      if (c === "\\") {
        if (src[i + 1] === "\n") line++;
        i += 2;
      } else if (c === "`") {
        i++;
        push("other", "`", start);
        return;
      } else if (c === "$" && src[i + 1] === "{") {
        i += 2;
        templates.push(depth);
        push("punct", "${", line);
        return;
      } else {
        if (c === "\n") line++;
        i++;
      }
    }
  };

  while (i < src.length) {
    const c = src[i];
    const next = src[i + 1];
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === "/" && next === "/") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      for (let k = i; k < stop; k++) if (src[k] === "\n") line++;
      i = stop;
    } else if (c === '"' || c === "'") {
      const start = line;
      let value = "";
      i++;
      while (i < src.length && src[i] !== c && src[i] !== "\n") {
        if (src[i] === "\\") {
          if (src[i + 1] === "\n") line++;
          value += src[i + 1] ?? "";
          i += 2;
        } else {
          value += src[i++];
        }
      }
      i++; // the closing quote (or the newline of an unterminated string)
      if (src[i - 1] === "\n") line++;
      push("str", value, start);
    } else if (c === "`") {
      i++;
      template();
    } else if (c === "}" && templates.length > 0 && templates[templates.length - 1] === depth) {
      templates.pop();
      i++;
      template();
    } else if (isIdentChar(c) && !/[0-9]/.test(c)) {
      const start = i;
      while (i < src.length && isIdentChar(src[i])) i++;
      push("id", src.slice(start, i), line);
    } else if (/[0-9]/.test(c)) {
      const start = i;
      while (i < src.length && /[\w.]/.test(src[i])) i++;
      push("other", src.slice(start, i), line);
    } else if (c === "/" && regexAllowed(out[out.length - 1])) {
      let k = i + 1;
      let inClass = false;
      while (k < src.length && src[k] !== "\n") {
        const r = src[k];
        if (r === "\\") k++;
        else if (r === "[") inClass = true;
        else if (r === "]") inClass = false;
        else if (r === "/" && !inClass) break;
        k++;
      }
      if (src[k] === "/") {
        k++;
        while (k < src.length && /[a-z]/i.test(src[k])) k++;
        push("other", "/regex/", line);
        i = k;
      } else {
        push("punct", "/", line); // not a regular expression after all
        i++;
      }
    } else {
      if (c === "{") depth++;
      else if (c === "}") depth--;
      push("punct", c, line);
      i++;
    }
  }
  return out;
}

function regexAllowed(prev: Token | undefined): boolean {
  if (prev === undefined) return true;
  if (prev.kind === "punct") return !")]}".includes(prev.value);
  if (prev.kind === "id") return REGEX_AFTER.has(prev.value);
  return false;
}

function isPunct(t: Token | undefined, value: string): boolean {
  return t !== undefined && t.kind === "punct" && t.value === value;
}

function isId(t: Token | undefined, value: string): boolean {
  return t !== undefined && t.kind === "id" && t.value === value;
}

/** Index of the `}` closing the `{` at `open`, or -1 when the braces hold more than names. */
function closingBrace(toks: Token[], open: number): number {
  for (let j = open + 1; j < toks.length; j++) {
    if (isPunct(toks[j], "}")) return j;
    if (isPunct(toks[j], "{") || isPunct(toks[j], ";")) return -1;
  }
  return -1;
}

/** Index of the specifier of `import <clause> from "…"` starting after `at`, or -1. */
function importClauseSpecifier(toks: Token[], at: number): number {
  // A clause is a few names outside its braces: `type`, a default name, `* as x`, commas.
  for (let j = at, names = 0; j < toks.length && names < 12; j++, names++) {
    const t = toks[j];
    if (isId(t, "from") && toks[j + 1]?.kind === "str") return j + 1;
    if (isPunct(t, "{")) {
      j = closingBrace(toks, j);
      if (j < 0) return -1;
    } else if (!(t.kind === "id" || isPunct(t, ",") || isPunct(t, "*"))) {
      return -1;
    }
  }
  return -1;
}

/** Index of the specifier of `export [type] { … } from "…"` / `export * [as x] from "…"`, or -1. */
function reexportSpecifier(toks: Token[], at: number): number {
  let j = at;
  if (isId(toks[j], "type")) j++;
  if (isPunct(toks[j], "*")) {
    j++;
    if (isId(toks[j], "as")) j += 2;
  } else if (isPunct(toks[j], "{")) {
    j = closingBrace(toks, j);
    if (j < 0) return -1;
    j++;
  } else {
    return -1;
  }
  return isId(toks[j], "from") && toks[j + 1]?.kind === "str" ? j + 1 : -1;
}

/**
 * Finds the module references of a TypeScript source text: static imports and re-exports
 * (type-only included), dynamic `import("…")` with a literal specifier, and Worker scripts named as
 * `new URL("…", import.meta.url)`. References inside comments, strings and template text are not
 * references.
 *
 * @example
 * ```ts
 * import { scanImports } from "./tools/check_layers.ts";
 * const refs = scanImports('import {\n  a,\n} from "./a.ts";\n// import "./b.ts";\nawait import("./c.ts");\n');
 * console.log(refs);
 * // [ { specifier: "./a.ts", line: 1, kind: "static" },
 * //   { specifier: "./c.ts", line: 5, kind: "dynamic" } ]
 * ```
 */
export function scanImports(source: string): ImportRef[] {
  const toks = tokenize(source);
  const refs: ImportRef[] = [];
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k];
    if (t.kind !== "id" || isPunct(toks[k - 1], ".")) continue;
    let spec = -1;
    let kind: ImportRef["kind"] = "static";
    if (t.value === "import") {
      const next = toks[k + 1];
      if (isPunct(next, "(")) {
        const after = toks[k + 3];
        if (toks[k + 2]?.kind === "str" && (isPunct(after, ")") || isPunct(after, ","))) {
          spec = k + 2;
          kind = "dynamic";
        }
      } else if (next?.kind === "str") {
        spec = k + 1;
      } else if (!isPunct(next, ".")) {
        spec = importClauseSpecifier(toks, k + 1);
      }
    } else if (t.value === "export") {
      spec = reexportSpecifier(toks, k + 1);
    } else if (t.value === "new" && isId(toks[k + 1], "URL") && isPunct(toks[k + 2], "(")) {
      const meta = ["import", ".", "meta", ".", "url", ")"];
      if (
        toks[k + 3]?.kind === "str" && isPunct(toks[k + 4], ",") &&
        meta.every((v, m) => toks[k + 5 + m]?.value === v)
      ) {
        spec = k + 3;
        kind = "worker";
      }
    }
    if (spec >= 0) refs.push({ specifier: toks[spec].value, line: t.line, kind });
  }
  return refs;
}

/** Maps each package to its layer; a package listed twice is an error. */
function layerIndex(layers: LayerTable): Map<string, number> {
  const index = new Map<string, number>();
  layers.forEach((layer, n) => {
    for (const pkg of layer) {
      const seen = index.get(pkg);
      if (seen !== undefined) {
        throw new Error(`Package listed twice in the layer table: ${pkg}: layers ${seen} and ${n}`);
      }
      index.set(pkg, n);
    }
  });
  return index;
}

/** The package a path belongs to: the longest table entry equal to it or containing it. */
function packageOf(path: string, index: Map<string, number>): string | undefined {
  let best: string | undefined;
  for (const pkg of index.keys()) {
    if (
      (path === pkg || path.startsWith(pkg + "/")) &&
      (best === undefined || pkg.length > best.length)
    ) {
      best = pkg;
    }
  }
  return best;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Collects the `.ts` files below `dir` (relative to `root`), following symlinked files only. */
async function collect(root: string, dir: string, out: string[]): Promise<void> {
  if (!(await exists(posix.join(root, dir)))) return;
  for await (const entry of Deno.readDir(posix.join(root, dir))) {
    const path = `${dir}/${entry.name}`;
    let isFile = entry.isFile;
    if (entry.isSymlink) isFile = (await Deno.stat(posix.join(root, path))).isFile;
    if (entry.isDirectory) await collect(root, path, out);
    else if (isFile && entry.name.endsWith(".ts")) out.push(path);
  }
}

/** The project's modules, sorted: every `.ts` file under `src/` and `ffi/`, and `mod.ts`. */
async function listModules(root: string): Promise<string[]> {
  const out: string[] = [];
  await collect(root, "src", out);
  await collect(root, "ffi", out);
  if (await exists(posix.join(root, "mod.ts"))) out.push("mod.ts");
  return out.sort();
}

/** The repository-relative path of a relative specifier, or undefined for a bare one. */
function resolveSpecifier(importer: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  return posix.normalize(posix.join(posix.dirname(importer), specifier.replace(/[?#].*$/, "")));
}

/** Whether a Worker `new URL` reference names a script rather than a data file. */
function isScript(path: string): boolean {
  return /\.(ts|tsx|mts|js|jsx|mjs)$/.test(path);
}

/**
 * Every elementary cycle of the graph (Johnson's algorithm), each once, starting at its smallest
 * node in `nodes` order. Stops after `limit` cycles.
 */
function findCycles(nodes: string[], edges: Map<string, Set<string>>, limit: number): string[][] {
  const order = new Map(nodes.map((n, i) => [n, i]));
  const cycles: string[][] = [];
  for (let s = 0; s < nodes.length && cycles.length < limit; s++) {
    const scc = componentOf(nodes, edges, order, s);
    if (scc === undefined) continue;
    const start = nodes[s];
    const blocked = new Set<string>();
    const blockers = new Map<string, Set<string>>();
    const stack: string[] = [];
    const succ = (v: string) => [...(edges.get(v) ?? [])].filter((w) => scc.has(w));
    const unblock = (u: string) => {
      blocked.delete(u);
      const waiting = blockers.get(u);
      if (waiting === undefined) return;
      blockers.delete(u);
      for (const w of waiting) if (blocked.has(w)) unblock(w);
    };
    const circuit = (v: string): boolean => {
      let found = false;
      stack.push(v);
      blocked.add(v);
      for (const w of succ(v)) {
        if (cycles.length >= limit) break;
        if (w === start) {
          cycles.push([...stack, start]);
          found = true;
        } else if (!blocked.has(w) && circuit(w)) {
          found = true;
        }
      }
      if (found) {
        unblock(v);
      } else {
        for (const w of succ(v)) {
          const set = blockers.get(w) ?? new Set<string>();
          set.add(v);
          blockers.set(w, set);
        }
      }
      stack.pop();
      return found;
    };
    circuit(start);
  }
  return cycles;
}

/**
 * The strongly connected component containing `nodes[s]` in the subgraph of the nodes from `s`
 * on (Tarjan), or undefined when that component holds no cycle.
 */
function componentOf(
  nodes: string[],
  edges: Map<string, Set<string>>,
  order: Map<string, number>,
  s: number,
): Set<string> | undefined {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  let counter = 0;
  let result: Set<string> | undefined;
  const inSub = (w: string) => (order.get(w) ?? -1) >= s;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!inSub(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component = new Set<string>();
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.add(w);
      } while (w !== v);
      if (component.has(nodes[s])) result = component;
    }
  };
  visit(nodes[s]);
  if (result === undefined) return undefined;
  const start = nodes[s];
  if (result.size === 1 && !(edges.get(start)?.has(start) ?? false)) return undefined;
  return result;
}

/** Most cycles reported before the rest are summarized in one line. */
const MAX_CYCLES = 100;

/**
 * Checks the layering of the project below `root`: every module in a package of `layers`, every
 * relative import going to the same package or a strictly lower layer, no import cycle (Worker
 * references excluded). Reads files only.
 *
 * @param root the repository root (the directory holding `src/`, `ffi/` and `mod.ts`)
 * @param layers the layer table, lowest first; defaults to {@link LAYERS}
 * @returns the number of modules and imports checked, and one line per problem
 * @throws {Error} when the layer table lists a package twice or the root cannot be read
 *
 * @example
 * ```ts
 * import { checkLayers } from "./tools/check_layers.ts";
 * const report = await checkLayers(".");
 * for (const problem of report.problems) console.log(problem);
 * ```
 */
export async function checkLayers(
  root: string,
  layers: LayerTable = LAYERS,
): Promise<LayerReport> {
  const index = layerIndex(layers);
  const info = await Deno.stat(root).catch((err: Error) => {
    throw new Error(`Cannot read the root: ${root}: ${err.message}`);
  });
  if (!info.isDirectory) throw new Error(`Cannot read the root: ${root}: not a directory`);

  const modules = await listModules(root);
  const moduleSet = new Set(modules);
  const problems: string[] = [];
  const edges = new Map<string, Set<string>>();
  let imports = 0;

  for (const mod of modules) {
    if (packageOf(mod, index) === undefined) {
      problems.push(
        `Unassigned module: ${mod}: add its package to the layer table in tools/check_layers.ts`,
      );
    }
  }

  for (const mod of modules) {
    const from = packageOf(mod, index);
    const out = new Set<string>();
    edges.set(mod, out);
    const source = await Deno.readTextFile(posix.join(root, mod));
    for (const ref of scanImports(source)) {
      const target = resolveSpecifier(mod, ref.specifier);
      if (target === undefined) continue;
      if (ref.kind === "worker" && !isScript(target)) continue;
      imports++;
      const where = `${mod}:${ref.line}: ${
        ref.kind === "worker" ? "starts a worker from" : "imports"
      }`;
      const isModule = moduleSet.has(target);
      if (!isModule && !(await exists(posix.join(root, target)))) {
        problems.push(`${where} ${target}: no such file`);
        continue;
      }
      if (isModule && ref.kind !== "worker") out.add(target);
      if (from === undefined) continue; // reported as an unassigned module
      const to = packageOf(target, index);
      if (to === undefined) {
        // An unassigned module is reported once, above; anything else is outside the table.
        if (!isModule) problems.push(`${where} ${target}: it is in no package of the layer table`);
        continue;
      }
      const fromLayer = index.get(from)!;
      const toLayer = index.get(to)!;
      if (to !== from && toLayer >= fromLayer) {
        problems.push(
          `${where} ${target}: ${from} (layer ${fromLayer}) may not import ${to} (layer ${toLayer})`,
        );
      }
    }
  }

  const cycles = findCycles(modules, edges, MAX_CYCLES + 1);
  for (const cycle of cycles.slice(0, MAX_CYCLES)) {
    problems.push(`Import cycle: ${cycle.join(" -> ")}`);
  }
  if (cycles.length > MAX_CYCLES) {
    problems.push(`More import cycles: only the first ${MAX_CYCLES} are listed`);
  }
  return { modules: modules.length, imports, problems };
}

const USAGE = `Usage: deno run --allow-read tools/check_layers.ts [--root DIR]

Checks that the project's modules import only their own package or lower layers, and that there
is no import cycle. --root defaults to the repository holding this tool.`;

async function main(args: string[]): Promise<number> {
  let values: { root?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: { root: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`Invalid arguments: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const root = values.root ?? fileURLToPath(new URL("..", import.meta.url));
  let report: LayerReport;
  try {
    report = await checkLayers(root);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const counts = `${report.modules} modules, ${report.imports} imports checked`;
  if (report.problems.length === 0) {
    console.log(`Layering clean: ${counts}`);
    return 0;
  }
  for (const problem of report.problems) console.log(problem);
  console.error(`Layering problems: ${report.problems.length} (${counts})`);
  return 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
