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
import { Supervisor } from '../../src/engine/supervisor.js';
import { silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/store/naming.js';
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

test('scheduled full snapshots continue after a tick crossed during a snapshot, with retention after each', { timeout: 120_000 }, async () => {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'schedule' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: join(work, 'store') } },
      fullSnapshot: { schedule: '* * * * *', compression: 'none' },
      deltaSnapshot: { period: '0' }, // no deltas: full snapshots are the whole backup
      retention: { policy: 'LimitBased', maxFullSnapshots: 2 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const local = new LocalStore(join(work, 'store'));
  const store = new GatedStore(local);
  const clock = new FakeClock(at('2026-01-01T00:00:30Z'));
  const supervisor = new Supervisor({ resolved: validation.resolved, secrets: {}, name: 'test/schedule' }, silentLogger(), {
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
