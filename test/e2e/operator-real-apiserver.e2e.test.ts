/**
 * The operator against a REAL kube-apiserver (test/harness/kube-apiserver.ts: TLS, RBAC, admission,
 * audit log) and the real kubectl. Installed the documented way (docs/operator.md "Install":
 * `kubectl apply -k config/default`, then the Deployment patched with --allow-local-store for the local
 * sample); the operator runs out of cluster through the CLI with the installed Deployment's arguments
 * and a token of ITS ServiceAccount, so it has exactly what config/rbac grants and every missing
 * permission fails for real.
 *
 * Only the API server runs, no kube-controller-manager and no kubelet: no pod ever runs (the
 * installed operator Deployment and the runner: pod worker Deployment stay without pods), and no
 * garbage collector acts on ownerReferences or foreground deletion (where the operator waits for
 * it, the test removes the `foregroundDeletion` finalizer itself, as the collector would).
 *
 * One API server, one etcd to back up and one S3 server for the whole file; scenarios run in order.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import type { Condition, EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { workerName, WORKER_UID } from '../../src/controller/pod-runner.js';
import { exitOf, terminate } from '../../src/process/guarded-child.js';
import { killWithParent } from '../../src/process/parent-watchdog.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { KubectlError, startRealKubeApiServer, type AuditEvent, type RealKubeApiServer } from '../harness/kube-apiserver.js';
import { startTestS3, type TestS3 } from '../harness/s3.js';
import { kubeApiServerBinary, skipUnlessBuilt } from '../harness/test-tools.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { isAlive, jsonLogLines } from '../helpers/operator-output.js';
import { waitFor as poll } from '../helpers/wait.js';

const SKIP = skipUnlessBuilt(kubeApiServerBinary(), 'kube-apiserver');
/** Where config/default installs the operator, and its ServiceAccount. */
const SYSTEM_NS = 'etcd-backup-system';
const SERVICE_ACCOUNT = 'etcd-backup-controller-manager';
const OPERATOR_USER = `system:serviceaccount:${SYSTEM_NS}:${SERVICE_ACCOUNT}`;
const NS = 'default';
const IMAGE = 'registry.example/etcd-backup:test';
const YEARLY = '0 0 1 1 *';

let work: string;
let api: RealKubeApiServer;
let etcd: TestEtcd;
let s3: TestS3;
let operatorKubeconfig: string;
/** The installed Deployment's container args (`operator` and its flags). */
let installedArgs: string[];
const operators: Operator[] = [];

interface Operator {
  child: ChildProcess;
  exited: Promise<void>;
  /** Kills the operator if this test process dies first. */
  watchdog: ChildProcess | undefined;
  log: string[];
}

const kubectl = (args: string[], input?: string): Promise<string> => api.kubectl(args, { input });

/**
 * The operator through its CLI with the installed Deployment's flags, out of cluster, as its
 * ServiceAccount; the Lease lives in SYSTEM_NS. Flags given later win: a free metrics port, the
 * kubeconfig the pod would not need, and the worker image the pod would get from its env.
 */
function startOperator(): Operator {
  // The process model: the failover scenarios check that worker processes (pids) exit with their operator.
  const args = ['--import', 'tsx', 'src/cli/main.ts', ...installedArgs, '--kubeconfig', operatorKubeconfig, '--metrics-port', '0', '--worker-image', IMAGE, '--runner-model', 'process'];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, POD_NAMESPACE: SYSTEM_NS, KUBECONFIG: operatorKubeconfig },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  const collect = (d: Buffer) => log.push(...d.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const operator = { child, exited: exitOf(child), watchdog: killWithParent(child), log };
  operators.push(operator);
  return operator;
}

/** SIGTERM; SIGKILL if it has not stopped 40 s later (workers cancel uploads first). */
const stopOperator = (operator: Operator): Promise<void> => terminate(operator.child, operator.exited, operator.watchdog, 40_000);

const logLines = (operator: Operator, message: string) => jsonLogLines(operator.log, message);

const workerPids = (operator: Operator, name: string): number[] =>
  logLines(operator, 'Started backup worker process')
    .filter((l) => l.name === name)
    .map((l) => Number(l.pid));

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 90_000): Promise<T> =>
  poll(what, probe, {
    timeoutMs,
    intervalMs: 250,
    retryErrors: true,
    context: () => `operator log tails:\n${operators.map((o) => o.log.slice(-8).join('\n')).join('\n--\n')}`,
  });

async function get(name: string): Promise<EtcdBackup | undefined> {
  try {
    return JSON.parse(await kubectl(['get', 'etcdbackup', name, '-o', 'json'])) as EtcdBackup;
  } catch (err) {
    if (err instanceof KubectlError && /NotFound/.test(err.stderr)) return undefined;
    throw err;
  }
}

