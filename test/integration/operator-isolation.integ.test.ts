/**
 * Several EtcdBackups in one operator (the Kubernetes API test server, real etcds, the operator in
 * this process): trouble in one EtcdBackup's worker restarts only that one, with a SupervisorCrashed
 * condition and Event, while the others keep archiving the revisions written after it; the broken
 * one catches up once restarted. The default model (inline) gets an exception thrown inside its
 * work; the process model gets SIGKILL, as the kernel's OOM killer would send.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Condition, EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import type { EtcdBackupController } from '../../src/controller/etcd-backup-controller.js';
import { DEFAULT_RUNNER_MODEL } from '../../src/controller/worker-protocol.js';
import { headRevision } from '../../src/etcd/client.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startInProcessOperator } from '../helpers/operator.js';
import { jsonLogLines } from '../helpers/operator-output.js';
import { localBackup } from '../helpers/local-backup.js';
import { waitFor } from '../helpers/wait.js';

const CR = { group: 'etcdbackup.io', version: 'v1alpha1', plural: 'etcdbackups' };
const NAMES = ['one', 'two', 'three'];

let api: KubeApiServer;
const etcds: TestEtcd[] = [];
let work: string;
before(async () => {
  api = await startKubeApiServer();
  etcds.push(...(await Promise.all(NAMES.map(() => startTestEtcd()))));
  work = await mkdtemp(join(tmpdir(), 'operator-isolation-'));
});
after(async () => {
  await Promise.allSettled([api?.stop(), ...etcds.map((e) => e.stop())]);
  if (work) await rm(work, { recursive: true, force: true });
});

/** node:test fails the running test on ANY uncaught exception, also one the operator routes to its worker. */
const nodeTestListeners = process.listeners('uncaughtException');

const cases = [
  { model: DEFAULT_RUNNER_MODEL, trouble: 'an exception in its work', expected: /injected fault: poisoned by the test/ },
  { model: 'process' as const, trouble: 'SIGKILL of its worker process', expected: /killed \(SIGKILL/ },
];

for (const { model, trouble, expected } of cases) test(`${model}: ${trouble} restarts only that EtcdBackup; the others keep archiving`, { timeout: 240_000 }, async () => {
  const namespace = `iso-${model}`;
  await mkdir(join(work, model), { recursive: true });
  const kubeconfig = await writeKubeconfig(join(work, model), api.url);
  await promisify(execFile)('kubectl', ['apply', '-f', join(REPO_ROOT, 'crds/')], { env: { ...process.env, KUBECONFIG: kubeconfig } });
  const kc = kubeConfigFor(api.url);
  const co = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  let controller: EtcdBackupController | undefined;
  const operator = startInProcessOperator({
    kubeconfig,
    namespace,
    runnerModel: model,
    onLeading: (term) => (controller = term),
    leaderElection: false,
    policy: { allowLocalStore: true },
    // A backoff long enough that the crash is seen in status before the restart.
    controller: { statusMinIntervalMs: 500, host: { restartBackoff: { initialMs: 5000, maxMs: 5000 } } },
  });
  const get = async (name: string) => (await co.getNamespacedCustomObject({ ...CR, namespace, name })) as EtcdBackup;
  const until = <T>(what: string, probe: () => Promise<T | undefined | false>) =>
    waitFor(what, probe, { timeoutMs: 120_000, intervalMs: 250, retryErrors: true, context: () => operator.log.slice(-10).join('\n') });
  const archived = (name: string, revision: number) => async () => ((await get(name)).status?.archivedRevision ?? -1) >= revision;
  const workers = (name: string) => jsonLogLines(operator.log, 'Started backup worker process').filter((l) => l.name === name);
  try {
    for (const [i, name] of NAMES.entries()) {
      await co.createNamespacedCustomObject({ ...CR, namespace, body: localBackup(name, namespace, etcds[i]!.clientUrl, join(work, model)) });
    }
    for (const name of NAMES) await until(`${name} Ready`, async () => (await get(name)).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

    const held = model === 'inline' ? nodeTestListeners.filter((l) => process.listeners('uncaughtException').includes(l)) : [];
    held.forEach((listener) => process.off('uncaughtException', listener));
    let crashed: Condition;
    try {
      if (model === 'process') process.kill(Number(workers('two')[0]!.pid), 'SIGKILL');
      else assert.equal(controller?.host.injectFault(`${namespace}/two`, 'poisoned by the test'), true);
      crashed = await until('two reports the crash', async () => {
        const ready = (await get('two')).status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.reason === 'SupervisorCrashed' ? ready : undefined;
      });
    } finally {
      held.forEach((listener) => process.on('uncaughtException', listener));
    }
    assert.match(crashed.message, expected);

    // Written after the kill, while two is down: one and three archive it.
    const heads = new Map<string, number>();
    for (const [i, name] of NAMES.entries()) {
      const client = etcds[i]!.client();
      for (let k = 0; k < 10; k++) await client.put(`after-kill/${k}`).value('v');
      heads.set(name, await headRevision(client));
    }
    for (const name of ['one', 'three']) await until(`${name} archives ${heads.get(name)}`, archived(name, heads.get(name)!));
    assert.equal(workers('one').length, 1, 'one was never restarted');
    assert.equal(workers('three').length, 1, 'three was never restarted');

    await until('two restarts and archives what was written meanwhile', archived('two', heads.get('two')!));
    assert.equal(workers('two').length, 2);
    const events = await core.listNamespacedEvent({ namespace });
    const crashEvents = events.items.filter((e) => e.reason === 'SupervisorCrashed');
    assert.deepEqual([...new Set(crashEvents.map((e) => e.involvedObject?.name))], ['two']);
  } finally {
    await operator.stop();
  }
});
