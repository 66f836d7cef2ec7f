/**
 * The full-snapshot cron lifecycle (issue #14, defect 1): the supervisor's clock and timers are a
 * FakeClock, so cron ticks come exactly when the test moves the clock, while every snapshot is a
 * real one from a real etcd into a real local store (retention included). Before the fix, a tick
 * that passed while a snapshot or its retention ran left no timer armed: the schedule stopped for good.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { computeStatus } from '../../src/controller/conditions.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { FakeClock } from '../harness/fake-clock.js';
import { GatedStore } from '../harness/throttled-store.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'full-schedule-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const at = (iso: string): Date => new Date(iso);

function validSpec(name: string, retention = 2) {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, name) } },
      fullSnapshot: { schedule: '* * * * *', compression: 'none' },
      deltaSnapshot: { period: '0' }, // no deltas: full snapshots are the whole backup
      retention: { policy: 'LimitBased', maxFullSnapshots: retention },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  return validation.resolved;
}

test('scheduled full snapshots continue after a tick crossed during a snapshot, with retention after each', { timeout: 120_000 }, async () => {
  const resolved = validSpec('schedule');
  const local = new LocalStore(join(work, 'schedule'));
  const store = new GatedStore(local);
  const clock = new FakeClock(at('2026-01-01T00:00:30Z'));
  const supervisor = new Supervisor({ resolved, secrets: {}, name: 'test/schedule' }, silentLogger(), {
    store,
    now: clock.now,
    timers: clock,
  });
  const taken: string[] = [];
  supervisor.onEvent((event) => {
    if (event.reason === 'FullSnapshotTaken') taken.push(event.message);
  });
  const client = etcd.client();
  const fulls = async (): Promise<string[]> => classifyKeys((await local.list('')).map((o) => o.key)).fulls.map((f) => f.key);

  /** Waits until `count` snapshots were taken, retention ran, and the next tick's timer is armed. */
  const settled = async (count: number, nextTick: string): Promise<void> => {
    await waitFor(`snapshot ${count} and a timer for ${nextTick}`, () =>
      taken.length === count && clock.pending().length === 1 && clock.pending()[0]!.toISOString() === at(nextTick).toISOString(),
      { context: () => `taken ${taken.length}, timers armed at ${clock.pending().map((d) => d.toISOString()).join(', ') || 'none'}` },
    );
    assert.equal(taken.length, count, 'no extra snapshot');
    assert.equal(supervisor.report().nextFullSnapshotTime, at(nextTick).toISOString());
    assert.deepEqual((await fulls()).length, Math.min(count, 2), 'retention kept the two newest');
  };

  try {
    // 1. The catch-up snapshot at start (empty store) crosses the 00:01 tick: the tick is caught up
    //    right after it, then the schedule goes on.
    store.hold();
    await supervisor.start();
    await waitFor('the catch-up snapshot to upload', () => store.waiting === 1);
    clock.advanceTo(at('2026-01-01T00:01:10Z'));
    assert.deepEqual(clock.pending(), [], 'no timer while the snapshot runs');
    store.release();
    await settled(2, '2026-01-01T00:02:00Z');

    // 2. Consecutive scheduled snapshots, each followed by retention and the next timer.
    for (const [tick, next, count] of [
      ['2026-01-01T00:02:00Z', '2026-01-01T00:03:00Z', 3],
      ['2026-01-01T00:03:00Z', '2026-01-01T00:04:00Z', 4],
      ['2026-01-01T00:04:00Z', '2026-01-01T00:05:00Z', 5],
    ] as const) {
      await client.put(`key-${count}`).value('x');
      clock.advanceTo(at(tick));
      await settled(count, next);
    }

    // 3. A snapshot longer than the interval: the 00:05 one runs until 00:07:30, crossing two ticks.
    //    One catch-up follows it (not one per missed tick), then the schedule continues at 00:08.
    store.hold();
    clock.advanceTo(at('2026-01-01T00:05:00Z'));
    await waitFor('the 00:05 snapshot to upload', () => store.waiting === 1);
    clock.advanceTo(at('2026-01-01T00:07:30Z'));
    store.release();
    await settled(7, '2026-01-01T00:08:00Z');
    assert.ok(Date.parse(supervisor.report().nextFullSnapshotTime!) > clock.now().getTime(), 'the next snapshot time is in the future');
    assert.equal(supervisor.report().fullSnapshot.consecutiveFailures, 0);
  } finally {
    store.release();
    await supervisor.stop();
  }
});

test('a full snapshot stuck past two schedule intervals turns BackupFresh and Ready False and the metric 0', { timeout: 120_000 }, async () => {
  const resolved = validSpec('stuck');
  const store = new GatedStore(new LocalStore(join(work, 'stuck')));
  const clock = new FakeClock(at('2026-01-01T00:00:30Z'));
  const supervisor = new Supervisor({ resolved, secrets: {}, name: 'test/stuck' }, silentLogger(), { store, now: clock.now, timers: clock });
  const metrics = new OperatorMetrics({ defaultMetrics: false });
  /** The status and metric the controller would publish now, from the supervisor's own report. */
  const observe = async (): Promise<{ fresh: string; ready: string; reason: string; metric: string | undefined }> => {
    const status = computeStatus({
      generation: 1,
      previous: undefined,
      now: clock.now(),
      specProblems: [],
      secretProblems: [],
      suspended: false,
      deltasEnabled: false,
      worker: { phase: 'Running', report: supervisor.report() },
      freshness: { schedule: resolved.spec.fullSnapshot.schedule, deltaPeriodMs: resolved.deltaPeriodMs },
    });
    metrics.observeFreshness('ns', 'stuck', status);
    const fresh = status.conditions!.find((c) => c.type === 'BackupFresh')!;
    const ready = status.conditions!.find((c) => c.type === 'Ready')!;
    const metric = (await metrics.registry.metrics()).match(/^etcdbackup_backup_fresh\{namespace="ns",name="stuck"\} (\d)$/m)?.[1];
    return { fresh: fresh.status, ready: ready.status, reason: ready.reason, metric };
  };
  try {
    await supervisor.start();
    await waitFor('the first snapshot and the 00:01 timer', () => supervisor.report().lastFullSnapshot !== undefined && clock.pending().length === 1);
    assert.deepEqual(await observe(), { fresh: 'True', ready: 'True', reason: 'BackupsCurrent', metric: '1' });

    // The 00:01 snapshot hangs in its upload: nothing fails, nothing reports.
    store.hold();
    clock.advanceTo(at('2026-01-01T00:01:00Z'));
    await waitFor('the 00:01 snapshot to upload', () => store.waiting === 1);
    clock.advanceTo(at('2026-01-01T00:01:59Z'));
    assert.equal((await observe()).fresh, 'True', 'one missed tick is not stale yet');
    clock.advanceTo(at('2026-01-01T00:02:00Z'));
    assert.deepEqual(await observe(), { fresh: 'False', ready: 'False', reason: 'FullSnapshotStale', metric: '0' });
    assert.equal(supervisor.report().fullSnapshot.consecutiveFailures, 0, 'no failure was reported: only freshness shows it');

    store.release();
    await waitFor('the stuck snapshot and its catch-up', () => supervisor.report().lastFullSnapshot?.time === '2026-01-01T00:02:00.000Z');
    assert.deepEqual(await observe(), { fresh: 'True', ready: 'True', reason: 'BackupsCurrent', metric: '1' });
  } finally {
    store.release();
    await supervisor.stop();
  }
});