const conditionOf = (obj: EtcdBackup | undefined, type: string): Condition | undefined =>
  obj?.status?.conditions?.find((c) => c.type === type);

function waitCondition(name: string, type: string, match: (c: Condition) => boolean): Promise<EtcdBackup> {
  return waitFor(`${name} ${type}`, async () => {
    const obj = await get(name);
    const c = conditionOf(obj, type);
    return c && match(c) ? obj : undefined;
  });
}

/** The local sample from config/samples, pointed at this test's etcd and a directory. */
function localBackup(name: string, dir: string, spec: Record<string, unknown> = {}): EtcdBackup {
  const doc = parse(readFileSync(join(REPO_ROOT, 'config/samples/etcdbackup_v1alpha1_local.yaml'), 'utf8')) as EtcdBackup;
  doc.metadata.name = name;
  doc.spec.etcd.endpoints = [etcd.clientUrl];
  doc.spec.store.local!.path = dir;
  doc.spec.fullSnapshot.schedule = YEARLY; // the first full snapshot only: later ones would be unscheduled
  doc.spec.deltaSnapshot.period = '1s';
  Object.assign(doc.spec, spec);
  return doc;
}

async function putKeys(prefix: string, count: number): Promise<number> {
  const client = etcd.client();
  for (let i = 0; i < count; i++) await client.put(`${prefix}/${i}`).value(`value-${i}`);
  return Number((await client.get('x').exec()).header.revision);
}

async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => !f.endsWith('.meta.json') && !f.includes('.part')).sort();
}

/** The key id (bytes 12..20 of the header, docs/encryption.md) an encrypted object was sealed with. */
async function keyIdOf(path: string): Promise<string> {
  const file = await open(path);
  try {
    const header = Buffer.alloc(20);
    await file.read(header, 0, 20, 0);
    assert.equal(header.subarray(0, 6).toString(), 'EBOENC', `${path} is encrypted`);
    return header.subarray(12, 20).toString('hex');
  } finally {
    await file.close();
  }
}

interface KubeEvent {
  reason?: string;
  note?: string;
  regarding?: { kind?: string; name?: string };
  series?: { count?: number };
  reportingController?: string;
}

async function eventsFor(name: string): Promise<KubeEvent[]> {
  const list = JSON.parse(await kubectl(['get', 'events.events.k8s.io', '--namespace', NS, '-o', 'json'])) as { items: KubeEvent[] };
  return list.items.filter((e) => e.regarding?.kind === 'EtcdBackup' && e.regarding.name === name);
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = JSON.parse(await kubectl(['get', 'lease', 'etcd-backup-operator-leader', '--namespace', SYSTEM_NS, '-o', 'json'])) as {
    spec: { holderIdentity?: string };
  };
  return lease.spec.holderIdentity;
}

const identityOf = (operator: Operator): string | undefined =>
  logLines(operator, 'Started etcd-backup operator')[0]?.identity as string | undefined;

