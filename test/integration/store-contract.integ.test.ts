import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { ChecksumMismatchError, ChecksumMissingError, ObjectNotFoundError } from '../../src/errors.js';
import { sha256Hex } from '../../src/store/checksum.js';
import { LocalStore } from '../../src/store/local-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { S3Store } from '../../src/store/s3-store.js';
import { digestStream, generatedStream, readAll } from '../harness/byte-streams.js';
import type { TestS3 } from '../harness/s3.js';
import { S3_SERVERS, type S3ServerKind } from '../harness/s3-servers.js';

const MiB = 1024 * 1024;

/** What the contract needs from each provider beyond the ObjectStore interface. */
interface Provider {
  /** A store over the same backing storage; `budget` for streamed puts, small list pages for S3. */
  store(options?: { budget?: MemoryBudget; root?: string }): ObjectStore;
  /** Replaces the stored bytes of `key` behind the store's back, keeping the recorded sha256. */
  corrupt(key: string, bytes: Buffer): Promise<void>;
  /** Rewrites the object's metadata without its sha256, as a foreign writer's object would be. */
  dropChecksum(key: string): Promise<void>;
  /** Leftovers of incomplete puts: `.part-` files (local); multipart uploads and temporary objects (S3). */
  incompletePuts(): Promise<number>;
  close(): Promise<void>;
}

async function localProvider(): Promise<Provider> {
  const dir = await mkdtemp(join(tmpdir(), 'store-contract-'));
  return {
    store: (options = {}) => new LocalStore(join(dir, options.root ?? 'contract')),
    corrupt: (key, bytes) => writeFile(join(dir, 'contract', key), bytes),
    async dropChecksum(key) {
      const sidecar = join(dir, 'contract', `${key}.meta.json`);
      const { size } = JSON.parse(await readFile(sidecar, 'utf8')) as { size: number };
      await writeFile(sidecar, JSON.stringify({ size, metadata: {} }));
    },
    async incompletePuts() {
      const entries = await readdir(dir, { recursive: true });
      return entries.filter((name) => name.includes('.part-')).length;
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

async function s3Provider(server: S3ServerKind): Promise<Provider> {
  const s3: TestS3 = await server.start();
  const stores: S3Store[] = [];
  return {
    store(options = {}) {
      // Page size 100 so that 1200 objects take 12 ListObjectsV2 pages.
      const store = S3Store.fromConfig(s3.storeConfig(options.root ?? 'contract'), {
        budget: options.budget,
        listPageSize: 100,
        maxAttempts: 2,
      });
      stores.push(store);
      return store;
    },
    async corrupt(key, bytes) {
      const client = s3.client();
      const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `contract/${key}` }));
      await client.send(
        new PutObjectCommand({ Bucket: s3.bucket, Key: `contract/${key}`, Body: bytes, Metadata: head.Metadata }),
      );
    },
    async dropChecksum(key) {
      const client = s3.client();
      const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `contract/${key}` }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `contract/${key}`, Body: bytes }));
    },
    async incompletePuts() {
      const uploads = await s3.listMultipartUploads();
      const temps = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'contract/.incomplete/' }));
      return uploads.length + (temps.Contents?.length ?? 0);
    },
    async close() {
      for (const store of stores) store.close();
      await s3.stop();
    },
  };
}

const providers: Array<{ name: string; make: () => Promise<Provider>; skip: false | string }> = [
  { name: 'local', make: localProvider, skip: false },
  ...S3_SERVERS.map((server) => ({ name: `s3 (${server.name})`, make: () => s3Provider(server), skip: server.skip })),
];

