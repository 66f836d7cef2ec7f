import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { buildCrd } from '../../src/api/v1alpha1/crd.js';
import { ACCEPTED, REFUSALS, validDoc } from '../fixtures/api-refusals.js';

// The same table the real kube-apiserver test applies: what the API refuses, the CLI and operator refuse too.
for (const c of REFUSALS) {
  test(`ajv refuses what the API refuses: ${c.name}`, () => {
    const doc = validDoc();
    c.mutate(doc);
    const result = validateEtcdBackup(doc);
    assert.equal(result.ok, false, 'accepted');
    const problems = result.ok ? [] : result.problems;
    assert.ok(
      problems.some((p) => p.startsWith(`${c.field}:`) && p.includes(c.ajv)),
      `no problem for ${c.field} saying "${c.ajv}": ${JSON.stringify(problems)}`,
    );
  });
}

for (const c of ACCEPTED) {
  test(`ajv accepts: ${c.name}`, () => {
    const doc = validDoc();
    c.mutate(doc);
    const result = validateEtcdBackup(doc);
    assert.deepEqual(result.ok ? [] : result.problems, []);
  });
}

type Node = Record<string, unknown>;

/** Every property under spec and status, as a dotted path, with its description (if any). */
function fieldsOf(node: Node, path: string, out: Array<[string, unknown]>): Array<[string, unknown]> {
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, Node>)) {
    out.push([`${path}.${name}`, child.description]);
    fieldsOf(child, `${path}.${name}`, out);
    if (child.items) fieldsOf(child.items as Node, `${path}.${name}[]`, out);
    if (typeof child.additionalProperties === 'object') fieldsOf(child.additionalProperties as Node, `${path}.${name}{}`, out);
  }
  return out;
}

test('every spec and status field has a description (kubectl explain shows it)', () => {
  const root = buildCrd().spec.versions[0]!.schema.openAPIV3Schema as Node;
  const properties = root.properties as Record<string, Node>;
  const fields = [
    ['spec', properties.spec!.description] as [string, unknown],
    ['status', properties.status!.description] as [string, unknown],
    ...fieldsOf(properties.spec!, 'spec', []),
    ...fieldsOf(properties.status!, 'status', []),
  ];
  assert.ok(fields.length > 60, `walked only ${fields.length} fields`);
  const missing = fields.filter(([, description]) => typeof description !== 'string' || description.trim() === '').map(([p]) => p);
  assert.deepEqual(missing, []);
});
