import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { ENCRYPT_STREAM_BYTES } from '../../src/crypto/encryption.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { ChecksumMismatchError, DataDirNotEmptyError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { verifyBackup } from '../../src/restore/verify.js';
import { LocalStore } from '../../src/store/local-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'full-snapshot-test-'));
  // A few thousand changes: new keys, overwrites, deletes and multi-key txns.
  await writeMixedWorkload(etcd.client(), 'app/', 3000);
});

after(async () => {
  await etcd?.stop();
  await rm(work, { recursive: true, force: true });
});

for (const compression of ['gzip', 'none'] as const) {
  test(`snapshot (${compression}) and restore reproduce every key, value, revision and version`, async () => {
    const client = etcd.client();
    const store = new LocalStore(join(work, `store-${compression}`));
    const sourceRevision = await headRevision(client);
    const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression });
    assert.equal(snapshot.revision, sourceRevision);
    assert.match(snapshot.key, compression === 'gzip' ? /^full\/\d{20}-\d+\.db\.gz$/ : /^full\/\d{20}-\d+\.db$/);

    const dataDir = join(work, `restored-${compression}`);
    const restored = await restoreBackup({ store, dataDir, logger: silentLogger() });
    assert.equal(restored.revision, sourceRevision);

    const member = await startLocalEtcd({ dataDir, name: 'default', logFile: join(work, `member-${compression}.log`) });
    const restoredClient = createEtcdClient({ endpoints: [member.clientUrl] });
    try {
      assert.equal(await headRevision(restoredClient), sourceRevision);
      const expected = await allKeys(client, sourceRevision);
      const actual = await allKeys(restoredClient);
      assert.ok(expected.length > 1000, `workload wrote ${expected.length} keys`);
      assert.deepEqual(actual, expected);
    } finally {
      restoredClient.close();
      await member.stop();
    }
  });
}

test('verify reports the keyspace and matches the live cluster at the snapshot revision', async () => {
  const client = etcd.client();
  const store = new LocalStore(join(work, 'store-verify'));
  const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip' });
  // Writes after the snapshot must not matter: verify compares at the snapshot's revision.
  await client.put('app/after-snapshot').value('x');
  const result = await verifyBackup({ store, logger: silentLogger(), live: { endpoints: [etcd.clientUrl] } });
  assert.equal(result.revision, snapshot.revision);
  assert.equal(result.keyCount, (await allKeys(client, snapshot.revision)).length);
  assert.match(result.contentHash, /^[0-9a-f]{64}$/);
  assert.deepEqual(result.comparison, { matches: true, liveKeyCount: result.keyCount, differences: [] });
});

test('a corrupted snapshot is refused before etcdctl sees it, naming the object', async () => {
  const client = etcd.client();
  const root = join(work, 'store-corrupt');
  const store = new LocalStore(root);
  const snapshot = await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'none' });
  await writeFile(join(root, snapshot.key), 'not a bolt db');
  const dataDir = join(work, 'restored-corrupt');
  await assert.rejects(restoreBackup({ store, dataDir, logger: silentLogger() }), (err: unknown) => {
    assert.ok(err instanceof ChecksumMismatchError);
    assert.match(err.message, new RegExp(`sha256 mismatch for ${snapshot.key}`));
    return true;
  });
  assert.deepEqual(await readdir(dataDir).catch(() => []), []);
});

test('restore refuses a non-empty data dir and leaves it untouched', async () => {
  const store = new LocalStore(join(work, 'store-gzip'));
  const dataDir = join(work, 'occupied');
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'keep-me'), 'precious');
  await assert.rejects(restoreBackup({ store, dataDir, logger: silentLogger() }), DataDirNotEmptyError);
  assert.deepEqual(await readdir(dataDir), ['keep-me']);
});

test('an encrypted snapshot reserves its encrypting stream from the budget while it uploads, and gives it back', async () => {
  const client = etcd.client();
  const budget = new MemoryBudget(32 * 1024 * 1024);
  const store = new LocalStore(join(work, 'store-budget'));
  await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip', budget });
  assert.equal(budget.peakBytes, 0, 'unencrypted: nothing reserved (the local store holds no budget)');
  await takeFullSnapshot({ client, endpoints: [etcd.clientUrl], store, compression: 'gzip', encryptionKey: randomBytes(32), budget });
  assert.equal(budget.peakBytes, ENCRYPT_STREAM_BYTES, 'encrypted: the encrypting stream was reserved');
  assert.equal(budget.usedBytes, 0, 'and released after the upload');
});
