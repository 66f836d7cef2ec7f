/**
 * Admission of budgets on the reconcile path (real etcd, the Kubernetes API test server, the operator
 * in this process with its default runner model): with memory for one worker only, the second
 * EtcdBackup is not started and says why (Ready=False and Stalled=True, reason
 * BudgetExceedsOperatorMemory, and a Warning Event); deleting the first makes room and the second
 * starts and becomes Ready.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Condition, EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { WORKER_OVERHEAD_BYTES } from '../../src/controller/memory-admission.js';
import { DEFAULT_RUNNER_MODEL } from '../../src/controller/worker-protocol.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startInProcessOperator } from '../helpers/operator.js';
import { localBackup } from '../helpers/local-backup.js';
import { waitFor } from '../helpers/wait.js';

const NS = 'default';
const CR = { group: 'etcdbackup.io', version: 'v1alpha1', namespace: NS, plural: 'etcdbackups' };
const MiB = 2 ** 20;
const BUDGET = 64 * MiB;
const BASE = 100 * MiB;

let api: KubeApiServer;
let etcd: TestEtcd;
let work: string;
before(async () => {
  [api, etcd] = await Promise.all([startKubeApiServer(), startTestEtcd()]);
  work = await mkdtemp(join(tmpdir(), 'memory-admission-'));
});
after(async () => {
  await Promise.allSettled([api?.stop(), etcd?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

test('a budget that does not fit the operator memory is refused with a condition, and admitted once room is made', { timeout: 180_000 }, async () => {
  const kubeconfig = await writeKubeconfig(work, api.url);
  await promisify(execFile)('kubectl', ['apply', '-f', join(REPO_ROOT, 'crds/')], { env: { ...process.env, KUBECONFIG: kubeconfig } });
  const kc = kubeConfigFor(api.url);
  const co = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  // Room for one worker (budget + the default model's overhead) and half of another.
  const oneWorker = BUDGET + WORKER_OVERHEAD_BYTES[DEFAULT_RUNNER_MODEL];
  const operator = startInProcessOperator({
    kubeconfig,
    namespace: NS,
    leaderElection: false,
    policy: { allowLocalStore: true },
    memory: { limitBytes: BASE + oneWorker + oneWorker / 2, baseBytes: BASE },
    controller: { statusMinIntervalMs: 500 },
  });
  const condition = async (name: string, type: string): Promise<Condition | undefined> => {
    const obj = (await co.getNamespacedCustomObject({ ...CR, name })) as EtcdBackup;
    return obj.status?.conditions?.find((c) => c.type === type);
  };
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>) =>
    waitFor(what, probe, { timeoutMs: 90_000, intervalMs: 250, retryErrors: true, context: () => operator.log.slice(-10).join('\n') });
  try {
    await co.createNamespacedCustomObject({ ...CR, body: localBackup('first', NS, etcd.clientUrl, work, '64Mi') });
    await until('first Ready', async () => (await condition('first', 'Ready'))?.status === 'True');

    await co.createNamespacedCustomObject({ ...CR, body: localBackup('second', NS, etcd.clientUrl, work, '64Mi') });
    const refused = await until('second refused', async () => {
      const ready = await condition('second', 'Ready');
      return ready?.reason === 'BudgetExceedsOperatorMemory' ? ready : undefined;
    });
    assert.equal(refused.status, 'False');
    const mib = (bytes: number) => Math.round(bytes / MiB);
    const limit = BASE + oneWorker + oneWorker / 2;
    assert.match(refused.message, new RegExp(`needs ${mib(oneWorker)} MiB .* has ${mib(oneWorker / 2)} MiB left of its ${mib(limit)} MiB memory limit`));
    assert.equal((await condition('second', 'Stalled'))?.reason, 'BudgetExceedsOperatorMemory');
    const events = await until('the Warning Event', async () => {
      const list = await core.listNamespacedEvent({ namespace: NS });
      const found = list.items.filter((e) => e.reason === 'BudgetExceedsOperatorMemory' && e.involvedObject?.name === 'second');
      return found.length > 0 ? found : undefined;
    });
    assert.equal(events[0]!.type, 'Warning');
    assert.equal(operator.logged('Started backup worker process').length, 1, 'no worker was started for the refused one');

    await co.deleteNamespacedCustomObject({ ...CR, name: 'first' });
    await until('second Ready once first is gone', async () => (await condition('second', 'Ready'))?.status === 'True');
    assert.equal(operator.logged('Started backup worker process').length, 2);
  } finally {
    await operator.stop();
  }
});
