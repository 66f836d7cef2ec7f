/**
 * Delta backups against a real etcd: point-in-time restores, the memory budget under big values and
 * a slow store, compaction, and no watch left open between polls. One etcd is shared by the tests
 * that do not compact (they run in order; each uses its own key prefix); the compaction test has its
 * own etcd because compaction is global.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Etcd3, IRequestOp } from 'etcd3';
import { ChecksumMismatchError } from '../../src/errors.js';
import { recoverArchivedRevision, type RevisionRange } from '../../src/archive/revision-ranges.js';
import { decodeDeltaEvents, encodeDeltaStream } from '../../src/archive/delta-format.js';
import { DeltaPoller, type DeltaPollerOptions } from '../../src/engine/delta-poller.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { MAX_WATCH_RESPONSE_BYTES } from '../../src/budget/fetch-budget.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { RevisionTooLargeError, fetchRevisions, type RevisionSegment } from '../../src/etcd/revision-fetch.js';
import { LeaseTtlReader, recordLeaseTtls } from '../../src/etcd/lease-ttl.js';
import { ETCDCTL_BINARY, freePort, startLocalEtcd, type LocalEtcd } from '../../src/etcd/local-etcd.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { replayDeltas } from '../../src/restore/delta-replay.js';
import { LocalStore } from '../../src/store/local-store.js';
import { sha256Hex } from '../../src/store/checksum.js';
import { DELTA_DIR, classifyKeys, fullSnapshotKey } from '../../src/archive/naming.js';
import { listBackupObjects, type ObjectStore, type PutOptions, type PutResult } from '../../src/store/object-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { DelegatingStore, ThrottledStore } from '../harness/throttled-store.js';
import { waitFor } from '../helpers/wait.js';
import { LiveBytesProbe, LiveBytesStore } from '../harness/live-bytes.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const NUL = Buffer.from([0]);
const logger = silentLogger();
/**
 * Live bytes a budget test allows above the budget: gRPC/HTTP2 and stream buffers that the fetch
 * window covers as a whole but not byte by byte. Fixed, and small next to what a fetch that bypasses
 * the budget holds (a whole segment: megabytes).
 */
const LIVE_SLACK_BYTES = 3 * MiB;
function assertLiveWithinBudget(probe: LiveBytesProbe, budget: MemoryBudget): void {
  assert.ok(
    probe.maxHeldBytes <= budget.limitBytes + LIVE_SLACK_BYTES,
    `the process held ${probe.maxHeldBytes} bytes, more than the budget ${budget.limitBytes} + slack ${LIVE_SLACK_BYTES}`,
  );
}

let etcd: TestEtcd;
let writer: Etcd3; // holds no watches
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  etcd = await startTestEtcd();
  writer = etcd.client();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await etcd?.stop();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function tempStore(): Promise<LocalStore> {
  return new LocalStore(await tempDir('delta-store-'));
}

/** The poller only needs a full snapshot's NAME to anchor the chain; restores here use real ones. */
async function markFullSnapshot(store: ObjectStore, revision: number): Promise<void> {
  await store.put(fullSnapshotKey(revision, new Date(), { compression: 'none', encrypted: false }), Buffer.from('placeholder'));
}

function pollerOptions(client: Etcd3, store: ObjectStore, overrides: Partial<DeltaPollerOptions> = {}): DeltaPollerOptions {
  return {
    client,
    store,
    budget: new MemoryBudget(16 * MiB),
    periodMs: 50,
    chunkRevisions: 100,
    parallelism: 4,
    compression: 'gzip',
    logger,
    ...overrides,
  };
}

interface KeyState {
  value: string;
  createRevision: string;
  modRevision: string;
  version: string;
}

/** Every key with value and revisions, at `revision` (0 = now). */
async function readAll(client: Etcd3, revision = 0): Promise<Map<string, KeyState>> {
  const response = await client.kv.range({ key: NUL, range_end: NUL, ...(revision > 0 ? { revision: String(revision) } : {}) });
  const state = new Map<string, KeyState>();
  for (const kv of response.kvs) {
    state.set(kv.key.toString('base64'), {
      value: createHash('sha256').update(kv.value).digest('hex'),
      createRevision: kv.create_revision,
      modRevision: kv.mod_revision,
      version: kv.version,
    });
  }
  return state;
}

