/**
 * The fault suite of issue 6: each case injects one fault into a real component (the `run` process,
 * etcd, the S3 server, the store's file system) while backups run, then checks that nothing was
 * lost, nothing partial is visible and that the backup recovers by itself. Every case prints its
 * figures as a `FIGURES {...}` diagnostic line, and with WRITE_RELIABILITY_FIGURES=1 writes them to
 * docs/reliability-figures.md with the commit measured (test/helpers/reliability-figures.ts).
 *
 * Outages last OUTAGE_MS, the issue's minute; the three outage cases run side by side, so the file
 * waits about one minute for all of them.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, test, type TestContext } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { Supervisor } from '../../src/engine/supervisor.js';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import { createEtcdClient, headRevision } from '../../src/etcd/client.js';
import { startLocalEtcd, type LocalEtcd } from '../../src/etcd/local-etcd.js';
import { createLogger, silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { createStore } from '../../src/store/factory.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import type { ObjectStore, PutOptions, PutResult } from '../../src/store/object-store.js';
import { STORE_MARKER_KEY } from '../../src/store/store-marker.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startFaultProxy, startTestS3, type FaultProxy, type TestS3 } from '../harness/s3.js';
import { startCli } from '../helpers/cli.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';
import { chainOf, type Chain } from '../helpers/backup-chain.js';
import { DelegatingStore } from '../harness/throttled-store.js';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { waitFor as poll } from '../helpers/wait.js';
import { reportFigures } from '../helpers/reliability-figures.js';

const exec = promisify(execFile);
/** The issue's "for a minute": etcd down, S3 down, S3 answering 503. */
const OUTAGE_MS = 60_000;
const MiB = 1024 * 1024;

let work: string;
let s3: TestS3;
const etcds: TestEtcd[] = [];
const cleanups: Array<() => Promise<unknown>> = [];
const children: ChildProcess[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'faults-test-'));
  s3 = await startTestS3();
});

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  for (const etcd of etcds) await etcd.stop().catch(() => undefined);
  await s3?.stop();
  await rm(work, { recursive: true, force: true });
});

async function newEtcd(): Promise<TestEtcd> {
  const etcd = await startTestEtcd();
  etcds.push(etcd);
  return etcd;
}

/** What each case reports (docs/reliability-figures.md, generated; docs/reliability.md explains them). */
interface Figures {
  case: string;
  runs: number;
  faults: string;
  headRevision: number;
  archivedRevision: number;
  objects: number;
  outcome: string;
  budgetPeak: string;
  recoverSeconds: number;
}

/** Section `fault-<case number>` of docs/reliability-figures.md (with WRITE_RELIABILITY_FIGURES=1). */
async function figures(t: TestContext, f: Figures): Promise<void> {
  await reportFigures(t, `fault-${t.name.split('.')[0]}`, { ...f });
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

const waitFor = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> =>
  poll(what, probe, { timeoutMs, intervalMs: 200 });

/** Reads every listed object to its end: each must be a backup name and match its recorded sha256. */
async function assertAllObjectsSound(store: ObjectStore): Promise<number> {
  const keys = (await store.list('')).map((o) => o.key);
  const listing = classifyKeys(keys.filter((key) => key !== STORE_MARKER_KEY));
  assert.deepEqual(listing.unknown, [], `the store lists only complete backup objects and its marker: ${listing.unknown.join(', ')}`);
  for (const key of keys) {
    assert.ok(!key.includes('.part-'), `no partial upload is listed (${key})`);
    const object = await store.get(key);
    let size = 0;
    await pipeline(object.body, new Writable({ write: (chunk: Buffer, _enc, done) => ((size += chunk.length), done()) }));
    assert.equal(size, object.size, `${key} reads back whole (${size} of ${object.size} bytes)`);
  }
  return keys.length;
}

/** `.part-` files left under a local store's root. */
async function partFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((name) => name.includes('.part-'));
}

