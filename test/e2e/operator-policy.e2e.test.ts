/**
 * An EtcdBackup author does not gain the operator's privileges (issue 14, defect 3): with the
 * operator's default flags, a spec that would run a foreign image with Secrets mounted, borrow the
 * operator's cloud identity or filesystem, or send credentials over plain http ends as
 * SpecValid=False naming the field and the flag; nothing runs, no Secret is read, and
 * deletionPolicy Delete of such a spec deletes nothing. The operator runs in-process against the
 * Kubernetes API test server (nothing here reaches etcd or S3: each spec is refused first).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { EtcdBackup, EtcdBackupSpec } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { workerName } from '../../src/controller/pod-runner.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { secretReadRecorder, startInProcessOperator, type InProcessOperator } from '../helpers/operator.js';
import { waitFor as poll } from '../helpers/wait.js';

const NS = 'default';
const CR = { group: 'etcdbackup.io', version: 'v1alpha1', namespace: NS, plural: 'etcdbackups' };
const IMAGE = 'registry.example/etcd-backup:test';
const ETCD = 'https://etcd.example:2379';

let work: string;
let kubeconfig: string;
let api: KubeApiServer;
let co: CustomObjectsApi;
let apps: AppsV1Api;
let operator: InProcessOperator | undefined;
const secretReads = secretReadRecorder();

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> =>
  poll(what, probe, { timeoutMs: 30_000, intervalMs: 200, retryErrors: true, context: () => (operator?.log ?? []).slice(-10).join('\n') });
const kubectl = (...args: string[]) => promisify(execFile)('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfig } });

async function create(name: string, spec: Partial<EtcdBackupSpec>): Promise<void> {
  await co.createNamespacedCustomObject({
    ...CR,
    body: { apiVersion: 'etcdbackup.io/v1alpha1', kind: 'EtcdBackup', metadata: { name }, spec: { etcd: { endpoints: [ETCD] }, ...spec } },
  });
}

async function refusal(name: string): Promise<string> {
  const obj = await waitFor(`SpecValid=False on ${name}`, async () => {
    const backup = (await co.getNamespacedCustomObject({ ...CR, name })) as EtcdBackup;
    return backup.status?.conditions?.some((c) => c.type === 'SpecValid' && c.status === 'False') ? backup : undefined;
  });
  assert.equal(obj.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'InvalidSpec');
  return obj.status!.conditions!.find((c) => c.type === 'SpecValid')!.message;
}

describe("EtcdBackup authors do not gain the operator's privileges (default flags)", { timeout: 120_000 }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'operator-policy-e2e-'));
    api = await startKubeApiServer({ onRequest: secretReads.onRequest });
    kubeconfig = await writeKubeconfig(work, api.url);
    const kc = kubeConfigFor(api.url);
    co = kc.makeApiClient(CustomObjectsApi);
    apps = kc.makeApiClient(AppsV1Api);
    await kubectl('apply', '-f', join(REPO_ROOT, 'crds/'));
    await kubectl('create', 'secret', 'generic', 's3-creds', '--from-literal=accessKeyId=AKIA', '--from-literal=secretAccessKey=not-to-leak');

    operator = startInProcessOperator({ kubeconfig, namespace: NS, leaderElection: false, workerImage: IMAGE });
  });

  after(async () => {
    await operator?.stop();
    await api?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test('runner pod with an image outside the allow-list: refused, no Deployment', async () => {
    await create('foreign-image', {
      runner: 'pod',
      pod: { image: 'evil.example/miner:latest' },
      store: { s3: { bucket: 'backups', endpoint: 'https://s3.example', credentialsSecretRef: { name: 's3-creds' } } },
    });
    assert.match(await refusal('foreign-image'), /spec\.pod\.image: "evil\.example\/miner:latest" is not allowed.*--allowed-worker-images/);
    await assert.rejects(apps.readNamespacedDeployment({ namespace: NS, name: workerName('foreign-image') }), (err: { code?: number }) => err.code === 404);
  });

  test("S3 without credentials (the operator's ambient identity): refused", async () => {
    await create('ambient', { store: { s3: { bucket: 'backups', endpoint: 'https://s3.example' } } });
    assert.match(await refusal('ambient'), /spec\.store\.s3\.credentialsSecretRef: required.*--allow-ambient-credentials/);
  });

  test('credentials to plain-http endpoints: refused unless insecure: true; the Secret is not read', async () => {
    await create('plain-s3', {
      store: { s3: { bucket: 'backups', endpoint: 'http://collector.example', credentialsSecretRef: { name: 's3-creds' } } },
    });
    assert.match(await refusal('plain-s3'), /spec\.store\.s3\.credentialsSecretRef: .*http:\/\/collector\.example without TLS.*insecure: true/);
    await create('plain-etcd', {
      etcd: { endpoints: ['http://etcd.example:2379'], credentialsSecretRef: { name: 's3-creds' } },
      store: { s3: { bucket: 'backups', endpoint: 'https://s3.example', credentialsSecretRef: { name: 's3-creds' } } },
    });
    assert.match(await refusal('plain-etcd'), /spec\.etcd\.credentialsSecretRef: the password would be sent unencrypted.*spec\.etcd\.insecure: true/);
    // Every spec so far was refused before its Secrets were resolved.
    assert.deepEqual(secretReads.reads, []);
  });

  test("a local store (the operator's filesystem): refused; deletionPolicy Delete then deletes nothing", async () => {
    const dir = join(work, 'someone-elses-backups');
    await mkdir(join(dir, 'full'), { recursive: true });
    await writeFile(join(dir, 'full', '00000000000000000042-1700000000.db.gz'), 'not ours to delete');
    await create('local', { store: { local: { path: dir } }, deletionPolicy: 'Delete' });
    assert.match(await refusal('local'), /spec\.store\.local: not allowed.*--allow-local-store/);
    await co.deleteNamespacedCustomObject({ ...CR, name: 'local' });
    await waitFor('the EtcdBackup to be gone', async () =>
      co.getNamespacedCustomObject({ ...CR, name: 'local' }).then(
        () => false,
        (err: { code?: number }) => err.code === 404,
      ),
    );
    assert.deepEqual(await readdir(join(dir, 'full')), ['00000000000000000042-1700000000.db.gz']);
    assert.deepEqual(operator!.logged('Started backup worker'), [], 'no refused spec ever ran');
  });
});
