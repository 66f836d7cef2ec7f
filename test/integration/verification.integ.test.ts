/**
 * Scheduled verification against a real etcd and a LocalStore: a Supervisor with
 * `verification.schedule: "* * * * *"` is driven through verifyNow() (no waiting for the minute).
 * 1. Verified: the trial restore of full + deltas (encrypted) matches live etcd at that revision.
 * 2. Live etcd compacted past the verified revision: verified without comparison, saying so.
 * 3. A corrupted delta object: a failure naming the object, in the report and as a Warning Event.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import type { SupervisorEvent } from '../../src/engine/supervisor-types.js';
import { headRevision } from '../../src/etcd/client.js';
import { summarizeKeyspace } from '../../src/etcd/read-all.js';
import { silentLogger } from '../../src/observability/logger.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { GetResult } from '../../src/store/object-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { writeMixedWorkload } from '../helpers/workload.js';
import { waitFor } from '../helpers/wait.js';

const logger = silentLogger();
const KEY = randomBytes(32);

let etcd: TestEtcd;
let client: Etcd3;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  client = etcd.client();
  work = await mkdtemp(join(tmpdir(), 'verification-test-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function supervisor(storeDir: string, deltaPeriod: string): { supervisor: Supervisor; events: SupervisorEvent[] } {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'verified' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: storeDir } },
      // Yearly: only the one taken at start (the store is empty then).
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: deltaPeriod, chunkRevisions: 50, chunkParallelism: 2 },
      memory: { budget: '32Mi' },
      encryption: { keySecretRef: { name: 'backup-key' } },
      verification: { schedule: '* * * * *' },
    },
  });
  if (!validation.ok) assert.fail(`spec rejected: ${validation.problems.join('; ')}`);
  const instance = new Supervisor(
    { resolved: validation.resolved, secrets: { encryptionKey: KEY }, name: 'test/verified' },
    logger,
  );
  const events: SupervisorEvent[] = [];
  instance.onEvent((event) => events.push(event));
  return { supervisor: instance, events };
}

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<true> =>
  waitFor(what, check, { timeoutMs });

function verificationOf(report: SupervisorReport): NonNullable<SupervisorReport['verification']> {
  assert.ok(report.verification, 'the report has a verification outcome');
  return report.verification;
}

test('scheduled verification: verified against live etcd, compaction reported, a corrupted delta fails clearly', { timeout: 60_000 }, async () => {
  const storeDir = join(work, 'store');
  const store = new LocalStore(storeDir);
  await writeMixedWorkload(client, 'a/', 150, 7);

  // 1. Full snapshot at start, deltas after it, then verify.
  const first = supervisor(storeDir, '1s');
  await first.supervisor.start();
  assert.deepEqual(verificationOf(first.supervisor.report()), { consecutiveFailures: 0 }, 'nothing verified yet');
  const snapshot = await first.supervisor.takeFullSnapshotNow();
  assert.ok(snapshot, 'the first full snapshot was taken');
  await writeMixedWorkload(client, 'b/', 200, 8);
  const head = await headRevision(client);
  await until(`revision ${head} archived`, () => first.supervisor.report().archivedRevision === head);

  const ok = await first.supervisor.verifyNow();
  assert.ok(ok, 'verifyNow returned an outcome');
  assert.equal(ok.consecutiveFailures, 0, `verification failed: ${ok.lastError ?? ''}`);
  const live = await summarizeKeyspace(client, head);
  assert.equal(ok.verifiedRevision, head, 'the latest archived revision was verified (full + deltas)');
  assert.equal(ok.keyCount, live.keyCount, 'key count equals live etcd at that revision');
  assert.equal(ok.contentHash, live.contentHash, 'content equals live etcd at that revision');
  assert.ok(ok.snapshot?.endsWith('.enc'), `the encrypted snapshot was restored: ${ok.snapshot ?? ''}`);
  assert.equal(ok.liveComparison, `matches live etcd at revision ${head}`);
  assert.deepEqual(verificationOf(first.supervisor.report()), ok, 'the report carries the outcome');
  const verifiedEvent = first.events.find((e) => e.reason === 'BackupVerified');
  assert.ok(verifiedEvent, `a BackupVerified event: ${JSON.stringify(first.events)}`);
  assert.equal(verifiedEvent.type, 'Normal');
  assert.match(verifiedEvent.message, new RegExp(`revision ${head}, ${live.keyCount} keys`));
  assert.doesNotMatch(verifiedEvent.message, /\n/, 'one line');
  await first.supervisor.stop();

  // 2. Live etcd compacted past the archived revision: verified, not compared, and the report says why.
  await client.put('after/backup').value('x');
  await client.kv.compact({ revision: String(await headRevision(client)), physical: true });
  const second = supervisor(storeDir, '0');
  await second.supervisor.start();
  const compacted = await second.supervisor.verifyNow();
  assert.ok(compacted, 'verifyNow returned an outcome');
  assert.equal(compacted.consecutiveFailures, 0, `verification failed: ${compacted.lastError ?? ''}`);
  assert.equal(compacted.verifiedRevision, head);
  assert.equal(compacted.contentHash, live.contentHash);
  assert.match(compacted.liveComparison ?? '', /not compared with live etcd: .*has compacted revision/);

  // 3. Corrupt a delta the restore needs: the failure names it; the last success stays reported.
  const listing = classifyKeys((await store.list('')).map((o) => o.key));
  const delta = listing.deltas.find((d) => d.fromRevision > snapshot.revision);
  assert.ok(delta, `a delta after the snapshot in ${JSON.stringify(listing.deltas.map((d) => d.key))}`);
  const path = join(storeDir, delta.key);
  const bytes = await readFile(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(path, bytes);
  const failed = await second.supervisor.verifyNow();
  assert.ok(failed, 'verifyNow returned an outcome');
  assert.equal(failed.consecutiveFailures, 1, 'one failure');
  assert.ok(failed.lastError?.includes(delta.key), `the error names ${delta.key}: ${failed.lastError ?? ''}`);
  assert.match(failed.lastError ?? '', /^verification of the latest backup failed: /);
  assert.doesNotMatch(failed.lastError ?? '', /\n/, 'one line');
  assert.equal(failed.verifiedRevision, head, 'the last success is still reported');
  const failedEvent = second.events.find((e) => e.reason === 'VerificationFailed');
  assert.ok(failedEvent, `a VerificationFailed event: ${JSON.stringify(second.events)}`);
  assert.equal(failedEvent.type, 'Warning');
  assert.equal(failedEvent.message, failed.lastError);
  assert.ok(!failedEvent.message.includes(KEY.toString('hex')), 'the key never appears');
  await second.supervisor.stop();
});

/** Holds every delta download until release(): a verification waits there with its trial etcd running. */
class GatedStore extends DelegatingStore {
  armed = false;
  private enter!: () => void;
  /** Resolves when a delta download reached the gate. */
  readonly entered = new Promise<void>((resolve) => (this.enter = resolve));
  release!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve));
  override async get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    if (this.armed && key.startsWith('delta/')) {
      this.enter();
      await this.gate;
    }
    return this.inner.get(key, options);
  }
}

