/**
 * runner: pod end to end: the operator (in-process, against the Kubernetes API test server) creates
 * the worker ConfigMap and Deployment; the test reads them back through the API, then RUNS the
 * Deployment's container command for real (the CLI from source, with the ConfigMap and Secret
 * volumes materialised under a temp dir) against a real etcd and s3rver, and checks that the
 * operator's status, computed from the store, follows what the worker stored.
 *
 * The API test server is not a kubelet and has no Deployment controller: nothing runs pods and
 * nothing sets Deployment status. The test sets `status.availableReplicas` by hand, through the
 * status subresource, at the point where a kubelet would have started the pod.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Deployment,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { Condition, EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { runOperator } from '../../src/controller/operator.js';
import {
  ANNOTATION_CONFIG_HASH,
  CONFIG_FILE,
  LABEL_INSTANCE,
  WORKER_BASE_MEMORY_MIB,
  workerName,
} from '../../src/controller/pod-runner.js';
import { createLogger } from '../../src/observability/logger.js';
import { createStore } from '../../src/store/factory.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { startTestS3, type TestS3 } from '../harness/s3.js';
import { REPO_ROOT, startCli } from '../helpers/cli.js';
import { waitFor as poll } from '../helpers/wait.js';

const NS = 'default';
const NAME = 'pod-main';
const WORKER = workerName(NAME);
const PREFIX = 'pod/main';
const IMAGE = 'registry.example/etcd-backup:test';
const CR = { group: 'etcdbackup.io', version: 'v1alpha1', namespace: NS, plural: 'etcdbackups' };
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** STS-style credentials carry a session token; s3rver ignores it, so the harness records it. */
const SESSION_TOKEN = 'sts-session-token-for-the-test';
/** x-amz-security-token of every write (PUT/POST) the store received: only the worker writes. */
const writeTokens: (string | undefined)[] = [];

let work: string;
let etcd: TestEtcd;
let s3: TestS3;
let api: KubeApiServer;
let co: CustomObjectsApi;
let apps: AppsV1Api;
let core: CoreV1Api;
let stopOperator: AbortController;
let operatorDone: Promise<void>;
let worker: { child: ChildProcess; exited: Promise<number | null>; output: string[] } | undefined;
const operatorLog: string[] = [];

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> =>
  poll(what, probe, { timeoutMs, intervalMs: 200, retryErrors: true, context: () => `log tail:\n${[...operatorLog.slice(-10), ...(worker?.output.slice(-10) ?? [])].join('\n')}` });

/** Operator log lines saying a local (runner: operator) worker process started. */
function localWorkerStarts(): string[] {
  return operatorLog.filter((line) => line.includes('"Started backup worker process"'));
}

async function orUndefined<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

const getBackup = () => orUndefined(co.getNamespacedCustomObject({ ...CR, name: NAME }) as Promise<EtcdBackup>);
const getDeployment = () => orUndefined(apps.readNamespacedDeployment({ namespace: NS, name: WORKER }));
const getConfigMap = () => orUndefined(core.readNamespacedConfigMap({ namespace: NS, name: WORKER }));
const condition = (obj: EtcdBackup | undefined, type: string): Condition | undefined =>
  obj?.status?.conditions?.find((c) => c.type === type);

async function patchSpec(spec: Record<string, unknown>): Promise<void> {
  await co.patchNamespacedCustomObject({ ...CR, name: NAME, body: { spec } }, MERGE);
}

async function putKeys(prefix: string, count: number): Promise<number> {
  const client = etcd.client();
  for (let i = 0; i < count; i++) await client.put(`${prefix}/${i}`).value(`value-${i}`);
  return Number((await client.get('x').exec()).header.revision);
}

async function storeListing() {
  const store = await createStore(s3.storeConfig(PREFIX));
  return classifyKeys([...(await store.list('full/')), ...(await store.list('delta/'))].map((o) => o.key));
}

