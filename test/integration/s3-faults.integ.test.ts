import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { ObjectNotFoundError, StoreUnreachableError } from '../../src/errors.js';
import { S3Store, type S3StoreDependencies } from '../../src/store/s3-store.js';
import { digestStream, generatedStream } from '../harness/byte-streams.js';
import { startFaultProxy, type FaultProxy, type TestS3 } from '../harness/s3.js';
import { S3_SERVERS } from '../harness/s3-servers.js';
import { capturedLogger } from '../helpers/captured-logs.js';
import { runCli } from '../helpers/cli.js';
import { assertNoSecret } from '../helpers/secret-leak.js';

const MiB = 1024 * 1024;
/** A wrong secret for the right key id: s3rver accepts it, MinIO refuses it; it must never be printed. */
const WRONG_SECRET = 'TOP-SECRET-wrong-never-print-me';

/** Holds a stream at `atBytes` until `release()`; `reached` resolves when it gets there. */
function holdAt(atBytes: number): { transform: Transform; reached: Promise<void>; release: () => void } {
  let seen = 0;
  let held = false;
  let release: () => void = () => undefined;
  let signalReached: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => (signalReached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (!held && seen >= atBytes) {
        held = true;
        signalReached();
        void released.then(() => done(null, chunk));
        return;
      }
      done(null, chunk);
    },
  });
  return { transform, reached, release };
}

