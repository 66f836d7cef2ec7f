/**
 * Bounded restore time (issue #13): spec.fullSnapshot.maxDeltaRevisions makes the supervisor take a
 * full snapshot as soon as a restore to the latest point would replay more revisions than that, and
 * status shows the recoverable window and the replay length. Real etcd, real local store; the cron
 * schedule never fires during the test, so every snapshot after the first is the bound's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { computeStatus } from '../../src/controller/conditions.js';
import { observeStore } from '../../src/controller/store-status.js';
import { headRevision } from '../../src/etcd/client.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { verifyBackup } from '../../src/restore/verify.js';
import { silentLogger } from '../../src/observability/logger.js';
import { listBackupObjects } from '../../src/store/object-store.js';
import { LocalStore } from '../../src/store/local-store.js';
import { chainOf } from '../helpers/backup-chain.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'bounded-restore-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const BOUND = 50;

test('a full snapshot is taken early once the chain passes maxDeltaRevisions, not at the bound; status shows the window', { timeout: 120_000 }, async () => {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'bounded' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'bounded') } },
      // 1 January only: the schedule takes no snapshot while the test runs (the first is the store's first).
      fullSnapshot: { schedule: '0 0 1 1 *', compression: 'none', maxDeltaRevisions: BOUND },
      deltaSnapshot: { period: '1s', chunkRevisions: 20 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const { resolved } = validation;
  const store = new LocalStore(join(work, 'bounded'));
  const supervisor = new Supervisor({ resolved, secrets: {}, name: 'test/bounded' }, silentLogger(), { store });
  const taken: string[] = [];
  supervisor.onEvent((event) => {
    if (event.reason === 'FullSnapshotTaken') taken.push(event.message);
  });
  const client = etcd.client();
  await supervisor.start();
  try {
    await waitFor('the first full snapshot', () => taken.length === 1);
    const first = supervisor.report().lastFullSnapshot!.revision;

    // Exactly the bound: a restore would replay BOUND revisions, which is allowed.
    for (let i = 0; i < BOUND; i++) await client.put(`bounded/${i}`).value(`v${i}`);
    const atBound = await headRevision(client);
    assert.equal(atBound, first + BOUND, 'nothing else writes to this etcd');
    await waitFor('deltas archived up to the bound', () => supervisor.report().archivedRevision === atBound, {
      context: () => JSON.stringify(supervisor.report()),
    });
    assert.equal(supervisor.report().replayRevisions, BOUND);

    // One more revision passes it.
    await client.put('bounded/past').value('x');
    await waitFor('the early full snapshot', () => taken.length === 2 && supervisor.report().lastFullSnapshot?.revision !== first, {
      context: () => JSON.stringify(supervisor.report()),
    });
    const early = supervisor.report().lastFullSnapshot!;
    // Taken after the revision that passed the bound, not when the chain reached it.
    assert.equal(early.revision, atBound + 1);
    const chain = await chainOf(store);
    assert.equal(chain.fulls, 2, `two full snapshots: ${chain.keys.join(', ')}`);

    // The window reaches back to the first snapshot (its deltas join the early one) and to the head.
    const report = await waitFor('the window reaching the head', () => {
      const r = supervisor.report();
      return r.recoverableWindow?.lastRevision === atBound + 1 && r;
    });
    assert.equal(report.replayRevisions, 0);
    assert.equal(report.recoverableWindow!.firstRevision, first);
    // The status path: what the operator writes, and what it reads from the store alone for runner: pod.
    const status = computeStatus({
      generation: 1,
      previous: undefined,
      now: new Date(),
      specProblems: [],
      secretProblems: [],
      suspended: false,
      deltasEnabled: true,
      worker: { phase: 'Running', report },
    });
    assert.deepEqual(status.recoverableWindow, report.recoverableWindow);
    assert.equal(status.replayRevisions, 0);
    const stored = observeStore(await listBackupObjects(store));
    assert.deepEqual(
      { ...stored.recoverableWindow, lastTime: undefined },
      { ...report.recoverableWindow, lastTime: undefined },
      'the store listing gives the same window',
    );
    assert.equal(stored.replayRevisions, 0);
  } finally {
    await supervisor.stop();
  }
});

test('spec.compaction folds the chain into a full snapshot in the worker, without a snapshot of the live etcd', { timeout: 180_000 }, async () => {
  const EVERY = 30;
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'compacting' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'compacting') } },
      fullSnapshot: { schedule: '0 0 1 1 *', compression: 'gzip' },
      deltaSnapshot: { period: '1s', chunkRevisions: 10 },
      compaction: { everyDeltaRevisions: EVERY },
      // Encrypted: the compacted snapshot must be sealed as every other object is.
      encryption: { keySecretRef: { name: 'backup-key' } },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const store = new LocalStore(join(work, 'compacting'));
  const encryptionKey = randomBytes(32);
  const supervisor = new Supervisor({ resolved: validation.resolved, secrets: { encryptionKey }, name: 'test/compacting' }, silentLogger(), { store });
  const events: Array<{ reason: string; message: string }> = [];
  supervisor.onEvent((event) => events.push(event));
  const client = etcd.client();
  await supervisor.start();
  try {
    await waitFor('the first full snapshot', () => events.some((e) => e.reason === 'FullSnapshotTaken'));
    const first = supervisor.report().lastFullSnapshot!.revision;
    for (let i = 0; i < EVERY - 1; i++) await client.put(`compacting/${i}`).value(`v${i}`);
    await waitFor('deltas archived below the compaction threshold', () => supervisor.report().replayRevisions === EVERY - 1);
    for (let i = 0; i < 5; i++) await client.put(`compacting/more/${i}`).value(`m${i}`);
    const compacted = await waitFor('a compaction', () => events.find((e) => e.reason === 'BackupCompacted' || e.reason === 'CompactionFailed'), {
      context: () => JSON.stringify(supervisor.report()),
    });
    assert.equal(compacted.reason, 'BackupCompacted', compacted.message);
    // Not at the threshold minus one: only once the chain reached it.
    const folded = Number(/\+ (\d+) delta revisions/.exec(compacted.message)?.[1]);
    assert.ok(folded >= EVERY, `folded ${folded} revisions`);
    const revision = Number(/at revision (\d+)$/.exec(compacted.message)?.[1]);
    assert.equal(revision, first + folded);
    assert.equal(events.filter((e) => e.reason === 'FullSnapshotTaken').length, 1, 'the live etcd was snapshotted once, at start');
    const fulls = (await chainOf(store)).keys.filter((key) => key.startsWith('full/'));
    assert.equal(fulls.length, 2, fulls.join(', '));
    assert.match(fulls[1]!, new RegExp(`^full/0*${revision}-\\d+\\.db\\.gz\\.enc$`));

    const head = await headRevision(client);
    await waitFor('the chain after the compacted snapshot archived to the head', () => {
      const r = supervisor.report();
      return r.archivedRevision === head && r.recoverableWindow?.lastRevision === head && r;
    });
    assert.equal(supervisor.report().replayRevisions, head - revision);
    assert.equal(supervisor.report().compaction?.consecutiveFailures, 0);
    // What a restore to the latest point gives equals the live etcd, starting from the compacted snapshot.
    // Keys given and plaintext not allowed: every object read, the compacted snapshot too, must be encrypted.
    const verified = await verifyBackup({ store, logger: silentLogger(), live: { endpoints: [etcd.clientUrl] }, encryptionKeys: [encryptionKey] });
    assert.equal(verified.snapshot, fulls[1]);
    assert.equal(verified.revision, head);
    assert.deepEqual(verified.comparison?.differences, []);
  } finally {
    await supervisor.stop();
  }
});
