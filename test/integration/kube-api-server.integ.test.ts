// Proves the Kubernetes API test server against the real clients: kubectl 1.32 and client-node 1.4.0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { type KubeApiServer, serverState, startKubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { waitFor as poll } from '../helpers/wait.js';

const GROUP = 'etcdbackup.io';
const VERSION = 'v1alpha1';
const PLURAL = 'etcdbackups';
const NS = 'default';
const CR = { group: GROUP, version: VERSION, namespace: NS, plural: PLURAL };

const CRD_YAML = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: etcdbackups.etcdbackup.io
spec:
  group: etcdbackup.io
  scope: Namespaced
  names: { plural: etcdbackups, singular: etcdbackup, kind: EtcdBackup, listKind: EtcdBackupList, shortNames: [eb] }
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: { status: {} }
      additionalPrinterColumns:
        - { name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status' }
        - { name: Archived Rev, type: integer, jsonPath: .status.archivedRevision }
        - { name: Age, type: date, jsonPath: .metadata.creationTimestamp }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [etcd]
              properties:
                etcd:
                  type: object
                  properties:
                    endpoints: { type: array, items: { type: string } }
                deltaSnapshot:
                  type: object
                  properties:
                    period: { type: string, default: 20s }
                    chunkParallelism: { type: integer, minimum: 1 }
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
`;

function crYaml(name: string, chunkParallelism: number, extra = ''): string {
  return `apiVersion: etcdbackup.io/v1alpha1
kind: EtcdBackup
metadata: { name: ${name} }
spec:
  etcd: { endpoints: ["http://127.0.0.1:2379"] }
  deltaSnapshot: { chunkParallelism: ${chunkParallelism}${extra} }
`;
}

let server: KubeApiServer;
let dir: string;
let kubeconfig: string;
let kc: k8s.KubeConfig;
let co: k8s.CustomObjectsApi;
let core: k8s.CoreV1Api;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real kubectl against the test server; a fresh discovery cache per test file. */
function kubectl(args: string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, ...args], {
      env: { ...process.env, KUBECONFIG: '', KUBECACHEDIR: join(dir, 'cache'), HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function kubectlOk(args: string[]): Promise<string> {
  const r = await kubectl(args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function applyYaml(name: string, yaml: string): Promise<Run> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, yaml);
  return kubectl(['apply', '-f', file]);
}

interface Obj {
  metadata: { name: string; resourceVersion: string; generation?: number; deletionTimestamp?: string; finalizers?: string[]; uid?: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

async function getEb(name: string): Promise<Obj> {
  return (await co.getNamespacedCustomObject({ ...CR, name })) as Obj;
}

function apiCode(e: unknown): number | undefined {
  return e instanceof k8s.ApiException ? e.code : undefined;
}

const waitFor = (what: string, cond: () => boolean, timeoutMs = 5000): Promise<true> =>
  poll(what, () => cond(), { timeoutMs, intervalMs: 20 });

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kube-api-'));
  server = await startKubeApiServer();
  kubeconfig = await writeKubeconfig(dir, server.url);
  kc = kubeConfigFor(server.url);
  co = kc.makeApiClient(k8s.CustomObjectsApi);
  core = kc.makeApiClient(k8s.CoreV1Api);
});

after(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

test('kubectl applies a CRD, waits for Established and serves the custom resource', async () => {
  const crd = await applyYaml('crd', CRD_YAML);
  assert.equal(crd.code, 0, crd.stderr);
  assert.match(crd.stdout, /customresourcedefinition.apiextensions.k8s.io\/etcdbackups.etcdbackup.io created/);
  await kubectlOk(['wait', '--for=condition=Established', 'crd/etcdbackups.etcdbackup.io', '--timeout=10s']);
  const resources = await kubectlOk(['api-resources', '--api-group=etcdbackup.io']);
  assert.match(resources, /etcdbackups\s+eb\s+etcdbackup.io\/v1alpha1\s+true\s+EtcdBackup/);

  const created = await applyYaml('x', crYaml('x', 2));
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stdout, /etcdbackup.etcdbackup.io\/x created/);
  const first = await getEb('x');
  assert.equal(first.metadata.generation, 1);
  assert.equal((first.spec?.deltaSnapshot as Record<string, unknown>).period, '20s', 'schema default applied');

  const again = await applyYaml('x', crYaml('x', 3));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /configured/);
  const unchanged = await applyYaml('x', crYaml('x', 3));
  assert.match(unchanged.stdout, /unchanged/);
  const second = await getEb('x');
  assert.equal(second.metadata.generation, 2);
  assert.equal((second.spec?.deltaSnapshot as Record<string, unknown>).chunkParallelism, 3);

  const table = await kubectlOk(['get', 'eb']);
  assert.match(table, /^NAME\s+READY\s+ARCHIVED REV\s+AGE\n/);
  assert.match(table, /\nx\s+\d+s\n/);

  const json = JSON.parse(await kubectlOk(['get', 'eb', 'x', '-o', 'json'])) as Obj & { kind: string };
  assert.equal(json.kind, 'EtcdBackup');
  assert.equal(json.metadata.resourceVersion, second.metadata.resourceVersion);

  const described = await kubectlOk(['describe', 'eb', 'x']);
  assert.match(described, /Name:\s+x/);
  assert.match(described, /Chunk Parallelism:\s+3/);
});

test('status patch through client-node satisfies kubectl wait --for=condition=Ready', async () => {
  const before = await getEb('x');
  const waiting = kubectl(['wait', '--for=condition=Ready', 'eb/x', '--timeout=10s']);
  await new Promise((r) => setTimeout(r, 300));
  const generation = before.metadata.generation ?? 0;
  await co.patchNamespacedCustomObjectStatus({
    ...CR, name: 'x', fieldManager: 'test',
    body: { status: { observedGeneration: generation, archivedRevision: 42, conditions: [
      { type: 'Ready', status: 'True', reason: 'Archiving', message: 'ok', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), observedGeneration: generation },
    ] } },
  }, mergePatch);
  const r = await waiting;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /condition met/);

  const after = await getEb('x');
  assert.equal(after.metadata.generation, generation, 'status writes do not bump generation');
  assert.notEqual(after.metadata.resourceVersion, before.metadata.resourceVersion);
  assert.deepEqual(after.spec, before.spec);
  assert.match(await kubectlOk(['get', 'eb', 'x']), /\nx\s+True\s+42\s+\d+s\n/);

  // The main resource ignores .status when the status subresource exists.
  await co.patchNamespacedCustomObject({ ...CR, name: 'x', body: { status: { archivedRevision: 1 } } }, mergePatch);
  assert.equal((await getEb('x')).status?.archivedRevision, 42);
});

test('kubectl shows schema violations and unknown fields with their field paths', async () => {
  const bad = await applyYaml('bad', crYaml('bad', 0));
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /The EtcdBackup "bad" is invalid: spec.deltaSnapshot.chunkParallelism: Invalid value: 0: spec.deltaSnapshot.chunkParallelism in body should be greater than or equal to 1/);

  const unknown = await applyYaml('unknown', crYaml('unknown', 1, ', foo: 1'));
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /strict decoding error: unknown field "spec.deltaSnapshot.foo"/);

  // The 422 body is a real metav1.Status with one cause per field.
  await assert.rejects(co.createNamespacedCustomObject({ ...CR, body: {
    apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup', metadata: { name: 'bad2' },
    spec: { deltaSnapshot: { chunkParallelism: 'many' } },
  } }), (e: unknown) => {
    assert.equal(apiCode(e), 422);
    const status = JSON.parse((e as k8s.ApiException<string>).body) as { reason: string; details: { causes: { field: string; reason: string }[] } };
    assert.equal(status.reason, 'Invalid');
    assert.deepEqual(status.details.causes.map((c) => c.field).sort(), ['spec.deltaSnapshot.chunkParallelism', 'spec.etcd']);
    return true;
  });
});

test('kubectl delete waits for the finalizer; the object is gone once it is removed', async () => {
  await applyYaml('fin', crYaml('fin', 1));
  await co.patchNamespacedCustomObject({ ...CR, name: 'fin', body: { metadata: { finalizers: ['etcdbackup.io/cleanup'] } } }, mergePatch);
  const generation = (await getEb('fin')).metadata.generation ?? 0;

  const deleting = kubectl(['delete', 'eb', 'fin', '--timeout=10s']);
  let marked: Obj | undefined;
  const end = Date.now() + 5000;
  while (!marked?.metadata.deletionTimestamp && Date.now() < end) {
    marked = await getEb('fin');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(marked?.metadata.deletionTimestamp, 'deletionTimestamp set');
  assert.equal(marked.metadata.generation, generation + 1, 'marking for deletion bumps generation as the apiserver does');

  // Adding finalizers to an object being deleted is forbidden.
  await assert.rejects(co.patchNamespacedCustomObject({ ...CR, name: 'fin', body: { metadata: { finalizers: ['etcdbackup.io/cleanup', 'other'] } } }, mergePatch),
    (e: unknown) => apiCode(e) === 422);
  await co.patchNamespacedCustomObject({ ...CR, name: 'fin', body: { metadata: { finalizers: null } } }, mergePatch);
  const r = await deleting;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /etcdbackup.etcdbackup.io "fin" deleted/);

  await assert.rejects(getEb('fin'), (e: unknown) => {
    assert.equal(apiCode(e), 404);
    const status = JSON.parse((e as k8s.ApiException<string>).body) as Record<string, unknown>;
    assert.deepEqual(status, {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'etcdbackups.etcdbackup.io "fin" not found',
      reason: 'NotFound', details: { name: 'fin', group: 'etcdbackup.io', kind: 'etcdbackups' }, code: 404,
    });
    return true;
  });
});

test('kubectl creates and reads secrets and namespaces (protobuf request bodies)', async () => {
  await kubectlOk(['create', 'namespace', 'backups']);
  await kubectlOk(['-n', 'backups', 'create', 'secret', 'generic', 's3-creds', '--from-literal=accessKeyId=AK', '--from-literal=secretAccessKey=SK']);
  const secret = await core.readNamespacedSecret({ name: 's3-creds', namespace: 'backups' });
  assert.equal(Buffer.from(secret.data?.accessKeyId ?? '', 'base64').toString(), 'AK');
  assert.equal(secret.type, 'Opaque');
  const out = await kubectlOk(['-n', 'backups', 'get', 'secret', 's3-creds', '-o', 'jsonpath={.data.secretAccessKey}']);
  assert.equal(Buffer.from(out, 'base64').toString(), 'SK');
  const missingNs = await kubectl(['-n', 'nope', 'create', 'secret', 'generic', 'x', '--from-literal=a=b']);
  assert.match(missingNs.stderr, /namespaces "nope" not found/);

  // stringData is folded into data, as on a real apiserver.
  await core.createNamespacedSecret({ namespace: 'backups', body: { metadata: { name: 'etcd-auth' }, stringData: { username: 'root' } } });
  const auth = await core.readNamespacedSecret({ name: 'etcd-auth', namespace: 'backups' });
  assert.deepEqual(auth.data, { username: Buffer.from('root').toString('base64') });
  assert.equal(auth.stringData, undefined);
});

test('client-node informer sees add, update and delete', async () => {
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
  const informer = k8s.makeInformer<k8s.KubernetesObject>(kc, path,
    () => co.listNamespacedCustomObject({ ...CR, labelSelector: 'app=inf' }) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>,
    'app=inf');
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  informer.on('update', (o) => seen.push(`update ${o.metadata?.name}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  informer.on('error', () => {});
  await co.createNamespacedCustomObject({ ...CR, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup',
    metadata: { name: 'inf-1', labels: { app: 'inf' } }, spec: { etcd: {} } } });
  await informer.start();
  try {
    await waitFor('initial add', () => seen.includes('add inf-1'));
    const created = await co.createNamespacedCustomObject({ ...CR, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup',
      metadata: { generateName: 'inf-', labels: { app: 'inf' } }, spec: { etcd: {} } } }) as Obj;
    assert.match(created.metadata.name, /^inf-[a-z0-9]{5}$/);
    await waitFor('generated add', () => seen.includes(`add ${created.metadata.name}`));
    await co.patchNamespacedCustomObject({ ...CR, name: 'inf-1', body: { spec: { etcd: { endpoints: ['e'] } } } }, mergePatch);
    await waitFor('update', () => seen.includes('update inf-1'));
    // Losing the label makes the object leave a selector-filtered watch as DELETED.
    await co.patchNamespacedCustomObject({ ...CR, name: created.metadata.name, body: { metadata: { labels: { app: 'other' } } } }, mergePatch);
    await waitFor('delete by label change', () => seen.includes(`delete ${created.metadata.name}`));
    await co.deleteNamespacedCustomObject({ ...CR, name: 'inf-1' });
    await waitFor('delete', () => seen.includes('delete inf-1'));
    assert.deepEqual(informer.list().map((o) => o.metadata?.name), []);
  } finally {
    await informer.stop();
  }
});

