/**
 * The operator end to end: real etcd, the Kubernetes API test server, the REAL kubectl, s3rver, and
 * the operator as a separate process. Scenarios follow issue 5's "Done when"; they run in order and
 * share servers (one etcd per cluster role) to stay within a few minutes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import type { Condition, EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { startLocalEtcd, type LocalEtcd } from '../../src/etcd/local-etcd.js';
import { createEtcdClient } from '../../src/etcd/client.js';
import { createStore } from '../../src/store/factory.js';
import { LocalStore } from '../../src/store/local-store.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { chainOf } from '../helpers/backup-chain.js';
import { serverState, startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { startTestS3, type TestS3 } from '../harness/s3.js';
import { argoHealthOf, disagreement, fluxStatusOf, kstatusOf, skipUnlessLua } from '../helpers/gitops-health.js';
import { exportedNames, metricNames, shippedQueries } from '../helpers/metric-names.js';
import { runKubectl } from '../helpers/kubectl.js';
import { isAlive, jsonLogLines } from '../helpers/operator-output.js';
import { waitFor as poll } from '../helpers/wait.js';
import { reportFigures } from '../helpers/reliability-figures.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NS = 'default';
const CR = { group: 'etcdbackup.io', version: 'v1alpha1', namespace: NS, plural: 'etcdbackups' };
/** The issue's "etcd stopped for a minute": cluster B's etcd stays down this long while other scenarios run. */
const ETCD_OUTAGE_MS = 60_000;

let work: string;
let etcdA: TestEtcd;
let etcdB: TestEtcd;
/** Cluster B's etcd after its outage: same ports and data dir. */
let etcdBRestarted: LocalEtcd | undefined;
let etcdBStoppedAt = 0;
let s3: TestS3;
let api: KubeApiServer;
let kubeconfig: string;
let co: CustomObjectsApi;
let operator: RunningOperator | undefined;
const operatorLog: string[] = [];

interface RunningOperator {
  child: ChildProcess;
  exited: Promise<number | null>;
  logFile: string;
}

const kubectl = (args: string[], input?: string): Promise<string> => runKubectl(kubeconfig, args, input);

/**
 * Starts the operator as its own process through the CLI, as a Deployment would.
 */
