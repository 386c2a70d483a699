/**
 * The layering checker (tools/check_layers.ts) on small temporary trees, its import scanner on
 * tricky sources, and this repository itself, which must be clean.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkLayers, type LayerTable, scanImports } from "../tools/check_layers.ts";

/** A small table for the temporary trees: `src/left` and `src/right` share layer 2. */
const TABLE: LayerTable = [
  ["src/util", "src/version.ts"],
  ["src/low"],
  ["src/left", "src/right"],
  ["src/high"],
  ["mod.ts"],
];

/** A temporary project tree, removed when disposed. */
async function tree(files: Record<string, string>): Promise<AsyncDisposable & { root: string }> {
  const root = await Deno.makeTempDir({ prefix: "xtcp2_layers_" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  return { root, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

/** A well-layered tree: each module imports only lower layers or its own package. */
const CLEAN: Record<string, string> = {
  "src/version.ts": 'export const VERSION = "1";\n',
  "src/util/bytes.ts": 'import { parseArgs } from "node:util";\nexport const x = parseArgs;\n',
  "src/low/a.ts": 'import { VERSION } from "../version.ts";\nexport const a = VERSION;\n',
  "src/low/b.ts": 'import { a } from "./a.ts";\nexport const b = a;\n',
  "src/left/l.ts": 'import { b } from "../low/b.ts";\nimport "npm:kafkajs";\nexport const l = b;\n',
  "src/right/r.ts": 'import { x } from "../util/bytes.ts";\nexport const r = x;\n',
  "src/high/h.ts": [
    "import {",
    "  l,",
    '} from "../left/l.ts";',
    'import type { r } from "../right/r.ts";',
    'import { fromBinary } from "@bufbuild/protobuf";',
    "export { l, r, fromBinary };",
    "",
  ].join("\n"),
  "mod.ts": 'export * from "./src/high/h.ts";\nexport { VERSION } from "./src/version.ts";\n',
  "tests/t_test.ts": 'import "../src/high/h.ts";\nimport "../mod.ts";\n',
};

Deno.test("a clean tree passes, counting its modules and relative imports", async () => {
  await using t = await tree(CLEAN);
  const report = await checkLayers(t.root, TABLE);
  assert.deepEqual(report.problems, []);
  assert.equal(report.modules, 8); // tests/ is not checked
  assert.equal(report.imports, 8); // npm:, node: and import-map names are not counted
});

Deno.test("an upward import is reported with its file, line, module and both packages", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/b.ts":
      'import { a } from "./a.ts";\n\nimport { h } from "../high/h.ts";\nexport const b = a;\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.ok(
    problems.includes(
      "src/low/b.ts:3: imports src/high/h.ts: src/low (layer 1) may not import src/high (layer 3)",
    ),
    problems.join("\n"),
  );
});

Deno.test("packages in the same layer may not import each other", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/right/r.ts": 'import { x } from "../util/bytes.ts";\nimport { l } from "../left/l.ts";\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, [
    "src/right/r.ts:2: imports src/left/l.ts: src/right (layer 2) may not import src/left (layer 2)",
  ]);
});

Deno.test("a two-module cycle is reported once, as its chain", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/a.ts": 'import { b } from "./b.ts";\nexport const a = 1;\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, ["Import cycle: src/low/a.ts -> src/low/b.ts -> src/low/a.ts"]);
});

Deno.test("a longer cycle is reported once, starting at its first module", async () => {
  await using t = await tree({
    "src/low/c.ts": 'import { a } from "./a.ts";\nexport const c = 1;\n',
    "src/low/a.ts": 'import { b } from "./b.ts";\nexport const a = 1;\n',
    "src/low/b.ts":
      'import { c } from "./c.ts";\nimport { a } from "./a.ts";\nexport const b = 1;\n',
    "src/low/d.ts": 'import { a } from "./a.ts";\nexport const d = 1;\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  // Two elementary cycles share a -> b; each is listed once, whatever module it is entered from.
  assert.deepEqual(problems, [
    "Import cycle: src/low/a.ts -> src/low/b.ts -> src/low/c.ts -> src/low/a.ts",
    "Import cycle: src/low/a.ts -> src/low/b.ts -> src/low/a.ts",
  ]);
});

Deno.test("a dynamic import counts for layering and for cycles", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/a.ts": [
      'import { VERSION } from "../version.ts";',
      "export async function later() {",
      '  return (await import("./b.ts")).b + (await import("../right/r.ts")).r;',
      "}",
      "export const a = VERSION;",
      "",
    ].join("\n"),
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, [
    "src/low/a.ts:3: imports src/right/r.ts: src/low (layer 1) may not import src/right (layer 2)",
    "Import cycle: src/low/a.ts -> src/low/b.ts -> src/low/a.ts",
  ]);
});