test('replace with a stale resourceVersion gets 409 Conflict; JSON patch and selectors work', async () => {
  await co.createNamespacedCustomObject({ ...CR, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup',
    metadata: { name: 'occ', labels: { tier: 'a' } }, spec: { etcd: { endpoints: ['a'] } } } });
  const v1 = await getEb('occ');
  await co.replaceNamespacedCustomObject({ ...CR, name: 'occ', body: { ...v1, spec: { etcd: { endpoints: ['b'] } } } });
  await assert.rejects(co.replaceNamespacedCustomObject({ ...CR, name: 'occ', body: { ...v1, spec: { etcd: { endpoints: ['c'] } } } }),
    (e: unknown) => {
      assert.equal(apiCode(e), 409);
      const s = JSON.parse((e as k8s.ApiException<string>).body) as { reason: string; message: string };
      assert.equal(s.reason, 'Conflict');
      assert.match(s.message, /the object has been modified/);
      return true;
    });
  await assert.rejects(co.createNamespacedCustomObject({ ...CR, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup',
    metadata: { name: 'occ' }, spec: { etcd: {} } } }), (e: unknown) => apiCode(e) === 409);

  await co.patchNamespacedCustomObject({ ...CR, name: 'occ', body: [{ op: 'add', path: '/spec/etcd/endpoints/-', value: 'd' }] });
  assert.deepEqual((await getEb('occ')).spec?.etcd, { endpoints: ['b', 'd'] });

  const byLabel = await co.listNamespacedCustomObject({ ...CR, labelSelector: 'tier=a' }) as { items: Obj[]; metadata: { resourceVersion: string } };
  assert.deepEqual(byLabel.items.map((o) => o.metadata.name), ['occ']);
  assert.ok(Number(byLabel.metadata.resourceVersion) > 0);
  const byField = await co.listNamespacedCustomObject({ ...CR, fieldSelector: 'metadata.name=occ' }) as { items: Obj[] };
  assert.deepEqual(byField.items.map((o) => o.metadata.name), ['occ']);
});