describe('operator against a real kube-apiserver', { skip: SKIP, timeout: 900_000 }, () => {
  let operatorA: Operator;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'operator-real-api-'));
    [api, etcd, s3] = await Promise.all([startRealKubeApiServer(), startTestEtcd(), startTestS3()]);
    // The documented install: CRD, namespace, RBAC, the operator Deployment. A warning from the API
    // server (deprecated API, PodSecurity of the operator's pod in its `restricted` namespace) fails it.
    await kubectl(['apply', '-k', join(REPO_ROOT, 'config/default'), '--warnings-as-errors']);
    // docs/operator.md "Install": the local sample needs --allow-local-store, appended to the args.
    const allowLocalStore = [{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: '--allow-local-store' }];
    await kubectl(['-n', SYSTEM_NS, 'patch', 'deployment', 'etcd-backup-controller-manager', '--type', 'json', '-p', JSON.stringify(allowLocalStore), '--warnings-as-errors']);
    const installed = JSON.parse(await kubectl(['get', 'deployment', 'etcd-backup-controller-manager', '--namespace', SYSTEM_NS, '-o', 'json'])) as Deployment;
    installedArgs = installed.spec.template.spec.containers[0]!.args ?? [];
    await kubectl(['wait', '--for=condition=Established', 'crd/etcdbackups.etcdbackup.io', '--timeout=60s']);
    const key = (fill: string) => fill.repeat(64);
    await kubectl(['create', 'secret', 'generic', 'backup-key', `--from-literal=key=${key('a')}`]);
    await kubectl(['create', 'secret', 'generic', 's3-creds', `--from-literal=accessKeyId=${s3.accessKeyId}`, `--from-literal=secretAccessKey=${s3.secretAccessKey}`]);
    operatorKubeconfig = await api.serviceAccountKubeconfig(SYSTEM_NS, SERVICE_ACCOUNT);
    operatorA = startOperator();
    await waitFor('operator A to lead', () => logLines(operatorA, 'Acquired leader Lease').length > 0);
  });

  after(async () => {
    await Promise.allSettled(operators.map(stopOperator));
    await Promise.allSettled([api?.stop(), etcd?.stop(), s3?.stop()]);
    if (process.env.KEEP_E2E_DIR) {
      await Promise.all(operators.map((o, i) => writeFile(join(work, `operator-${i}.log`), o.log.join('\n'))));
      console.log(`e2e work dir kept, with the operator logs: ${work}`);
    } else await rm(work, { recursive: true, force: true });
  });

  test('kubectl apply -k config/default installs the operator; its Deployment gets no pod (no controller-manager, no kubelet)', async () => {
    const deployment = JSON.parse(await kubectl(['get', 'deployment', 'etcd-backup-controller-manager', '--namespace', SYSTEM_NS, '-o', 'json'])) as {
      spec: { template: { spec: { serviceAccountName: string } } };
      status?: { availableReplicas?: number };
    };
    assert.equal(deployment.spec.template.spec.serviceAccountName, SERVICE_ACCOUNT);
    assert.equal(deployment.status?.availableReplicas, undefined, 'no Deployment controller runs here');
    assert.deepEqual(installedArgs, ['operator', '--metrics-port', '8080', '--allow-local-store'], 'the operator runs with these flags');
    // The real API server judged the CRD's schema structural (else NonStructuralSchema would be True).
    const crd = JSON.parse(await kubectl(['get', 'crd', 'etcdbackups.etcdbackup.io', '-o', 'json'])) as { status: { conditions: Condition[] } };
    const conditions = Object.fromEntries(crd.status.conditions.map((c) => [c.type, c.status]));
    assert.deepEqual(conditions, { Established: 'True', NamesAccepted: 'True' });
    // The operator's own identity has only what config/rbac grants.
    const asOperator = ['--as', OPERATOR_USER];
    assert.equal((await kubectl(['auth', 'can-i', 'patch', 'etcdbackups.etcdbackup.io', '--subresource=status', ...asOperator])).trim(), 'yes');
    await assert.rejects(kubectl(['auth', 'can-i', 'create', 'secrets', ...asOperator]), (err: KubectlError) => err.stdout.trim() === 'no');
  });

  test('the API server refuses invalid specs with the schema message', async () => {
    const cases: Array<{ what: string; spec: (spec: EtcdBackup['spec']) => unknown; message: RegExp }> = [
      { what: 'no store', spec: ({ store: _store, ...rest }) => rest, message: /spec\.store: Required value/ },
      { what: 'no endpoints', spec: (s) => ({ ...s, etcd: { endpoints: [] } }), message: /spec\.etcd\.endpoints: Invalid value: .*should have at least 1 items/ },
      {
        what: 'unknown compression',
        spec: (s) => ({ ...s, fullSnapshot: { ...s.fullSnapshot, compression: 'lz4' } }),
        message: /spec\.fullSnapshot\.compression: Unsupported value: "lz4": supported values: "gzip", "zstd", "none"/,
      },
      {
        what: 'parallelism 0',
        spec: (s) => ({ ...s, deltaSnapshot: { ...s.deltaSnapshot, chunkParallelism: 0 } }),
        message: /spec\.deltaSnapshot\.chunkParallelism: Invalid value: 0: .*should be greater than or equal to 1/,
      },
      // Not "yes": kubectl reads YAML 1.1, where that is a boolean.
      { what: 'suspend as a string', spec: (s) => ({ ...s, suspend: 'later' }), message: /spec\.suspend: Invalid value: "string": .*must be of type boolean/ },
      { what: 'unknown deletionPolicy', spec: (s) => ({ ...s, deletionPolicy: 'Keep' }), message: /spec\.deletionPolicy: Unsupported value: "Keep"/ },
    ];
    for (const { what, spec, message } of cases) {
      const doc = localBackup('refused', join(work, 'refused'));
      const body = { ...doc, spec: spec(doc.spec) };
      const err = await kubectl(['create', '-f', '-'], stringify(body)).then(
        () => assert.fail(`${what}: the API server accepted it`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof KubectlError, what);
      assert.match(err.stderr, /The EtcdBackup "refused" is invalid/, what);
      assert.match(err.stderr, message, what);
    }
    assert.equal(await get('refused'), undefined, 'nothing was stored');
  });

  test('specs only the operator can judge end as SpecValid=False; a repeated rejection is one Event series', async () => {
    const good = localBackup('judged', join(work, 'judged'), { suspend: true });
    const bad = structuredClone(good);
    // The CRD's pattern and CEL rules refuse most bad specs at the API (test/integration/crd-validation);
    // a cron of the right shape whose minute is out of range passes them, and only the parser refuses it.
    bad.spec.fullSnapshot.schedule = '99 * * * *';
    await kubectl(['apply', '-f', '-'], stringify(bad));
    const invalid = await waitCondition('judged', 'SpecValid', (c) => c.status === 'False');
    const message = conditionOf(invalid, 'SpecValid')!.message;
    assert.ok(message.includes('spec.fullSnapshot.schedule'), `SpecValid names spec.fullSnapshot.schedule: ${message}`);
    assert.equal(conditionOf(invalid, 'Ready')?.reason, 'InvalidSpec');
    assert.equal(invalid.status?.observedGeneration, invalid.metadata.generation);

    // Fixed (and suspended: no worker needed), then broken the same way again: the second InvalidSpec
    // Event repeats the first, so the operator patches the first one's series (events.k8s.io/v1 rules).
    await kubectl(['apply', '-f', '-'], stringify(good));
    await waitCondition('judged', 'SpecValid', (c) => c.status === 'True');
    await kubectl(['apply', '-f', '-'], stringify(bad));
    await waitCondition('judged', 'SpecValid', (c) => c.status === 'False');
    const series = await waitFor('the InvalidSpec Event to count 2', async () =>
      (await eventsFor('judged')).find((e) => e.reason === 'InvalidSpec' && (e.series?.count ?? 0) >= 2),
    );
    assert.equal(series.reportingController, 'etcdbackup.io/operator');
    assert.match(series.note ?? '', /spec\.fullSnapshot\.schedule/);
    await kubectl(['delete', 'etcdbackup', 'judged', '--timeout=60s']);
  });

  test('an EtcdBackup against real etcd reaches Ready: kubectl wait, printer columns, spec and status kept apart', async () => {
    const dir = join(work, 'store-main');
    const main = localBackup('main', dir, { encryption: { keySecretRef: { name: 'backup-key' } } });
    await kubectl(['apply', '-f', '-'], stringify(main));
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main', '--timeout=120s']);
    const [header, row] = (await kubectl(['get', 'etcdbackups'])).trim().split('\n');
    assert.match(header!, /^NAME\s+READY\s+LAST FULL\s+ARCHIVED REV\s+LAG\s+AGE$/);
    assert.match(row!, /^main\s+True\s/);
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'one full snapshot');
    const head = await putKeys('main', 10);
    await waitFor('archivedRevision to reach the head', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    const columns = (await kubectl(['get', 'eb', 'main', '--no-headers'])).trim().split(/\s{2,}/);
    assert.ok(Number(columns[3]) >= head, `ARCHIVED REV column: ${columns.join(' | ')}`);
    // What a restore can reach, in the real status (a field missing from the CRD's schema would be pruned).
    const reach = await waitFor('the recoverable window to reach the head', async () => {
      const status = (await get('main'))?.status;
      return (status?.recoverableWindow?.lastRevision ?? 0) >= head && status;
    });
    assert.equal(reach.recoverableWindow!.firstRevision, reach.lastFullSnapshot!.revision, 'one full snapshot: the window starts at it');
    assert.equal(reach.replayRevisions, reach.recoverableWindow!.lastRevision - reach.lastFullSnapshot!.revision);

    // A spec write (client-side apply: a patch of the main resource) keeps the status: the response,
    // read back in the same request, still has it.
    const current = (await get('main'))!;
    const applied = JSON.parse(await kubectl(['apply', '-f', '-', '-o', 'json'], stringify({ ...main, spec: { ...main.spec, retention: { policy: 'LimitBased', maxFullSnapshots: 5 } } }))) as EtcdBackup;
    assert.equal(applied.metadata.generation, current.metadata.generation! + 1, 'a spec change is a new generation');
    assert.deepEqual(applied.status?.lastFullSnapshot, current.status?.lastFullSnapshot, 'the spec write kept the status');
    // observedGeneration follows the spec edit.
    await waitFor('observedGeneration to follow', async () => (await get('main'))?.status?.observedGeneration === applied.metadata.generation);

    // A status write cannot change the spec (status subresource), nor does it make a generation.
    const statusWrite = JSON.parse(
      await kubectl(['patch', 'etcdbackup', 'main', '--subresource=status', '--type=merge', '-o', 'json', '-p', JSON.stringify({ spec: { suspend: true }, status: { lagRevisions: 0 } })]),
    ) as EtcdBackup;
    assert.equal(statusWrite.spec.suspend, false, 'the status write left the spec alone');
    assert.equal(statusWrite.metadata.generation, applied.metadata.generation);
    // The operator's own status patches over the run made no generation either.
    const later = await putKeys('main-later', 5);
    const caughtUp = await waitFor('the later keys to be archived', async () => {
      const obj = await get('main');
      return (obj?.status?.archivedRevision ?? 0) >= later ? obj : undefined;
    });
    assert.equal(caughtUp.metadata.generation, applied.metadata.generation);
    assert.equal(caughtUp.spec.retention.maxFullSnapshots, 5, 'the operator never wrote the spec back');
    assert.deepEqual(caughtUp.metadata.finalizers, ['etcdbackup.io/finalizer']);
  });

  test('a rotated Secret restarts the worker: objects after it are sealed with the new key', async () => {
    const dir = join(work, 'store-main');
    const before = workerPids(operatorA, 'main');
    const deltasBefore = await filesUnder(join(dir, 'delta'));
    const oldKey = await keyIdOf(join(dir, 'delta', deltasBefore.at(-1)!));
    const rotated = await kubectl(['create', 'secret', 'generic', 'backup-key', `--from-literal=key=${'b'.repeat(64)}`, '--dry-run=client', '-o', 'yaml']);
    await kubectl(['apply', '-f', '-'], rotated);
    await waitFor('a new worker', () => workerPids(operatorA, 'main').length > before.length);
    const head = await putKeys('rotated', 5);
    await waitFor('archivedRevision to reach the head', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    const fresh = (await filesUnder(join(dir, 'delta'))).filter((f) => !deltasBefore.includes(f));
    assert.ok(fresh.length > 0, 'deltas after the rotation');
    for (const f of fresh) assert.notEqual(await keyIdOf(join(dir, 'delta', f)), oldKey, `${f} is sealed with the new key`);
    for (const pid of before) await waitFor(`old worker ${pid} to exit`, () => !isAlive(pid));
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'no second full snapshot');
  });

  test('suspend stops the worker and resume continues from the store', async () => {
    const dir = join(work, 'store-main');
    await kubectl(['patch', 'etcdbackup', 'main', '--type=merge', '-p', '{"spec":{"suspend":true}}']);
    const suspended = await waitCondition('main', 'Ready', (c) => c.reason === 'Suspended');
    assert.equal(conditionOf(suspended, 'Ready')!.status, 'False');
    for (const pid of workerPids(operatorA, 'main')) await waitFor(`worker ${pid} to exit`, () => !isAlive(pid));
    // No worker runs, so nothing can archive what is written now.
    const deltas = await filesUnder(join(dir, 'delta'));
    const head = await putKeys('while-suspended', 5);
    assert.deepEqual(await filesUnder(join(dir, 'delta')), deltas, 'nothing archived while suspended');

    await kubectl(['patch', 'etcdbackup', 'main', '--type=merge', '-p', '{"spec":{"suspend":false}}']);
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main', '--timeout=90s']);
    await waitFor('the suspended writes to be archived', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'resumed from the store, no new full snapshot');
  });

  test('two replicas: only the Lease holder runs workers; after kill -9 the other takes over without a second full snapshot', async () => {
    const dir = join(work, 'store-main');
    const operatorB = startOperator();
    await waitFor('operator B to start', () => identityOf(operatorB));
    assert.equal(await leaseHolder(), identityOf(operatorA), 'A holds the Lease');
    // B keeps campaigning while A renews: it must not run anything meanwhile.
    const head = await putKeys('two-replicas', 5);
    await waitFor('A to archive while B stands by', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    assert.deepEqual(logLines(operatorB, 'Acquired leader Lease'), []);
    assert.deepEqual(workerPids(operatorB, 'main'), [], 'no worker on the standby');

    const pidsOfA = workerPids(operatorA, 'main');
    operatorA.child.kill('SIGKILL');
    await operatorA.exited;
    for (const pid of pidsOfA) await waitFor(`A's worker ${pid} to exit with it`, () => !isAlive(pid));
    await waitFor('B to take the Lease', () => logLines(operatorB, 'Acquired leader Lease').length > 0);
    assert.equal(await leaseHolder(), identityOf(operatorB));
    await waitFor('a worker on B', () => workerPids(operatorB, 'main').length > 0);
    const after = await putKeys('after-takeover', 5);
    await waitFor('B to archive', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= after);
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'no second full snapshot after the takeover');
    operatorA = operatorB;
  });

  test('an API server restart drops every connection: the operator watches again and carries on', async () => {
    const dir = join(work, 'store-main');
    const from = operatorA.log.length;
    await api.restart();
    const generation = (await get('main'))!.metadata.generation!;
    await kubectl(['patch', 'etcdbackup', 'main', '--type=merge', '-p', '{"spec":{"retention":{"maxFullSnapshots":6}}}']);
    await waitFor('observedGeneration to follow an edit made after the restart', async () => (await get('main'))?.status?.observedGeneration === generation + 1);
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main', '--timeout=90s']);
    const head = await putKeys('after-restart', 5);
    await waitFor('archiving to go on', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'no second full snapshot');
    // While the server was down the operator retried (and, past the renew deadline, gave up the Lease
    // and took it again); nothing else went wrong.
    const problems = operatorA.log
      .slice(from)
      .filter((line) => /"level":"(warn|error)"/.test(line))
      .filter((line) => !/ECONNREFUSED|Lost leader Lease|HTTP 403/.test(line))
      // A Secret watch (no resourceVersion) started while the fresh watch cache lags etcd is answered
      // with an ERROR event "Too large resource version" (504 Timeout: retry); the operator warns once,
      // aborts that watch and watches again (its own abort is not a second failure: secret-watches.test).
      .filter((line) => !(/"message":"Secret watch reported an error; restarting it"/.test(line) && /Too large resource version/.test(line)));
    assert.deepEqual(problems, []);
  });

  test('a kill -9 of the API server: the operator watches again and carries on', async () => {
    // Seen here: watches resumed from the old resourceVersion are answered by the fresh watch cache
    // with 410 Gone inside the watch stream, and client-node relists (as against our test server).
    const dir = join(work, 'store-main');
    const from = operatorA.log.length;
    await api.restart({ crash: true });
    const generation = (await get('main'))!.metadata.generation!;
    await kubectl(['patch', 'etcdbackup', 'main', '--type=merge', '-p', '{"spec":{"retention":{"maxFullSnapshots":7}}}']);
    await waitFor('observedGeneration to follow an edit made after the crash', async () => (await get('main'))?.status?.observedGeneration === generation + 1);
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/main', '--timeout=90s']);
    const head = await putKeys('after-crash', 5);
    await waitFor('archiving to go on', async () => ((await get('main'))?.status?.archivedRevision ?? 0) >= head);
    assert.equal((await filesUnder(join(dir, 'full'))).length, 1, 'no second full snapshot');
    assert.deepEqual(operatorA.log.slice(from).filter((line) => /"level":"error"/.test(line)), [], 'no errors, only retried warnings');
  });

  test('runner: pod creates the worker Deployment and ConfigMap with the expected security context (no kubelet: no pod runs)', async () => {
    const doc = localBackup('podded', join(work, 'unused'));
    doc.spec.runner = 'pod';
    doc.spec.store = {
      // The test S3 server has no TLS: insecure says the keys may be sent over http (else SpecValid=False).
      s3: { bucket: s3.bucket, prefix: 'pod/main', endpoint: s3.endpoint, forcePathStyle: true, insecure: true, credentialsSecretRef: { name: 's3-creds' } },
    };
    await kubectl(['apply', '-f', '-'], stringify(doc));
    const name = workerName('podded');
    const readDeployment = async () => JSON.parse(await kubectl(['get', 'deployment', name, '-o', 'json'])) as Deployment;
    const deployment = await waitFor('the worker Deployment', readDeployment);
    const owner = (await get('podded'))!;
    assert.deepEqual(deployment.metadata.ownerReferences, [
      { apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup', name: 'podded', uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true },
    ]);
    const pod = deployment.spec.template.spec;
    assert.equal(deployment.spec.strategy.type, 'Recreate');
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: WORKER_UID,
      runAsGroup: WORKER_UID,
      fsGroup: WORKER_UID,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const [container] = pod.containers;
    assert.equal(container!.image, IMAGE);
    assert.deepEqual(container!.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    assert.deepEqual(pod.volumes.find((v) => v.name === 'secret-0')?.secret?.secretName, 's3-creds');
    // The real PodSecurity admission judges the pod the Deployment would run: it meets "restricted".
    // (A namespace's `default` ServiceAccount comes from kube-controller-manager, absent here: made by hand.)
    await kubectl(['create', 'namespace', 'restricted']);
    await kubectl(['label', 'namespace', 'restricted', 'pod-security.kubernetes.io/enforce=restricted']);
    await kubectl(['create', 'serviceaccount', 'default', '--namespace', 'restricted']);
    const podOfTemplate = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'worker', namespace: 'restricted' }, spec: pod };
    await kubectl(['create', '--dry-run=server', '-f', '-'], stringify(podOfTemplate));
    const configMap = JSON.parse(await kubectl(['get', 'configmap', name, '-o', 'json'])) as { data: Record<string, string> };
    const config = parse(configMap.data['backup.yaml']!) as EtcdBackup;
    assert.equal(config.spec.store.s3?.prefix, 'pod/main');
    // Nothing runs the Deployment: no ReplicaSet controller, no scheduler, no kubelet.
    const notReady = await waitCondition('podded', 'Ready', (c) => c.reason === 'WorkerUnavailable');
    assert.match(conditionOf(notReady, 'Ready')!.message, /has no available pod/);
    assert.equal((await kubectl(['get', 'pods', '--all-namespaces', '-o', 'name'])).trim(), '');

    // A spec edit rewrites both (PUT on the resourceVersion read): the pod template's config hash rolls.
    const hash = deployment.spec.template.metadata.annotations['etcdbackup.io/config-hash'];
    await kubectl(['patch', 'etcdbackup', 'podded', '--type=merge', '-p', '{"spec":{"deltaSnapshot":{"period":"3s"}}}']);
    await waitFor('the Deployment to be updated', async () => (await readDeployment()).spec.template.metadata.annotations['etcdbackup.io/config-hash'] !== hash);
    await waitFor('the ConfigMap to be updated', async () =>
      (JSON.parse(await kubectl(['get', 'configmap', name, '-o', 'json'])) as { data: Record<string, string> }).data['backup.yaml']!.includes('period: 3s'),
    );

    // Deletion: the finalizer deletes the Deployment in the foreground and waits until it is gone.
    // Foreground deletion ends when the garbage collector (kube-controller-manager, absent here)
    // removes the `foregroundDeletion` finalizer; the test does that in its place.
    await kubectl(['delete', 'etcdbackup', 'podded', '--wait=false']);
    const deleting = await waitFor('the Deployment to be deleted in the foreground', async () => {
      const d = await readDeployment();
      return d.metadata.deletionTimestamp ? d : undefined;
    });
    assert.deepEqual(deleting.metadata.finalizers, ['foregroundDeletion']);
    assert.ok(await get('podded'), 'the EtcdBackup waits for its worker Deployment');
    await kubectl(['patch', 'deployment', name, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    await waitFor('the EtcdBackup to be gone', async () => (await get('podded')) === undefined);
    await assert.rejects(kubectl(['get', 'configmap', name]), /NotFound/, 'the ConfigMap went with it');
  });

  test('deletion: Retain keeps the backups, Delete removes them, the finalizer goes; Events are listed', async () => {
    const described = await kubectl(['describe', 'etcdbackup', 'main']);
    assert.match(described, /Events:[\s\S]*FullSnapshotTaken/, 'kubectl describe lists the Events');
    const reasons = await kubectl(['get', 'events', '--field-selector', 'involvedObject.name=main', '-o', 'jsonpath={range .items[*]}{.reason}{"\\n"}{end}']);
    assert.match(reasons, /FullSnapshotTaken/);

    const mainDir = join(work, 'store-main');
    await kubectl(['delete', 'etcdbackup', 'main', '--timeout=60s']);
    assert.equal(await get('main'), undefined);
    assert.equal((await filesUnder(join(mainDir, 'full'))).length, 1, 'Retain keeps the backups');

    const doomedDir = join(work, 'store-doomed');
    await kubectl(['apply', '-f', '-'], stringify(localBackup('doomed', doomedDir, { deletionPolicy: 'Delete' })));
    await kubectl(['wait', '--for=condition=Ready', 'etcdbackup/doomed', '--timeout=120s']);
    assert.equal((await filesUnder(join(doomedDir, 'full'))).length, 1);
    await kubectl(['delete', 'etcdbackup', 'doomed', '--timeout=60s']);
    assert.deepEqual([...(await filesUnder(join(doomedDir, 'full'))), ...(await filesUnder(join(doomedDir, 'delta')))], [], 'Delete removes the backups');
    assert.ok((await eventsFor('doomed')).some((e) => e.reason === 'BackupsDeleted'), 'a BackupsDeleted Event');
    assert.deepEqual((JSON.parse(await kubectl(['get', 'etcdbackups', '-o', 'json'])) as { items: unknown[] }).items, []);
  });

  test('RBAC: no request was forbidden, and config/rbac grants nothing the operator did not use', async () => {
    // A 403 while the API server was starting (after the restart) is its RBAC cache not loaded yet,
    // not a missing permission: requests received before /readyz said ok are left out, nothing else.
    const starting = (time: string | Date) => api.startUps.some(({ spawnedAt, readyAt }) => new Date(time) >= spawnedAt && new Date(time) <= readyAt);
    for (const operator of operators) {
      const forbidden = operator.log.filter((line) => /forbidden/i.test(line) && !starting(logTime(line)));
      assert.deepEqual(forbidden, [], 'no forbidden in the operator logs');
    }
    const events = (await api.auditEvents()).filter((e) => e.user.username === OPERATOR_USER && e.objectRef);
    assert.ok(events.length > 0, 'the audit log holds the operator requests');
    const refused = events.filter((e) => e.responseStatus?.code === 403 && !starting(e.requestReceivedTimestamp));
    assert.deepEqual(refused.map(describeRequest), [], 'no 403');

    const used = new Set(events.map((e) => permission(e.objectRef!.apiGroup ?? '', resourceOf(e), e.verb)));
    const granted = grantedPermissions();
    assert.deepEqual([...used].filter((p) => !granted.has(p)), [], 'every request was granted (RBAC would have said 403)');
    // `update etcdbackups/finalizers` is never a request of its own: OwnerReferencesPermissionEnforcement
    // checks it when the operator sets blockOwnerDeletion on an ownerReference to an EtcdBackup
    // (runner: pod). Without it that write is refused: shown with a role that lacks only this rule.
    const viaAdmission = permission('etcdbackup.io', 'etcdbackups/finalizers', 'update');
    assert.deepEqual([...granted].filter((p) => !used.has(p) && p !== viaAdmission), [], 'every granted verb was used');
    await proveFinalizersRuleNeeded();
  });
});

interface Deployment {
  metadata: { ownerReferences?: unknown[]; deletionTimestamp?: string; finalizers?: string[] };
  spec: {
    strategy: { type: string };
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        automountServiceAccountToken?: boolean;
        securityContext?: unknown;
        containers: Array<{ image: string; args?: string[]; securityContext?: unknown }>;
        volumes: Array<{ name: string; secret?: { secretName: string } }>;
      };
    };
  };
}

