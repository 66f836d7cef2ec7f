/**
 * After the leader Lease is lost, the old leader's workers stop before another operator can acquire
 * it (issue 14, defect 10a). Operator A runs in-process against the Kubernetes API test server
 * through a TCP proxy the test cuts; its worker (the fake worker fixture) ignores the stop request,
 * as a worker stuck in an upload would, and the host's normal stop timeout is long. Operator B's
 * elector campaigns on the same Lease directly. When B acquires the Lease, A's worker process must
 * already be gone: the order of the two events is the assertion, not a duration.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/controller/leader-election.js';
import { silentLogger } from '../../src/observability/logger.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor, writeKubeconfig } from '../harness/kubeconfig.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { startInProcessOperator } from '../helpers/operator.js';
import { isAlive as alive } from '../helpers/operator-output.js';
import { waitFor } from '../helpers/wait.js';

const NS = 'default';
const LEASE = 'leader-loss-test';
const timings = { leaseDurationMs: 4000, renewDeadlineMs: 2000, retryPeriodMs: 300 };
const worker = { modulePath: fileURLToPath(new URL('../fixtures/fake-supervisor-worker.ts', import.meta.url)), execArgv: ['--import', 'tsx'] };

/** A TCP proxy to the API server that the test can cut: open connections die, new ones are dropped. */
async function startCuttableProxy(port: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) return client.destroy();
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  const { port: proxyPort } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let api: KubeApiServer;
let work: string;
before(async () => {
  api = await startKubeApiServer();
  work = await mkdtemp(join(tmpdir(), 'leader-loss-'));
});
after(async () => {
  await api?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test("a lost Lease kills the old leader's workers before another operator can acquire it", { timeout: 120_000 }, async () => {
  const proxy = await startCuttableProxy(api.port);
  const kubeconfig = await writeKubeconfig(work, proxy.url);
  const direct = join(work, 'direct');
  await mkdir(direct);
  await promisify(execFile)('kubectl', ['apply', '-f', join(REPO_ROOT, 'crds/')], { env: { ...process.env, KUBECONFIG: await writeKubeconfig(direct, api.url) } });
  const operatorA = startInProcessOperator({
    kubeconfig,
    namespace: NS,
    identity: 'a',
    leaseName: LEASE,
    leaseNamespace: NS,
    leaseTimings: timings,
    policy: { allowLocalStore: true },
    // A worker that ignores "stop" is killed only after a minute on a normal stop.
    controller: { host: { model: 'process', worker, stopTimeoutMs: 60_000 } },
  });
  let b: LeaderElector | undefined;
  try {
    await kubeConfigFor(api.url).makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: 'etcdbackup.io',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'etcdbackups',
      body: {
        apiVersion: 'etcdbackup.io/v1alpha1',
        kind: 'EtcdBackup',
        metadata: { name: 'ignore-stop' },
        spec: { etcd: { endpoints: ['http://127.0.0.1:1'] }, store: { local: { path: join(work, 'store') } } },
      },
    });
    const started = await waitFor('A to start its worker', () => operatorA.logged('Started backup worker process')[0], { timeoutMs: 60_000 });
    const pid = Number((JSON.parse(started) as { pid: number }).pid);
    assert.ok(alive(pid));

    let workerAliveWhenBLed: boolean | undefined;
    b = new LeaderElector(kubeConfigFor(api.url), { namespace: NS, name: LEASE, identity: 'b', logger: silentLogger(), ...timings });
    void b.run({ onStartedLeading: () => (workerAliveWhenBLed ??= alive(pid)), onStoppedLeading: () => undefined });
    proxy.cut();
    await waitFor('B to acquire the Lease', () => workerAliveWhenBLed !== undefined, { timeoutMs: 60_000 });
    assert.equal(workerAliveWhenBLed, false, "A's worker was still running when B acquired the Lease");
  } finally {
    await b?.stop();
    await operatorA.stop();
    await proxy.close();
  }
});
