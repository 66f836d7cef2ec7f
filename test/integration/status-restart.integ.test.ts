/**
 * Status that survives a worker restart: a new Supervisor on the same store reports the newest full
 * snapshot with the size, sha256 and exact time it had when taken (from the listing and the object's
 * metadata), the newest delta as stored, and its metrics seed last-success times from them.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { headRevision } from '../../src/etcd/client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { LocalStore } from '../../src/store/local-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { writeMixedWorkload } from '../helpers/workload.js';

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'status-restart-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function supervisorOn(dir: string): Supervisor {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'restart' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: dir } },
      fullSnapshot: { schedule: '0 0 1 1 *' }, // yearly: only the first snapshot, taken at start
      deltaSnapshot: { period: '1s', chunkRevisions: 100, chunkParallelism: 1 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  return new Supervisor({ resolved: validation.resolved, secrets: {}, name: 'test/restart' }, silentLogger(), {
    store: new LocalStore(dir),
  });
}

test('after a restart the report holds the stored full snapshot (size, sha256, exact time) and newest delta', { timeout: 120_000 }, async () => {
  const dir = join(work, 'store');
  const first = supervisorOn(dir);
  await first.start();
  const client = etcd.client();
  let taken;
  try {
    taken = await waitFor('the first full snapshot', () => first.report().lastFullSnapshot, { timeoutMs: 60_000 });
    await writeMixedWorkload(client, 'r/', 30, 1);
    const head = await headRevision(client);
    await waitFor('deltas up to the head', () => (first.report().archivedRevision ?? 0) >= head, { timeoutMs: 60_000 });
  } finally {
    await first.stop();
  }
  const lastDelta = first.report().lastDeltaSnapshot!;
  assert.ok(taken.sizeBytes > 0 && taken.sha256, 'the first run knew size and sha256');
  assert.notEqual(taken.time.slice(-5), '.000Z', 'a time with milliseconds (the key has whole seconds)');

  const second = supervisorOn(dir);
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  second.onReport((report) => metrics.observeReport('ns', 'restart', report));
  await second.start();
  try {
    const restored = await waitFor('the stored full snapshot in the report', () => second.report().lastFullSnapshot, { timeoutMs: 60_000 });
    assert.deepEqual(restored, taken);
    const delta = await waitFor('the stored delta in the report', () => second.report().lastDeltaSnapshot, { timeoutMs: 60_000 });
    assert.equal(delta.object, lastDelta.object);
    assert.equal(delta.toRevision, lastDelta.toRevision);
    assert.equal(delta.time, (await stat(join(dir, delta.object))).mtime.toISOString());

    metrics.observeReport('ns', 'restart', second.report());
    const text = await metrics.registry.metrics();
    const seconds = (iso: string) => String(Date.parse(iso) / 1000);
    assert.match(text, new RegExp(`^etcdbackup_last_success_timestamp_seconds\\{namespace="ns",name="restart",kind="full"\\} ${seconds(taken.time)}$`, 'm'));
    assert.match(text, new RegExp(`^etcdbackup_last_full_snapshot_size_bytes\\{namespace="ns",name="restart"\\} ${taken.sizeBytes}$`, 'm'));
    assert.match(text, /^etcdbackup_last_success_timestamp_seconds\{namespace="ns",name="restart",kind="delta"\} \d/m);
  } finally {
    await second.stop();
  }
});