const permission = (group: string, resource: string, verb: string): string => `${group}/${resource}:${verb}`;

/** The timestamp of a JSON log line (the epoch for anything else). */
function logTime(line: string): Date {
  try {
    return new Date(String((JSON.parse(line) as { timestamp?: unknown }).timestamp ?? 0));
  } catch {
    return new Date(0);
  }
}

function resourceOf(event: AuditEvent): string {
  const { resource = '', subresource } = event.objectRef!;
  return subresource ? `${resource}/${subresource}` : resource;
}

function describeRequest(event: AuditEvent): string {
  return `${event.verb} ${event.requestURI} -> ${event.responseStatus?.code}`;
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Every (group, resource, verb) the operator's ClusterRole and leader-election Role grant. */
function grantedPermissions(): Set<string> {
  const granted = new Set<string>();
  for (const file of ['role.yaml', 'leader_election_role.yaml']) {
    const role = parse(readFileSync(join(REPO_ROOT, 'config/rbac', file), 'utf8')) as { rules: PolicyRule[] };
    for (const rule of role.rules) {
      for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) granted.add(permission(group, resource, verb));
    }
  }
  return granted;
}

/**
 * A ConfigMap owned (blockOwnerDeletion) by an EtcdBackup, created server-side dry-run as a user
 * with the operator's ClusterRole minus the finalizers rule (refused), and as the operator (allowed).
 */
async function proveFinalizersRuleNeeded(): Promise<void> {
  const role = parse(readFileSync(join(REPO_ROOT, 'config/rbac/role.yaml'), 'utf8')) as { metadata: { name: string }; rules: PolicyRule[] };
  role.metadata.name = 'without-finalizers';
  role.rules = role.rules.filter((rule) => !rule.resources.includes('etcdbackups/finalizers'));
  await kubectl(['apply', '-f', '-'], stringify(role));
  await kubectl(['create', 'clusterrolebinding', 'without-finalizers', '--clusterrole=without-finalizers', '--user=no-finalizers-user']);
  const owned = stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'owned',
      namespace: NS,
      ownerReferences: [{ apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup', name: 'any', uid: '00000000-0000-0000-0000-000000000001', controller: true, blockOwnerDeletion: true }],
    },
  });
  await assert.rejects(
    kubectl(['create', '--dry-run=server', '-f', '-', '--as', 'no-finalizers-user'], owned),
    (err: KubectlError) => /cannot set blockOwnerDeletion/.test(err.stderr),
  );
  await kubectl(['create', '--dry-run=server', '-f', '-', '--as', OPERATOR_USER], owned);
}