async function assertRestoreEquals(store: ObjectStore, source: Etcd3, revision: number, label: string): Promise<void> {
  const dataDir = join(work, `restored-${label}`);
  const restored = await restoreBackup({ store, dataDir, logger: silentLogger() });
  assert.equal(restored.revision, revision, `restore reaches the source head ${revision} (got ${restored.revision})`);
  const member = await startLocalEtcd({ dataDir, logFile: `${dataDir}.log` });
  const client = createEtcdClient({ endpoints: [member.clientUrl] });
  try {
    assert.equal(await headRevision(client), revision, 'the restored member is at the source head');
    assert.deepEqual(await allKeys(client), await allKeys(source, revision), 'the restored keyspace equals the source');
  } finally {
    client.close();
    await member.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function specYaml(name: string, etcdUrl: string, store: string[], delta: string, budget: string, fullSnapshot = ''): string {
  return [
    'apiVersion: etcdbackup.io/v1alpha1',
    'kind: EtcdBackup',
    `metadata: { name: ${name} }`,
    'spec:',
    `  etcd: { endpoints: ["${etcdUrl}"] }`,
    '  store:',
    ...store.map((line) => `    ${line}`),
    `  fullSnapshot: { schedule: "0 0 1 1 *"${fullSnapshot ? `, ${fullSnapshot}` : ''} }`,
    `  deltaSnapshot: { ${delta} }`,
    `  memory: { budget: ${budget} }`,
  ].join('\n');
}

async function stopRun(child: ChildProcess): Promise<void> {
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, 'run exits 0 on SIGTERM');
}

/** An in-process supervisor whose reports are all kept. */
async function startSupervisor(doc: Record<string, unknown>, options: { s3?: boolean; store?: ObjectStore } = {}) {
  const result = validateEtcdBackup(doc);
  if (!result.ok) assert.fail(`spec rejected: ${result.problems.join('; ')}`);
  const supervisor = new Supervisor(
    {
      resolved: result.resolved,
      secrets: options.s3 ? { s3Credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } } : {},
      name: 'faults',
    },
    // FAULTS_LOG=debug shows what the supervisor does during a case.
    process.env.FAULTS_LOG ? createLogger({ level: process.env.FAULTS_LOG, format: 'text' }) : silentLogger(),
    options.store ? { store: options.store } : {},
  );
  const reports: SupervisorReport[] = [];
  supervisor.onReport((report) => reports.push(report));
  cleanups.push(() => supervisor.stop());
  await supervisor.start();
  return { supervisor, reports };
}

function supervisorDoc(etcdUrl: string, store: Record<string, unknown>, deltaSnapshot: Record<string, unknown>, budget: string) {
  return {
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'faults' },
    spec: {
      etcd: { endpoints: [etcdUrl] },
      store,
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '1s', ...deltaSnapshot },
      memory: { budget },
    },
  };
}

test('1. kill -9 of run during a full-snapshot upload (local store)', { timeout: 240_000 }, async (t) => {
  const etcd = await newEtcd();
  const client = etcd.client();
  // 150 x 1 MB of incompressible values: a snapshot that takes long enough to be cut in the middle.
  const values = 150;
  for (let i = 0; i < values; i += 5) {
    await Promise.all(
      Array.from({ length: Math.min(5, values - i) }, (_, j) => client.put(`big/${String(i + j).padStart(4, '0')}`).value(randomBytes(MiB))),
    );
  }
  const storeDir = join(work, 'store-1');
  const store = new LocalStore(storeDir);
  const file = join(work, 'backup-1.yaml');
  await writeFile(
    file,
    specYaml('full-crash', etcd.clientUrl, [`local: { path: ${storeDir} }`], 'period: 1s, chunkRevisions: 100, chunkParallelism: 2', '32Mi'),
  );

  const first = startCli(['run', '-f', file]);
  children.push(first);
  const fullDir = join(storeDir, 'full');
  const part = await waitForPart(fullDir, 60_000);
  first.kill('SIGKILL');
  await once(first, 'exit');
  const partBytes = (await stat(join(fullDir, part)).catch(() => ({ size: -1 }))).size;
  const afterKill = await chainOf(store);
  assert.equal(afterKill.fulls, 0, `no full snapshot is visible after the kill: ${afterKill.keys.join(', ')}`);
  assert.ok((await partFiles(storeDir)).length > 0, 'the cut upload left a .part- file (which list ignores)');
  const headBefore = await headRevision(client);

  const restarted = Date.now();
  const second = startCli(['run', '-f', file]);
  children.push(second);
  // The restarted run must first take the full snapshot that the kill cut short; deltas follow it.
  await waitFor('the restarted run to take a full snapshot', 120_000, async () => (await chainOf(store)).fulls > 0);
  await writeMixedWorkload(client, 'after/', 300, 21);
  const head = await headRevision(client);
  const chain = await waitFor('the chain to reach the head after the restart', 150_000, async () => {
    const c = await chainOf(store);
    return c.end >= head ? c : undefined;
  });
  const recoverSeconds = (Date.now() - restarted) / 1000;
  await stopRun(second);

  assert.equal(chain.fulls, 1, 'the restarted run took exactly one full snapshot');
  assert.ok(chain.fullRevision! >= headBefore, `the full snapshot was taken by the restarted run (revision ${chain.fullRevision} >= ${headBefore})`);
  assert.ok(chain.deltas > 0, 'deltas follow the full snapshot');
  assert.equal(chain.end, head, 'the chain reaches the head with no gap');
  const objects = await assertAllObjectsSound(store);
  await assertRestoreEquals(store, client, head, '1');
  await figures(t, {
    case: 'kill -9 during full-snapshot upload (local)',
    runs: 2,
    faults: `1 SIGKILL with ${mib(partBytes)} of the snapshot in a .part- file`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `no full snapshot visible after the kill; restart took 1 full snapshot + ${chain.deltas} deltas; restore equal`,
    budgetPeak: 'n/a (separate process, budget 32Mi)',
    recoverSeconds,
  });
});

