/**
 * A store knows whose it is (issue 14, defect 7), with two real etcd clusters writing one store
 * prefix: the first writer records its cluster ID in store.json and in each object's metadata; the
 * second cluster's supervisor refuses to write (a delta failure naming both clusters, nothing
 * written or deleted); restore says whose chain it restores and refuses a store that mixes
 * two clusters; a store without a marker is adopted by its first writer.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { clusterIdentity } from '../../src/etcd/client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import { fullSnapshotKey } from '../../src/archive/naming.js';
import { OwnedStore } from '../../src/store/owned-store.js';
import { CLUSTER_ID_METADATA_KEY, parseMarker, STORE_MARKER_KEY } from '../../src/store/store-marker.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { waitFor } from '../helpers/wait.js';

let etcdA: TestEtcd;
let etcdB: TestEtcd;
let work: string;
let storeDir: string;

function supervisorFor(etcd: TestEtcd, name: string): Supervisor {
  const validation = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name },
    spec: {
      etcd: { endpoints: [etcd.clientUrl] },
      store: { local: { path: storeDir } },
      // Yearly: only the catch-up snapshot of an empty store is taken.
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '1s', chunkRevisions: 100, chunkParallelism: 1 },
      memory: { budget: '32Mi' },
    },
  });
  if (!validation.ok) assert.fail(validation.problems.join('; '));
  return new Supervisor({ resolved: validation.resolved, secrets: {}, name: `test/${name}` }, silentLogger());
}

async function putKeys(etcd: TestEtcd, prefix: string, count: number): Promise<void> {
  const client = etcd.client();
  for (let i = 0; i < count; i++) await client.put(`${prefix}/${i}`).value(`v${i}`);
}

const marker = async () => parseMarker(await readFile(join(storeDir, STORE_MARKER_KEY), 'utf8'));
const keysOf = async (store: LocalStore) => [...(await store.list('full/')), ...(await store.list('delta/'))].map((o) => o.key);

describe('store ownership: two etcd clusters, one store prefix', { timeout: 180_000 }, () => {
  before(async () => {
    [etcdA, etcdB] = await Promise.all([startTestEtcd(), startTestEtcd()]);
    work = await mkdtemp(join(tmpdir(), 'store-ownership-'));
    storeDir = join(work, 'store');
  });

  after(async () => {
    await Promise.allSettled([etcdA?.stop(), etcdB?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the first writer marks the store and each object with its cluster ID', async () => {
    const idA = (await clusterIdentity(etcdA.client())).clusterId;
    const idB = (await clusterIdentity(etcdB.client())).clusterId;
    assert.notEqual(idA, idB, 'two clusters, two cluster IDs');
    await putKeys(etcdA, 'a', 20);
    const supervisor = supervisorFor(etcdA, 'a');
    await supervisor.start();
    try {
      await waitFor('a full snapshot of cluster A', () => supervisor.report().lastFullSnapshot?.sizeBytes);
      await putKeys(etcdA, 'a', 5);
      await waitFor('a delta of cluster A', () => supervisor.report().lastDeltaSnapshot);
    } finally {
      await supervisor.stop();
    }
    assert.deepEqual({ ...(await marker()), created: '' }, { format: 1, clusterId: idA, owner: 'test/a', created: '' });
    const store = new LocalStore(storeDir);
    for (const key of await keysOf(store)) {
      const object = await store.get(key);
      object.body.resume();
      assert.equal(object.metadata[CLUSTER_ID_METADATA_KEY], idA, `${key} records cluster A`);
    }
  });

  test("cluster B's supervisor refuses to write into cluster A's store, with a message naming both", async () => {
    const store = new LocalStore(storeDir);
    const before = await keysOf(store);
    await putKeys(etcdB, 'b', 50); // B's head is past A's: only the marker can tell the histories apart
    const supervisor = supervisorFor(etcdB, 'b');
    await supervisor.start();
    // The store holds a full snapshot (of A) and the schedule is yearly: B's deltas are what would
    // have continued A's chain with B's revisions.
    let error;
    try {
      error = await waitFor('the delta upload to be refused', () => supervisor.report().delta?.lastError);
    } finally {
      await supervisor.stop();
    }
    const idA = (await clusterIdentity(etcdA.client())).clusterId;
    const idB = (await clusterIdentity(etcdB.client())).clusterId;
    assert.match(error, new RegExp(`holds the backups of etcd cluster ${idA} .*not of this etcd \\(cluster ${idB}\\); refusing to write`));
    assert.deepEqual(await keysOf(store), before, 'nothing written or deleted');
    assert.equal((await marker())?.clusterId, idA);
  });

  test('restore names the cluster whose chain it restores, and refuses a store that mixes clusters', async () => {
    const idA = (await clusterIdentity(etcdA.client())).clusterId;
    const restored = await restoreBackup({ store: new LocalStore(storeDir), dataDir: join(work, 'restored-a'), logger: silentLogger() });
    assert.equal(restored.clusterId, idA);

    // An object of cluster B slipped in (written before markers existed, or by hand): restore
    // "latest" would pick it, as the highest revision.
    const store = new LocalStore(storeDir);
    const intruder = fullSnapshotKey(1_000_000, new Date(), { compression: 'none', encrypted: false });
    await store.put(intruder, Buffer.from('not a snapshot of cluster A'), { metadata: { [CLUSTER_ID_METADATA_KEY]: (await clusterIdentity(etcdB.client())).clusterId } });
    await assert.rejects(
      restoreBackup({ store, dataDir: join(work, 'restored-mixed'), logger: silentLogger() }),
      new RegExp(`${intruder} .* was taken from etcd cluster \\d+, but the store holds cluster ${idA}'s chain: the store mixes two clusters`),
    );
    await store.delete(intruder);
  });

  test("a store holding revisions past etcd's head is refused, even under the same cluster ID (a restored cluster)", async () => {
    const idA = (await clusterIdentity(etcdA.client())).clusterId;
    // etcd restored with the same member names, peer URLs and token keeps its cluster ID; its head
    // goes back to the snapshot's revision. The identity is given here: one etcd cannot go back.
    const store = new OwnedStore(new LocalStore(storeDir), {
      identify: () => Promise.resolve({ clusterId: idA, headRevision: 3 }),
      owner: 'test/restored',
      logger: silentLogger(),
    });
    const before = await keysOf(new LocalStore(storeDir));
    await assert.rejects(
      store.put('delta/00000000000000000004-00000000000000000004.jsonl', Buffer.from('{}\n')),
      new RegExp(`holds revisions up to \\d+ but etcd \\(cluster ${idA}\\) is at revision 3: its history is not the one in the store`),
    );
    await assert.rejects(store.delete(before[0]!), /its history is not the one in the store/);
    assert.deepEqual(await keysOf(new LocalStore(storeDir)), before, 'nothing written or deleted');
  });

  test('a store without a marker (written by an older version) is adopted by its first writer', async () => {
    const store = new LocalStore(storeDir);
    await store.delete(STORE_MARKER_KEY);
    const before = await keysOf(store);
    await putKeys(etcdA, 'a2', 10);
    const supervisor = supervisorFor(etcdA, 'a');
    await supervisor.start();
    try {
      await waitFor('a new delta of cluster A', async () => (await keysOf(store)).some((key) => !before.includes(key)));
    } finally {
      await supervisor.stop();
    }
    assert.equal((await marker())?.clusterId, (await clusterIdentity(etcdA.client())).clusterId);
  });
});