async function saveSnapshot(source: LocalEtcd, file: string): Promise<number> {
  await run(ETCDCTL_BINARY, ['--endpoints', source.clientUrl, 'snapshot', 'save', file]);
  const { stdout } = await run(ETCDCTL_BINARY, ['snapshot', 'status', file, '-w', 'json']);
  return (JSON.parse(stdout) as { revision: number }).revision;
}

/** `etcdctl snapshot restore` into a fresh data dir, then an etcd on it (same peer URL as restored). */
async function restoreSnapshot(file: string): Promise<LocalEtcd> {
  const dir = await tempDir('delta-restore-');
  const ports = { client: await freePort(), peer: await freePort(), metrics: await freePort() };
  const peerUrl = `http://127.0.0.1:${ports.peer}`;
  const dataDir = join(dir, 'data');
  await run(ETCDCTL_BINARY, [
    'snapshot', 'restore', file,
    '--data-dir', dataDir,
    '--name', 'restored',
    '--initial-cluster', `restored=${peerUrl}`,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster-token', 'delta-test',
  ]);
  const restored = await startLocalEtcd({ dataDir, name: 'restored', ports, extraArgs: ['--max-txn-ops', '10000'] });
  cleanups.push(() => restored.stop());
  return restored;
}

async function watchGauges(target: LocalEtcd): Promise<{ streams: number; watchers: number }> {
  const text = await (await fetch(`${target.metricsUrl}/metrics`)).text();
  const gauge = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `metric ${name} missing`);
    return Number(line.split(' ')[1]);
  };
  return { streams: gauge('etcd_debugging_mvcc_watch_stream_total'), watchers: gauge('etcd_debugging_mvcc_watcher_total') };
}

/** etcd drops a cancelled watch asynchronously; give it a moment. */
async function expectNoWatches(target: LocalEtcd): Promise<void> {
  let gauges = await watchGauges(target);
  for (let i = 0; i < 40 && (gauges.streams > 0 || gauges.watchers > 0); i++) {
    await sleep(50);
    gauges = await watchGauges(target);
  }
  assert.deepEqual(gauges, { streams: 0, watchers: 0 });
}

/** Counts puts started and settled, and those that ended in an error (an abort). */
class SettlingStore extends DelegatingStore {
  started = 0;
  settled = 0;
  aborted = 0;

  override async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    this.started += 1;
    try {
      return await super.put(key, body, options);
    } catch (err) {
      this.aborted += 1;
      throw err;
    } finally {
      this.settled += 1;
    }
  }
}

