/**
 * Leases and restore, against real etcds: a lease that a client keeps alive in the source must not
 * expire inside restore's temporary member while the deltas replay (the restore would gain a
 * revision of its own), and when a revision the replay did not make shows up anyway, the error says
 * what that revision holds.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { DELTA_DIR, classifyKeys, deltaKey } from '../../src/archive/naming.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { ETCDCTL_BINARY, freePort } from '../../src/etcd/local-etcd.js';
import { silentLogger } from '../../src/observability/logger.js';
import { replayDeltas } from '../../src/restore/delta-replay.js';
import { restoreBackup, startMember, withClient } from '../../src/restore/restore.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { GetResult, ObjectStore } from '../../src/store/object-store.js';
import { startTestEtcd } from '../harness/etcd.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { archiveDeltas, saveFullSnapshot } from '../helpers/archive.js';
import { allKeys, comparableKeys, writeMixedWorkload } from '../helpers/workload.js';

const run = promisify(execFile);
const logger = silentLogger();
/** etcd's shortest lease TTL with its default election timeout. */
const LEASE_TTL_S = 2;

const suite = etcdSuite();
const { tempDir, defer } = suite;

/** Runs `beforeFirst` once, before the first delta object is handed to the replay. */
class HookedStore extends DelegatingStore {
  private ran = false;

  constructor(
    inner: ObjectStore,
    private readonly beforeFirst: () => Promise<void>,
  ) {
    super(inner);
  }

  override async get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    if (key.startsWith(DELTA_DIR) && !this.ran) {
      this.ran = true;
      await this.beforeFirst();
    }
    return this.inner.get(key, options);
  }
}

interface Backup {
  store: LocalStore;
  snapshotFile: string;
  base: number;
  head: number;
  /** Source lease ID (decimal) kept alive by a client for the whole test. */
  leaseId: string;
}

/**
 * A full snapshot holding `lease/held` on a short-TTL lease that a client keeps alive, then deltas
 * with a mixed workload, archived by the real delta poller.
 */
async function backupWithKeptAliveLease(prefix: string): Promise<Backup> {
  const lease = suite.writer.lease(LEASE_TTL_S); // etcd3 keeps it alive (every TTL/3) until revoked
  defer(() => lease.revoke());
  const leaseId = await lease.grant();
  await lease.put(`${prefix}lease/held`).value('alive');
  const dir = await tempDir('lease-backup-');
  const store = new LocalStore(join(dir, 'store'));
  const { file: snapshotFile, base } = await saveFullSnapshot(suite.source, store, dir);
  await writeMixedWorkload(suite.writer, `${prefix}w/`, 300, 7);
  const head = await archiveDeltas(suite.source, store);
  return { store, snapshotFile, base, head, leaseId };
}

async function leaseOf(client: Etcd3, key: string): Promise<string> {
  const { kvs } = await client.kv.range({ key: Buffer.from(key) });
  assert.equal(kvs.length, 1, `${key} exists`);
  return String(kvs[0]!.lease);
}

async function leaseTable(client: Etcd3): Promise<Array<{ id: string; grantedTtl: number; keys: string[] }>> {
  const { leases } = await client.leaseClient.leaseLeases();
  const table = [];
  for (const { ID } of leases) {
    const info = await client.leaseClient.leaseTimeToLive({ ID, keys: true });
    table.push({ id: ID, grantedTtl: Number(info.grantedTTL), keys: info.keys.map((k) => k.toString()).sort() });
  }
  return table.sort((a, b) => (a.id < b.id ? -1 : 1));
}


test('a kept-alive lease in the snapshot survives a replay longer than its TTL: restore lands on the head and equals the source', async () => {
  const backup = await backupWithKeptAliveLease('keep/');
  // The replay is held up for more than twice the lease's TTL before its first delta object: long
  // enough for the temporary member to revoke the lease if nothing keeps it alive.
  const store = new HookedStore(backup.store, () => sleep(LEASE_TTL_S * 2500));
  const dataDir = join(await tempDir('lease-restore-'), 'data');
  const result = await restoreBackup({ store, dataDir, logger });
  assert.equal(result.snapshotRevision, backup.base);
  assert.equal(result.revision, backup.head, 'restore lands exactly on the head revision');

  const want = comparableKeys(await allKeys(suite.writer, backup.head));
  assert.ok(want.some((kv) => (kv as { key: string }).key === 'keep/lease/held'), 'the source still holds the leased key');
  const member = await startMember(dataDir, 'default', await tempDir('lease-member-'));
  try {
    await withClient(member, async (client) => {
      assert.equal(await headRevision(client), backup.head);
      assert.deepEqual(comparableKeys(await allKeys(client)), want, 'restored keys equal the source at the head');
      const { leases } = await client.leaseClient.leaseLeases();
      assert.ok(leases.some((l) => l.ID === backup.leaseId), 'the snapshot lease is still there');
    });
  } finally {
    await member.stop();
  }
});

