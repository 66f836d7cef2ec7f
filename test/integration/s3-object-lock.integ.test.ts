/**
 * S3 Object Lock on a real MinIO (Object Lock needs a real server: s3rver has none). Buckets are
 * created with Object Lock (versioning on), with and without a default retention.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { parseDuration } from '../../src/api/duration.js';
import { validateEtcdBackup } from '../../src/api/validate.js';
import type { SupervisorEvent } from '../../src/engine/supervisor-types.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import { headRevision } from '../../src/etcd/client.js';
import { ObjectLockedError, OperatorError } from '../../src/errors.js';
import { silentLogger } from '../../src/observability/logger.js';
import { OperatorMetrics } from '../../src/observability/metrics.js';
import { restoreBackup, startMember, withClient } from '../../src/restore/restore.js';
import { deleteUnlessLocked } from '../../src/store/delete-unless-locked.js';
import { listBackupObjects } from '../../src/store/object-store.js';
import { S3Store } from '../../src/store/s3-store.js';
import { digestStream, generatedStream } from '../harness/byte-streams.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startTestMinio, type TestMinio } from '../harness/minio.js';
import { minioBinary, skipUnlessBuilt } from '../harness/test-tools.js';
import { capturedLogger } from '../helpers/captured-logs.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const MiB = 1024 * 1024;
const skip = skipUnlessBuilt(minioBinary(), 'MinIO');

/** Every version and delete marker under `prefix`, raw. */
async function versions(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix }));
  return [
    ...(out.Versions ?? []).map((v) => `version ${v.Key}`),
    ...(out.DeleteMarkers ?? []).map((m) => `delete-marker ${m.Key}`),
  ].sort();
}

