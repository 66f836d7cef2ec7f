/**
 * The CRD (crds/, generated from src/api/v1alpha1/schema.ts) in a REAL kube-apiserver: every spec in
 * test/fixtures/api-refusals.ts is refused by the real `kubectl apply` with a message that names the
 * field and says what is wrong, also under `--dry-run=server` (what a GitOps diff runs); the accepted
 * edge cases go through; `kubectl explain` shows the field descriptions.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { KubectlError, startRealKubeApiServer, type RealKubeApiServer } from '../harness/kube-apiserver.js';
import { kubeApiServerBinary, REPO_ROOT, skipUnlessBuilt } from '../harness/test-tools.js';
import { ACCEPTED, REFUSALS, validDoc } from '../fixtures/api-refusals.js';

const skip = skipUnlessBuilt(kubeApiServerBinary(), 'kube-apiserver');

describe('CRD validation in a real kube-apiserver', { skip }, () => {
  let api: RealKubeApiServer;

  before(async () => {
    api = await startRealKubeApiServer();
    await api.kubectl(['apply', '-f', join(REPO_ROOT, 'crds/')]);
    await api.kubectl(['wait', '--for=condition=Established', 'crd/etcdbackups.etcdbackup.io', '--timeout=60s']);
  });

  after(async () => {
    await api?.stop();
  });

  async function refusal(doc: unknown, dryRun = false): Promise<string> {
    const args = ['apply', '-f', '-', ...(dryRun ? ['--dry-run=server'] : [])];
    try {
      const out = await api.kubectl(args, { input: stringify(doc) });
      return assert.fail(`accepted: ${out}`);
    } catch (err) {
      if (!(err instanceof KubectlError)) throw err;
      return err.stderr;
    }
  }

  for (const [i, c] of REFUSALS.entries()) {
    test(`refused: ${c.name}`, async () => {
      const doc = validDoc(`refused-${i}`);
      c.mutate(doc);
      const message = await refusal(doc);
      assert.match(message, /is invalid/, message);
      // `spec.memory.budget: Invalid value: ...: <what is wrong>` — the field, then the reason.
      const line = message.split(/\n|, /).find((part) => part.includes(c.field) && part.includes(c.api));
      assert.ok(line, `no line naming ${c.field} with "${c.api}" in:\n${message}`);
      assert.doesNotMatch(message, /evaluation error|compilation failed|no such key/, 'a CEL rule failed to run');
      assert.equal(await refusal(doc, true), message.replace(/ \(dry run\)/, ''), 'dry-run=server refuses the same way');
    });
  }

  test('accepted: the edge cases both validations allow', async () => {
    for (const [i, c] of ACCEPTED.entries()) {
      const doc = validDoc(`accepted-${i}`);
      c.mutate(doc);
      await api.kubectl(['apply', '-f', '-'], { input: stringify(doc) }).catch((err: unknown) => {
        assert.fail(`${c.name}: ${err instanceof KubectlError ? err.stderr : String(err)}`);
      });
    }
  });

  test('kubectl explain shows the descriptions', async () => {
    const budget = await api.kubectl(['explain', 'etcdbackup.spec.memory.budget']);
    assert.match(budget, /Hard cap on bytes held for deltas/);
    const spec = await api.kubectl(['explain', 'etcdbackup.spec.deltaSnapshot']);
    assert.match(spec, /chunkParallelism.*\n\s+Chunks fetched at once/);
  });
});