/** A deterministic pseudo-random sequence, so failures can be reproduced. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function collectBytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function deltaListing(store: ObjectStore) {
  return classifyKeys((await listBackupObjects(store)).map((o) => o.key));
}

async function putMany(client: Etcd3, count: number, concurrency: number, put: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) await put(i);
  };
  void client;
  await Promise.all(Array.from({ length: concurrency }, worker));
}

test('point-in-time restore: full snapshot + replayed deltas equals the source at every target revision', async () => {
  const random = rng(42);
  const keys = Array.from({ length: 40 }, (_, i) => `pitr/k${String(i).padStart(2, '0')}`);
  for (const key of keys.slice(0, 20)) await writer.put(key).value(`initial ${key}`);

  const snapshotDir = await tempDir('delta-snap-');
  const snapshotFile = join(snapshotDir, 'start.db');
  const snapshotRevision = await saveSnapshot(etcd, snapshotFile);
  const store = await tempStore();
  await store.put(fullSnapshotKey(snapshotRevision, new Date(), { compression: 'none', encrypted: false }), createReadStream(snapshotFile));

  // The poller runs while the workload writes, then one last pass catches up.
  const poller = new DeltaPoller(
    pollerOptions(etcd.client(), store, { chunkRevisions: 37, parallelism: 3, periodMs: 20, budget: new MemoryBudget(16 * MiB) }),
  );
  await poller.start();

  const value = (): Buffer => randomBytes(Math.floor(random() * 3000));
  const pick = (): string => keys[Math.floor(random() * keys.length)]!;
  const lease = await writer.lease(600, { autoKeepAlive: false }).grant();
  // Four writers at once: the mix of operations matters here, not their exact order.
  await putMany(writer, 900, 4, async (i) => {
    const dice = random();
    if (dice < 0.55) {
      await writer.put(pick()).value(value());
    } else if (dice < 0.7) {
      await writer.delete().key(pick()); // may delete nothing: then no revision
    } else if (dice < 0.9) {
      // A txn: several distinct keys in one revision, puts and deletes mixed.
      const chosen = [...new Set([pick(), pick(), pick(), pick()])];
      const ops: IRequestOp[] = chosen.map((key, j) =>
        j % 3 === 2 ? { request_delete_range: { key: Buffer.from(key) } } : { request_put: { key: Buffer.from(key), value: value() } },
      );
      await writer.kv.txn({ success: ops });
    } else if (dice < 0.95) {
      // A delete-range: many deletions in one revision.
      await writer.delete().prefix('pitr/k1');
    } else {
      // Keys under a lease (the lease itself is not compared here: see restore-leases.integ.test.ts).
      await writer.kv.put({ key: Buffer.from(`pitr/leased/${i}`), value: value(), lease: lease });
    }
  });
  await writer.lease(1, { autoKeepAlive: false }).grant(); // lease traffic alone creates no revision
  const leaseHandle = writer.lease(600, { autoKeepAlive: false });
  const leaseId = await leaseHandle.grant();
  await writer.kv.put({ key: Buffer.from('pitr/a-leased'), value: Buffer.from('x'), lease: leaseId });
  await writer.kv.put({ key: Buffer.from('pitr/z-leased'), value: Buffer.from('y'), lease: leaseId });
  await writer.put('pitr/m-between').value('stays');
  await leaseHandle.revoke(); // deletes two non-adjacent keys in one revision
  await writer.put('pitr/last').value('end');

  const head = await headRevision(writer);
  const final = await poller.pollOnce();
  await poller.stop();
  assert.equal(final.archivedRevision, head);
  assert.equal(final.lagRevisions, 0);
  assert.equal(final.lastError, undefined);
  assert.ok(final.lastDelta && final.lastDelta.toRevision <= head);
  assert.ok(head - snapshotRevision > 800, `workload made ${head - snapshotRevision} revisions`);

  const listing = await deltaListing(store);
  assert.equal(recoverArchivedRevision(listing), head);

  // Targets: the snapshot itself, the head, and random ones in between.
  const targets = [head, snapshotRevision, ...Array.from({ length: 3 }, () => snapshotRevision + 1 + Math.floor(random() * (head - snapshotRevision)))];
  for (const target of targets) {
    const restored = await restoreSnapshot(snapshotFile);
    const client = createEtcdClient({ endpoints: [restored.clientUrl] });
    try {
      const base = await headRevision(client);
      assert.equal(base, snapshotRevision);
      if (target === targets[0]) {
        // A corrupted object is detected before any of it is applied.
        const victimPath = join(store.root, listing.deltas[0]!.key);
        const original = await readFile(victimPath);
        const corrupt = Buffer.from(original);
        corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0x01, corrupt.length - 1);
        await writeFile(victimPath, corrupt);
        await assert.rejects(
          replayDeltas({ client, store, deltas: listing.deltas, afterRevision: base, toRevision: head, logger }),
          ChecksumMismatchError,
        );
        assert.equal(await headRevision(client), base, 'nothing applied from a corrupt object');
        await writeFile(victimPath, original);
      }
      const result = await replayDeltas({ client, store, deltas: listing.deltas, afterRevision: base, toRevision: target, logger });
      assert.equal(result.revision, target);
      assert.equal(result.revisionsApplied, target - base);
      assert.equal(await headRevision(client), target, 'restored head revision equals the target');
      const want = await readAll(writer, target);
      const got = await readAll(client);
      assert.equal(got.size, want.size, `key count at revision ${target}`);
      assert.deepEqual(got, want, `state at revision ${target}`);
    } finally {
      client.close();
      await restored.stop();
    }
  }

  // Objects are deterministic per revision range: fetching an object's range again (as a retry after a
  // crash would) encodes to the same bytes.
  for (const delta of [listing.deltas[0]!, listing.deltas[Math.floor(listing.deltas.length / 2)]!, listing.deltas.at(-1)!]) {
    const segments: RevisionSegment[] = [];
    await fetchRevisions({
      client: writer,
      fromRevision: delta.fromRevision,
      toRevision: delta.toRevision,
      budget: new MemoryBudget(64 * MiB),
      windowBytes: MiB,
      maxSegmentBytes: 32 * MiB,
      onSegment: async (segment) => void segments.push(segment),
    });
    assert.equal(segments.length, 1);
    await recordLeaseTtls(segments[0]!.events, new LeaseTtlReader(writer)); // as the poller does before upload
    const again = await collectBytes(encodeDeltaStream(segments[0]!.events, delta.compression));
    assert.equal(sha256Hex(again), (await store.get(delta.key)).metadata.sha256, delta.key);
  }
});

test('recovery after a restart resumes from the store listing and ignores partial uploads', async () => {
  const store = await tempStore();
  const start = await headRevision(writer);
  await markFullSnapshot(store, start);
  for (let i = 0; i < 50; i++) await writer.put(`restart/${i % 7}`).value(String(i));
  const first = new DeltaPoller(pollerOptions(etcd.client(), store, { chunkRevisions: 20 }));
  const progress = await first.pollOnce();
  const archived = progress.archivedRevision;
  assert.equal(archived, await headRevision(writer));

  // A crash mid-upload leaves a .part file and possibly an object past a gap.
  await writeFile(join(store.root, DELTA_DIR, `${'9'.repeat(20)}-${'9'.repeat(20)}.jsonl.gz.part-abc123`), 'partial');
  for (let i = 0; i < 30; i++) await writer.put(`restart/${i % 5}`).value(`again ${i}`);
  const second = new DeltaPoller(pollerOptions(etcd.client(), store, { chunkRevisions: 8 }));
  await second.start();
  await second.stop();
  assert.equal(second.progress.archivedRevision, archived, 'recovered position');
  const caughtUp = await second.pollOnce();
  assert.equal(caughtUp.archivedRevision, await headRevision(writer));
  assert.ok((await readdir(join(store.root, DELTA_DIR))).some((name) => name.includes('.part-')));
});

test('the memory budget holds with 1000 puts of 1 MB, 4 fetches in parallel, and the archive is complete', async () => {
  // The workload (etcd's `benchmark put --total=1000 --val-size=1000000`): ~1 GB of events
  // through a 32 MiB budget (the least that runs 4 fetches: 7 MiB each). About a minute on 2 cores,
  // most of it etcd ingesting the puts.
  const COUNT = 1000;
  const VALUE = 1_000_000;
  const store = await tempStore();
  const start = await headRevision(writer);
  await markFullSnapshot(store, start);

  const digests = new Map<string, string>();
  const t0 = Date.now();
  await putMany(writer, COUNT, 8, async (i) => {
    const value = randomBytes(VALUE);
    const key = `big/${String(i).padStart(4, '0')}`;
    digests.set(key, createHash('sha256').update(value).digest('hex'));
    await writer.put(key).value(value);
  });
  const writeMs = Date.now() - t0;
  const head = await headRevision(writer);
  assert.equal(head, start + COUNT);

  const budget = new MemoryBudget(32 * MiB);
  const probe = await LiveBytesProbe.start();
  const measured = new LiveBytesStore(store, probe);
  const poller = new DeltaPoller(pollerOptions(etcd.client(), measured, { budget, parallelism: 4, chunkRevisions: 50, compression: 'none' }));
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 10);
  const t1 = Date.now();
  let progress;
  try {
    progress = await poller.pollOnce();
  } finally {
    clearInterval(sampler);
  }
  const pollMs = Date.now() - t1;
  assert.equal(progress.archivedRevision, head);
  // What the process held (live Buffers at every upload's start: 4 fetches each holding a
  // segment, their watch transports and uploads), not what the accountant granted, which never
  // exceeds the limit by construction.
  assertLiveWithinBudget(probe, budget);
  assert.equal(budget.usedBytes, 0, 'everything released');
  assert.equal(poller.budgetPlan.parallelism, 4);

  // Every revision is in the archive with its exact value.
  const listing = await deltaListing(store);
  const t2 = Date.now();
  let events = 0;
  let expectedRev = start + 1;
  for (const delta of listing.deltas) {
    const object = await store.get(delta.key);
    for await (const event of decodeDeltaEvents(object.body, delta.compression, delta.key)) {
      assert.equal(event.rev, expectedRev++);
      assert.equal(event.value.length, VALUE);
      assert.equal(createHash('sha256').update(event.value).digest('hex'), digests.get(event.key.toString()));
      events++;
    }
  }
  assert.equal(events, COUNT);
  assert.equal(recoverArchivedRevision(listing), head);
  const largestObject = Math.max(...(await store.list(DELTA_DIR)).map((o) => o.size));
  console.log(
    `# budget test: writes ${writeMs} ms, poll ${pollMs} ms (${Math.round((COUNT * VALUE) / MiB / (pollMs / 1000))} MiB/s), ` +
      `verify ${Date.now() - t2} ms; budget peak ${budget.peakBytes} of ${budget.limitBytes}, live bytes max ${probe.maxHeldBytes} (${probe.samples} samples); ` +
      `${listing.deltas.length} objects, largest ${largestObject} bytes; RSS +${Math.round((rssPeak - rssBefore) / MiB)} MiB`,
  );
  await writer.delete().prefix('big/'); // keep later tests' revisions small
});

test('a slow store keeps memory bounded and the archive catches up after writes stop', async () => {
  const store = new ThrottledStore(await tempStore(), 3 * MiB);
  const start = await headRevision(writer);
  await markFullSnapshot(store, start);
  const budget = new MemoryBudget(16 * MiB);
  const probe = await LiveBytesProbe.start();
  const poller = new DeltaPoller(
    pollerOptions(etcd.client(), new LiveBytesStore(store, probe), { budget, parallelism: 4, chunkRevisions: 20, periodMs: 20, compression: 'none' }),
  );
  await poller.start();
  let maxUsed = 0;
  let maxLag = 0;
  const sampler = setInterval(() => {
    maxUsed = Math.max(maxUsed, budget.usedBytes);
    maxLag = Math.max(maxLag, poller.progress.lagRevisions);
  }, 5);
  const t0 = Date.now();
  try {
    await putMany(writer, 48, 4, (i) => writer.put(`slow/${i}`).value(randomBytes(256 * 1024)).exec());
    const writeMs = Date.now() - t0;
    const head = await headRevision(writer);
    const deadline = Date.now() + 30_000;
    while (poller.progress.archivedRevision < head && Date.now() < deadline) await sleep(50);
    assert.equal(poller.progress.archivedRevision, head, 'caught up');
    console.log(
      `# slow store: writes ${writeMs} ms, caught up ${Date.now() - t0} ms after start; max lag ${maxLag} revisions; ` +
        `budget max used ${maxUsed}, peak ${budget.peakBytes} of ${budget.limitBytes}, live bytes max ${probe.maxHeldBytes}`,
    );
  } finally {
    clearInterval(sampler);
    await poller.stop();
  }
  // The test's own writer runs in this process meanwhile: its put buffers count here too.
  assertLiveWithinBudget(probe, budget);
  // Checked after the live bytes, so a plan that charges fetches less than they hold fails there first.
  assert.equal(poller.budgetPlan.parallelism, 2, 'parallelism lowered to fit 16 MiB');
  assert.ok(maxLag > 5, `the store was the bottleneck (max lag ${maxLag})`);
  assert.equal(budget.usedBytes, 0);
});

test('live bytes stay within the budget while another holder (a snapshot upload) has most of it', async () => {
  // Measured, not accounted: the accountant only grants what fits, so its peak can never exceed the
  // limit. What the process really holds (live Buffers after a full GC, sampled whenever an upload
  // starts, when a fetch holds a whole segment) must stay within the budget plus a fixed
  // slack, so a fetch that reads events without waiting for budget fails here.
  const BUDGET = 16 * MiB;
  const OTHER = 8 * MiB; // real bytes, reserved as a full snapshot's upload parts would be; the fetch's window is 5 MiB
  const store = await tempStore();
  const start = await headRevision(writer);
  await markFullSnapshot(store, start);
  for (let i = 0; i < 24; i++) await writer.put(`live/${i}`).value(randomBytes(MiB));
  const head = await headRevision(writer);

  const budget = new MemoryBudget(BUDGET);
  const probe = await LiveBytesProbe.start();
  const other = await budget.reserve(OTHER);
  const otherBytes = Buffer.alloc(OTHER, 1);
  const measured = new LiveBytesStore(new ThrottledStore(store, 8 * MiB), probe);
  const poller = new DeltaPoller(pollerOptions(etcd.client(), measured, { budget, parallelism: 1, chunkRevisions: 100, compression: 'none' }));
  assert.equal(poller.budgetPlan.segmentBytes, BUDGET - poller.budgetPlan.windowBytes, 'one fetch may hold the whole budget');
  let progress;
  try {
    progress = await poller.pollOnce();
    await probe.sample();
  } finally {
    other.release();
  }
  assert.equal(otherBytes.length, OTHER); // held until here
  assert.equal(progress.archivedRevision, head);
  console.log(`# live bytes: max ${(probe.maxHeldBytes / MiB).toFixed(1)} MiB held of a ${BUDGET / MiB} MiB budget (+${LIVE_SLACK_BYTES / MiB} MiB slack)`);
  assertLiveWithinBudget(probe, budget);
  assert.ok(probe.samples >= 2, `sampled at every upload (${probe.samples} samples)`);
  assert.ok(probe.maxHeldBytes >= OTHER, `the probe sees the other holder's ${OTHER} bytes (max ${probe.maxHeldBytes})`);
  assert.equal(budget.usedBytes, 0);
  await writer.delete().prefix('live/');
});

test('no watch stays open between polls; deltas wait for a full snapshot', async () => {
  const store = new ThrottledStore(await tempStore(), 2 * MiB);
  const poller = new DeltaPoller(pollerOptions(etcd.client(), store, { chunkRevisions: 25, parallelism: 4 }));
  const waiting = await poller.pollOnce();
  assert.equal(waiting.waitingForFullSnapshot, true);
  assert.equal((await store.list(DELTA_DIR)).length, 0);
  await markFullSnapshot(store, await headRevision(writer));

  let duringPoll = 0;
  for (let round = 0; round < 3; round++) {
    await putMany(writer, 150, 4, (i) => writer.put(`metrics/${i % 20}`).value(randomBytes(4096)).exec());
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        duringPoll = Math.max(duringPoll, (await watchGauges(etcd)).watchers);
        await sleep(10);
      }
    })();
    const progress = await poller.pollOnce();
    sampling = false;
    await sampler;
    assert.equal(progress.archivedRevision, await headRevision(writer));
    assert.equal(progress.waitingForFullSnapshot, false);
    await expectNoWatches(etcd);
  }
  assert.ok(duringPoll > 0, 'watches were open during the polls');
});

test('compaction past archivedRevision: the hook gets the lost range and deltas continue after the new snapshot', async () => {
  const own = await startTestEtcd();
  cleanups.push(() => own.stop());
  const client = own.client();
  const store = await tempStore();
  await client.put('c/seed').value('0');
  await markFullSnapshot(store, await headRevision(client));

  const calls: RevisionRange[] = [];
  const onRevisionsLost = async (lost: RevisionRange): Promise<{ revision: number }> => {
    calls.push(lost);
    const revision = await headRevision(client); // stands in for the supervisor's full snapshot
    await markFullSnapshot(store, revision);
    return { revision };
  };
  const poller = new DeltaPoller(pollerOptions(own.client(), store, { chunkRevisions: 10, parallelism: 2, onRevisionsLost }));

  for (let i = 0; i < 30; i++) await client.put(`c/${i % 4}`).value(String(i));
  const archived = (await poller.pollOnce()).archivedRevision;
  assert.equal(archived, await headRevision(client));

  // Deltas are paused (no poll) while etcd moves on and compacts past the archive.
  for (let i = 0; i < 60; i++) await client.put(`c/${i % 4}`).value(`b${i}`);
  const compactAt = archived + 40;
  await client.kv.compact({ revision: String(compactAt), physical: true });
  const afterCompaction = await poller.pollOnce();
  assert.deepEqual(calls, [{ fromRevision: archived + 1, toRevision: compactAt }]);
  const snapshotRevision = afterCompaction.revisionsLost?.snapshotRevision;
  assert.ok(snapshotRevision !== undefined && snapshotRevision >= archived + 60);
  assert.equal(afterCompaction.archivedRevision, await headRevision(client));
  assert.deepEqual(
    { fromRevision: afterCompaction.revisionsLost?.fromRevision, toRevision: afterCompaction.revisionsLost?.toRevision },
    calls[0],
  );

  // Deltas continue after the new snapshot, and a restart finds the same position.
  for (let i = 0; i < 25; i++) await client.put(`c/${i % 3}`).value(`c${i}`);
  const resumed = await poller.pollOnce();
  assert.equal(resumed.archivedRevision, await headRevision(client));
  const listing = await deltaListing(store);
  assert.equal(recoverArchivedRevision(listing), resumed.archivedRevision);
  assert.ok(listing.deltas.some((d) => d.fromRevision === snapshotRevision + 1));

  // Compacting exactly at the next revision to archive also counts: etcd drops that revision's deletions.
  await client.put('c/x').value('1');
  const next = resumed.archivedRevision + 1;
  await client.put('c/y').value('2');
  await client.kv.compact({ revision: String(next), physical: true });
  await poller.pollOnce();
  assert.deepEqual(calls[1], { fromRevision: next, toRevision: next });
  await expectNoWatches(own);
});

test('stop() mid-upload cancels fetches and uploads, closes watches and frees the budget', async () => {
  const local = await tempStore();
  // Each upload (6 revisions of 256 KiB) crawls for about 6 s: stop() must cancel it, not wait for it.
  const throttled = new ThrottledStore(local, 256 * 1024);
  const store = new SettlingStore(throttled);
  await markFullSnapshot(store, await headRevision(writer));
  await putMany(writer, 24, 4, (i) => writer.put(`stop/${i}`).value(randomBytes(256 * 1024)).exec());
  const budget = new MemoryBudget(16 * MiB);
  const poller = new DeltaPoller(pollerOptions(etcd.client(), store, { budget, chunkRevisions: 6, compression: 'none' }));
  await poller.start();
  await waitFor('an upload to be on its way', () => store.started > 1 && throttled.uploadedBytes > 0, { intervalMs: 10 });
  await poller.stop();
  assert.equal(store.settled, store.started, 'no upload still running after stop()');
  assert.ok(store.aborted > 0, `stop() cancelled uploads (${store.aborted} of ${store.started - 1} aborted) instead of waiting for them`);
  assert.equal(budget.usedBytes, 0);
  assert.ok(poller.progress.archivedRevision < (await headRevision(writer)), 'stopped before catching up');
  await expectNoWatches(etcd);
  const names = await readdir(join(local.root, DELTA_DIR)).catch(() => [] as string[]);
  assert.deepEqual(names.filter((n) => n.includes('.part-')), [], 'aborted uploads leave no partial files');
});

test('fetchRevisions resumes from its own position when etcd restarts mid-fetch, skipping nothing', async () => {
  const own = await startTestEtcd();
  cleanups.push(() => own.stop());
  const client = own.client();
  const start = await headRevision(client);
  await putMany(client, 200, 4, (i) => client.put(`r/${i % 50}`).value(randomBytes(32 * 1024)).exec());
  const head = await headRevision(client);
  const port = (url: string): number => Number(new URL(url).port);
  const ports = { client: port(own.clientUrl), peer: port(own.peerUrl), metrics: port(own.metricsUrl) };

  const revisions: number[] = [];
  let restarted: LocalEtcd | undefined;
  let segmentsSeen = 0;
  const summary = await fetchRevisions({
    client,
    fromRevision: start + 1,
    toRevision: head,
    budget: new MemoryBudget(8 * MiB),
    windowBytes: MiB,
    maxSegmentBytes: 512 * 1024, // many small segments, so the restart lands mid-fetch
    logger,
    onSegment: async (segment) => {
      for (const event of segment.events) if (revisions.at(-1) !== event.rev) revisions.push(event.rev);
      if (++segmentsSeen === 2) {
        await own.stopProcess();
        restarted = await startLocalEtcd({ dataDir: own.dataDir, name: own.name, ports });
      }
    },
  });
  cleanups.push(async () => restarted?.stop());
  assert.ok(restarted, 'etcd was restarted during the fetch');
  assert.ok(summary.reconnects >= 1, `reconnects ${summary.reconnects}`);
  assert.deepEqual(revisions, Array.from({ length: head - start }, (_, i) => start + 1 + i));
});

test('a revision larger than the whole budget fails with RevisionTooLargeError', async () => {
  await writer.put('huge/one').value(randomBytes(1_400_000));
  const revision = await headRevision(writer);
  await assert.rejects(
    fetchRevisions({
      client: writer,
      fromRevision: revision,
      toRevision: revision,
      budget: new MemoryBudget(2 * MiB),
      windowBytes: MiB,
      maxSegmentBytes: MiB,
      onSegment: async () => undefined,
    }),
    (err: unknown) => err instanceof RevisionTooLargeError && err.revision === revision,
  );
});

test('etcd behind the archive (restored or replaced): deltas stop, and stay stopped when the new history passes the archived revision', async () => {
  const store = await tempStore();
  // The store's chain ends ahead of this etcd, as after etcd was restored to an earlier point.
  const archived = (await headRevision(writer)) + 300;
  await markFullSnapshot(store, archived);
  const poller = new DeltaPoller(pollerOptions(etcd.client(), store, { chunkRevisions: 50 }));
  const behind = await poller.pollOnce();
  assert.match(behind.lastError ?? '', /went back to \d+, behind the archived revision \d+: was etcd restored or replaced\?/);
  assert.equal(behind.failedPolls, 1);

  await putMany(writer, 400, 4, (i) => writer.put(`new-history/${i}`).value('x').exec());
  assert.ok((await headRevision(writer)) > archived, 'the new history passed the archived revision');
  const after = await poller.pollOnce();
  assert.match(after.lastError ?? '', /Deltas stopped so that two histories never share one chain/);
  assert.equal(after.archivedRevision, archived);
  assert.equal(after.failedPolls, 2);
  assert.deepEqual(await store.list(DELTA_DIR), [], 'nothing of the new history was appended to the old chain');
});

test('watch responses stay within the size the budget counts on a default etcd; a larger one is reported', async () => {
  // The fetch window charges two responses of MAX_WATCH_RESPONSE_BYTES. etcd fragments a response at
  // --max-request-bytes + 512 KiB, so on a default etcd responses pass 1.5 MiB but not 2 MiB.
  const start = await headRevision(writer);
  for (let i = 0; i < 4; i++) await writer.put(`respsize/big${i}`).value(randomBytes(1_000_000));
  for (let i = 0; i < 12; i++) await writer.put(`respsize/mid${i}`).value(randomBytes(300_000));
  const fetchAll = async (client: Etcd3, from: number, to: number, log = logger) =>
    fetchRevisions({
      client,
      fromRevision: from,
      toRevision: to,
      budget: new MemoryBudget(64 * MiB),
      windowBytes: 5 * MiB,
      maxSegmentBytes: 32 * MiB,
      logger: log,
      onSegment: async () => undefined,
    });
  const normal = await fetchAll(writer, start + 1, await headRevision(writer));
  assert.ok(normal.largestResponseBytes > 1.5 * MiB, `responses pass --max-request-bytes (largest ${normal.largestResponseBytes})`);
  assert.ok(normal.largestResponseBytes <= MAX_WATCH_RESPONSE_BYTES, `largest response ${normal.largestResponseBytes}`);
  await writer.delete().prefix('respsize/');

  // An etcd that accepts 3 MB writes sends 3 MB responses: more than the budget counts, so say so.
  const big = await startTestEtcd({ extraArgs: ['--max-request-bytes', String(4 * MiB)] });
  cleanups.push(() => big.stop());
  const client = big.client();
  const from = (await headRevision(client)) + 1;
  await client.put('respsize/huge').value(randomBytes(3_000_000));
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
  const summary = await fetchAll(client, from, await headRevision(client), createLogger({ stream, level: 'warn' }));
  assert.ok(summary.largestResponseBytes > MAX_WATCH_RESPONSE_BYTES, `largest response ${summary.largestResponseBytes}`);
  assert.equal(lines.filter((line) => line.includes('larger than the memory budget counts')).length, 1, lines.join(''));
});
