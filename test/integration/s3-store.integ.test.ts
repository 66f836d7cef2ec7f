import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CreateMultipartUploadCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { InvalidSpecError } from '../../src/errors.js';
import { openStoreUrl } from '../../src/store/factory.js';
import { S3Store } from '../../src/store/s3-store.js';
import { digestStream, generatedBytes, generatedStream } from '../harness/byte-streams.js';
import { startFaultProxy, type FaultProxy, type TestS3 } from '../harness/s3.js';
import { S3_SERVERS } from '../harness/s3-servers.js';
import { LiveBytesProbe, sampledEvery } from '../harness/live-bytes.js';

const MiB = 1024 * 1024;
/**
 * What a streamed put may hold above its plan's working set, measured: the SDK's request and socket
 * buffers, the source's 64 KiB chunks, and (s3rver runs in this process) the server's receive
 * buffers. Fixed, and small next to one more part in flight (5 MiB).
 */
const S3_LIVE_SLACK_BYTES = 3 * MiB;

// S3-specific behaviour that the provider-neutral contract suite does not cover.
for (const server of S3_SERVERS) {
  describe(`S3 store specifics: ${server.name}`, { timeout: 120_000, skip: server.skip }, () => {
    let s3: TestS3;
    let proxy: FaultProxy;
    const stores: S3Store[] = [];

    before(async () => {
      s3 = await server.start();
      proxy = await startFaultProxy(s3.endpoint);
    });
    after(async () => {
      for (const store of stores) store.close();
      await proxy.stop();
      await s3.stop();
    });

    test('objects above the CopyObject limit are moved into place with UploadPartCopy', async () => {
      // Limits lowered so that 13 MiB stands in for a > 5 GiB snapshot: three 5 MiB copy ranges.
      const store = S3Store.fromConfig(s3.storeConfig('copy', { endpoint: proxy.endpoint }), {
        maxCopyObjectBytes: 6 * MiB,
        copyPartSizeBytes: 5 * MiB,
      });
      stores.push(store);
      const source = generatedStream(13 * MiB, { seed: 11 });
      const put = await store.put('full/big.db', source.stream, { metadata: { revision: '7' } });
      assert.equal(put.sha256, await source.sha256);
      const partCopies = proxy.requests.filter(
        (r) => r.url.pathname === '/backups/copy/full/big.db' && r.url.searchParams.has('partNumber') && r.copySource,
      );
      assert.equal(partCopies.length, 3);
      const got = await store.get('full/big.db');
      assert.equal(got.metadata.sha256, put.sha256);
      assert.equal(got.metadata.revision, '7');
      assert.deepEqual(await digestStream(got.body), { sha256: put.sha256, size: 13 * MiB });
      assert.deepEqual(await s3.listMultipartUploads('copy/'), []);
      assert.deepEqual((await store.list('')).map((o) => o.key), ['full/big.db']);
    });

    test('a single PutObject carries the sha256 for bodies up to one part; larger Buffers go through a temporary key', async () => {
      const store = S3Store.fromConfig(s3.storeConfig('buffers', { endpoint: proxy.endpoint }));
      stores.push(store);
      const seen = proxy.requests.length;
      await store.put('delta/small', Buffer.from('small'));
      assert.deepEqual(
        proxy.requests.slice(seen).map((r) => `${r.method} ${r.url.pathname}${r.url.search}`),
        // The store asks once whether the bucket has Object Lock (it changes how objects are written).
        ['GET /backups/?object-lock=', 'PUT /backups/buffers/delta/small?x-id=PutObject'],
        'one request, no copy',
      );
      const big = generatedBytes(0, 9 * MiB, 4);
      const put = await store.put('delta/big', big);
      const got = await store.get('delta/big');
      assert.equal(got.metadata.sha256, put.sha256);
      assert.equal((await digestStream(got.body)).sha256, put.sha256);
      assert.deepEqual((await store.list('')).map((o) => o.key), ['delta/big', 'delta/small']);
    });

    test('cleanupIncomplete aborts stale uploads and deletes stale temporary objects under the prefix only', async () => {
      const client = s3.client();
      // Staging names as the store writes them: .incomplete/<24 hex>.
      await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `sweep/.incomplete/${'a1'.repeat(12)}` }));
      await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: `elsewhere/.incomplete/${'b2'.repeat(12)}` }));
      await client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: `sweep/.incomplete/${'c3'.repeat(12)}`, Body: 'x' }),
      );
      const store = S3Store.fromConfig(s3.storeConfig('sweep'));
      stores.push(store);
      assert.deepEqual(await store.list(''), [], 'temporary objects are never listed');
      assert.deepEqual(await store.cleanupIncomplete(), { abortedUploads: 0, deletedObjects: 0 }, 'fresh ones are kept');
      assert.deepEqual(await store.cleanupIncomplete(0), { abortedUploads: 1, deletedObjects: 1 });
      assert.deepEqual(await s3.listMultipartUploads('sweep/'), []);
      assert.equal((await s3.listMultipartUploads('elsewhere/')).length, 1, 'other prefixes are left alone');
      const left = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'sweep/' }));
      assert.equal(left.KeyCount ?? 0, 0);
    });

    test('cleanupIncomplete leaves multipart uploads it did not start alone, under its prefix and in a whole-bucket store', async () => {
      const client = s3.client();
      const start = async (key: string): Promise<void> => {
        await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
      };
      const ours = [`shared/.incomplete/${'d4'.repeat(12)}`, 'shared/full/00000000000000000042-1700000000.db.gz', `.incomplete/${'e5'.repeat(12)}`];
      // Another tool writing into the same prefix, or anywhere in a bucket whose store has no prefix.
      const foreign = ['shared/other-tool/archive.tar', 'shared/.incomplete/not-a-staging-name', 'shared/full/notes.txt', 'team-b/video.mp4'];
      for (const key of [...ours, ...foreign]) await start(key);
      const prefixed = S3Store.fromConfig(s3.storeConfig('shared'));
      const wholeBucket = S3Store.fromConfig(s3.storeConfig(''));
      stores.push(prefixed, wholeBucket);
      assert.equal((await prefixed.cleanupIncomplete(0)).abortedUploads, 2);
      assert.equal((await wholeBucket.cleanupIncomplete(0)).abortedUploads, 1);
      const open = (await s3.listMultipartUploads('')).map((u) => u.Key);
      for (const key of ours) assert.ok(!open.includes(key), `${key} (ours) was aborted`);
      for (const key of foreign) assert.ok(open.includes(key), `${key} (not ours) survives`);
    });

    test('a store URL with the default credential chain and a budget builds a working store', async () => {
      const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
      process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
      try {
        const budget = new MemoryBudget(64 * MiB);
        const store = await openStoreUrl(s3.storeUrl('url/prefix'), { budget });
        assert.ok(store instanceof S3Store);
        stores.push(store);
        assert.equal(store.describe(), `s3://backups/url/prefix (endpoint ${s3.endpoint})`);
        assert.deepEqual(store.plan, { partSizeBytes: 5 * MiB, queueSize: 4, workingSetBytes: 30 * MiB + 64 * 1024 });
        const source = generatedStream(21 * MiB, { seed: 2 });
        const put = await store.put('full/a.db', source.stream);
        assert.equal(put.sha256, await source.sha256);
        assert.ok(budget.peakBytes > 0 && budget.peakBytes <= store.plan.workingSetBytes);
        assert.deepEqual((await store.list('full/')).map((o) => o.key), ['full/a.db']);
      } finally {
        if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
        else process.env.AWS_ACCESS_KEY_ID = saved.id;
        if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
        else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      }
    });

    test('a streamed put holds no more than its plan\'s working set, measured', async () => {
      // Measured, not accounted: the accountant only grants what fits, so its peak cannot exceed
      // the plan. The budget is twice the working set (the plan takes half: deltas need the rest),
      // so parts queued past the plan would find budget room and only a measurement shows them.
      const budget = new MemoryBudget(64 * MiB);
      const store = S3Store.fromConfig(s3.storeConfig('measured'), { budget });
      stores.push(store);
      assert.deepEqual(store.plan, { partSizeBytes: 5 * MiB, queueSize: 4, workingSetBytes: 30 * MiB + 64 * 1024 });
      const size = 50 * MiB + 4321;
      const probe = await LiveBytesProbe.start();
      const source = generatedStream(size, { seed: 17 });
      // Sampled every MiB the upload pulls: parts in flight and the next one being assembled.
      const put = await store.put('full/measured.db', sampledEvery(source.stream, probe, MiB));
      assert.equal(put.sha256, await source.sha256);
      assert.ok(probe.samples >= 50, `sampled ${probe.samples} times`);
      assert.ok(
        probe.maxHeldBytes <= store.plan.workingSetBytes + S3_LIVE_SLACK_BYTES,
        `the put held ${probe.maxHeldBytes} bytes, more than the plan's working set ${store.plan.workingSetBytes} + slack ${S3_LIVE_SLACK_BYTES}`,
      );
      assert.ok(probe.maxHeldBytes > 2 * store.plan.partSizeBytes, `parts were in flight together (held ${probe.maxHeldBytes} at most)`);
      assert.equal(budget.usedBytes, 0, 'every reservation is released');
      assert.deepEqual(await s3.listMultipartUploads('measured/'), []);
    });

    test('a budget too small for one 5 MiB part in flight is a spec error, not an OOM', async () => {
      await assert.rejects(
        openStoreUrl(s3.storeUrl('x'), { budget: new MemoryBudget(8 * MiB) }),
        (err: unknown) => err instanceof InvalidSpecError && err.terminal && /at least 15\.06 MiB/.test(err.message),
      );
    });
  });
}
