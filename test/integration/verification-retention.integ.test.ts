/**
 * A verification racing retention (issue 14, defect 10b), with a real etcd and a LocalStore: with
 * maxFullSnapshots 1, a full snapshot taken while a verification reads the store made retention
 * delete the snapshot being verified, and the verification reported a false VerificationFailed.
 * The store gate holds the verification's first read until the new snapshot (and its retention)
 * has finished, so the race happens every run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { GetResult } from '../../src/store/object-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { waitFor } from '../helpers/wait.js';

/** Holds the first read of a full snapshot until release() (the verification's download). */
class GatedStore extends DelegatingStore {
  held: string | undefined;
  private opened!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.opened = resolve));
  private used = false;

  override async get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    if (!this.used && key.startsWith('full/')) {
      this.used = true;
      this.held = key;
      await this.gate;
    }
    return this.inner.get(key, options);
  }

  release(): void {
    this.opened();
  }
}

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'verification-retention-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('a full snapshot and its retention during a verification do not fail the verification', { timeout: 120_000 }, async () => {
  const client = etcd.client();
  for (let i = 0; i < 20; i++) await client.put(`k/${i}`).value(`v${i}`);
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'race' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'store') } },
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '0' },
      memory: { budget: '32Mi' },
      retention: { policy: 'LimitBased', maxFullSnapshots: 1 },
      verification: { schedule: '0 0 1 1 *' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const store = new GatedStore(new LocalStore(join(work, 'store')));
  const supervisor = new Supervisor({ resolved: validation.resolved, secrets: {}, name: 'test/race' }, silentLogger(), { store });
  await supervisor.start();
  try {
    const first = await waitFor('the first full snapshot', () => {
      const last = supervisor.report().lastFullSnapshot;
      return last?.sizeBytes ? last : undefined;
    });
    const verification = supervisor.verifyNow();
    await waitFor('the verification to read the snapshot', () => store.held !== undefined);
    assert.equal(store.held, first.object);
    for (let i = 0; i < 5; i++) await client.put(`k2/${i}`).value(`v${i}`);
    const second = await supervisor.takeFullSnapshotNow();
    assert.ok(second && second.key !== first.object, 'a second full snapshot was taken');
    store.release();
    const outcome = await verification;
    assert.equal(outcome?.consecutiveFailures, 0, `verification failed: ${outcome?.lastError ?? ''}`);
    // Retention was deferred, not skipped: it runs once the verification has ended.
    await waitFor('retention to keep only the newest full snapshot', async () => {
      const fulls = (await store.list('full/')).map((o) => o.key);
      return fulls.length === 1 && fulls[0] === second.key;
    });
  } finally {
    store.release();
    await supervisor.stop();
  }
});
