import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, V1MicroTime } from '@kubernetes/client-node';
import { LeaderElector } from '../../src/controller/leader-election.js';
import { silentLogger } from '../../src/observability/logger.js';
import { serverState, startKubeApiServer, type KubeApiServer } from '../harness/kube-api-server.js';
import { kubeConfigFor } from '../harness/kubeconfig.js';
import { waitFor as poll } from '../helpers/wait.js';

let api: KubeApiServer;
before(async () => {
  api = await startKubeApiServer();
});
after(async () => {
  await api.stop();
});

const timings = { leaseDurationMs: 2000, renewDeadlineMs: 1200, retryPeriodMs: 200 };

function candidate(identity: string, name: string, overrides: Partial<typeof timings> = {}) {
  const elector = new LeaderElector(kubeConfigFor(api.url), { namespace: 'default', name, identity, logger: silentLogger(), ...timings, ...overrides });
  const log: string[] = [];
  /** When each callback ran (ms since the epoch), to compare with the Lease's own times. */
  const at: Record<string, number> = {};
  const running = elector.run({
    onStartedLeading: () => {
      log.push('started');
      at.started = Date.now();
    },
    onStoppedLeading: () => {
      log.push('stopped');
      at.stopped = Date.now();
    },
  });
  return { elector, log, at, running };
}

const waitFor = (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<true> =>
  poll(what, () => predicate(), { timeoutMs, intervalMs: 20 });

test('one leader at a time; release hands over at once', async () => {
  // A lease of 10 minutes: b can only take over this test's lease because a released it.
  const long = { leaseDurationMs: 600_000 };
  const a = candidate('a', 'lease-1', long);
  await waitFor('a to lead', () => a.elector.isLeader());
  const b = candidate('b', 'lease-1', long);
  await sleep(1000);
  assert.equal(b.elector.isLeader(), false, 'b must not lead while a renews');
  const lease = await kubeConfigFor(api.url).makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: 'lease-1' });
  assert.equal(lease.spec?.holderIdentity, 'a');

  await a.elector.stop();
  await waitFor('b to lead', () => b.elector.isLeader(), 60_000);
  const taken = await kubeConfigFor(api.url).makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: 'lease-1' });
  assert.equal(taken.spec?.holderIdentity, 'b');
  // Leader from before a's 10-minute lease could have run out: the release handed it over.
  const aRenewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
  assert.ok(b.at.started! < aRenewed + long.leaseDurationMs, 'b led before the lease a held expired');
  assert.deepEqual(a.log, ['started', 'stopped']);
  await b.elector.stop();
  await Promise.all([a.running, b.running]);
});

test('a holder that stops renewing (crash) is replaced after the lease duration', async () => {
  const kc = kubeConfigFor(api.url);
  // A "crashed" holder: a Lease renewed once, long ago from the candidate's point of view.
  await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({
    namespace: 'default',
    body: { metadata: { name: 'lease-2' }, spec: { holderIdentity: 'dead', leaseDurationSeconds: 2, renewTime: new V1MicroTime() } },
  });
  const started = Date.now();
  const b = candidate('b', 'lease-2');
  await waitFor('b to take over', () => b.elector.isLeader());
  const waited = Date.now() - started;
  assert.ok(waited >= 1800, `took over after ${waited}ms, before the lease expired`);
  const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: 'lease-2' });
  assert.equal(lease.spec?.holderIdentity, 'b');
  assert.equal(lease.spec?.leaseTransitions, 1);
  await b.elector.stop();
});

test('losing the API server stops leading within the renew deadline', async () => {
  // The renew deadline (1.2 s) well inside the lease (10 s): stopping must come before the lease runs out.
  const a = candidate('a', 'lease-3', { leaseDurationMs: 10_000 });
  await waitFor('a to lead', () => a.elector.isLeader());
  const port = api.port;
  const state = serverState(api);
  await api.stop();
  // The Lease as the stopped server holds it: a's last renewal. Nobody may take over before it expires.
  const held = await (async () => {
    const probe = await startKubeApiServer({ state });
    try {
      return await kubeConfigFor(probe.url).makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: 'lease-3' });
    } finally {
      await probe.stop();
    }
  })();
  await waitFor('a to stop leading', () => a.log.includes('stopped'), 30_000);
  const expires = new Date(held.spec!.renewTime!).getTime() + held.spec!.leaseDurationSeconds! * 1000;
  assert.ok(a.at.stopped! < expires, `a stopped leading ${a.at.stopped! - expires} ms after its lease expired: two leaders were possible`);
  api = await startKubeApiServer({ port, state });
  await waitFor('a to lead again', () => a.log.filter((e) => e === 'started').length === 2);
  await a.elector.stop();
});