async function startOperator(): Promise<RunningOperator> {
  // The process model: these scenarios check that worker processes (pids) exit with the operator.
  const args = ['--import', 'tsx', 'src/cli/main.ts', 'operator', '--kubeconfig', kubeconfig, '--namespace', NS, '--metrics-port', '0', '--allow-local-store', '--runner-model', 'process'];
  const logFile = join(work, `operator-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    // The Lease lives where a pod's namespace would be.
    env: { ...process.env, POD_NAMESPACE: NS, KUBECONFIG: kubeconfig },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (d: Buffer) => {
    log.write(d);
    operatorLog.push(...d.toString().split('\n').filter(Boolean));
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, logFile };
}

async function stopOperator(): Promise<void> {
  if (!operator) return;
  const running = operator;
  operator = undefined;
  running.child.kill('SIGTERM');
  const grace = new AbortController();
  const code = await Promise.race([
    running.exited,
    sleep(40_000, 'timeout' as const, { signal: grace.signal }).catch(() => undefined),
  ]);
  grace.abort(); // a pending 40 s timer would hold the test process open
  if (code === 'timeout') {
    running.child.kill('SIGKILL');
    assert.fail('operator did not stop within 40s of SIGTERM');
  }
}

/** Structured operator log lines (JSON), optionally filtered by message. */
const logLines = (message?: string) => jsonLogLines(operatorLog, message);

function workerPids(name: string): number[] {
  return logLines('Started backup worker process')
    .filter((l) => l.name === name)
    .map((l) => Number(l.pid));
}

/** Every distinct status the operator wrote that this test read, for the GitOps health check at the end. */
const observed = new Map<string, EtcdBackup>();

async function get(name: string): Promise<EtcdBackup | undefined> {
  try {
    const obj = (await co.getNamespacedCustomObject({ ...CR, name })) as EtcdBackup;
    const key = JSON.stringify([obj.metadata.generation, obj.spec?.suspend, obj.status?.observedGeneration, obj.status?.conditions?.map((c) => [c.type, c.status, c.reason])]);
    observed.set(key, obj);
    return obj;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

function conditionOf(obj: EtcdBackup | undefined, type: string): Condition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> =>
  poll(what, probe, { timeoutMs, intervalMs: 250, retryErrors: true, context: () => `operator log tail:\n${operatorLog.slice(-15).join('\n')}` });

async function waitCondition(name: string, type: string, match: (c: Condition) => boolean, timeoutMs = 60_000): Promise<EtcdBackup> {
  return waitFor(`${name} ${type}`, async () => {
    const obj = await get(name);
    const c = conditionOf(obj, type);
    return c && match(c) ? obj : undefined;
  }, timeoutMs);
}

/** The local sample from config/samples, pointed at this test's etcd and directory. */
function localSample(name: string, etcd: TestEtcd, dir: string, overrides: Record<string, unknown> = {}): string {
  const doc = parse(readFileSync(join(ROOT, 'config/samples/etcdbackup_v1alpha1_local.yaml'), 'utf8')) as EtcdBackup;
  doc.metadata.name = name;
  doc.spec.etcd.endpoints = [etcd.clientUrl];
  doc.spec.store.local!.path = dir;
  doc.spec.deltaSnapshot.period = '2s';
  Object.assign(doc.spec, overrides);
  return stringify(doc);
}

async function metric(name: string): Promise<number> {
  const port = Number(logLines('Serving health probes and metrics').at(-1)?.port);
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => !f.endsWith('.meta.json') && !f.includes('.part'));
}

async function putKeys(etcd: TestEtcd | LocalEtcd, prefix: string, count: number): Promise<number> {
  const client = 'client' in etcd ? etcd.client() : createEtcdClient({ endpoints: [etcd.clientUrl] });
  try {
    for (let i = 0; i < count; i++) await client.put(`${prefix}/${i}`).value(`value-${i}`);
    const { header } = await client.get('x').exec();
    return Number(header.revision);
  } finally {
    if (!('client' in etcd)) client.close();
  }
}

describe('etcd-backup operator end to end', { timeout: 420_000 }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'operator-e2e-'));
    [etcdA, etcdB, s3, api] = await Promise.all([startTestEtcd(), startTestEtcd(), startTestS3(), startKubeApiServer()]);
    kubeconfig = await writeKubeconfig(work, api.url);
    co = kubeConfigFor(api.url).makeApiClient(CustomObjectsApi);
    await kubectl(['apply', '-f', join(ROOT, 'crds/')]);
    await putKeys(etcdA, 'a', 20);
    await putKeys(etcdB, 'b', 5);
    operator = await startOperator();
  });

  after(async () => {
    await stopOperator().catch(() => undefined);
    await Promise.allSettled([etcdA?.stop(), etcdBRestarted?.stop(), s3?.stop(), api?.stop()]);
    await etcdB?.stop().catch(() => undefined);
    if (process.env.KEEP_E2E_DIR) console.log(`e2e work dir kept: ${work}`);
    else await rm(work, { recursive: true, force: true });
  });

  test('local sample: Ready within a minute, printer columns, a full snapshot and deltas in the store', async () => {
    const dir = join(work, 'store-local');
    await kubectl(['apply', '-f', '-'], localSample('main-local', etcdA, dir));
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main-local', '--timeout=60s']);
    const table = await kubectl(['get', 'etcdbackups']);
    const [header, row] = table.trim().split('\n');
    assert.match(header!, /^NAME\s+READY\s+LAST FULL\s+ARCHIVED REV\s+LAG\s+AGE$/);
    assert.match(row!, /^main-local\s+True\s/);
    assert.ok((await filesUnder(join(dir, 'full'))).some((f) => /\.db\.zst$/.test(f)), 'a full snapshot in the store');
    const obj = await get('main-local');
    assert.ok(obj?.status?.lastFullSnapshot?.revision, 'status.lastFullSnapshot.revision');
    assert.equal(kstatusOf(obj), 'Current');
    assert.equal(obj.metadata.finalizers?.includes('etcdbackup.io/finalizer'), true);

    const head = await putKeys(etcdA, 'a2', 10);
    await waitFor('archivedRevision to reach the head', async () => ((await get('main-local'))?.status?.archivedRevision ?? 0) >= head);
    assert.ok((await filesUnder(join(dir, 'delta'))).length > 0, 'deltas in the store');
    const columns = (await kubectl(['get', 'eb', 'main-local', '--no-headers'])).trim().split(/\s{2,}/);
    assert.ok(Number(columns[3]) >= head, `ARCHIVED REV column shows a revision: ${columns.join(' | ')}`);
    const [wideHeader, wideRow] = (await kubectl(['get', 'eb', 'main-local', '-o', 'wide'])).trim().split('\n');
    assert.match(wideHeader!, /\sAGE\s+SCHEDULE\s+LAST DELTA\s+SUSPEND\s+REASON$/);
    assert.match(wideRow!, /\s0 \*\/6 \* \* \*\s+\S+\s+false\s+BackupsCurrent$/, 'the sample\'s schedule, a delta time, suspend, reason');
  });

  test('metrics: every name the PrometheusRule and the Grafana dashboard use is in /metrics; counters start at 0', async () => {
    const port = Number(logLines('Serving health probes and metrics').at(-1)?.port);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const exported = exportedNames(text);
    const queries = shippedQueries();
    assert.ok(queries.length >= 20, `${queries.length} queries found`);
    const missing = queries.flatMap(({ where, expr }) => metricNames(expr).filter((n) => !exported.has(n)).map((n) => `${where}: ${n}`));
    assert.deepEqual(missing, []);
    const lines = text.split('\n');
    for (const series of [
      'etcdbackup_failures_total{namespace="default",name="main-local",kind="full"} 0',
      'etcdbackup_supervisor_restarts_total{namespace="default",name="main-local"} 0',
    ]) {
      assert.ok(lines.includes(series), `${series} (a counter alerts can use before the first failure)`);
    }
    assert.ok(lines.some((l) => l.startsWith('etcdbackup_worker_resident_memory_bytes{namespace="default",name="main-local"} ')), 'worker RSS');
    assert.ok(lines.some((l) => /^etcdbackup_uploaded_bytes_total\{namespace="default",name="main-local",kind="delta"\} [1-9]/.test(l)), 'delta bytes');
  });

  test('on-demand snapshot: the annotation takes one full snapshot per value; kubectl wait sees the result', async () => {
    const dir = join(work, 'store-local');
    const before = await filesUnder(join(dir, 'full'));
    const requestedAt = new Date().toISOString();
    await kubectl(['annotate', '--overwrite', 'etcdbackup/main-local', `etcdbackup.io/snapshot-requested-at=${requestedAt}`]);
    await kubectl(['wait', `--for=jsonpath={.status.lastRequestedSnapshot.requestedAt}=${requestedAt}`, 'etcdbackup/main-local', '--timeout=60s']);
    const done = await waitFor('the requested snapshot to finish', async () => {
      const obj = await get('main-local');
      return obj?.status?.lastRequestedSnapshot?.phase === 'Succeeded' ? obj : undefined;
    });
    const result = done.status!.lastRequestedSnapshot!;
    const after = await filesUnder(join(dir, 'full'));
    assert.deepEqual(after.filter((f) => !before.includes(f)), [result.object!.replace(/^full\//, '')], 'exactly the reported snapshot is new');
    // Once per value: the annotation stays set, and the operator restart scenario below checks that the
    // restarted operator and its new workers take no full snapshot for it again.
  });

  test('bad spec: SpecValid=False with every field error, no hot loop; fixing it recovers', async () => {
    const dir = join(work, 'store-b');
    // What the CRD's schema cannot refuse at the API (croner's reading of the fields, URL parsing):
    // the operator reports it. test/integration/crd-validation.integ.test.ts covers what the API refuses.
    const bad = parse(localSample('cluster-b', etcdB, dir)) as EtcdBackup;
    bad.spec.fullSnapshot.schedule = '0 0 31 2 *'; // February 31st: never fires
    bad.spec.verification = { schedule: '*/61 * * * *' };
    bad.spec.etcd.endpoints = ['http://'];
    await kubectl(['apply', '-f', '-'], stringify(bad));
    const invalid = await waitCondition('cluster-b', 'SpecValid', (c) => c.status === 'False');
    const message = conditionOf(invalid, 'SpecValid')!.message;
    for (const field of ['spec.fullSnapshot.schedule', 'spec.verification.schedule', 'spec.etcd.endpoints[0]']) {
      assert.ok(message.includes(field), `SpecValid names ${field}: ${message}`);
    }
    assert.equal(conditionOf(invalid, 'Ready')?.reason, 'InvalidSpec');
    assert.equal(kstatusOf(invalid), 'Failed', 'kstatus (Flux, kubectl-based pipelines) sees the invalid spec as Failed');
    assert.deepEqual(workerPids('cluster-b'), [], 'no worker for an invalid spec');
    // No hot loop: an invalid spec is terminal until it changes.
    const before = await metric('etcdbackup_reconcile_total');
    await sleep(3000);
    const reconciles = (await metric('etcdbackup_reconcile_total')) - before;
    assert.ok(reconciles <= 3, `${reconciles} reconciles in 3s for an unchanged invalid spec`);

    // Fixed, with a scheduled verification every minute (the cheapest cron allows; checked after the etcd outage)
    // and a yearly full snapshot so that only the first one is taken.
    const fixedSpec = {
      fullSnapshot: { schedule: '0 0 1 1 *', compression: 'gzip' },
      verification: { schedule: '* * * * *' },
    };
    await kubectl(['apply', '-f', '-'], localSample('cluster-b', etcdB, dir, fixedSpec));
    const fixed = await waitCondition('cluster-b', 'Ready', (c) => c.status === 'True');
    assert.equal(conditionOf(fixed, 'SpecValid')?.status, 'True');
    assert.equal(fixed.status?.observedGeneration, fixed.metadata.generation);
  });

  test('S3 sample with a missing Secret: a condition names it; creating the Secret recovers', async () => {
    const doc = parse(readFileSync(join(ROOT, 'config/samples/etcdbackup_v1alpha1_s3.yaml'), 'utf8')) as EtcdBackup;
    doc.spec.etcd = { endpoints: [etcdA.clientUrl] };
    doc.spec.store.s3 = { ...doc.spec.store.s3!, bucket: s3.bucket, prefix: 'e2e/main', endpoint: s3.endpoint, forcePathStyle: true, insecure: true };
    doc.spec.deltaSnapshot.period = '2s';
    delete doc.spec.encryption; // the TLS and encryption Secrets are not what this scenario is about
    await kubectl(['apply', '-f', '-'], stringify(doc));
    const waiting = await waitCondition('main-s3', 'Ready', (c) => c.reason === 'SecretNotFound');
    assert.match(conditionOf(waiting, 'Ready')!.message, /Secret default\/s3-creds \(spec\.store\.s3\.credentialsSecretRef\) not found/);
    assert.equal(kstatusOf(waiting), 'Failed', 'a missing Secret needs a person: Stalled');
    const events = await kubectl(['get', 'events', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    assert.match(events, /SecretNotFound/);

    await kubectl(['create', 'secret', 'generic', 's3-creds', `--from-literal=accessKeyId=${s3.accessKeyId}`, `--from-literal=secretAccessKey=${s3.secretAccessKey}`]);
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main-s3', '--timeout=60s']);
    const store = await createStore(s3.storeConfig('e2e/main'));
    assert.ok((await store.list('full/')).length > 0, 'a full snapshot in S3');
    assert.ok(!operatorLog.some((l) => l.includes(s3.secretAccessKey + '"')), 'the operator never logs Secret values');
  });

  test('editing the spec restarts the worker with the new settings; observedGeneration follows', async () => {
    const before = workerPids('main-local');
    const generation = (await get('main-local'))!.metadata.generation!;
    // Yearly: no scheduled full snapshot can fire during the rest of the test (see the restart test).
    await kubectl(['patch', 'etcdbackup', 'main-local', '--type', 'merge', '-p', '{"spec":{"fullSnapshot":{"schedule":"0 0 1 1 *"}}}']);
    const updated = await waitFor('observedGeneration to follow', async () => {
      const obj = await get('main-local');
      return obj?.status?.observedGeneration === generation + 1 && conditionOf(obj, 'Ready')?.status === 'True' ? obj : undefined;
    });
    assert.equal(updated.status?.nextFullSnapshotTime?.slice(5, 16), '01-01T00:00', 'the new schedule is in effect');
    const after = workerPids('main-local');
    assert.equal(after.length, before.length + 1, 'one new worker process');
    for (const pid of before) assert.equal(isAlive(pid), false, `old worker ${pid} exited`);
  });

  test('two clusters stay independent: killing one etcd degrades only its EtcdBackup', async () => {
    // Cluster B's etcd stays down for ETCD_OUTAGE_MS while the next scenarios run; a later one restarts it.
    await etcdB.stopProcess();
    etcdBStoppedAt = Date.now();
    const degraded = await waitCondition('cluster-b', 'Ready', (c) => c.status === 'False', 60_000);
    assert.equal(conditionOf(degraded, 'Ready')!.reason, 'EtcdUnavailable');
    assert.match(conditionOf(degraded, 'Ready')!.message, /^Delta failed (once|\d+ times in a row): cannot read etcd's head revision: .*127\.0\.0\.1:\d+/);
    const delta = conditionOf(degraded, 'DeltaSnapshotSucceeded')!;
    assert.equal(delta.status, 'False');
    assert.equal(delta.reason, 'EtcdUnavailable');
    assert.equal(kstatusOf(degraded), 'InProgress', 'etcd down for a while is retried, not Stalled');
    assert.equal(conditionOf(await get('main-local'), 'Ready')?.status, 'True');
    assert.equal(conditionOf(await get('main-s3'), 'Ready')?.status, 'True');
  });

  test('operator restart: workers stop with it, and it resumes without an unscheduled full snapshot', async () => {
    const dir = join(work, 'store-local');
    const fullsBefore = await filesUnder(join(dir, 'full'));
    const pids = [...workerPids('main-local'), ...workerPids('main-s3'), ...workerPids('cluster-b')];
    await stopOperator();
    for (const pid of pids) assert.equal(isAlive(pid), false, `worker ${pid} outlived the operator`);
    const lease = JSON.parse(await kubectl(['get', 'lease', 'etcd-backup-operator-leader', '-o', 'json'])) as { spec: { holderIdentity?: string } };
    assert.equal(lease.spec.holderIdentity, undefined, 'the Lease was released');

    const restartedAt = operatorLog.length;
    operator = await startOperator();
    await waitFor('a new worker for main-local', async () =>
      operatorLog.slice(restartedAt).some((l) => l.includes('Started backup worker process') && l.includes('main-local')),
    );
    const head = await putKeys(etcdA, 'a3', 5);
    await waitFor('deltas to resume', async () => ((await get('main-local'))?.status?.archivedRevision ?? 0) >= head);
    assert.deepEqual(await filesUnder(join(dir, 'full')), fullsBefore, 'no unscheduled full snapshot after the restart');
  });

  test('watch 410 and an API server restart: the operator relists and carries on', async () => {
    const bump = async (maxFullSnapshots: number) => {
      await kubectl(['patch', 'etcdbackup', 'main-local', '--type', 'merge', '-p', JSON.stringify({ spec: { retention: { maxFullSnapshots } } })]);
      const generation = (await get('main-local'))!.metadata.generation;
      await waitFor(`observedGeneration ${generation}`, async () => (await get('main-local'))?.status?.observedGeneration === generation, 30_000);
    };
    // 410: history compacted, watches cut; the informer's resume from its resourceVersion gets Gone.
    api.compactHistory();
    api.closeWatches();
    await bump(8);
    // Restart: the same port and objects, all connections cut.
    const state = serverState(api);
    const port = api.port;
    await api.stop();
    api = await startKubeApiServer({ port, state });
    co = kubeConfigFor(api.url).makeApiClient(CustomObjectsApi);
    await bump(9);
    // Each spec change restarts the worker (Ready is briefly Starting); it must come back.
    await waitCondition('main-local', 'Ready', (c) => c.status === 'True', 30_000);
  });

  test('etcd back after a minute: the degraded EtcdBackup recovers, its chain is contiguous, BackupVerified is True', async (t) => {
    const dir = join(work, 'store-b');
    // The operator restart and relist scenarios ran during the outage; wait out the rest of the minute.
    await sleep(Math.max(0, ETCD_OUTAGE_MS - (Date.now() - etcdBStoppedAt)));
    const during = await get('cluster-b');
    assert.equal(conditionOf(during, 'Ready')?.status, 'False', 'still degraded at the end of the outage');
    assert.equal(conditionOf(during, 'DeltaSnapshotSucceeded')?.status, 'False');
    const archivedDuring = during?.status?.archivedRevision ?? 0;

    const portOf = (url: string): number => Number(new URL(url).port);
    etcdBRestarted = await startLocalEtcd({
      dataDir: etcdB.dataDir,
      name: 'test',
      ports: { client: portOf(etcdB.clientUrl), peer: portOf(etcdB.peerUrl), metrics: portOf(etcdB.metricsUrl) },
      logFile: join(work, 'etcd-b-restarted.log'),
    });
    const outageSeconds = (Date.now() - etcdBStoppedAt) / 1000;
    const head = await putKeys(etcdBRestarted, 'b2', 10);
    const recovered = await waitFor('cluster-b to recover after etcd is back', async () => {
      const obj = await get('cluster-b');
      return conditionOf(obj, 'Ready')?.status === 'True' &&
        conditionOf(obj, 'DeltaSnapshotSucceeded')?.status === 'True' &&
        (obj?.status?.archivedRevision ?? 0) >= head
        ? obj
        : undefined;
    }, 60_000);
    assert.equal(conditionOf(recovered, 'Ready')!.reason, 'BackupsCurrent');
    assert.equal(conditionOf(recovered, 'DeltaSnapshotSucceeded')!.reason, 'DeltaUploaded');
    // The chain in the store: one full snapshot (the yearly schedule takes no other) and deltas with no gap to the head.
    const chain = await chainOf(new LocalStore(dir));
    assert.equal(chain.fulls, 1, `no extra full snapshot: ${chain.keys.join(', ')}`);
    assert.equal(chain.end, head, `the chain is contiguous from ${chain.fullRevision} to the head ${head}`);
    assert.ok(archivedDuring < head, `the outage held archiving back (${archivedDuring} < ${head})`);

    // spec.verification.schedule runs every minute: by now it has trial-restored the backup at least once.
    const verified = await waitCondition('cluster-b', 'BackupVerified', (c) => c.status === 'True', 90_000);
    const last = verified.status?.lastVerification;
    assert.ok(last, 'status.lastVerification is set');
    assert.ok(last.revision >= chain.fullRevision! && last.revision <= head, `verified revision ${last.revision} lies in the chain`);
    assert.equal(conditionOf(verified, 'BackupVerified')!.reason, 'Verified');
    assert.match(conditionOf(verified, 'BackupVerified')!.message, new RegExp(`revision ${last.revision}, \\d+ keys`));
    // Row 6 of docs/reliability.md; written to docs/reliability-figures.md with WRITE_RELIABILITY_FIGURES=1.
    await reportFigures(t, 'fault-6', {
      case: 'operator: etcd down, conditions degrade and recover',
      outageSeconds,
      head,
      chainEnd: chain.end,
      deltas: chain.deltas,
      verifiedRevision: last.revision,
    });
  });

  test('deletion: Retain keeps the backups, Delete removes them; finalizers go; no worker keeps running', async () => {
    const localDir = join(work, 'store-local');
    await kubectl(['delete', 'etcdbackup', 'main-local', '--timeout=60s']);
    assert.equal(await get('main-local'), undefined);
    assert.ok((await filesUnder(join(localDir, 'full'))).length > 0, 'Retain keeps the backups');

    await kubectl(['patch', 'etcdbackup', 'main-s3', '--type', 'merge', '-p', '{"spec":{"deletionPolicy":"Delete"}}']);
    await kubectl(['delete', 'etcdbackup', 'main-s3', '--timeout=60s']);
    assert.equal(await get('main-s3'), undefined);
    const store = await createStore(s3.storeConfig('e2e/main'));
    assert.deepEqual([...(await store.list('full/')), ...(await store.list('delta/'))], [], 'Delete removes the backups');
    const events = await kubectl(['get', 'events', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    assert.match(events, /BackupsDeleted/);

    await kubectl(['delete', 'etcdbackup', 'cluster-b', '--timeout=60s']);
    await waitFor('every worker process to exit', async () =>
      [...workerPids('main-local'), ...workerPids('main-s3'), ...workerPids('cluster-b')].every((pid) => !isAlive(pid)),
    30_000);
    const remaining = JSON.parse(await kubectl(['get', 'etcdbackups', '-o', 'json'])) as { items: unknown[] };
    assert.deepEqual(remaining.items, []);
    // The operator is still healthy after all of it.
    assert.equal(operator?.child.exitCode, null);
  });

  test('GitOps health: kstatus, Flux healthCheckExprs and Argo CD health.lua agree on every status observed', { skip: skipUnlessLua() }, async () => {
    const objects = [...observed.values()];
    const kinds = new Set(objects.map((o) => kstatusOf(o)));
    for (const kind of ['Current', 'InProgress', 'Failed'] as const) assert.ok(kinds.has(kind), `the run produced a ${kind} status`);
    const argo = await argoHealthOf(objects);
    const problems = objects.flatMap((obj, i) => {
      const problem = disagreement(obj, kstatusOf(obj), fluxStatusOf(obj), argo[i]!.status);
      return problem ? [`${obj.metadata.name} ${JSON.stringify(obj.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`))}: ${problem}`] : [];
    });
    assert.deepEqual(problems, []);
    for (const obj of objects.filter((o) => o.status !== undefined)) {
      const conditions = obj.status?.conditions ?? [];
      for (const type of ['Ready', 'Reconciling', 'Stalled']) {
        const c = conditions.find((x) => x.type === type);
        assert.ok(c, `${obj.metadata.name}: ${type} condition`);
        assert.equal(c.observedGeneration, obj.status?.observedGeneration, `${type} carries observedGeneration`);
      }
    }
  });
});