async function waitForPart(dir: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    const part = names.find((name) => name.includes('.part-') && !name.includes('.meta.json'));
    // Kill in the middle: once several MiB of the snapshot are in the .part- file.
    if (part && ((await stat(join(dir, part)).catch(() => undefined))?.size ?? 0) >= 8 * MiB) return part;
    if (Date.now() > deadline) assert.fail('no .part- file of 8 MiB appeared under full/ (the snapshot upload never got that far)');
    await sleep(5);
  }
}

test('2. kill -9 of run during delta uploads (S3 store)', { timeout: 180_000 }, async (t) => {
  const etcd = await newEtcd();
  const client = etcd.client();
  // The proxy only watches: it shows when delta PUTs are on the wire.
  const proxy: FaultProxy = await startFaultProxy(s3.endpoint);
  cleanups.push(() => proxy.stop());
  const prefix = 'crash';
  const file = join(work, 'backup-2.yaml');
  await writeFile(
    file,
    specYaml(
      's3-crash',
      etcd.clientUrl,
      [`s3: { bucket: ${s3.bucket}, prefix: ${prefix}, region: ${s3.region}, endpoint: "${proxy.endpoint}", forcePathStyle: true }`],
      'period: 1s, chunkRevisions: 40, chunkParallelism: 4',
      '128Mi',
    ),
  );
  const env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const store = await createStore(s3.storeConfig(prefix));
  const deltaPuts = (): number => proxy.requests.filter((r) => r.method === 'PUT' && r.url.pathname.includes('/delta/')).length;

  const first = startCli(['run', '-f', file], env);
  children.push(first);
  await writeMixedWorkload(client, 'a/', 300, 31);
  const writer = writeMixedWorkload(client, 'b/', 1500, 32);
  const seen = deltaPuts();
  await waitFor('delta uploads in flight', 60_000, () => deltaPuts() >= seen + 5);
  first.kill('SIGKILL');
  await once(first, 'exit');
  const putsAtKill = deltaPuts();
  await writer;
  const beforeRestart = await chainOf(store);

  const restarted = Date.now();
  const requestsBeforeRestart = proxy.requests.length;
  const second = startCli(['run', '-f', file], env);
  children.push(second);
  let secondLog = '';
  second.stderr!.on('data', (chunk: Buffer) => (secondLog = (secondLog + chunk.toString()).slice(-4000)));
  await writeMixedWorkload(client, 'c/', 300, 33);
  const head = await headRevision(client);
  const chain = await waitFor('the chain to reach the head after the restart', 90_000, async () => {
    const c = await chainOf(store);
    return c.end >= head ? c : undefined;
  }).catch((err: unknown) => {
    t.diagnostic(`restarted run's last log lines: ${secondLog}`);
    const seenSince = proxy.requests.slice(requestsBeforeRestart).map((r) => `${r.method} ${r.url.pathname}${r.url.search}`);
    t.diagnostic(`requests of the restarted run: ${seenSince.length}: ${seenSince.slice(0, 20).join(' | ')}`);
    throw err;
  });
  const recoverSeconds = (Date.now() - restarted) / 1000;
  await stopRun(second);

  assert.ok(beforeRestart.end < head, `the first run was killed before it archived everything (${beforeRestart.end} < ${head})`);
  assert.equal(chain.fulls, 1, 'the restart resumed the chain: still one full snapshot');
  assert.equal(chain.end, head, 'no lost revision: the chain is contiguous to the head');
  const objects = await assertAllObjectsSound(store);
  const openUploads = (await s3.listMultipartUploads(prefix)).length;
  await assertRestoreEquals(store, client, head, '2');
  await figures(t, {
    case: 'kill -9 during delta uploads (S3)',
    runs: 2,
    faults: `1 SIGKILL after ${putsAtKill} delta PUTs (archived ${beforeRestart.end} of ${head} at the kill)`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `chain contiguous to head; ${chain.deltas} deltas; ${openUploads} multipart uploads left open; restore equal`,
    budgetPeak: 'n/a (separate process, budget 128Mi)',
    recoverSeconds,
  });
});

