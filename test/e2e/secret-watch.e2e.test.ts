/**
 * The operator reads and watches only the Secrets an EtcdBackup references (issue 14, defect 4):
 * the Kubernetes API test server records every request, and no request of the operator may read
 * a Secret that no EtcdBackup names (no cluster-wide list, no unfiltered watch, no get). A rotated
 * referenced Secret still restarts the worker, through the per-Secret watch alone (the periodic
 * resync and the Secret retry are far longer than the test).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { secretReadRecorder, startInProcessOperator, type InProcessOperator } from '../helpers/operator.js';
import { waitFor as poll } from '../helpers/wait.js';

const NS = 'default';
const CR = { group: 'etcdbackup.io', version: 'v1alpha1', namespace: NS, plural: 'etcdbackups' };
const KEY_SECRET = 'backup-key';
const UNRELATED = 'unrelated-tls';

let work: string;
let kubeconfig: string;
let etcd: TestEtcd;
let api: KubeApiServer;
let co: CustomObjectsApi;
let operator: InProcessOperator | undefined;
const secretReads = secretReadRecorder();

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>): Promise<T> =>
  poll(what, probe, { timeoutMs: 60_000, intervalMs: 200, retryErrors: true, context: () => (operator?.log ?? []).slice(-10).join('\n') });

const kubectl = (...args: string[]) => promisify(execFile)('kubectl', args, { env: { ...process.env, KUBECONFIG: kubeconfig } });
const hexKey = (digit: string) => digit.repeat(64);

describe('Secrets: only referenced ones are read and watched', { timeout: 120_000 }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'secret-watch-e2e-'));
    [etcd, api] = await Promise.all([
      startTestEtcd(),
      startKubeApiServer({ onRequest: secretReads.onRequest }),
    ]);
    kubeconfig = await writeKubeconfig(work, api.url);
    co = kubeConfigFor(api.url).makeApiClient(CustomObjectsApi);
    await kubectl('apply', '-f', join(REPO_ROOT, 'crds/'));
    await kubectl('create', 'secret', 'generic', KEY_SECRET, `--from-literal=key=${hexKey('a')}`);
    await kubectl('create', 'secret', 'generic', UNRELATED, '--from-literal=tls.key=not-for-the-operator');

    operator = startInProcessOperator({
      kubeconfig,
      namespace: NS,
      leaderElection: false,
      policy: { allowLocalStore: true },
      // Only the Secret watch can notice the rotation within the test.
      controller: { resyncIntervalMs: 3_600_000, secretRetry: { initialMs: 3_600_000, maxMs: 3_600_000 } },
    });
  });

  after(async () => {
    await operator?.stop();
    await Promise.allSettled([etcd?.stop(), api?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  test('a rotated referenced Secret restarts the worker; no unreferenced Secret is ever read', async () => {
    await co.createNamespacedCustomObject({
      ...CR,
      body: {
        apiVersion: 'etcdbackup.io/v1alpha1',
        kind: 'EtcdBackup',
        metadata: { name: 'main' },
        spec: {
          etcd: { endpoints: [etcd.clientUrl] },
          store: { local: { path: join(work, 'store') } },
          fullSnapshot: { schedule: '0 0 1 1 *' },
          deltaSnapshot: { period: '1s' },
          encryption: { keySecretRef: { name: KEY_SECRET } },
        },
      },
    });
    await waitFor('Ready', async () => {
      const obj = (await co.getNamespacedCustomObject({ ...CR, name: 'main' })) as EtcdBackup;
      return obj.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    });
    assert.equal(operator!.logged('Started backup worker').length, 1);

    const rotated = Buffer.from(hexKey('b')).toString('base64');
    await kubectl('patch', 'secret', KEY_SECRET, '--type', 'merge', '-p', JSON.stringify({ data: { key: rotated } }));
    await waitFor('the worker restarted on the rotated key', async () => operator!.logged('Restarted backup worker').length === 1);

    assert.ok(secretReads.reads.length > 0, 'the operator read the referenced Secret');
    const unrelated = secretReads.reads.filter((url) => !url.includes(`/secrets/${KEY_SECRET}`) && !url.includes(`metadata.name%3D${KEY_SECRET}`));
    assert.deepEqual(unrelated, [], 'every Secret read names the referenced Secret');
  });
});