describe('S3 Object Lock on MinIO: explicit retention', { skip, timeout: 180_000 }, () => {
  let minio: TestMinio;
  const stores: S3Store[] = [];
  const open = (prefix: string, retainFor: string): S3Store => {
    const store = S3Store.fromConfig(minio.storeConfig(prefix, { objectLock: { mode: 'COMPLIANCE', retainForMs: parseDuration(retainFor)! } }), {
      partSizeBytes: 5 * MiB,
    });
    stores.push(store);
    return store;
  };
  before(async () => {
    minio = await startTestMinio({ objectLock: true });
  });
  after(async () => {
    for (const store of stores) store.close();
    await minio?.stop();
  });

  test('every object is written locked (single PUT and multipart + copy); temporary objects leave no version behind', async () => {
    const store = open('explicit', '1h');
    const before = Date.now();
    const small = await store.put('delta/small', Buffer.from('a small delta'));
    const source = generatedStream(17 * MiB, { seed: 4 });
    const big = await store.put('full/00000000000000000007-1700000000.db', source.stream);
    assert.equal(big.sha256, await source.sha256);
    for (const [key, put] of [
      ['delta/small', small],
      ['full/00000000000000000007-1700000000.db', big],
    ] as const) {
      const head = await minio.client().send(new HeadObjectCommand({ Bucket: minio.bucket, Key: `explicit/${key}` }));
      assert.equal(head.ObjectLockMode, 'COMPLIANCE', key);
      const until = head.ObjectLockRetainUntilDate?.getTime() ?? 0;
      assert.ok(until >= before + 3_600_000 - 1000, `${key} locked for an hour: ${head.ObjectLockRetainUntilDate?.toISOString()}`);
      assert.equal(put.retention?.mode, 'COMPLIANCE');
      assert.ok(Math.abs((put.retention?.retainUntil.getTime() ?? 0) - until) < 60_000, 'the put reports the retention it wrote');
      assert.deepEqual(await store.retentionOf(key), { mode: 'COMPLIANCE', retainUntil: head.ObjectLockRetainUntilDate });
    }
    assert.deepEqual(await versions(minio.client(), minio.bucket, 'explicit/.incomplete/'), [], 'no temporary version or delete marker');
    assert.deepEqual(await minio.listMultipartUploads('explicit/'), []);
    const got = await store.get('full/00000000000000000007-1700000000.db');
    assert.deepEqual(await digestStream(got.body), { sha256: big.sha256, size: 17 * MiB });
  });

  test('a locked object survives delete attempts: the store never sends one, S3 refuses a raw one', async () => {
    const store = open('survives', '1h');
    await store.put('full/00000000000000000009-1700000000.db', Buffer.from('locked snapshot'));
    const err = await store.delete('full/00000000000000000009-1700000000.db').then(
      () => assert.fail('deleted a locked object'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ObjectLockedError, String(err));
    assert.ok(err.retainUntil && err.retainUntil.getTime() > Date.now());
    assert.match(err.message, /^object full\/\S+ in s3:\/\/backups\/survives \(endpoint http:\S+\) is under S3 Object Lock \(COMPLIANCE\) until \S+ and cannot be deleted yet$/);
    assert.deepEqual(await versions(minio.client(), minio.bucket, 'survives/'), ['version survives/full/00000000000000000009-1700000000.db'], 'no delete marker');

    // Deleting the version directly (what a mistake or an attacker with the keys would do) is refused by MinIO.
    const client = minio.client();
    const head = await client.send(new HeadObjectCommand({ Bucket: minio.bucket, Key: 'survives/full/00000000000000000009-1700000000.db' }));
    await assert.rejects(
      client.send(
        new DeleteObjectCommand({
          Bucket: minio.bucket,
          Key: 'survives/full/00000000000000000009-1700000000.db',
          VersionId: head.VersionId,
          BypassGovernanceRetention: true,
        }),
      ),
      // MinIO: 400 InvalidRequest "Object is WORM protected and cannot be overwritten"; AWS: 403 AccessDenied.
      (e: unknown) => [400, 403].includes((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0),
    );
    const got = await store.get('full/00000000000000000009-1700000000.db');
    assert.equal((await digestStream(got.body)).size, 15);
  });

  test('once the lock has ended, delete removes the version for good (no delete marker left)', async () => {
    const store = open('expires', '2s');
    const put = await store.put('delta/00000000000000000001-00000000000000000002.jsonl', Buffer.from('short-lived'));
    const until = put.retention!.retainUntil;
    await waitFor('the 2 s lock to end', () => Date.now() > until.getTime() + 1000, { intervalMs: 250 });
    await store.delete('delta/00000000000000000001-00000000000000000002.jsonl');
    assert.deepEqual(await versions(minio.client(), minio.bucket, 'expires/'), []);
  });

  test('objectLock on a bucket without Object Lock fails with one line', async () => {
    const plain = await startTestMinio({ bucket: 'plain' });
    try {
      const store = S3Store.fromConfig(plain.storeConfig('x', { objectLock: { mode: 'GOVERNANCE', retainForMs: 60_000 } }));
      stores.push(store);
      const err = await store.put('delta/a', Buffer.from('x')).then(
        () => assert.fail('wrote to an unlocked bucket'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof OperatorError && err.reason === 'ObjectLockNotEnabled', String(err));
      assert.ok(!err.message.includes('\n'));
      assert.match(err.message, /bucket "plain" at http:\S+ does not have Object Lock enabled/);
    } finally {
      await plain.stop();
    }
  });
});

describe('S3 Object Lock on MinIO: bucket default retention (COMPLIANCE, 1 day)', { skip, timeout: 120_000 }, () => {
  let minio: TestMinio;
  let store: S3Store;
  before(async () => {
    minio = await startTestMinio({ objectLock: true, defaultRetention: { mode: 'COMPLIANCE', days: 1 } });
    store = S3Store.fromConfig(minio.storeConfig('default'), { partSizeBytes: 5 * MiB });
  });
  after(async () => {
    store?.close();
    await minio?.stop();
  });

  test('objects get the default retention; temporary objects are not left locked behind', async () => {
    // What happens without care: MinIO gives every new version the default COMPLIANCE lock, a
    // temporary object included, and nobody could delete it for a day.
    const client = minio.client();
    const raw = await client.send(new HeadObjectCommand({ Bucket: minio.bucket, Key: 'default/none' })).catch(() => undefined);
    assert.equal(raw, undefined);

    const source = generatedStream(12 * MiB, { seed: 6 });
    const put = await store.put('full/00000000000000000003-1700000000.db', source.stream);
    assert.equal(put.sha256, await source.sha256);
    assert.equal(put.retention?.mode, 'COMPLIANCE');
    const head = await client.send(new HeadObjectCommand({ Bucket: minio.bucket, Key: 'default/full/00000000000000000003-1700000000.db' }));
    assert.equal(head.ObjectLockMode, 'COMPLIANCE');
    assert.ok((head.ObjectLockRetainUntilDate?.getTime() ?? 0) > Date.now() + 23 * 3_600_000);
    assert.deepEqual(await versions(client, minio.bucket, 'default/.incomplete/'), [], 'the temporary object is gone, every version');
    assert.equal(store.pendingCleanups, 0);
    await store.put('delta/00000000000000000004-00000000000000000005.jsonl', Buffer.from('small'));
    await assert.rejects(store.delete('full/00000000000000000003-1700000000.db'), ObjectLockedError);
    const sweep = await store.cleanupIncomplete(0);
    assert.deepEqual(sweep, { abortedUploads: 0, deletedObjects: 0 });
  });
});

describe('S3 Object Lock end to end on MinIO: retention and deletion report locked backups, restore still works', { skip, timeout: 240_000 }, () => {
  let minio: TestMinio;
  let etcd: TestEtcd;
  let work: string;
  before(async () => {
    [minio, etcd] = await Promise.all([startTestMinio({ objectLock: true }), startTestEtcd()]);
    work = await mkdtemp(join(tmpdir(), 'object-lock-e2e-'));
  });
  after(async () => {
    await etcd?.stop();
    await minio?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the CLI writes a locked snapshot from the store URL parameters and says until when', async () => {
    const url = `${minio.storeUrl('cli')}&objectLockMode=GOVERNANCE&objectLockRetainFor=2h`;
    const result = await runCli(['snapshot', '--endpoints', etcd.clientUrl, '--store', url], {
      env: { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey },
    });
    assert.equal(result.code, 0, result.stderr);
    const printed = /^snapshot .*?\/(full\/\S+) revision=\d+ size=\d+ sha256=[0-9a-f]{64} retention=GOVERNANCE retainUntil=(\S+)$/m.exec(result.stdout);
    assert.ok(printed, result.stdout);
    const head = await minio.client().send(new HeadObjectCommand({ Bucket: minio.bucket, Key: `cli/${printed[1]}` }));
    assert.equal(head.ObjectLockMode, 'GOVERNANCE');
    assert.ok(Math.abs((head.ObjectLockRetainUntilDate?.getTime() ?? 0) - Date.parse(printed[2]!)) < 60_000);
    assert.ok((head.ObjectLockRetainUntilDate?.getTime() ?? 0) > Date.now() + 3_600_000, 'locked for about two hours');
  });

  test('locked snapshots outlive retention and deletionPolicy Delete, are reported, and restore', async () => {
    const validation = validateEtcdBackup({
      apiVersion: 'etcdbackup.io/v1alpha1',
      kind: 'EtcdBackup',
      metadata: { name: 'locked' },
      spec: {
        etcd: { endpoints: [etcd.clientUrl] },
        store: {
          s3: {
            bucket: minio.bucket,
            prefix: 'e2e',
            endpoint: minio.endpoint,
            forcePathStyle: true,
            objectLock: { mode: 'COMPLIANCE', retainFor: '1h' },
          },
        },
        fullSnapshot: { schedule: '0 0 1 1 *' },
        deltaSnapshot: { period: '0' },
        retention: { policy: 'LimitBased', maxFullSnapshots: 1 },
      },
    });
    if (!validation.ok) assert.fail(validation.problems.join('; '));
    const { logger, ...logs } = capturedLogger('info');
    const supervisor = new Supervisor(
      {
        resolved: validation.resolved,
        secrets: { s3Credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } },
        name: 'test/locked',
      },
      logger,
    );
    const events: SupervisorEvent[] = [];
    supervisor.onEvent((e) => events.push(e));
    const writer = etcd.client();
    await supervisor.start();
    try {
      await waitFor('the first full snapshot', () => supervisor.report().lastFullSnapshot, { timeoutMs: 60_000 });
      await writeMixedWorkload(writer, 'app/', 300, 1);
      const second = await supervisor.takeFullSnapshotNow();
      assert.ok(second);
      await writeMixedWorkload(writer, 'app/', 200, 2);
      const third = await supervisor.takeFullSnapshotNow();
      assert.ok(third);
      const head = await headRevision(writer);

      // maxFullSnapshots 1 wants two snapshots gone; both are locked for an hour.
      const report = supervisor.report();
      assert.equal(report.retention?.lockedObjects, 2, JSON.stringify(report.retention));
      assert.match(report.retention?.message ?? '', /^Retention kept 2 objects are under S3 Object Lock until \S+ and could not be deleted: full\//);
      assert.ok(events.some((e) => e.reason === 'RetentionLocked'), JSON.stringify(events));
      assert.ok(logs.lines().some((line) => line.message === 'Kept objects under S3 Object Lock'));
      assert.equal(report.lastFullSnapshot?.object, third.key);
      assert.equal(report.lastFullSnapshot?.retentionMode, 'COMPLIANCE');
      assert.ok(Date.parse(report.lastFullSnapshot?.retainUntil ?? '') > Date.now() + 3_500_000);
      const metrics = new OperatorMetrics({ defaultMetrics: false });
      metrics.observeReport('ns', 'locked', report);
      const text = await metrics.registry.metrics();
      assert.match(text, /etcdbackup_retention_locked_objects\{namespace="ns",name="locked"\} 2/);
      assert.match(
        text,
        new RegExp(`etcdbackup_full_snapshot_retain_until_timestamp_seconds\\{namespace="ns",name="locked"\\} ${Date.parse(report.lastFullSnapshot!.retainUntil!) / 1000}`),
      );
      await supervisor.stop();

      // deletionPolicy Delete's path: nothing can go, everything is reported.
      const store = S3Store.fromConfig(minio.storeConfig('e2e'));
      try {
        const keys = (await listBackupObjects(store)).map((o) => o.key);
        assert.equal(keys.length, 3);
        const locked = await deleteUnlessLocked(store, keys, 8);
        assert.deepEqual(locked.map((l) => l.key), keys);
        assert.equal((await listBackupObjects(store)).length, 3, 'every locked snapshot survived');

        const dataDir = join(work, 'restored');
        const restored = await restoreBackup({ store, dataDir, logger: silentLogger() });
        assert.equal(restored.snapshot.key, third.key);
        const member = await startMember(dataDir, 'default', work);
        try {
          await withClient(member, async (client) => {
            assert.deepEqual(await allKeys(client), await allKeys(writer, head));
          });
        } finally {
          await member.stop();
        }
      } finally {
        store.close();
      }
    } finally {
      await supervisor.stop();
    }
  });
});