test('2b. kill -9 of run during a multipart full-snapshot upload (S3 store)', { timeout: 240_000 }, async (t) => {
  const etcd = await newEtcd();
  const client = etcd.client();
  // 60 x 1 MiB of incompressible values: with a 128Mi budget the S3 store uploads 8 MiB parts, so the
  // snapshot is a multipart upload of 8 parts, cut after its first parts are on the wire.
  for (let i = 0; i < 60; i += 5) {
    await Promise.all(Array.from({ length: 5 }, (_, j) => client.put(`big/${String(i + j).padStart(4, '0')}`).value(randomBytes(MiB))));
  }
  const proxy: FaultProxy = await startFaultProxy(s3.endpoint);
  cleanups.push(() => proxy.stop());
  const prefix = 'multipart-crash';
  // The supervisor aborts uploads older than the snapshot timeout at start (docs/s3.md): a short one
  // lets the restart clean up the upload the kill cut short.
  const timeoutSeconds = 20;
  const file = join(work, 'backup-2b.yaml');
  await writeFile(
    file,
    specYaml(
      's3-multipart-crash',
      etcd.clientUrl,
      [`s3: { bucket: ${s3.bucket}, prefix: ${prefix}, region: ${s3.region}, endpoint: "${proxy.endpoint}", forcePathStyle: true }`],
      'period: 1s, chunkRevisions: 100, chunkParallelism: 2',
      '128Mi',
      `timeout: ${timeoutSeconds}s`,
    ),
  );
  const env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const store = await createStore(s3.storeConfig(prefix));
  // UploadPart requests (UploadPartCopy carries a copy source instead of a body).
  const partPuts = (): number =>
    proxy.requests.filter((r) => r.method === 'PUT' && r.url.searchParams.has('partNumber') && r.copySource === undefined).length;
  const aborts = (): number => proxy.requests.filter((r) => r.method === 'DELETE' && r.url.searchParams.has('uploadId')).length;

  const first = startCli(['run', '-f', file], env);
  children.push(first);
  await waitFor('two part uploads of the full snapshot on the wire', 120_000, () => partPuts() >= 2);
  first.kill('SIGKILL');
  await once(first, 'exit');
  const killedAt = Date.now();
  const partsAtKill = partPuts();
  const afterKill = await chainOf(store);
  assert.equal(afterKill.fulls, 0, `no full snapshot is visible after the kill: ${afterKill.keys.join(', ')}`);
  const openAtKill = (await s3.listMultipartUploads(prefix)).length;
  assert.ok(openAtKill >= 1, 'the cut multipart upload is left open by the kill');
  const headBefore = await headRevision(client);

  // Restart once the cut upload is older than the snapshot timeout, so the start-up sweep may abort it.
  await sleep(Math.max(0, timeoutSeconds * 1000 + 1000 - (Date.now() - killedAt)));
  const abortsBefore = aborts();
  const restarted = Date.now();
  const second = startCli(['run', '-f', file], env);
  children.push(second);
  await waitFor('the restarted run to take a full snapshot', 120_000, async () => (await chainOf(store)).fulls > 0);
  await writeMixedWorkload(client, 'after/', 300, 22);
  const head = await headRevision(client);
  const chain = await waitFor('the chain to reach the head after the restart', 120_000, async () => {
    const c = await chainOf(store);
    return c.end >= head ? c : undefined;
  });
  const recoverSeconds = (Date.now() - restarted) / 1000;
  await waitFor('the cut multipart upload to be aborted', 30_000, async () => (await s3.listMultipartUploads(prefix)).length === 0);
  await stopRun(second);

  assert.equal(chain.fulls, 1, 'the restarted run took exactly one full snapshot');
  assert.ok(chain.fullRevision! >= headBefore, `the full snapshot was taken by the restarted run (revision ${chain.fullRevision} >= ${headBefore})`);
  assert.equal(chain.end, head, 'the chain reaches the head with no gap');
  assert.ok(aborts() > abortsBefore, 'the restarted run sent AbortMultipartUpload for the cut upload');
  const incomplete = await s3.client().send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/.incomplete/` }));
  assert.deepEqual((incomplete.Contents ?? []).map((o) => o.Key), [], 'no temporary object is left under .incomplete/');
  const objects = await assertAllObjectsSound(store);
  await assertRestoreEquals(store, client, head, '2b');
  await figures(t, {
    case: 'kill -9 during multipart full-snapshot upload (S3)',
    runs: 2,
    faults: `1 SIGKILL after ${partsAtKill} UploadPart requests (the restart's snapshot took ${partPuts() - partsAtKill} parts; ${openAtKill} multipart upload left open)`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `no full snapshot visible after the kill; restart aborted the cut upload, took 1 full snapshot + ${chain.deltas} deltas; 0 uploads open, nothing under .incomplete/; restore equal`,
    budgetPeak: 'n/a (separate process, budget 128Mi)',
    recoverSeconds,
  });
});

