/**
 * Full snapshot + delta backups into S3 (s3rver and MinIO) from a real etcd, then point-in-time restores from
 * S3 alone: newest full snapshot at or before the target, plus the deltas replayed up to it. One
 * memory budget is shared by the snapshot upload, the delta fetches and the S3 part buffers.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DeltaPoller } from '../../src/engine/delta-poller.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { headRevision } from '../../src/etcd/client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup, startMember, withClient } from '../../src/restore/restore.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { S3Store } from '../../src/store/s3-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import type { TestS3 } from '../harness/s3.js';
import { S3_SERVERS } from '../harness/s3-servers.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const MiB = 1024 * 1024;
const logger = silentLogger();

for (const server of S3_SERVERS) {
  describe(`S3 end to end: ${server.name}`, { skip: server.skip }, () => {
    let etcd: TestEtcd;
    let s3: TestS3;
    let work: string;

    before(async () => {
      [etcd, s3] = await Promise.all([startTestEtcd(), server.start()]);
      work = await mkdtemp(join(tmpdir(), 's3-e2e-'));
    });

    after(async () => {
      await etcd?.stop();
      await s3?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('full snapshot and deltas to S3, restored to any revision from S3 alone', { timeout: 180_000 }, async () => {
      const writer = etcd.client();
      // 128 MiB (the design's default) with 5 MiB parts (4 in flight): the poller's delta segments are
      // then larger than a part, so the burst of 1 MiB values below yields delta objects that take the
      // multipart path (temporary key + copy) as well as small ones that take a single PutObject.
      const budget = new MemoryBudget(128 * MiB);
      const store = S3Store.fromConfig(s3.storeConfig('clusters/main'), { budget, logger, partSizeBytes: 5 * MiB });
      try {
        await writeMixedWorkload(writer, 'app/', 1500, 1);
        const snapshot = await takeFullSnapshot({ client: writer, endpoints: [etcd.clientUrl], store, compression: 'gzip' });

        const poller = new DeltaPoller({
          client: etcd.client(),
          store,
          budget,
          periodMs: 50,
          chunkRevisions: 200,
          parallelism: 3,
          compression: 'gzip',
          logger,
          storeBufferBytes: store.streamReservationBytes,
        });
        await poller.start();
        await writeMixedWorkload(writer, 'app/', 800, 2);
        const beforeBurst = await headRevision(writer);
        // 12 MiB of events in a few revisions, over 3 keys only: readAllKeys pages by key count, and more
        // than 3 live 1 MiB values in one page would exceed gRPC's 4 MiB response limit when comparing.
        for (let i = 0; i < 12; i++) await writer.put(`blobs/${i % 3}`).value(randomBytes(MiB));
        const afterBurst = await headRevision(writer);
        await writeMixedWorkload(writer, 'more/', 400, 3);
        const head = await headRevision(writer);
        const final = await poller.pollOnce();
        await poller.stop();
        assert.equal(final.lastError, undefined);
        assert.equal(final.archivedRevision, head);
        assert.ok(budget.peakBytes <= budget.limitBytes);
        assert.equal(budget.usedBytes, 0);

        const listing = classifyKeys((await store.list('')).map((o) => o.key));
        assert.deepEqual(listing.fulls.map((f) => f.key), [snapshot.key]);
        assert.deepEqual(listing.unknown, []);
        assert.ok(listing.deltas.length >= 3, `${listing.deltas.length} delta objects`);
        const sizes = await store.list('delta/');
        assert.ok(
          sizes.some((o) => o.size > store.plan.partSizeBytes),
          `a delta longer than one ${store.plan.partSizeBytes}-byte part went through multipart: ${sizes.map((o) => o.size).join(',')}`,
        );
        const raw = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'clusters/main/.incomplete/' }));
        assert.equal(raw.KeyCount ?? 0, 0, 'no temporary objects left');
        assert.deepEqual(await s3.listMultipartUploads(), [], 'no multipart uploads left');

        const targets = [snapshot.revision, Math.floor((snapshot.revision + beforeBurst) / 2), afterBurst - 5, head];
        for (const target of targets) {
          const dataDir = join(work, `restored-${target}`);
          const restored = await restoreBackup({ store, dataDir, toRevision: target, logger });
          assert.equal(restored.snapshot.key, snapshot.key);
          assert.equal(restored.revision, target);
          assert.equal(restored.revisionsApplied, target - restored.snapshotRevision);
          const member = await startMember(dataDir, 'default', work);
          try {
            await withClient(member, async (client) => {
              assert.equal(await headRevision(client), target);
              const want = await allKeys(writer, target);
              const got = await allKeys(client);
              assert.equal(got.length, want.length, `key count at revision ${target}`);
              assert.deepEqual(got, want, `keyspace at revision ${target}`);
            });
          } finally {
            await member.stop();
          }
        }
      } finally {
        store.close();
      }
    });
  });
}