test('watch from a compacted resourceVersion gets 410 Expired and the informer relists', async () => {
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
  let lists = 0;
  const informer = k8s.makeInformer<k8s.KubernetesObject>(kc, path, () => {
    lists++;
    return co.listNamespacedCustomObject(CR) as Promise<k8s.KubernetesListObject<k8s.KubernetesObject>>;
  });
  const added: string[] = [];
  informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
  informer.on('error', () => {});
  await informer.start();
  try {
    // Nothing changed since the informer listed, so this is the version its watch resumes from.
    const oldRv = ((await co.listNamespacedCustomObject(CR)) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    // Writes to another resource move the global resourceVersion past the informer's.
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'bump' } } });
    server.compactHistory();

    const events: { type: string; object: { code?: number; reason?: string } }[] = [];
    await new Promise<void>((resolve, reject) => {
      void new k8s.Watch(kc).watch(path, { resourceVersion: oldRv }, (type, object) => events.push({ type, object }),
        (err) => (err ? reject(err as Error) : resolve()));
    });
    assert.equal(events.length, 1);
    assert.equal(events[0]?.type, 'ERROR');
    assert.equal(events[0]?.object.code, 410);
    assert.equal(events[0]?.object.reason, 'Expired');

    // Objects created while the informer's watch is down must be picked up by the relist.
    server.closeWatches();
    await co.createNamespacedCustomObject({ ...CR, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup',
      metadata: { name: 'after-gone' }, spec: { etcd: {} } } });
    await waitFor('relist', () => lists >= 2 && added.includes('after-gone'));
  } finally {
    await informer.stop();
  }
});