async function etcdOutageCase(t: TestContext): Promise<void> {
  const etcd = await newEtcd();
  const portOf = (url: string): number => Number(new URL(url).port);
  const ports = { client: portOf(etcd.clientUrl), peer: portOf(etcd.peerUrl), metrics: portOf(etcd.metricsUrl) };
  const storeDir = join(work, 'store-3');
  const store = new LocalStore(storeDir);
  const { supervisor, reports } = await startSupervisor(
    supervisorDoc(etcd.clientUrl, { local: { path: storeDir } }, { chunkRevisions: 100, chunkParallelism: 2 }, '32Mi'),
  );
  let client = etcd.client();
  await writeMixedWorkload(client, 'a/', 300, 41);
  let head = await headRevision(client);
  await waitFor('the first chain to reach the head', 60_000, async () => (await chainOf(store)).end >= head);

  await etcd.stopProcess();
  const outageStart = Date.now();
  const failed = await waitFor('the delta outcome to report the outage', OUTAGE_MS + 30_000, () => {
    const delta = supervisor.report().delta!;
    return delta.consecutiveFailures > 0 && delta.lastError ? delta : undefined;
  });
  const detectSeconds = (Date.now() - outageStart) / 1000;
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
  const during = supervisor.report().delta!;
  assert.ok(during.consecutiveFailures > 0, `failures are counted during the outage (${during.consecutiveFailures})`);
  assert.ok(during.lastError, 'lastError is set during the outage');

  const restarted: LocalEtcd = await startLocalEtcd({ dataDir: etcd.dataDir, name: 'test', ports, logFile: join(work, 'etcd-3-restarted.log') });
  cleanups.push(() => restarted.stop());
  const restartedAt = Date.now();
  client = createEtcdClient({ endpoints: [restarted.clientUrl] });
  cleanups.push(async () => client.close());
  await writeMixedWorkload(client, 'b/', 300, 42);
  head = await headRevision(client);
  await waitFor('the delta outcome to recover', 120_000, () => {
    const delta = supervisor.report().delta!;
    return delta.lastError === undefined && delta.consecutiveFailures === 0 ? delta : undefined;
  });
  const recoverSeconds = (Date.now() - restartedAt) / 1000;
  const chain = await waitFor('the chain to reach the head after the outage', 60_000, async () => {
    const c = await chainOf(store);
    return c.end >= head ? c : undefined;
  });
  await supervisor.stop();
  assert.equal(chain.end, head, 'the chain is contiguous to the head after the outage');
  assert.equal(chain.fulls, 1, 'no extra full snapshot was needed');
  const maxFailures = Math.max(...reports.map((r) => r.delta?.consecutiveFailures ?? 0));
  const objects = await assertAllObjectsSound(store);
  const report = supervisor.report();
  t.diagnostic(`lastError during the outage: ${failed.lastError}`);
  await figures(t, {
    case: `etcd stopped ${OUTAGE_MS / 1000} s during deltas`,
    runs: 1,
    faults: `etcd down ${((restartedAt - outageStart) / 1000).toFixed(1)} s, restarted on the same ports`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `failure reported after ${detectSeconds.toFixed(1)} s (consecutiveFailures up to ${maxFailures}, reason ${failed.lastErrorReason}); cleared after restart; chain contiguous`,
    budgetPeak: `${mib(report.memory.peakBytes)} of ${mib(report.memory.budgetBytes)}`,
    recoverSeconds,
  });
  // The endpoint in the message is what tells a person which etcd is down.
  assert.ok(failed.lastError?.includes(`127.0.0.1:${ports.client}`), `lastError names the endpoint: ${failed.lastError}`);
  assert.ok(!failed.lastError?.includes('\n'), 'lastError is one line');
}