/**
 * What a kubelet would do with the pod template, on this machine: each mount becomes a directory
 * under `root` (ConfigMap and Secret contents read back through the API), and the container's args
 * run through the CLI from source (the image's entrypoint is the CLI) with the container's env.
 */
async function runWorkerFromDeployment(deployment: V1Deployment, root: string): Promise<NonNullable<typeof worker>> {
  const pod = deployment.spec!.template.spec!;
  const container = pod.containers[0]!;
  const mounts = container.volumeMounts ?? [];
  for (const mount of mounts) {
    const dir = join(root, mount.mountPath);
    await mkdir(dir, { recursive: true });
    const volume = pod.volumes!.find((v) => v.name === mount.name)!;
    if (volume.configMap) {
      const cm = await core.readNamespacedConfigMap({ namespace: NS, name: volume.configMap.name! });
      for (const [key, value] of Object.entries(cm.data ?? {})) await writeFile(join(dir, key), value);
    } else if (volume.secret) {
      const secret = await core.readNamespacedSecret({ namespace: NS, name: volume.secret.secretName! });
      for (const [key, value] of Object.entries(secret.data ?? {})) {
        await writeFile(join(dir, key), Buffer.from(value, 'base64'), { mode: 0o600 });
      }
    } else {
      assert.ok(volume.emptyDir, `volume ${volume.name}: only configMap, secret and emptyDir are expected`);
    }
  }
  // The container's filesystem is `root` here: absolute paths in the args move under it.
  const args = (container.args ?? []).map((arg) => (arg.startsWith('/') ? join(root, arg) : arg));
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
  const child = startCli(args, env);
  const output: string[] = [];
  const collect = (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output };
}