test('watch streams JSON lines, honours timeoutSeconds, and 410s once history overflows', async () => {
  const small = await startKubeApiServer({ historyLimit: 2 });
  try {
    const startRv = (await (await fetch(`${small.url}/api/v1/namespaces/${NS}/configmaps`)).json() as { metadata: { resourceVersion: string } })
      .metadata.resourceVersion;
    const res = await fetch(`${small.url}/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=1&resourceVersion=${startRv}`);
    assert.equal(res.headers.get('transfer-encoding'), 'chunked');
    const cm = kubeConfigFor(small.url).makeApiClient(k8s.CoreV1Api);
    await cm.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'a' } } });
    await cm.patchNamespacedConfigMap({ namespace: NS, name: 'a', body: { data: { k: 'v' } } }, mergePatch);
    await cm.deleteNamespacedConfigMap({ namespace: NS, name: 'a' });
    // text() resolves only when the server ends the stream: timeoutSeconds does (nothing else closes it).
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: Obj });
    assert.deepEqual(lines.map((l) => `${l.type} ${l.object.metadata.name}`), ['ADDED a', 'MODIFIED a', 'DELETED a']);
    // The DELETED event carries the deletion's resourceVersion.
    assert.ok(Number(lines[2]?.object.metadata.resourceVersion) > Number(lines[1]?.object.metadata.resourceVersion));

    // Three events with a history of two: the start version has fallen out of the window.
    const gone = await (await fetch(`${small.url}/api/v1/namespaces/${NS}/configmaps?watch=1&resourceVersion=${startRv}`)).text();
    const ev = JSON.parse(gone.trim()) as { type: string; object: { kind: string; code: number; reason: string } };
    assert.deepEqual([ev.type, ev.object.kind, ev.object.code, ev.object.reason], ['ERROR', 'Status', 410, 'Expired']);
  } finally {
    await small.stop();
  }
});