Deno.test("a type-only import and a re-export count", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/a.ts":
      'import type { l } from "../left/l.ts";\nexport type { h } from "../high/h.ts";\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.ok(problems.includes(
    "src/low/a.ts:1: imports src/left/l.ts: src/low (layer 1) may not import src/left (layer 2)",
  ));
  assert.ok(problems.includes(
    "src/low/a.ts:2: imports src/high/h.ts: src/low (layer 1) may not import src/high (layer 3)",
  ));
});

Deno.test("imports in comments, strings and template literals do not count", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/a.ts": [
      "/**",
      " * @example",
      " * ```ts",
      ' * import { h } from "../high/h.ts";',
      " * ```",
      " */",
      '// import { l } from "../left/l.ts";',
      '/* export * from "../right/r.ts"; */',
      'const code = `import { h } from "../high/h.ts";\\n${\'import("../left/l.ts")\'}`;',
      'const re = /import"/;',
      'export const a = code + re + "import(\\"../high/h.ts\\")";',
      "",
    ].join("\n"),
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, []);
});

Deno.test("a Worker's new URL counts for layering but not for cycles", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/low/a.ts": [
      'import { VERSION } from "../version.ts";',
      'const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });',
      'const up = new Worker(new URL("../left/l.ts", import.meta.url), { type: "module" });',
      'const data = new URL("./table.bin", import.meta.url);',
      "export const a = [VERSION, w, up, data];",
      "",
    ].join("\n"),
    "src/low/worker.ts": 'import { a } from "./a.ts";\nexport const w = a;\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, [
    "src/low/a.ts:3: starts a worker from src/left/l.ts: src/low (layer 1) may not import src/left (layer 2)",
  ]);
});

Deno.test("a module in no package is reported, and so is a missing one", async () => {
  await using t = await tree({
    ...CLEAN,
    "src/stray/s.ts": 'import { a } from "../low/a.ts";\nexport const s = a;\n',
    "src/high/h.ts": 'import { s } from "../stray/s.ts";\nimport "./gone.ts";\nexport { s };\n',
    "mod.ts": 'export * from "./src/high/h.ts";\n',
  });
  const { problems } = await checkLayers(t.root, TABLE);
  assert.deepEqual(problems, [
    "Unassigned module: src/stray/s.ts: add its package to the layer table in tools/check_layers.ts",
    "src/high/h.ts:2: imports src/high/gone.ts: no such file",
  ]);
});

Deno.test("a package listed in two layers is an error", async () => {
  await using t = await tree(CLEAN);
  await assert.rejects(
    checkLayers(t.root, [["src/low"], ["src/low"]]),
    { message: "Package listed twice in the layer table: src/low: layers 0 and 1" },
  );
});

Deno.test("scanImports reads multi-line, type-only, re-export, dynamic and worker references", () => {
  const src = [
    'import x, { type A, b as c } from "./one.ts";', // 1
    "import type {", // 2
    "  D,", // 3
    '} from "./two.ts";', // 4
    'import "./three.ts";', // 5
    'export * from "./four.ts";', // 6
    'export * as ns from "./five.ts";', // 7
    'export { e } from "./six.ts";', // 8
    "export { f };", // 9
    'const g = await import("./seven.ts");', // 10
    'const w = new Worker(new URL("./eight.ts", import.meta.url));', // 11
    "if (import.meta.main) console.log(x / 2 / 3, `${c}/`, { import: 1 }.import);", // 12
    'import * as C from "./nine.ts";', // 13
  ].join("\n");
  assert.deepEqual(scanImports(src), [
    { specifier: "./one.ts", line: 1, kind: "static" },
    { specifier: "./two.ts", line: 2, kind: "static" },
    { specifier: "./three.ts", line: 5, kind: "static" },
    { specifier: "./four.ts", line: 6, kind: "static" },
    { specifier: "./five.ts", line: 7, kind: "static" },
    { specifier: "./six.ts", line: 8, kind: "static" },
    { specifier: "./seven.ts", line: 10, kind: "dynamic" },
    { specifier: "./eight.ts", line: 11, kind: "worker" },
    { specifier: "./nine.ts", line: 13, kind: "static" },
  ]);
});

Deno.test("the repository itself is layered cleanly: no upward import, no cycle", async () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const report = await checkLayers(root);
  assert.ok(report.modules > 50, `only ${report.modules} modules found in the repository`);
  assert.ok(report.imports > report.modules, `only ${report.imports} imports checked`);
  assert.deepEqual(report.problems, [], `layering problems:\n${report.problems.join("\n")}`);
});