for (const { name, make: makeProvider, skip } of providers) {
  describe(`ObjectStore contract: ${name}`, { timeout: 120_000, skip }, () => {
    let provider: Provider;
    let store: ObjectStore;

    before(async () => {
      provider = await makeProvider();
      store = provider.store();
    });
    after(() => provider.close());

    test('an object without a recorded sha256 is refused, naming it', async () => {
      await store.put('unchecked/object', Buffer.from('written by someone else'));
      await provider.dropChecksum('unchecked/object');
      await assert.rejects(store.get('unchecked/object'), (err: unknown) => {
        assert.ok(err instanceof ChecksumMissingError, String(err));
        assert.match(err.message, /^unchecked\/object in (file|s3):\/\/.* has no recorded sha256: refusing to read unchecked content$/);
        return true;
      });
      await store.delete('unchecked/object');
    });

    test('put, get, list and delete round-trip Buffers and streams', async () => {
      const one = Buffer.from('first object');
      const put1 = await store.put('rt/one', one);
      assert.deepEqual(put1, { size: one.length, sha256: sha256Hex(one) });
      const put2 = await store.put('rt/two', Readable.from([Buffer.from('second '), Buffer.from('object')]));
      assert.equal(put2.sha256, sha256Hex('second object'));

      const got = await store.get('rt/two');
      assert.equal(got.size, 13);
      assert.equal((await readAll(got.body)).toString(), 'second object');

      const listed = await store.list('rt/');
      assert.deepEqual(
        listed.map((o) => [o.key, o.size]),
        [
          ['rt/one', one.length],
          ['rt/two', 13],
        ],
      );
      assert.ok(listed.every((o) => o.lastModified instanceof Date && !Number.isNaN(o.lastModified.getTime())));

      await store.delete('rt/one');
      await assert.rejects(store.get('rt/one'), ObjectNotFoundError);
      assert.deepEqual((await store.list('rt/')).map((o) => o.key), ['rt/two']);
    });

    test('deleting a missing key succeeds; getting one throws ObjectNotFoundError', async () => {
      await store.delete('missing/never-written');
      await store.delete('missing/never-written');
      await assert.rejects(store.get('missing/never-written'), (err: unknown) => {
        assert.ok(err instanceof ObjectNotFoundError);
        assert.equal(err.reason, 'ObjectNotFound');
        return true;
      });
    });

    test('putting an existing key replaces it', async () => {
      await store.put('replace/k', Buffer.from('old'));
      await store.put('replace/k', Buffer.from('new content'));
      const got = await store.get('replace/k');
      assert.equal((await readAll(got.body)).toString(), 'new content');
      assert.equal((await store.list('replace/')).length, 1);
    });

    test('metadata round-trips, with the sha256 recorded', async () => {
      const body = Buffer.from('with metadata');
      const put = await store.put('meta/obj', body, { metadata: { revision: '42', compression: 'gzip' } });
      const got = await store.get('meta/obj');
      await readAll(got.body);
      assert.equal(got.metadata.revision, '42');
      assert.equal(got.metadata.compression, 'gzip');
      assert.equal(got.metadata.sha256, put.sha256);
    });

    // Small: fails inside the first part (single PutObject path for S3). Large: fails after 12 MiB, when
    // S3 has a multipart upload with parts stored, which must be aborted.
    for (const [label, failAfter] of [
      ['small', 1 * MiB],
      ['multipart', 12 * MiB],
    ] as const) {
      test(`a put whose body fails midway (${label}) leaves nothing visible and no incomplete upload`, async () => {
        const source = generatedStream(40 * MiB, { failAfter });
        await assert.rejects(store.put(`atomic/${label}`, source.stream), /source failed/);
        await assert.rejects(store.get(`atomic/${label}`), ObjectNotFoundError);
        assert.deepEqual(await store.list('atomic/'), []);
        assert.equal(await provider.incompletePuts(), 0);
        if (store instanceof S3Store) assert.equal(store.pendingCleanups, 0);
      });
    }

    test('an aborted put leaves nothing visible and no incomplete upload', async () => {
      const controller = new AbortController();
      const source = generatedStream(40 * MiB);
      let seen = 0;
      source.stream.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= 11 * MiB) controller.abort();
      });
      await assert.rejects(store.put('atomic/aborted', source.stream, { signal: controller.signal }), {
        name: 'AbortError',
      });
      await assert.rejects(store.get('atomic/aborted'), ObjectNotFoundError);
      assert.equal((await store.list('atomic/')).length, 0);
      assert.equal(await provider.incompletePuts(), 0);
    });

    test('a checksum mismatch is detected on get', async () => {
      const body = Buffer.from('the original content of this object');
      await store.put('corrupt/obj', body);
      const tampered = Buffer.from(body);
      tampered[5] = tampered[5]! ^ 0xff;
      await provider.corrupt('corrupt/obj', tampered);
      const got = await store.get('corrupt/obj');
      await assert.rejects(readAll(got.body), (err: unknown) => {
        assert.ok(err instanceof ChecksumMismatchError, String(err));
        assert.equal(err.expected, sha256Hex(body));
        assert.equal(err.actual, sha256Hex(tampered));
        return true;
      });
    });

    test('a large streamed object round-trips within a small memory budget', async () => {
      // 16 MiB: the S3 store plans 5 MiB parts, one in flight; every buffered byte is reserved.
      const budget = new MemoryBudget(16 * MiB);
      const budgeted = provider.store({ budget });
      const size = 40 * MiB + 12345;
      const source = generatedStream(size, { seed: 7 });
      const put = await budgeted.put('large/obj.db', source.stream);
      assert.equal(put.size, size);
      assert.equal(put.sha256, await source.sha256);
      assert.ok(budget.peakBytes <= budget.limitBytes, `peak ${budget.peakBytes} > budget ${budget.limitBytes}`);
      assert.equal(budget.usedBytes, 0, 'every reservation is released');
      if (budgeted instanceof S3Store) {
        assert.ok(budget.peakBytes > 0, 'S3 parts are reserved from the budget');
        assert.ok(budget.peakBytes <= budgeted.plan.workingSetBytes);
      }
      const got = await budgeted.get('large/obj.db');
      assert.equal(got.size, size);
      assert.deepEqual(await digestStream(got.body), { sha256: put.sha256, size });
      assert.equal(got.metadata.sha256, put.sha256);
      assert.deepEqual((await store.list('large/')).map((o) => [o.key, o.size]), [['large/obj.db', size]]);
      assert.equal(await provider.incompletePuts(), 0);
    });

    test('listing returns every object across pages, sorted', async () => {
      const keys = Array.from({ length: 1200 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
      const queue = [...keys].reverse();
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (let key = queue.pop(); key !== undefined; key = queue.pop()) await store.put(key, Buffer.from(key));
        }),
      );
      const listed = await store.list('many/');
      assert.equal(listed.length, 1200);
      assert.deepEqual(
        listed.map((o) => o.key),
        keys,
      );
      assert.equal((await store.list('many/001')).length, 100);
    });

    test('list(prefix) filters by key prefix and stays inside the store root', async () => {
      for (const key of ['pfx/full/a', 'pfx/full/b', 'pfx/fullx', 'pfx/delta/c']) await store.put(key, Buffer.from(key));
      await provider.store({ root: 'other-root' }).put('pfx/full/z', Buffer.from('elsewhere'));
      const keys = async (prefix: string): Promise<string[]> => (await store.list(prefix)).map((o) => o.key);
      assert.deepEqual(await keys('pfx/full/'), ['pfx/full/a', 'pfx/full/b']);
      assert.deepEqual(await keys('pfx/full'), ['pfx/full/a', 'pfx/full/b', 'pfx/fullx']);
      assert.deepEqual(await keys('pfx/delta/'), ['pfx/delta/c']);
      assert.deepEqual(await keys('pfx/nothing/'), []);
    });
  });
}