test('leases: create, replace with resourceVersion, 409 when stale', async () => {
  const coord = kc.makeApiClient(k8s.CoordinationV1Api);
  const lease = await coord.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'etcd-backup-operator' },
    spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() } } });
  assert.equal(lease.spec?.holderIdentity, 'a');
  const renewed = await coord.replaceNamespacedLease({ name: 'etcd-backup-operator', namespace: NS,
    body: { ...lease, spec: { ...lease.spec, renewTime: new k8s.V1MicroTime() } } });
  assert.notEqual(renewed.metadata?.resourceVersion, lease.metadata?.resourceVersion);
  await assert.rejects(coord.replaceNamespacedLease({ name: 'etcd-backup-operator', namespace: NS,
    body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b' } } }), (e: unknown) => apiCode(e) === 409);
  assert.equal((await coord.readNamespacedLease({ name: 'etcd-backup-operator', namespace: NS })).spec?.holderIdentity, 'a');
});

test('events.k8s.io/v1 events are created and show in kubectl describe', async () => {
  const target = await getEb('x');
  const events = kc.makeApiClient(k8s.EventsV1Api);
  const body = (metadata: k8s.V1ObjectMeta): k8s.EventsV1Event => ({
    metadata, eventTime: new k8s.V1MicroTime(), reportingController: 'etcdbackup.io/operator',
    reportingInstance: 'operator-0', action: 'Backup', reason: 'FullSnapshotSucceeded', note: 'snapshot at revision 42',
    type: 'Normal', regarding: { apiVersion: `${GROUP}/${VERSION}`, kind: 'EtcdBackup', name: 'x', namespace: NS, uid: target.metadata.uid },
  });
  // As kube-apiserver 1.37: generateName is validated as a name prefix; one ending in '.' is refused.
  await assert.rejects(events.createNamespacedEvent({ namespace: NS, body: body({ generateName: 'x.' }) }),
    (e: unknown) => apiCode(e) === 422 && /metadata\.generateName: Invalid value: "x\."/.test(JSON.parse(String((e as { body?: unknown }).body)).message));
  const ev = await events.createNamespacedEvent({ namespace: NS, body: body({ generateName: 'x-' }) });
  assert.match(ev.metadata?.name ?? '', /^x-/);
  // Same storage as core/v1 events, converted (regarding -> involvedObject, note -> message).
  const coreEvents = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=x' });
  assert.equal(coreEvents.items[0]?.message, 'snapshot at revision 42');
  assert.match(await kubectlOk(['describe', 'eb', 'x']), /Normal\s+FullSnapshotSucceeded\s+.*snapshot at revision 42/);

  await assert.rejects(events.createNamespacedEvent({ namespace: NS, body: { metadata: { name: 'incomplete' }, type: 'Normal' } as unknown as k8s.EventsV1Event }),
    (e: unknown) => apiCode(e) === 422);
});

test('unknown paths and kinds get 404 Status JSON', async () => {
  for (const p of ['/nope', '/apis/nope.io/v1', '/apis/etcdbackup.io/v1alpha1/namespaces/default/widgets', '/openapi/v2']) {
    const res = await fetch(server.url + p);
    assert.equal(res.status, 404, p);
    const body = await res.json() as { kind: string; code: number; reason: string };
    assert.deepEqual([body.kind, body.code, body.reason], ['Status', 404, 'NotFound'], p);
  }
  const patch = await fetch(`${server.url}/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}/x`, {
    method: 'PATCH', headers: { 'Content-Type': 'application/strategic-merge-patch+json' }, body: '{}' });
  assert.equal(patch.status, 415, 'custom resources do not take strategic merge patches');
});

test('a restarted server on the same port keeps its state when given the old one', async () => {
  const first = await startKubeApiServer();
  const kc1 = kubeConfigFor(first.url);
  await kc1.makeApiClient(k8s.CoreV1Api).createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'kept' }, data: { a: 'b' } } });
  const { port } = first;
  const state = serverState(first);
  await first.stop();

  const second = await startKubeApiServer({ port, state });
  try {
    assert.equal(second.url, first.url);
    const cm = await kc1.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({ name: 'kept', namespace: NS });
    assert.deepEqual(cm.data, { a: 'b' });
  } finally {
    await second.stop();
  }
  const fresh = await startKubeApiServer({ port });
  try {
    await assert.rejects(kc1.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({ name: 'kept', namespace: NS }),
      (e: unknown) => apiCode(e) === 404);
  } finally {
    await fresh.stop();
  }
});

test('a server that is never stopped does not keep the process alive', async () => {
  const script = `
    import { startKubeApiServer } from ${JSON.stringify(new URL('../harness/kube-api-server.ts', import.meta.url).href)};
    const s = await startKubeApiServer();
    await (await fetch(s.url + '/version')).json();
  `;
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'ignore' });
    // A backstop so a hang fails instead of blocking the suite: a killed child has no exit code (null), not 0.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  assert.equal(code, 0, 'the child exited by itself');
});