/** etcd processes this test process started for trial restores (restore's members run with --max-txn-ops). */
async function trialEtcds(): Promise<Array<{ pid: number; dataDir: string }>> {
  const found: Array<{ pid: number; dataDir: string }> = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== process.pid) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!args.includes('--max-txn-ops')) continue;
    found.push({ pid: Number(entry), dataDir: args[args.indexOf('--data-dir') + 1] ?? '' });
  }
  return found;
}

test('stop cancels a running verification: its trial etcd is killed and its temp dir removed', { timeout: 90_000 }, async () => {
  const storeDir = join(work, 'store-cancel');
  const store = new GatedStore(new LocalStore(storeDir));
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'cancelled' },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: storeDir } },
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '1s', chunkRevisions: 50, chunkParallelism: 2 },
      memory: { budget: '32Mi' },
      verification: { schedule: '0 0 1 1 *' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  const instance = new Supervisor({ resolved: validation.resolved, secrets: {}, name: 'test/cancelled' }, logger, { store });
  await instance.start();
  assert.ok(await instance.takeFullSnapshotNow(), 'a full snapshot');
  await writeMixedWorkload(client, 'c/', 100, 9);
  const head = await headRevision(client);
  await until(`revision ${head} archived`, () => instance.report().archivedRevision === head);

  store.armed = true;
  const verifying = instance.verifyNow();
  await store.entered;
  const trial = await trialEtcds();
  assert.equal(trial.length, 1, 'the trial etcd runs while the replay waits for a delta');

  const stopping = instance.stop();
  try {
    // Without cancellation the trial etcd would run until the verification ended, and it cannot end
    // while the download is held: so this wait only ends if stop() killed it.
    await until('the trial etcd to be killed', async () => (await trialEtcds()).length === 0, 30_000);
  } finally {
    store.release();
    await stopping;
  }
  assert.equal(await verifying, undefined, 'a cancelled verification has no outcome');
  assert.equal(existsSync(trial[0]!.dataDir), false, 'the trial data dir is removed');
  const outcome = verificationOf(instance.report());
  assert.equal(outcome.consecutiveFailures, 0, 'a cancelled verification is not a failure');
  assert.equal(outcome.lastError, undefined);
});