test('a revision the replay did not make is named in the error: its keys and their lease', async () => {
  const backup = await backupWithKeptAliveLease('foreign/');
  const dir = await tempDir('lease-foreign-');
  const peerUrl = `http://127.0.0.1:${await freePort()}`;
  const dataDir = join(dir, 'data');
  await run(ETCDCTL_BINARY, [
    'snapshot', 'restore', backup.snapshotFile, '--data-dir', dataDir, '--name', 'restored',
    '--initial-cluster', `restored=${peerUrl}`, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster-token', 'lease-test',
  ]);
  const member = await startMember(dataDir, 'restored', dir);
  defer(() => member.stop());
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  defer(async () => client.close());
  // Something other than the replay revokes the snapshot's lease on the member mid-restore.
  const store = new HookedStore(backup.store, async () => {
    await client.leaseClient.leaseRevoke({ ID: backup.leaseId });
  });
  const deltas = classifyKeys((await backup.store.list(DELTA_DIR)).map((o) => o.key)).deltas;
  await assert.rejects(
    replayDeltas({ client, store, deltas, afterRevision: backup.base, toRevision: backup.head, logger }),
    (err: Error) => {
      assert.match(err.message, new RegExp(`applying source revision ${backup.base + 1} produced revision ${backup.base + 2}`));
      assert.match(err.message, new RegExp(`revision ${backup.base + 1} deleted 1 key \\("foreign/lease/held"\\) on lease ${BigInt(backup.leaseId).toString(16)}`));
      assert.doesNotMatch(err.message, /another base snapshot/);
      return true;
    },
  );
});

test('leases granted after the snapshot are restored with their IDs and TTLs; revoked ones are not; gone ones are reported', async () => {
  const etcd = await startTestEtcd();
  defer(() => etcd.stop());
  const client = etcd.client();
  const grant = async (ttl: number): Promise<string> => (await client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 })).ID;
  const putOn = (key: string, lease: string): Promise<unknown> =>
    client.kv.put({ key: Buffer.from(key), value: Buffer.from(key), lease });
  const inSnapshot = await grant(600);
  await putOn('l/a', inSnapshot);
  const dir = await tempDir('lease-restored-');
  const store = new LocalStore(join(dir, 'store'));
  await saveFullSnapshot(etcd, store, dir);

  const kept = await grant(300);
  await putOn('l/b1', kept);
  await putOn('l/b2', kept);
  const revokedLater = await grant(120);
  await putOn('l/c1', revokedLater);
  const goneBeforeArchived = await grant(100);
  await putOn('l/d1', goneBeforeArchived);
  const d1Revision = await headRevision(client);
  await client.leaseClient.leaseRevoke({ ID: goneBeforeArchived });
  await archiveDeltas(etcd, store); // sees kept and revokedLater alive, goneBeforeArchived gone
  await client.leaseClient.leaseRevoke({ ID: revokedLater }); // a DELETE of l/c1 in the next object
  await putOn('l/b1', kept); // the same lease again, in a later object
  await client.put('l/plain').value('no lease');
  const head = await archiveDeltas(etcd, store);

  const dataDir = join(dir, 'data');
  const result = await restoreBackup({ store, dataDir, logger });
  assert.equal(result.revision, head);
  assert.deepEqual(result.leases.goneWhenArchived, [goneBeforeArchived]);
  assert.deepEqual(result.leases.withoutTtl, []);
  assert.equal(result.leases.granted, 2, 'kept and revokedLater were granted');
  assert.equal(result.leases.revoked, 1, 'revokedLater lost its key and was revoked');

  const member = await startMember(dataDir, 'default', await tempDir('lease-restored-member-'));
  try {
    await withClient(member, async (restored) => {
      assert.equal(await headRevision(restored), head);
      assert.deepEqual(comparableKeys(await allKeys(restored)), comparableKeys(await allKeys(client, head)));
      assert.deepEqual(await leaseTable(restored), await leaseTable(client), 'lease list, TTLs and attached keys equal the source');
      assert.equal(await leaseOf(restored, 'l/b1'), kept);
      assert.equal(await leaseOf(restored, 'l/a'), inSnapshot);
    });
  } finally {
    await member.stop();
  }

  // Restored to just before its revocation, the key of the lease that was gone when archived is there, without a lease.
  const early = await restoreBackup({ store, dataDir: join(dir, 'early'), toRevision: d1Revision, logger });
  assert.deepEqual(early.leases.goneWhenArchived, [goneBeforeArchived]);
  const earlyMember = await startMember(join(dir, 'early'), 'default', await tempDir('lease-early-member-'));
  try {
    await withClient(earlyMember, async (restored) => assert.equal(await leaseOf(restored, 'l/d1'), '0'));
  } finally {
    await earlyMember.stop();
  }
});

test('delta objects written before lease TTLs were recorded restore their keys without a lease, and say so', async () => {
  const etcd = await startTestEtcd();
  defer(() => etcd.stop());
  await etcd.client().put('seed').value('x'); // a fresh etcd's snapshot says revision 0, its member 1
  const dir = await tempDir('lease-old-format-');
  const store = new LocalStore(join(dir, 'store'));
  const { base } = await saveFullSnapshot(etcd, store, dir);
  // An old-format line: a lease ID, no leaseTTL field.
  const line = `{"rev":${base + 1},"type":"PUT","key":"${Buffer.from('old/k').toString('base64')}","value":"${Buffer.from('v').toString('base64')}","createRev":${base + 1},"modRev":${base + 1},"version":1,"lease":"7587868449925235201"}\n`;
  assert.doesNotMatch(line, /leaseTTL/);
  await store.put(deltaKey(base + 1, base + 1, { compression: 'none', encrypted: false }), Buffer.from(line));
  const result = await restoreBackup({ store, dataDir: join(dir, 'data'), logger });
  assert.equal(result.revision, base + 1);
  assert.deepEqual(result.leases.withoutTtl, ['7587868449925235201']);
  const member = await startMember(join(dir, 'data'), 'default', await tempDir('lease-old-member-'));
  try {
    await withClient(member, async (restored) => assert.equal(await leaseOf(restored, 'old/k'), '0'));
  } finally {
    await member.stop();
  }
});
