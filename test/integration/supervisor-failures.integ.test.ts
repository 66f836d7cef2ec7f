/**
 * How the supervisor counts and recovers from store failures, with real etcd and LocalStore behind
 * fault-injecting wrappers:
 * - a delta failure repeating with the same message is counted on every poll (consecutiveFailures
 *   1, 2, 3, ...), while the Warning Event and the warn log line appear once, not once per period;
 * - a store that cannot be listed delays the schedule decision and never causes an unscheduled
 *   full snapshot (found by the fault suite's case 4b: a 503 on the listing after a snapshot took a
 *   second one).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { validateEtcdBackup, type ResolvedSpec } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import type { SupervisorEvent } from '../../src/engine/supervisor-types.js';
import { headRevision } from '../../src/etcd/client.js';
import { StoreUnreachableError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { PutOptions, PutResult } from '../../src/store/object-store.js';
import type { Readable } from 'node:stream';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { writeMixedWorkload } from '../helpers/workload.js';
import { waitFor } from '../helpers/wait.js';

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

/** A valid spec of a local backup whose full-snapshot schedule is yearly (it never fires in a test). */
function yearlyBackup(name: string, storePath: string, deltaSnapshot: Record<string, unknown>): ResolvedSpec {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: storePath } },
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot,
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  return validation.resolved;
}

const until = <T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> =>
  waitFor(what, probe, { timeoutMs });

test('a delta failure repeating with the same message counts every poll, with one Event and one warn line', { timeout: 120_000 }, async () => {
  const resolved = yearlyBackup('failing', join(work, 'store'), { period: '1s', chunkRevisions: 100, chunkParallelism: 1 });
  const store = new FailingDeltaStore(new LocalStore(join(work, 'store')));
  const logLines: Array<{ level: string; message: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as { level: string; message: string });
      done();
    },
  });
  const supervisor = new Supervisor(
    { resolved, secrets: {}, name: 'test/failing' },
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

/** Fails every listing while `failing` is set, like an S3 answering 503. */
class FailingListStore extends DelegatingStore {
  failing = false;
  failedLists = 0;
  override list(prefix: string) {
    if (this.failing) {
      this.failedLists += 1;
      return Promise.reject(new StoreUnreachableError('cannot list (all): the store is down (injected)'));
    }
    return this.inner.list(prefix);
  }
}

test('a store that cannot be listed at start delays the schedule decision; it never takes an unscheduled snapshot', { timeout: 120_000 }, async () => {
  const storeDir = join(work, 'store-list');
  // Yearly: the snapshot taken at the first start is the only one due.
  const resolved = yearlyBackup('listing', storeDir, { period: '0' });
  const local = new LocalStore(storeDir);
  const first = new Supervisor({ resolved, secrets: {}, name: 'test/listing' }, silentLogger(), { store: local });
  await first.start();
  await until('the first full snapshot', () => first.report().lastFullSnapshot !== undefined);
  await first.stop();
  const fullsBefore = (await local.list('full/')).map((o) => o.key);
  assert.equal(fullsBefore.length, 1);

  const store = new FailingListStore(local);
  store.failing = true;
  const second = new Supervisor({ resolved, secrets: {}, name: 'test/listing' }, process.env.DBG ? createLogger({ format: 'text', level: 'debug' }) : silentLogger(), { store });
  await second.start();
  try {
    const failed = await until('the listing failure to be reported', () => {
      const outcome = second.report().fullSnapshot;
      return outcome.consecutiveFailures > 0 ? outcome : undefined;
    });
    assert.match(failed.lastError ?? '', /the store is down/);
    store.failing = false;
    // The retry lists again and decides: nothing is due until next year.
    const decided = await until('the schedule decision after the listing works again', () => second.report().nextFullSnapshotTime);
    assert.match(decided, /-01-01T00:00:00/);
    assert.deepEqual((await local.list('full/')).map((o) => o.key), fullsBefore, 'no unscheduled full snapshot');
    assert.equal(second.report().fullSnapshot.consecutiveFailures, 0, 'the listing failure is cleared once it lists');
    assert.equal(second.report().fullSnapshot.lastError, undefined);
  } finally {
    await second.stop();
  }
});

test('stop() while start() is still running leaves nothing running: no poller, no timer', { timeout: 120_000 }, async () => {
  // Seen in secret-watch.e2e with the inline runner: a worker stopped during its start went on
  // polling a closed client every period, and its timers kept the operator's process alive.
  const resolved = yearlyBackup('stopped-early', join(work, 'stopped-early'), { period: '1s', chunkRevisions: 100, chunkParallelism: 1 });
  const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timeouts();
  const supervisor = new Supervisor({ resolved, secrets: {}, name: 'test/stopped-early' }, silentLogger());
  const starting = supervisor.start();
  await new Promise((resolve) => setImmediate(resolve)); // start() is now awaiting the store listing
  await supervisor.stop();
  await starting;
  // Three delta periods: a poller started after stop() would have polled and armed its next poll by now.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(timeouts(), before, 'no timer of the stopped supervisor is armed');
});