async function s3OutageCase(t: TestContext): Promise<void> {
  const etcd = await newEtcd();
  const client = etcd.client();
  const prefix = 'outage';
  const { supervisor, reports } = await startSupervisor(
    supervisorDoc(
      etcd.clientUrl,
      { s3: { bucket: s3.bucket, prefix, region: s3.region, endpoint: s3.endpoint, forcePathStyle: true } },
      { chunkRevisions: 100, chunkParallelism: 4 },
      '128Mi',
    ),
    { s3: true },
  );
  const store = await createStore(s3.storeConfig(prefix));
  await writeMixedWorkload(client, 'a/', 300, 51);
  let head = await headRevision(client);
  await waitFor('the first chain to reach the head', 60_000, async () => (await chainOf(store)).end >= head);
  const reportsBefore = reports.length;

  await s3.pause();
  const outageStart = Date.now();
  // etcd keeps being written during the outage: the backlog must wait within the budget.
  await writeMixedWorkload(client, 'during/', 1000, 52);
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
  const failedReport = reports.slice(reportsBefore).find((r) => r.delta?.lastError !== undefined);
  const atRestart = supervisor.report();
  await s3.restart();
  const restartedAt = Date.now();
  await writeMixedWorkload(client, 'b/', 300, 53);
  head = await headRevision(client);
  let chain: Chain | undefined;
  try {
    // Recovery takes seconds when it works (case 3); 30 s is ample and keeps the file short while the bug stands.
    chain = await waitFor('the chain to reach the head after the outage', 30_000, async () => {
      const c = await chainOf(store);
      return c.end >= head ? c : undefined;
    });
    await waitFor('lastError to clear', 30_000, () => supervisor.report().delta!.lastError === undefined);
  } catch (err) {
    chain = undefined;
    t.diagnostic(`not recovered: ${err instanceof Error ? err.message : String(err)}`);
  }
  const recoverSeconds = (Date.now() - restartedAt) / 1000;
  const final = await chainOf(store);
  await supervisor.stop();
  const report = supervisor.report();
  t.diagnostic(
    `during the outage: lastError ${JSON.stringify(failedReport?.delta?.lastError)}; at S3 restart budget used ` +
      `${mib(atRestart.memory.usedBytes)} of ${mib(atRestart.memory.budgetBytes)}, archivedRevision ${atRestart.archivedRevision}`,
  );
  const objects = await assertAllObjectsSound(store);
  const openUploads = (await s3.listMultipartUploads(prefix)).length;
  await figures(t, {
    case: `S3 down ${OUTAGE_MS / 1000} s during deltas`,
    runs: 1,
    faults: `S3 listener closed ${((restartedAt - outageStart) / 1000).toFixed(1)} s, 1000 etcd changes written meanwhile`,
    headRevision: head,
    archivedRevision: final.end,
    objects,
    outcome:
      (failedReport ? `failure reported (${failedReport.delta?.lastErrorReason})` : 'NO failure reported during the outage') +
      `; ${chain ? 'recovered' : `NOT recovered ${recoverSeconds.toFixed(0)} s after S3 came back (stuck at ${final.end})`}` +
      `; ${openUploads} multipart uploads open; listed objects sound`,
    budgetPeak: `${mib(atRestart.memory.peakBytes)} during the outage, ${mib(report.memory.peakBytes)} overall, of ${mib(report.memory.budgetBytes)}`,
    recoverSeconds,
  });
  // The budget's peak is reported above but not asserted: the accountant only grants what fits, so
  // "peak <= budget" cannot fail. What the process holds is measured in delta.integ.test.ts (live
  // bytes); it cannot be measured here, where cases 3 and 4b (and s3rver) share this process.
  assert.ok(failedReport, 'the outage shows in the delta outcome (lastError set)');
  assert.ok(chain, `deltas recover after S3 is back (chain at ${final.end} of ${head})`);
  assert.equal(final.end, head, 'nothing lost: the chain is contiguous to the head');
  await assertRestoreEquals(store, client, head, '4');
}

