/**
 * The one layering rule: imports point down. Reads the import statements of every file under src/
 * (plain text, no compiler) and checks the layer map of docs/architecture.md against them.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * Rooms (folders of src/, or a top-level file) from the bottom up: a room may import only from rooms
 * on a lower line. Rooms on one line are independent of each other. Keep in step with docs/architecture.md.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'process'],
  ['crypto', 'archive'],
  ['budget'],
  ['api'],
  ['observability'],
  ['store', 'etcd'],
  ['restore'],
  ['engine'],
  ['controller'],
  ['cli'],
];

/** The rooms that hold primitives every layer uses: none of them may reach up into these. */
const UPPER_ROOMS = ['engine', 'controller', 'cli'];
const LOWER_ROOMS = ['etcd', 'store', 'restore', 'api', 'observability', 'crypto', 'budget', 'archive'];

/** `from '...'` (import, import type, export ... from), `import('...')` and bare `import '...'`. */
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** src-relative path without extension, e.g. 'engine/supervisor'. */
const moduleId = (path: string): string => relative(SRC, path).replace(/\\/g, '/').replace(/\.ts$/, '');
const roomOf = (id: string): string => id.split('/')[0]!;

/** Every file's imports of other src/ files (by module id). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(SPECIFIER)) {
      const specifier = match[1]!;
      if (!specifier.startsWith('.')) continue; // packages and node: builtins
      const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
      // A specifier that names no file means this parser misread it: fail rather than check less.
      assert.ok(existsSync(target), `${moduleId(file)}: cannot resolve import ${JSON.stringify(specifier)}`);
      targets.push(moduleId(target));
    }
    graph.set(moduleId(file), targets);
  }
  return graph;
}

/** One cycle of the graph as a path (first node repeated at the end), or undefined when it has none. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = onPath.indexOf(node);
    if (at >= 0) return [...onPath.slice(at), node];
    if (done.has(node)) return undefined;
    onPath.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(node);
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const graph = importGraph();

test('the parser sees the imports (a known edge of each kind is found)', () => {
  assert.ok(graph.size > 40, `only ${graph.size} files under src/`);
  assert.ok(graph.get('store/factory')?.includes('store/s3-store'), "dynamic import('./s3-store.js') in store/factory");
  assert.ok(graph.get('observability/metrics')?.includes('api/supervisor-report'), 'import type in observability/metrics');
});

test('findCycle finds a cycle and its path, and none in a DAG', () => {
  const cases: { name: string; edges: Record<string, string[]>; expected: string[] | undefined }[] = [
    { name: 'two-file circle', edges: { a: ['b'], b: ['a'] }, expected: ['a', 'b', 'a'] },
    { name: 'longer circle behind a tail', edges: { a: ['b'], b: ['c'], c: ['d'], d: ['b'] }, expected: ['b', 'c', 'd', 'b'] },
    { name: 'diamond', edges: { a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }, expected: undefined },
    { name: 'self import', edges: { a: ['a'] }, expected: ['a', 'a'] },
  ];
  for (const { name, edges, expected } of cases) {
    assert.deepEqual(findCycle(new Map(Object.entries(edges))), expected, name);
  }
});

test(`no module of ${LOWER_ROOMS.join(', ')} imports from ${UPPER_ROOMS.join(', ')}`, () => {
  const upward = [...graph].flatMap(([from, targets]) =>
    LOWER_ROOMS.includes(roomOf(from)) ? targets.filter((to) => UPPER_ROOMS.includes(roomOf(to))).map((to) => `${from} -> ${to}`) : [],
  );
  assert.deepEqual(upward, []);
});

test('there is no import cycle between files', () => {
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(' -> ')}`);
});

test('imports point down: every import between rooms goes to a lower layer', () => {
  const layerOf = new Map(LAYERS.flatMap((rooms, layer) => rooms.map((room) => [room, layer] as const)));
  const unmapped = [...new Set([...graph.keys()].map(roomOf))].filter((room) => !layerOf.has(room));
  assert.deepEqual(unmapped, [], 'new rooms need a line in LAYERS (and in docs/architecture.md)');
  const wrong = [...graph].flatMap(([from, targets]) =>
    targets
      .filter((to) => roomOf(to) !== roomOf(from) && layerOf.get(roomOf(to))! >= layerOf.get(roomOf(from))!)
      .map((to) => `${from} -> ${to}`),
  );
  assert.deepEqual(wrong, []);
});
