/**
 * A full snapshot missed while no backup ran is taken once at start, and the deltas still bridge
 * the downtime: the revisions written meanwhile stay restorable point-in-time from the older
 * snapshot (the poller resumes from the last run's chain end, not from the catch-up snapshot).
 * Real etcd and LocalStore; the second run's clock is two minutes ahead so the minutely schedule
 * has a missed tick.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { headRevision } from '../../src/etcd/client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { planDeltas } from '../../src/restore/delta-replay.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { listBackupObjects, type ObjectInfo } from '../../src/store/object-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { FakeClock } from '../harness/fake-clock.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { writeMixedWorkload } from '../helpers/workload.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Lists late, as a big bucket does: the catch-up snapshot of a small db then lands before the
 * poller has read its position, which is the race this test pins down.
 */
class SlowListingStore extends DelegatingStore {
  override async list(prefix: string): Promise<ObjectInfo[]> {
    await sleep(1500);
    return this.inner.list(prefix);
  }
}

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'catch-up-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const until = (what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<true> =>
  waitFor(what, probe, { timeoutMs });

test('a catch-up full snapshot at start leaves no point-in-time gap over the downtime', { timeout: 120_000 }, async () => {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'catch-up' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'store') } },
      fullSnapshot: { schedule: '* * * * *' },
      deltaSnapshot: { period: '1s', chunkRevisions: 50, chunkParallelism: 2 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const store = new LocalStore(join(work, 'store'));
  const listing = async () => classifyKeys((await listBackupObjects(store)).map((o) => o.key));
  const client = etcd.client();
  const config = { resolved: validation.resolved, secrets: {}, name: 'test/catch-up' };

  // First run: a full snapshot and deltas up to the head.
  const first = new Supervisor(config, silentLogger(), { store });
  await first.start();
  await writeMixedWorkload(client, 'before/', 100, 1);
  let head = await headRevision(client);
  await until('the first run to archive the head', () => (first.report().archivedRevision ?? 0) >= head);
  await first.stop();
  const firstRun = await listing();
  const oldSnapshot = firstRun.fulls[0]!;
  const oldChainEnd = head;

  // Downtime: writes no backup sees.
  await writeMixedWorkload(client, 'downtime/', 200, 2);
  const downtimeHead = await headRevision(client);
  assert.ok(downtimeHead > oldChainEnd + 100);

  // Second run, two minutes later by its clock: the missed tick is caught up once at start. Its
  // timers are a FakeClock the test never advances, so no scheduled tick fires: the only full snapshot
  // this run can take is the catch-up (with real timers the next minute's tick would take one and
  // hide a missing catch-up).
  const neverFires = new FakeClock(new Date());
  const second = new Supervisor(config, silentLogger(), {
    store: new SlowListingStore(store),
    now: () => new Date(Date.now() + 120_000),
    timers: neverFires,
  });
  await second.start();
  try {
    await writeMixedWorkload(client, 'after/', 50, 3);
    head = await headRevision(client);
    await until('the second run to archive the head', () => (second.report().archivedRevision ?? 0) >= head);
    await until('the catch-up snapshot', async () => (await listing()).fulls.some((f) => f.revision >= downtimeHead));
  } finally {
    await second.stop();
  }

  const final = await listing();
  const catchUp = final.fulls.filter((f) => f.revision >= downtimeHead);
  assert.equal(catchUp.length, 1, 'the missed snapshot was taken once, at start');
  assert.ok(final.fulls.some((f) => f.key === oldSnapshot.key), 'the older snapshot is kept');
  // Every downtime revision is reachable from the older snapshot through deltas: no gap.
  const plan = planDeltas(final.deltas, oldSnapshot.revision, head);
  assert.ok(plan.length > 0);
  assert.ok(
    final.deltas.some((d) => d.fromRevision <= oldChainEnd + 1 && d.toRevision > oldChainEnd),
    'the second run continued right after the first run’s chain end',
  );
});
