import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateBucketCommand,
  PutObjectLockConfigurationCommand,
  type ObjectLockRetentionMode,
} from '@aws-sdk/client-s3';
import { freePort } from '../../src/etcd/local-etcd.js';
import { logTail, spawnGuarded, type GuardedChild } from '../../src/process/guarded-child.js';
import { s3Access, type TestS3 } from './s3.js';
import { minioBinary } from './test-tools.js';

/** Root credentials of the test MinIO: the key id and the secret differ, so a swapped pair fails. */
const ROOT_USER = 'minio-test-root-user';
const ROOT_PASSWORD = 'minio-test-root-password-0123';
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

export interface TestMinioOptions {
  bucket?: string;
  /** Create the bucket with Object Lock enabled (which turns versioning on, for good). */
  objectLock?: boolean;
  /** With objectLock: the bucket's default retention, applied by MinIO to every new object version. */
  defaultRetention?: { mode: ObjectLockRetentionMode; days: number };
}

export interface TestMinio extends TestS3 {
  /** MinIO's own stdout and stderr (appended across restarts), to search for leaked secrets. */
  readonly logFile: string;
  /** The running server's process id (for /proc/PID/io in benches); undefined while paused. */
  pid(): number | undefined;
}

/**
 * A real MinIO server (built by scripts/install-test-tools.sh) on 127.0.0.1: free API and console
 * ports, data in a temp dir, console (browser) and update checks off, one bucket; ready when
 * /minio/health/live and /minio/health/cluster answer 200. Unlike s3rver it
 * verifies SigV4 signatures, implements every multipart call and Object Lock. It is killed by a
 * watchdog if the test process dies; pause() stops the process (an outage), restart() starts it again
 * on the same port and data.
 */
export async function startTestMinio(options: TestMinioOptions = {}): Promise<TestMinio> {
  const binary = minioBinary();
  if (!binary) throw new Error('MinIO is not built: run scripts/install-test-tools.sh');
  const bucket = options.bucket ?? 'backups';
  const root = await mkdtemp(join(tmpdir(), 'minio-test-'));
  const dataDir = join(root, 'data');
  const certsDir = join(root, 'certs');
  const logFile = join(root, 'minio.log');
  await mkdir(dataDir);
  await mkdir(certsDir);

  let port = 0;
  let running: GuardedChild | undefined;

  const launch = async (apiPort: number): Promise<void> => {
    let consolePort = await freePort();
    while (consolePort === apiPort) consolePort = await freePort();
    const guarded = spawnGuarded(
      binary,
      [
        'server',
        '--quiet',
        '--address', `127.0.0.1:${apiPort}`,
        '--console-address', `127.0.0.1:${consolePort}`,
        '--certs-dir', certsDir,
        dataDir,
      ],
      logFile,
      {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: root,
        MINIO_ROOT_USER: ROOT_USER,
        MINIO_ROOT_PASSWORD: ROOT_PASSWORD,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
      },
    );
    running = guarded;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const spawnError = guarded.spawnError();
      if (spawnError) throw new Error(`cannot start ${binary}: ${spawnError.message}`);
      if (guarded.hasExited()) {
        guarded.watchdog?.kill('SIGKILL');
        running = undefined;
        throw new MinioExitedError(`MinIO exited during start-up: ${lastLines(logFile)}`);
      }
      // live: the process answers; cluster: the object layer is up (before it, S3 calls get 503
      // XMinioServerNotInitialized although live already says 200).
      if ((await healthy(apiPort, 'live')) && (await healthy(apiPort, 'cluster'))) return;
      if (Date.now() > deadline) {
        await halt();
        throw new Error(`MinIO on 127.0.0.1:${apiPort} was not live in time: ${lastLines(logFile)}`);
      }
      await sleep(100);
    }
  };

  const halt = async (): Promise<void> => {
    const current = running;
    running = undefined;
    if (!current) return;
    await current.stop(STOP_GRACE_MS);
  };

  // A free port may be taken before MinIO binds it (parallel tests): retry on a fresh one.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch(port);
      break;
    } catch (err) {
      if (!(err instanceof MinioExitedError) || attempt >= 3) {
        await rm(root, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const access = s3Access({ endpoint, bucket, accessKeyId: ROOT_USER, secretAccessKey: ROOT_PASSWORD });
  try {
    const admin = access.client();
    await admin.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: options.objectLock === true }));
    if (options.defaultRetention) {
      await admin.send(
        new PutObjectLockConfigurationCommand({
          Bucket: bucket,
          ObjectLockConfiguration: {
            ObjectLockEnabled: 'Enabled',
            Rule: { DefaultRetention: { Mode: options.defaultRetention.mode, Days: options.defaultRetention.days } },
          },
        }),
      );
    }
  } catch (err) {
    await halt();
    access.destroyClients();
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  return {
    ...access,
    name: 'minio',
    port,
    directory: dataDir,
    logFile,
    serverLog: () => readFileSync(logFile, 'utf8'),
    pid: () => running?.child.pid,
    pause: halt,
    async restart() {
      await halt();
      await launch(port);
    },
    async stop() {
      await halt();
      access.destroyClients();
      await rm(root, { recursive: true, force: true });
    },
  };
}

class MinioExitedError extends Error {}

function healthy(port: number, check: 'live' | 'cluster'): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/minio/health/${check}`, { signal: AbortSignal.timeout(1000) }).then(
    (r) => r.ok,
    () => false,
  );
}

function lastLines(file: string): string {
  return logTail(file, 5, 1000);
}