/** `run` as its own process while every S3 request it sends is answered 503 SlowDown for OUTAGE_MS. */
async function s3ErrorsDuringRunCase(t: TestContext): Promise<void> {
  const etcd = await newEtcd();
  const client = etcd.client();
  // Its own S3 server: case 4 takes the shared one down meanwhile.
  const own = await startTestS3();
  cleanups.push(() => own.stop());
  const proxy: FaultProxy = await startFaultProxy(own.endpoint);
  cleanups.push(() => proxy.stop());
  let injecting = false;
  proxy.failNext(Number.MAX_SAFE_INTEGER, { status: 503, code: 'SlowDown', match: () => injecting });
  const prefix = 'slowdown';
  const file = join(work, 'backup-4b.yaml');
  await writeFile(
    file,
    specYaml(
      's3-slowdown',
      etcd.clientUrl,
      [`s3: { bucket: ${own.bucket}, prefix: ${prefix}, region: ${own.region}, endpoint: "${proxy.endpoint}", forcePathStyle: true }`],
      'period: 1s, chunkRevisions: 100, chunkParallelism: 4',
      '128Mi',
    ),
  );
  const store = await createStore(own.storeConfig(prefix));
  const run = startCli(['run', '-f', file], { AWS_ACCESS_KEY_ID: own.accessKeyId, AWS_SECRET_ACCESS_KEY: own.secretAccessKey });
  children.push(run);
  let log = '';
  run.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  run.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await writeMixedWorkload(client, 'a/', 300, 71);
  let head = await headRevision(client);
  await waitFor('the first chain to reach the head', 90_000, async () => (await chainOf(store)).end >= head);
  const archivedBefore = head;

  // Every request of the run process (through the proxy) gets 503 SlowDown; the test's own store goes direct.
  injecting = true;
  const failedBefore = proxy.stats.failed;
  const logBefore = log.length;
  const outageStart = Date.now();
  await writeMixedWorkload(client, 'during/', 1000, 72);
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
  const archivedDuring = (await chainOf(store)).end;
  injecting = false;
  const liftedAt = Date.now();
  const failed = proxy.stats.failed - failedBefore;
  const logDuring = log.slice(logBefore);

  await writeMixedWorkload(client, 'b/', 300, 73);
  head = await headRevision(client);
  const chain = await waitFor('the chain to reach the head after the 503s stop', 90_000, async () => {
    const c = await chainOf(store);
    return c.end >= head ? c : undefined;
  });
  const recoverSeconds = (Date.now() - liftedAt) / 1000;
  await stopRun(run);

  assert.ok(failed > 0, 'requests were answered 503');
  assert.equal(archivedDuring, archivedBefore, 'nothing was archived while every request failed');
  assert.match(logDuring, /SlowDown/, 'the run process reported the 503s (SlowDown) in its log');
  const fullLog = log.split('\n').filter((line) => /full snapshot|Lost revisions/i.test(line)).map((line) => line.slice(0, 300));
  assert.equal(chain.fulls, 1, `no extra full snapshot was needed: ${chain.keys.filter((k) => k.startsWith('full/')).join(', ')}; log: ${fullLog.join(' | ')}`);
  assert.equal(chain.end, head, 'nothing lost: the chain is contiguous to the head');
  const objects = await assertAllObjectsSound(store);
  const openUploads = (await own.listMultipartUploads(prefix)).length;
  assert.equal(openUploads, 0, 'no multipart upload is left open');
  const loggedLine = logDuring.split('\n').find((line) => line.includes('SlowDown'));
  t.diagnostic(`first log line naming the 503s: ${loggedLine?.slice(0, 400)}`);
  await assertRestoreEquals(store, client, head, '4b');
  await figures(t, {
    case: `S3 answering 503 SlowDown for ${OUTAGE_MS / 1000} s during run (CLI process)`,
    runs: 1,
    faults: `${failed} requests answered 503 over ${((liftedAt - outageStart) / 1000).toFixed(1)} s, 1000 etcd changes written meanwhile`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `503s retried and logged (archived ${archivedBefore} before, nothing during); recovered; chain contiguous; ${openUploads} multipart uploads open; restore equal`,
    budgetPeak: 'n/a (separate process, budget 128Mi)',
    recoverSeconds,
  });
}

// Cases 3, 4 and 4b mostly wait out their outages; they run side by side to keep the file short.
test('outages', { concurrency: 3, timeout: 360_000 }, async (t) => {
  await Promise.all([
    t.test(`3. etcd stopped for ${OUTAGE_MS / 1000} s and restarted on the same ports during deltas`, etcdOutageCase),
    t.test(`4. S3 down for ${OUTAGE_MS / 1000} s during deltas`, s3OutageCase),
    t.test(`4b. S3 answering 503 for ${OUTAGE_MS / 1000} s during run`, s3ErrorsDuringRunCase),
  ]);
});

/**
 * Fallback when no small file system can be mounted: every put fails with an errno ENOSPC from its
 * body stream while `full` is set, so the local store sees exactly what a full disk gives it.
 */