describe('runner: pod end to end', { timeout: 120_000 }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'pod-runner-e2e-'));
    [etcd, s3, api] = await Promise.all([
      startTestEtcd(),
      startTestS3({
        onRequest: ({ method, headers }) => {
          if (method === 'PUT' || method === 'POST') writeTokens.push(headers['x-amz-security-token'] as string | undefined);
        },
      }),
      startKubeApiServer(),
    ]);
    const kubeconfig = await writeKubeconfig(work, api.url);
    const kc = kubeConfigFor(api.url);
    co = kc.makeApiClient(CustomObjectsApi);
    apps = kc.makeApiClient(AppsV1Api);
    core = kc.makeApiClient(CoreV1Api);
    // kubectl, not client-node: client-node's CRD model drops `default` and the x-kubernetes-* markers.
    await promisify(execFile)('kubectl', ['apply', '-f', join(REPO_ROOT, 'crds/')], { env: { ...process.env, KUBECONFIG: kubeconfig } });
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 's3-creds' }, stringData: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: SESSION_TOKEN } },
    });
    await putKeys('a', 20);

    const logStream = new PassThrough();
    logStream.on('data', (d: Buffer) => operatorLog.push(...d.toString().split('\n').filter(Boolean)));
    stopOperator = new AbortController();
    operatorDone = runOperator({
      kubeconfig,
      namespace: NS,
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      leaderElection: false,
      workerImage: IMAGE,
      logger: createLogger({ format: 'json', level: 'info', stream: logStream }),
      signal: stopOperator.signal,
      // Refresh pod status from the store every second instead of every 30 s.
      controller: { podStatusIntervalMs: 1000, statusMinIntervalMs: 500 },
    });
  });

  after(async () => {
    worker?.child.kill('SIGKILL');
    stopOperator?.abort();
    await operatorDone?.catch(() => undefined);
    await Promise.allSettled([etcd?.stop(), s3?.stop(), api?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  test('the operator creates an owned ConfigMap and Deployment, and runs no local worker', async () => {
    await co.createNamespacedCustomObject({
      ...CR,
      body: {
        apiVersion: 'etcdbackup.io/v1alpha1',
        kind: 'EtcdBackup',
        metadata: { name: NAME },
        spec: {
          etcd: { endpoints: [etcd.clientUrl] },
          store: {
            s3: {
              bucket: s3.bucket,
              prefix: PREFIX,
              endpoint: s3.endpoint,
              forcePathStyle: true,
              credentialsSecretRef: { name: 's3-creds' },
              insecure: true, // s3rver speaks plain http on 127.0.0.1
            },
          },
          // Yearly: only the first full snapshot (the store is empty) is taken during the test.
          fullSnapshot: { schedule: '0 0 1 1 *' },
          deltaSnapshot: { period: '1s' },
          runner: 'pod',
        },
      },
    });
    const deployment = await waitFor('the worker Deployment', getDeployment);
    const backup = (await getBackup())!;
    const uid = backup.metadata.uid!;
    const configMap = (await getConfigMap())!;
    // JSON: client-node returns class instances, the comparison is about the fields.
    const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
    const owner = { apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup', name: NAME, uid, controller: true, blockOwnerDeletion: true };
    assert.deepEqual(plain(deployment.metadata?.ownerReferences), [owner]);
    assert.deepEqual(plain(configMap.metadata?.ownerReferences), [owner]);

    const spec = deployment.spec!;
    assert.equal(spec.replicas, 1);
    assert.equal(spec.strategy?.type, 'Recreate');
    assert.deepEqual(plain(spec.selector.matchLabels), { [LABEL_INSTANCE]: uid });
    assert.equal(spec.template.metadata?.labels?.[LABEL_INSTANCE], uid);
    assert.match(spec.template.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ?? '', /^[0-9a-f]{16}$/);
    const pod = spec.template.spec!;
    const container = pod.containers[0]!;
    assert.equal(container.image, IMAGE, 'the operator default image');
    // The default budget (128Mi) plus the base.
    assert.equal(container.resources?.limits?.memory, `${128 + WORKER_BASE_MEMORY_MIB}Mi`);
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(
      pod.volumes?.filter((v) => v.secret).map((v) => v.secret?.secretName),
      ['s3-creds'],
      'the user Secret is mounted as it is',
    );
    const secrets = await core.listNamespacedSecret({ namespace: NS });
    assert.deepEqual(secrets.items.map((s) => s.metadata?.name), ['s3-creds'], 'no copy of a Secret is made');

    const file = parse(configMap.data![CONFIG_FILE]!) as EtcdBackup;
    assert.deepEqual(file.spec, backup.spec, 'the worker runs the same spec');

    const waiting = await waitFor('Ready=False WorkerUnavailable', async () => {
      const obj = await getBackup();
      return condition(obj, 'Ready')?.reason === 'WorkerUnavailable' ? obj : undefined;
    });
    assert.match(condition(waiting, 'Ready')!.message, new RegExp(`Worker Deployment ${WORKER} has no available pod`));
    assert.deepEqual(localWorkerStarts(), [], 'no local worker process was started');
    assert.deepEqual(await storeListing().then((l) => [...l.fulls, ...l.deltas]), [], 'nothing has written the store yet');
  });

  test("the Deployment's worker command runs for real; the operator's status follows the store", async () => {
    const deployment = (await getDeployment())!;
    worker = await runWorkerFromDeployment(deployment, join(work, 'pod-root'));
    await waitFor('a full snapshot from the pod worker', async () => {
      assert.equal(worker?.child.exitCode, null, `the worker exited:\n${worker?.output.join('\n')}`);
      return (await storeListing()).fulls.length > 0;
    });
    // What a kubelet and the Deployment controller would report once the pod is ready.
    const patched = await apps.patchNamespacedDeploymentStatus(
      { namespace: NS, name: WORKER, body: { status: { observedGeneration: deployment.metadata?.generation, replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1 } } },
      MERGE,
    );
    const head = await putKeys('b', 10);
    const ready = await waitFor('Ready and archivedRevision at the head', async () => {
      const obj = await getBackup();
      return condition(obj, 'Ready')?.status === 'True' && (obj?.status?.archivedRevision ?? 0) >= head ? obj : undefined;
    });
    const listing = await storeListing();
    // The pod's uploads sign with the whole STS triple, as the operator's own listing does.
    assert.ok(writeTokens.length > 0, 'the worker wrote to the store');
    assert.deepEqual([...new Set(writeTokens)], [SESSION_TOKEN], 'every write carries the session token');
    assert.equal(ready.status?.lastFullSnapshot?.object, listing.fulls.at(-1)?.key);
    assert.equal(ready.status?.lastDeltaSnapshot?.toRevision, Math.max(...listing.deltas.map((d) => d.toRevision)));
    assert.equal(condition(ready, 'FullSnapshotSucceeded')?.status, 'True');
    assert.equal(condition(ready, 'DeltaSnapshotSucceeded')?.status, 'True');
    // Many reconciles later (one a second), an unchanged spec has not rewritten the Deployment.
    assert.equal((await getDeployment())?.metadata?.resourceVersion, patched.metadata?.resourceVersion);
    assert.deepEqual(localWorkerStarts(), [], 'still no local worker');

    worker.child.kill('SIGTERM');
    assert.equal(await worker.exited, 0, `the worker stops cleanly on SIGTERM:\n${worker.output.slice(-5).join('\n')}`);
    worker = undefined;
  });

  test('a spec change updates the ConfigMap and rolls the pod (new config hash)', async () => {
    const before = (await getDeployment())!;
    await patchSpec({ retention: { maxFullSnapshots: 3 } });
    const after = await waitFor('a new config hash', async () => {
      const d = await getDeployment();
      const hash = d?.spec?.template.metadata?.annotations?.[ANNOTATION_CONFIG_HASH];
      return hash !== before.spec?.template.metadata?.annotations?.[ANNOTATION_CONFIG_HASH] ? d : undefined;
    });
    assert.equal(after.metadata?.generation, (before.metadata?.generation ?? 0) + 1);
    const configMap = (await getConfigMap()) as V1ConfigMap;
    assert.equal((parse(configMap.data![CONFIG_FILE]!) as EtcdBackup).spec.retention.maxFullSnapshots, 3);
  });

  test('suspend deletes the worker Deployment; resuming creates it again', async () => {
    await patchSpec({ suspend: true });
    await waitFor('the Deployment and ConfigMap to be deleted', async () => !(await getDeployment()) && !(await getConfigMap()));
    await waitFor('Ready=False Suspended', async () => condition(await getBackup(), 'Ready')?.reason === 'Suspended');
    await patchSpec({ suspend: false });
    await waitFor('the worker Deployment again', getDeployment);
    assert.deepEqual(localWorkerStarts(), [], 'still no local worker');
  });

  test('runner back to operator: the Deployment and ConfigMap go, a local worker takes over', async () => {
    await patchSpec({ runner: 'operator' });
    await waitFor('the Deployment and ConfigMap to be deleted', async () => !(await getDeployment()) && !(await getConfigMap()));
    const head = await putKeys('c', 5);
    await waitFor('the local worker to archive the new revisions', async () => {
      const obj = await getBackup();
      return condition(obj, 'Ready')?.status === 'True' && (obj?.status?.archivedRevision ?? 0) >= head;
    });
    assert.equal(localWorkerStarts().length, 1, 'one local worker process');
  });

  test('deleting the EtcdBackup in pod mode: the finalizer removes the worker objects, then the object', async () => {
    await patchSpec({ runner: 'pod' });
    await waitFor('the worker Deployment again', getDeployment);
    await co.deleteNamespacedCustomObject({ ...CR, name: NAME });
    await waitFor('the EtcdBackup to be gone', async () => (await getBackup()) === undefined);
    // The API test server has no garbage collector: these are gone because the finalizer deleted them.
    assert.equal(await getDeployment(), undefined);
    assert.equal(await getConfigMap(), undefined);
    assert.ok((await storeListing()).fulls.length > 0, 'deletionPolicy Retain keeps the backups');
  });
});
