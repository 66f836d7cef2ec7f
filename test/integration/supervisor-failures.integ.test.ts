/**
 * A failure that repeats with the same message is counted on every poll (consecutiveFailures 1, 2,
 * 3, ...), while the Warning Event and the warn log line appear once, not once per period. Real
 * etcd and LocalStore; the store fails delta uploads with one fixed message while `failing` is set.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import type { SupervisorEvent, SupervisorReport } from '../../src/engine/supervisor-types.js';
import { headRevision } from '../../src/etcd/client.js';
import { StoreUnreachableError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { PutOptions, PutResult } from '../../src/store/object-store.js';
import type { Readable } from 'node:stream';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { writeMixedWorkload } from '../helpers/workload.js';

const MESSAGE = 'cannot put delta: the store is down (injected)';

/** Fails every delta upload with the same message while `failing` is set. */
class FailingDeltaStore extends DelegatingStore {
  failing = false;
  override put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    if (this.failing && key.startsWith('delta/')) {
      if (!Buffer.isBuffer(body)) body.resume();
      return Promise.reject(new StoreUnreachableError(MESSAGE));
    }
    return this.inner.put(key, body, options);
  }
}

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'supervisor-failures-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

test('a delta failure repeating with the same message counts every poll, with one Event and one warn line', { timeout: 120_000 }, async () => {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'failing' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'store') } },
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '1s', chunkRevisions: 100, chunkParallelism: 1 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const store = new FailingDeltaStore(new LocalStore(join(work, 'store')));
  const logLines: Array<{ level: string; message: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as { level: string; message: string });
      done();
    },
  });
  const supervisor = new Supervisor(
    { resolved: validation.resolved, secrets: {}, name: 'test/failing' },
    createLogger({ level: 'info', stream }),
    { store },
  );
  const reports: SupervisorReport[] = [];
  const events: SupervisorEvent[] = [];
  supervisor.onReport((r) => reports.push(r));
  supervisor.onEvent((e) => events.push(e));
  await supervisor.start();
  try {
    const client = etcd.client();
    await writeMixedWorkload(client, 'a/', 50, 1);
    let head = await headRevision(client);
    await until('the first deltas', () => (supervisor.report().archivedRevision ?? 0) >= head);

    store.failing = true;
    const reportsBefore = reports.length;
    const logsBefore = logLines.length;
    await writeMixedWorkload(client, 'b/', 20, 2);
    await until('four failed polls in a row', () => (supervisor.report().delta!.consecutiveFailures >= 4 ? true : undefined));
    const failing = reports.slice(reportsBefore).filter((r) => r.delta!.consecutiveFailures > 0);
    assert.deepEqual([...new Set(failing.map((r) => r.delta!.lastError))], [MESSAGE], 'one message throughout');
    const counts = [...new Set(failing.map((r) => r.delta!.consecutiveFailures))];
    assert.deepEqual(counts.slice(0, 4), [1, 2, 3, 4], 'each failed poll counts once');
    assert.equal(events.filter((e) => e.reason === 'DeltaSnapshotFailed').length, 1, 'one Warning Event for the repeating failure');
    const pollWarnings = logLines.slice(logsBefore).filter((l) => l.message === 'Delta poll failed');
    assert.equal(pollWarnings.length, 1, 'one warn line for the repeating failure');

    store.failing = false;
    head = await headRevision(client);
    await until('recovery', () => {
      const r = supervisor.report();
      return r.delta!.consecutiveFailures === 0 && (r.archivedRevision ?? 0) >= head;
    });
    assert.equal(supervisor.report().delta!.lastError, undefined);
  } finally {
    await supervisor.stop();
  }
});