function oneLine(err: unknown): string {
  assert.ok(err instanceof Error);
  assert.ok(!err.message.includes('\n'), `multi-line message: ${err.message}`);
  return err.message;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

for (const server of S3_SERVERS) {
  describe(`S3 store under faults: ${server.name}`, { timeout: 120_000, skip: server.skip }, () => {
    let s3: TestS3;
    let proxy: FaultProxy;
    const stores: S3Store[] = [];
    const { logger, ...logs } = capturedLogger('debug');

    const open = (prefix: string, deps: S3StoreDependencies = {}, endpoint?: string): S3Store => {
      const config = s3.storeConfig(prefix, {
        ...(endpoint ? { endpoint } : {}),
      });
      const store = S3Store.fromConfig(config, { maxAttempts: 3, logger, ...deps });
      stores.push(store);
      return store;
    };

    before(async () => {
      s3 = await server.start();
      proxy = await startFaultProxy(s3.endpoint);
    });
    after(async () => {
      for (const store of stores) store.close();
      await proxy.stop();
      const serverLog = s3.serverLog?.() ?? '';
      await s3.stop();
      for (const secret of [s3.secretAccessKey, WRONG_SECRET]) assertNoSecret(logs.text(), secret, 'the store logs');
      assertNoSecret(serverLog, WRONG_SECRET, "the server's log");
    });

    test('S3 stopped mid-upload: put fails as unreachable, nothing visible, no orphan after recovery, retry succeeds', async () => {
      const budget = new MemoryBudget(32 * MiB);
      const store = open('outage', { budget });
      const size = 30 * MiB;
      const source = generatedStream(size, { seed: 3 });
      // Hold the source after 12 MiB: with 5 MiB parts, the multipart upload exists and has parts stored.
      const hold = holdAt(12 * MiB);
      const putting = store.put('full/00000000000000000042-1700000000.db', source.stream.pipe(hold.transform));
      await hold.reached;
      await s3.pause();
      hold.release();

      const err = await putting.then(
        () => assert.fail('put succeeded while S3 was down'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StoreUnreachableError, String(err));
      assert.equal(err.terminal, false, 'the caller retries');
      const message = oneLine(err);
      assert.match(message, /bucket "backups"/);
      assert.ok(message.includes(s3.endpoint), message);
      assertNoSecret(message, s3.secretAccessKey, 'the error');
      assert.equal(budget.usedBytes, 0, 'a failed put releases its reservations');
      assert.equal(store.pendingCleanups, 1, 'the abort could not reach S3 and is owed');

      await s3.restart();
      await assert.rejects(store.get('full/00000000000000000042-1700000000.db'), ObjectNotFoundError);
      assert.deepEqual(await store.list(''), []);
      // The temporary key, from the warning about the owed cleanup (MinIO lists uploads from before a
      // restart only by their exact key).
      const owed = logs
        .lines()
        .find((line) => line.message === 'Failed to clean up an incomplete S3 upload; will retry' && String(line.object).startsWith('outage/'));
      const tempKey = owed?.object;
      assert.ok(typeof tempKey === 'string', 'the owed cleanup is logged with its object key');
      assert.equal((await s3.listMultipartUploads(tempKey)).length, 1, 'the interrupted upload is still open on S3');

      const again = generatedStream(size, { seed: 3 });
      const put = await store.put('full/00000000000000000042-1700000000.db', again.stream);
      assert.equal(put.sha256, await again.sha256);
      assert.deepEqual(await s3.listMultipartUploads(tempKey), [], 'the interrupted upload was aborted after recovery');
      assert.deepEqual(await s3.listMultipartUploads('outage/'), [], 'no orphaned multipart upload after recovery');
      const temps = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'outage/.incomplete/' }));
      assert.equal(temps.KeyCount ?? 0, 0);
      assert.equal(store.pendingCleanups, 0);
      const got = await store.get('full/00000000000000000042-1700000000.db');
      assert.deepEqual(await digestStream(got.body), { sha256: put.sha256, size });
    });

    test('injected 503s and dropped connections are retried with backoff and the put succeeds', async () => {
      const store = open('retry', { maxAttempts: 4 }, proxy.endpoint);
      const before = { ...proxy.stats };
      const isUploadPart = ({ method, url }: { method: string; url: URL }): boolean =>
        method === 'PUT' && url.searchParams.has('partNumber');
      // Three 503s on one part (fourth attempt succeeds), then two resets on the CopyObject.
      proxy.failNext(3, { match: isUploadPart });
      proxy.dropNext(2, { match: ({ method, url }) => method === 'PUT' && !url.searchParams.has('partNumber') });
      const source = generatedStream(12 * MiB, { seed: 5 });
      const put = await store.put('full/retried.db', source.stream);
      assert.equal(put.sha256, await source.sha256);
      assert.equal(proxy.stats.failed - before.failed, 3);
      assert.equal(proxy.stats.dropped - before.dropped, 2);
      const got = await store.get('full/retried.db');
      assert.equal((await digestStream(got.body)).sha256, put.sha256);

      // A single PutObject (small body) is retried too: its Buffer body can be resent.
      proxy.failNext(2, { status: 500, code: 'InternalError' });
      await store.put('delta/small', Buffer.from('small delta'));
      assert.equal((await digestStream((await store.get('delta/small')).body)).size, 11);
    });

    test('503s beyond the retry limit fail with a one-line error and leave no orphaned upload', async () => {
      const store = open('exhausted', { maxAttempts: 2 }, proxy.endpoint);
      proxy.failNext(2, { match: ({ method, url }) => method === 'PUT' && url.searchParams.get('partNumber') === '2' });
      const source = generatedStream(12 * MiB, { seed: 6 });
      const err = await store.put('full/x.db', source.stream).then(
        () => assert.fail('put succeeded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StoreUnreachableError, String(err));
      assert.match(oneLine(err), /SlowDown, HTTP 503 after 2 attempts/);
      assert.deepEqual(await s3.listMultipartUploads('exhausted/'), []);
      assert.equal(store.pendingCleanups, 0);
    });

    test('an unknown access key id gives a one-line error naming bucket and endpoint', async () => {
      const store = S3Store.fromConfig(
        s3.storeConfig('auth', { credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: WRONG_SECRET } }),
        { maxAttempts: 2, logger },
      );
      stores.push(store);
      for (const attempt of [
        () => store.put('a', Buffer.from('x')),
        () => store.list(''),
        () => store.get('a'),
      ]) {
        const err = await attempt().then(
          () => assert.fail('succeeded with a bad key'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof StoreUnreachableError, String(err));
        const message = oneLine(err);
        assert.match(message, /access to bucket "backups" at http:\/\/127\.0\.0\.1:\d+ was denied \(InvalidAccessKeyId\)/);
        assertNoSecret(message, WRONG_SECRET, 'the error');
      }
    });

    test(
      'a wrong secret access key with the right key id fails with a one-line error that never shows the secret',
      { skip: server.verifiesSignatures ? false : `${server.name} does not verify signatures` },
      async () => {
        const store = S3Store.fromConfig(
          s3.storeConfig('auth', { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: WRONG_SECRET } }),
          { maxAttempts: 2, logger },
        );
        stores.push(store);
        for (const attempt of [
          () => store.put('a', Buffer.from('x')),
          () => store.put('big', generatedStream(12 * MiB).stream),
          () => store.list(''),
          () => store.get('a'),
          () => store.delete('a'),
        ]) {
          const err = await attempt().then(
            () => assert.fail('succeeded with a wrong secret'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof StoreUnreachableError, String(err));
          const message = oneLine(err);
          assert.match(message, /access to bucket "backups" at http:\/\/127\.0\.0\.1:\d+ was denied \(SignatureDoesNotMatch\)/);
          assertNoSecret(`${message}\n${String(err.stack)}`, WRONG_SECRET, 'the error');
        }

        // The CLI, as a user runs it: the secret comes from the AWS environment.
        const cli = await runCli(['list', '--store', s3.storeUrl('auth')], {
          env: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: WRONG_SECRET },
        });
        assert.equal(cli.code, 1, cli.stderr);
        const lines = cli.stderr.trim().split('\n');
        assert.equal(lines.length, 1, cli.stderr);
        assert.match(lines[0]!, /was denied \(SignatureDoesNotMatch\); check the S3 credentials/);
        assertNoSecret(cli.stdout + cli.stderr, WRONG_SECRET, 'the CLI output');
        if (s3.serverLog) assertNoSecret(s3.serverLog(), WRONG_SECRET, "the server's log");
      },
    );

    test('a missing bucket gives a clear error', async () => {
      const store = S3Store.fromConfig(s3.storeConfig('x', { bucket: 'no-such-bucket' }), { maxAttempts: 2 });
      stores.push(store);
      for (const attempt of [() => store.put('a', Buffer.from('x')), () => store.list('')]) {
        const err = await attempt().then(
          () => assert.fail('succeeded without a bucket'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof StoreUnreachableError);
        assert.match(oneLine(err), /bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+/);
      }
    });

    test('a wrong endpoint gives a one-line unreachable error', async () => {
      const endpoint = `http://127.0.0.1:${await freePort()}`;
      const store = open('x', { maxAttempts: 2 }, endpoint);
      const err = await store.list('').then(
        () => assert.fail('listed a closed port'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof StoreUnreachableError);
      assert.equal(
        oneLine(err),
        `cannot list (all): cannot reach S3 endpoint ${endpoint} for bucket "backups" (ECONNREFUSED after 2 attempts)`,
      );
    });

    test('a stream larger than one part needs no more than the plan while S3 is slow to accept', async () => {
      // Slow acceptance: the first part is refused twice and waits out the backoff while the source
      // could deliver much more; the budget still caps what is buffered.
      const budget = new MemoryBudget(24 * MiB);
      const store = open('slow', { budget, maxAttempts: 6 }, proxy.endpoint);
      proxy.failNext(2, { match: ({ method, url }) => method === 'PUT' && url.searchParams.has('partNumber') });
      const source = generatedStream(25 * MiB, { seed: 8 });
      const body: Readable = source.stream.pipe(new PassThrough());
      const put = await store.put('full/slow.db', body);
      assert.equal(put.sha256, await source.sha256);
      assert.ok(budget.peakBytes <= store.plan.workingSetBytes, `${budget.peakBytes} > ${store.plan.workingSetBytes}`);
      assert.ok(store.plan.workingSetBytes <= budget.limitBytes);
      assert.equal(budget.usedBytes, 0);
    });
  });
}
