/**
 * The pipelined delta replay against real etcds: revisions stay exact with many txns in flight (also
 * when txns are made to overtake each other), and the prefetch of delta objects never holds more
 * than its byte budget (measured: live bytes in the process plus spooled bytes, not the accountant).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { encodeDeltaStream, type DeltaEvent } from '../../src/archive/delta-format.js';
import { DeltaPoller } from '../../src/engine/delta-poller.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { ETCDCTL_BINARY, freePort } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { DeltaGapError, replayDeltas } from '../../src/restore/delta-replay.js';
import { startMember } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import { DELTA_DIR, classifyKeys, deltaKey, fullSnapshotKey } from '../../src/archive/naming.js';
import type { GetResult, ObjectStore } from '../../src/store/object-store.js';
import { startTestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { LiveBytesProbe, sampledAtEnd } from '../harness/live-bytes.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const run = promisify(execFile);
const logger = silentLogger();
const MiB = 1024 * 1024;

const suite = etcdSuite();
const { tempDir, defer } = suite;

/** etcdctl snapshot restore of `file` into a fresh dir, started as restore starts its member. */
async function restoredMember(file: string): Promise<{ client: Etcd3; stop: () => Promise<void> }> {
  const dir = await tempDir('pipeline-restore-');
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const dataDir = join(dir, 'data');
  await run(ETCDCTL_BINARY, [
    'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'restored',
    '--initial-cluster', `restored=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster-token', 'pipeline-test',
  ]);
  const member = await startMember(dataDir, 'restored', dir);
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  const stop = async (): Promise<void> => {
    client.close();
    await member.stop();
  };
  defer(stop);
  return { client, stop };
}

/**
 * Makes every `every`-th txn wait `delayMs` before it is sent, so the txns sent after it reach etcd
 * first: their compares fail and the pipeline has to resend them in order.
 */
function delayEveryNthTxn(client: Etcd3, every: number, delayMs: number): void {
  const txn = client.kv.txn.bind(client.kv);
  let calls = 0;
  client.kv.txn = async (request, options) => {
    calls += 1;
    if (calls % every === 0) await sleep(delayMs);
    return txn(request, options);
  };
}

test('pipelined replay keeps every revision exact: puts, overwrites, deletes, delete-ranges, multi-key txns, lease revocation', async () => {
  await suite.writer.put('p/seed').value('seed');
  const snapshotFile = join(await tempDir('pipeline-snap-'), 'base.db');
  await run(ETCDCTL_BINARY, ['--endpoints', suite.source.clientUrl, 'snapshot', 'save', snapshotFile]);
  const { stdout } = await run(ETCDCTL_BINARY, ['snapshot', 'status', snapshotFile, '-w', 'json']);
  const base = (JSON.parse(stdout) as { revision: number }).revision;
  const store = new LocalStore(await tempDir('pipeline-store-'));
  await store.put(fullSnapshotKey(base, new Date(), { compression: 'none', encrypted: false }), createReadStream(snapshotFile));

  // Many small revisions of every kind, in stretches so that pipelining meets each kind mid-flight.
  for (let round = 0; round < 4; round++) {
    await writeMixedWorkload(suite.writer, `p/r${round}/`, 400, round + 1);
    await suite.writer.delete().prefix(`p/r${round}/k00000`); // a delete-range: many keys in one revision
    const lease = suite.writer.lease(600, { autoKeepAlive: false });
    const id = await lease.grant();
    await suite.writer.kv.put({ key: Buffer.from(`p/r${round}/a-leased`), value: Buffer.from('a'), lease: id });
    await suite.writer.kv.put({ key: Buffer.from(`p/r${round}/z-leased`), value: Buffer.from('z'), lease: id });
    await lease.revoke(); // deletes two non-adjacent keys in one revision
  }
  const head = await headRevision(suite.writer);
  assert.ok(head - base > 1500, `workload made ${head - base} revisions`);

  const poller = new DeltaPoller({
    client: suite.source.client(),
    store,
    budget: new MemoryBudget(16 * MiB),
    periodMs: 60_000,
    chunkRevisions: 150,
    parallelism: 3,
    compression: 'zstd', // zstd deltas here; test/integration/delta.integ.test.ts replays gzip ones
    logger,
  });
  await poller.start();
  assert.equal((await poller.pollOnce()).archivedRevision, head);
  await poller.stop();
  const deltas = classifyKeys((await store.list(DELTA_DIR)).map((o) => o.key)).deltas;
  const want = await allKeys(suite.writer, head);

  for (const overtaking of [false, true]) {
    const member = await restoredMember(snapshotFile);
    if (overtaking) delayEveryNthTxn(member.client, 7, 15);
    const result = await replayDeltas({
      client: member.client,
      store,
      deltas,
      afterRevision: base,
      toRevision: head,
      logger,
      pipelineDepth: 64,
    });
    assert.equal(result.revision, head);
    assert.equal(await headRevision(member.client), head, 'restored head revision equals the source');
    if (overtaking) assert.ok(result.pipeline.resent > 0, 'delayed txns were overtaken and resent');
    const got = await allKeys(member.client);
    assert.equal(got.length, want.length, 'key count');
    for (let i = 0; i < want.length; i++) {
      const [g, w] = [got[i]!, want[i]!];
      assert.deepEqual(
        { key: g.key.toString(), value: g.value.toString('hex'), create: g.createRevision, mod: g.modRevision, version: g.version },
        { key: w.key.toString(), value: w.value.toString('hex'), create: w.createRevision, mod: w.modRevision, version: w.version },
        `key ${w.key.toString()} (overtaking: ${overtaking})`,
      );
    }
    await member.stop();
  }
});

/**
 * What the prefetch really holds, measured at each get (a download starting) and at the end of each
 * download (before it counts as done): the process's live ArrayBuffer bytes after GC plus the bytes
 * of the spooled files under `spoolRoot` (the budget counts an object wherever it is held).
 */
class HeldBytesStore extends DelegatingStore {
  maxSpooledBytes = 0;
  /** Live bytes above the probe's baseline plus spooled bytes, the largest sum seen at one point. */
  maxHeldBytes = 0;
  heldAtMax = { live: 0, spooled: 0 };
  maxConcurrentGets = 0;
  samples = 0;
  private gets = 0;

  constructor(
    inner: ObjectStore,
    private readonly spoolRoot: string,
    private readonly probe: LiveBytesProbe,
  ) {
    super(inner);
  }

  override async get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    this.gets += 1;
    this.maxConcurrentGets = Math.max(this.maxConcurrentGets, this.gets);
    await this.measure();
    const result = await this.inner.get(key, options);
    const body = sampledAtEnd(result.body, () => this.measure());
    body.once('close', () => (this.gets -= 1));
    return { ...result, body };
  }

  private async measure(): Promise<void> {
    const live = await this.probe.sample();
    const spooled = await spooledBytes(this.spoolRoot);
    this.samples += 1;
    this.maxSpooledBytes = Math.max(this.maxSpooledBytes, spooled);
    if (live + spooled > this.maxHeldBytes) {
      this.maxHeldBytes = live + spooled;
      this.heldAtMax = { live, spooled };
    }
  }
}

async function spooledBytes(root: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * What the replay may hold above the prefetch budget, measured: the download and decode streams'
 * buffers (64 KiB each, up to 8 downloads), the etcd client's gRPC buffers and the revision in its
 * txn (0.5 MiB measured). Fixed, and small next to what a prefetch past its budget holds (a 1.3 MiB object each).
 */
const PREFETCH_SLACK_BYTES = 2 * MiB;

test('the prefetch of delta objects never holds more than its byte budget, measured, and frees it all', async () => {
  // A fresh etcd and objects written with the real encoder: 20 objects of 50 revisions, each put of
  // a new key with a 20 KiB value (so every object is about 1.3 MiB, base64 in JSON lines).
  const target = await startTestEtcd();
  defer(() => target.stop());
  const client = target.client();
  const base = await headRevision(client);
  const storeDir = await tempDir('prefetch-store-');
  const local = new LocalStore(storeDir);
  const objects = 20;
  const perObject = 50;
  for (let o = 0; o < objects; o++) {
    const events: DeltaEvent[] = [];
    for (let r = 0; r < perObject; r++) {
      const rev = base + 1 + o * perObject + r;
      events.push({
        rev, type: 'PUT', key: Buffer.from(`prefetch/${rev}`), value: Buffer.alloc(20 * 1024, rev % 251),
        createRev: rev, modRev: rev, version: 1, lease: '0',
      });
    }
    await local.put(deltaKey(events[0]!.rev, events.at(-1)!.rev, { compression: 'none', encrypted: false }), encodeDeltaStream(events, 'none'));
  }
  const listing = await local.list(DELTA_DIR);
  const largest = Math.max(...listing.map((o) => o.size));
  const budget = new MemoryBudget(3 * largest); // room for three objects at a time
  const spoolRoot = await tempDir('prefetch-spool-');
  const probe = await LiveBytesProbe.start();
  const store = new HeldBytesStore(local, spoolRoot, probe);

  const head = base + objects * perObject;
  const result = await replayDeltas({
    client,
    store,
    deltas: classifyKeys(listing.map((o) => o.key)).deltas,
    afterRevision: base,
    toRevision: head,
    logger,
    tempDir: spoolRoot,
    prefetchBudget: budget,
  });
  assert.equal(result.revision, head);
  assert.equal(await headRevision(client), head);
  // Measured, not accounted (the accountant only grants what fits): live bytes in the process plus
  // spooled bytes on disk, at every download's start and end.
  assert.equal(store.samples, 2 * objects, 'sampled at the start and end of every download');
  assert.ok(
    store.maxHeldBytes <= budget.limitBytes + PREFETCH_SLACK_BYTES,
    `the prefetch held ${store.maxHeldBytes} bytes (live ${store.heldAtMax.live} + spooled ${store.heldAtMax.spooled}), ` +
      `more than the budget ${budget.limitBytes} + slack ${PREFETCH_SLACK_BYTES}`,
  );
  assert.ok(store.maxSpooledBytes > largest, `objects were downloaded ahead of the one being applied (spooled ${store.maxSpooledBytes} at most)`);
  assert.ok(store.maxConcurrentGets <= 3, `at most three downloads at once, saw ${store.maxConcurrentGets}`);
  assert.equal(budget.usedBytes, 0, 'every reservation is released');
  assert.deepEqual(await readdir(spoolRoot), [], 'no spooled file is left behind');
});

test("a delta object whose contents do not match its name's range fails the replay, naming the object", async () => {
  // Objects written with the real encoder under a name that promises more (or other) revisions than
  // they hold. One etcd serves every case: each starts at its head and names revisions after it.
  const target = await startTestEtcd();
  defer(() => target.stop());
  const client = target.client();
  const local = new LocalStore(await tempDir('mismatch-store-'));
  const put = (rev: number): DeltaEvent => ({
    rev, type: 'PUT', key: Buffer.from(`mismatch/${rev}`), value: Buffer.from(`v${rev}`), createRev: rev, modRev: rev, version: 1, lease: '0',
  });
  const cases: Array<{ name: string; from: number; to: number; holds: number[]; missing: [number, number]; detail: string }> = [
    { name: 'ends before its name says', from: 1, to: 3, holds: [1, 2], missing: [3, 3], detail: 'ends early' },
    { name: 'a one-revision hole inside', from: 1, to: 3, holds: [1, 3], missing: [2, 2], detail: 'inside' },
    { name: "another range's revisions", from: 1, to: 2, holds: [5, 6], missing: [1, 2], detail: 'ends early' },
    { name: 'a later revision first', from: 1, to: 3, holds: [2, 3], missing: [1, 1], detail: 'inside' },
    { name: 'empty', from: 1, to: 2, holds: [], missing: [1, 2], detail: 'ends early' },
  ];
  for (const c of cases) {
    const base = await headRevision(client);
    const key = deltaKey(base + c.from, base + c.to, { compression: 'none', encrypted: false });
    await local.put(key, encodeDeltaStream(c.holds.map((r) => put(base + r)), 'none'));
    const deltas = classifyKeys([key]).deltas;
    await assert.rejects(
      replayDeltas({ client, store: local, deltas, afterRevision: base, toRevision: base + c.to, logger }),
      (err: unknown) => {
        assert.ok(err instanceof DeltaGapError, `${c.name}: ${String(err)}`);
        assert.deepEqual([err.missingFrom, err.missingTo], [base + c.missing[0], base + c.missing[1]], c.name);
        assert.ok(err.message.includes(key) && err.message.includes(c.detail), `${c.name}: the error names ${key}: ${err.message}`);
        return true;
      },
    );
    await local.delete(key);
  }
  // Revisions past the name's end are not applied: the next object's range holds them.
  const base = await headRevision(client);
  const key = deltaKey(base + 1, base + 2, { compression: 'none', encrypted: false });
  await local.put(key, encodeDeltaStream([1, 2, 3, 4].map((r) => put(base + r)), 'none'));
  const result = await replayDeltas({ client, store: local, deltas: classifyKeys([key]).deltas, afterRevision: base, toRevision: base + 2, logger });
  assert.equal(result.revision, base + 2);
  assert.equal(await headRevision(client), base + 2, 'nothing past the name was written');
});