class NoSpaceStore extends DelegatingStore {
  full = true;
  failedPuts = 0;
  override put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    if (!this.full || Buffer.isBuffer(body)) return this.inner.put(key, body, options);
    this.failedPuts += 1;
    let seen = 0;
    const failing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        seen += chunk.length;
        if (seen > 1024) done(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }));
        else done(null, chunk);
      },
      flush(done) {
        done(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }));
      },
    });
    body.on('error', (err) => failing.destroy(err));
    return this.inner.put(key, body.pipe(failing), options);
  }
}

test('5. store full (ENOSPC) during deltas, then space freed', { timeout: 180_000 }, async (t) => {
  const etcd = await newEtcd();
  const client = etcd.client();
  const storeDir = join(work, 'store-5');
  await mkdir(storeDir);
  // A real 2 MiB tmpfs when this process may mount one (root); an injected ENOSPC otherwise.
  let mounted = false;
  if (process.getuid?.() === 0) {
    mounted = await exec('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', storeDir]).then(
      () => true,
      () => false,
    );
  }
  if (mounted) cleanups.push(() => exec('umount', ['-l', storeDir]));
  const local = new LocalStore(storeDir);
  const injected = mounted ? undefined : new NoSpaceStore(local);
  if (injected) injected.full = false;
  const { supervisor } = await startSupervisor(
    supervisorDoc(etcd.clientUrl, { local: { path: storeDir } }, { chunkRevisions: 20, chunkParallelism: 2 }, '32Mi'),
    injected ? { store: injected } : {},
  );
  await writeMixedWorkload(client, 'a/', 100, 61);
  let head = await headRevision(client);
  await waitFor('the first chain to reach the head', 60_000, async () => (await chainOf(local)).end >= head);
  const archivedBefore = head;

  // Fill the store: 3 MiB of incompressible values is more than the 2 MiB file system holds.
  if (injected) injected.full = true;
  const fillStart = Date.now();
  for (let i = 0; i < 48; i++) await client.put(`fill/${i}`).value(randomBytes(64 * 1024).toString('base64'));
  const failed = await waitFor('the delta outcome to report no space', 60_000, () => {
    const delta = supervisor.report().delta!;
    return delta.lastError && /no space/i.test(delta.lastError) ? delta : undefined;
  });
  assert.ok(failed.consecutiveFailures > 0, `failures are counted (${failed.consecutiveFailures})`);
  assert.match(failed.lastError!, /no space left on device/, 'lastError says the store is out of space');
  assert.deepEqual(await partFiles(storeDir), [], 'a failed put leaves no .part- file');
  const soundWhileFull = await assertAllObjectsSound(local);
  await sleep(3000); // a few more failed polls while full

  // Free the space.
  const freedAt = Date.now();
  if (mounted) await exec('mount', ['-o', 'remount,size=64m', storeDir]);
  else injected!.full = false;
  await writeMixedWorkload(client, 'b/', 100, 62);
  head = await headRevision(client);
  const chain = await waitFor('the chain to reach the head after space is freed', 90_000, async () => {
    const c = await chainOf(local);
    return c.end >= head ? c : undefined;
  });
  await waitFor('lastError to clear', 30_000, () => supervisor.report().delta!.lastError === undefined);
  const recoverSeconds = (Date.now() - freedAt) / 1000;
  await supervisor.stop();
  const report = supervisor.report();
  assert.equal(chain.end, head, 'nothing lost: the chain is contiguous to the head');
  const objects = await assertAllObjectsSound(local);
  assert.deepEqual(await partFiles(storeDir), [], 'no .part- file is left');
  t.diagnostic(`lastError while full: ${failed.lastError}`);
  await figures(t, {
    case: 'store full (ENOSPC) during deltas',
    runs: 1,
    faults: mounted
      ? `real 2 MiB tmpfs filled (${((freedAt - fillStart) / 1000).toFixed(1)} s full), then remounted at 64 MiB`
      : `injected ENOSPC on ${injected!.failedPuts} puts, then lifted`,
    headRevision: head,
    archivedRevision: chain.end,
    objects,
    outcome: `reported "no space left on device" (consecutiveFailures ${failed.consecutiveFailures}, archived ${archivedBefore} before); ${soundWhileFull} objects sound while full, no .part- left; recovered`,
    budgetPeak: `${mib(report.memory.peakBytes)} of ${mib(report.memory.budgetBytes)}`,
    recoverSeconds,
  });
});
