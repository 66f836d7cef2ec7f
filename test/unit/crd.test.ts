import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { buildCrd, CRD_FILE_NAME, crdYaml, PRINTER_COLUMNS } from '../../src/api/v1alpha1/crd.js';

// Both copies exist because kustomize refuses files outside its root: config/crd cannot reference crds/.
const GENERATED_FILES = [`crds/${CRD_FILE_NAME}`, `config/crd/bases/${CRD_FILE_NAME}`].map(
  (file) => new URL(`../../${file}`, import.meta.url),
);

test('generated CRD files are up to date with src/api/v1alpha1/schema.ts', () => {
  const expected = crdYaml();
  for (const file of GENERATED_FILES) {
    if (process.env.UPDATE_CRD === '1') writeFileSync(file, expected);
    const actual = readFileSync(file, 'utf8');
    assert.equal(
      actual,
      expected,
      `${file.pathname} is out of date: run \`UPDATE_CRD=1 node --import tsx --test test/unit/crd.test.ts\` ` +
        '(or `etcd-backup crd` into both files)',
    );
  }
});

test('the YAML parses back to the built CRD (no anchors, no folding surprises)', () => {
  assert.deepEqual(parse(crdYaml()), JSON.parse(JSON.stringify(buildCrd())));
});

type Node = Record<string, unknown>;

/**
 * The structural-schema rules of apiextensions.k8s.io/v1 that a hand-written schema tends to break:
 * every node has a type (or is int-or-string / preserve-unknown-fields), no $ref, types inside
 * anyOf/allOf/oneOf only for the int-or-string pattern, metadata restricted to type: object.
 */
function structuralProblems(node: Node, path: string, problems: string[]): void {
  if ('$ref' in node) problems.push(`${path}: $ref is not allowed`);
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (typeof node.type !== 'string' && !intOrString && !preserve) problems.push(`${path}: no type`);
  for (const junction of ['anyOf', 'allOf', 'oneOf'] as const) {
    const branches = node[junction];
    if (branches === undefined) continue;
    if (!Array.isArray(branches)) {
      problems.push(`${path}.${junction}: not a list`);
      continue;
    }
    const onlyIntOrString =
      intOrString &&
      junction === 'anyOf' &&
      branches.length === 2 &&
      branches.every((b: Node) => Object.keys(b).length === 1 && (b.type === 'integer' || b.type === 'string'));
    if (!onlyIntOrString) {
      branches.forEach((b: Node, i) => {
        for (const forbidden of ['type', 'properties', 'items', 'default', 'description']) {
          if (forbidden in b) problems.push(`${path}.${junction}[${i}]: ${forbidden} is not allowed here`);
        }
      });
    }
  }
  if (node.type === 'object' && node.properties !== undefined && node.additionalProperties !== undefined) {
    problems.push(`${path}: properties and additionalProperties together`);
  }
  if (node.type === 'array' && typeof node.items !== 'object') problems.push(`${path}: array without items`);
  const properties = (node.properties ?? {}) as Record<string, Node>;
  for (const [name, child] of Object.entries(properties)) structuralProblems(child, `${path}.${name}`, problems);
  if (typeof node.items === 'object' && node.items !== null) structuralProblems(node.items as Node, `${path}[]`, problems);
}

test('the openAPIV3Schema is structural: every property is typed', () => {
  const schema = buildCrd().spec.versions[0]!.schema.openAPIV3Schema as Node;
  const problems: string[] = [];
  structuralProblems(schema, '', problems);
  assert.deepEqual(problems, []);
  const metadata = (schema.properties as Record<string, Node>).metadata;
  assert.deepEqual(metadata, { type: 'object' }, 'metadata may only be typed; the apiserver owns its schema');
});

test('the structural check itself catches untyped and $ref nodes', () => {
  const cases: Array<{ name: string; schema: Node; expected: string[] }> = [
    { name: 'typed', schema: { type: 'object', properties: { a: { type: 'string' } } }, expected: [] },
    { name: 'untyped property', schema: { type: 'object', properties: { a: {} } }, expected: ['.a: no type'] },
    {
      name: '$ref',
      schema: { type: 'object', properties: { a: { $ref: '#/x', type: 'object' } } },
      expected: ['.a: $ref is not allowed'],
    },
    {
      name: 'int-or-string',
      schema: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
      expected: [],
    },
    {
      name: 'typed anyOf branch',
      schema: { type: 'object', anyOf: [{ type: 'string' }] },
      expected: ['.anyOf[0]: type is not allowed here'],
    },
    { name: 'untyped items', schema: { type: 'array', items: {} }, expected: ['[]: no type'] },
  ];
  for (const c of cases) {
    const problems: string[] = [];
    structuralProblems(c.schema, '', problems);
    assert.deepEqual(problems, c.expected, c.name);
  }
});

test('printer columns point at fields the schema declares', () => {
  const schema = buildCrd().spec.versions[0]!.schema.openAPIV3Schema as Node;
  for (const column of PRINTER_COLUMNS) {
    if (column.jsonPath.startsWith('.metadata.')) continue;
    // `.status.conditions[?(@.type=="Ready")].status` -> status.conditions[].status
    const parts = column.jsonPath.replace(/\[\?\(.*?\)\]/g, '[]').split('.').filter(Boolean);
    let node: Node | undefined = schema;
    for (const part of parts) {
      const name = part.replace(/\[\]$/, '');
      node = (node?.properties as Record<string, Node> | undefined)?.[name];
      if (part.endsWith('[]')) node = node?.items as Node | undefined;
    }
    assert.ok(node, `${column.name}: ${column.jsonPath} is not in the schema`);
    const expectedType = column.type === 'date' ? 'string' : column.type;
    assert.equal(node.type, expectedType, `${column.name}: ${column.jsonPath} has type ${String(node.type)}`);
  }
});

test('CRD identity: group, version, scope, short name, status subresource', () => {
  const crd = buildCrd();
  assert.equal(crd.metadata.name, 'etcdbackups.etcdbackup.io');
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(crd.spec.names.shortNames, ['eb']);
  assert.equal(crd.spec.versions.length, 1);
  const version = crd.spec.versions[0]!;
  assert.equal(version.name, 'v1alpha1');
  assert.ok(version.served && version.storage);
  assert.deepEqual(version.subresources, { status: {} });
  assert.deepEqual(
    version.additionalPrinterColumns.map((c) => c.name),
    ['Ready', 'Last Full', 'Archived Rev', 'Lag', 'Age', 'Schedule', 'Last Delta', 'Suspend', 'Reason'],
  );
  assert.deepEqual(
    version.additionalPrinterColumns.filter((c) => c.priority === 1).map((c) => c.name),
    ['Schedule', 'Last Delta', 'Suspend', 'Reason'],
    'only under -o wide',
  );
});
