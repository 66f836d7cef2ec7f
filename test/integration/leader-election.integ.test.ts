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

function candidate(identity: string, name: string) {
  const elector = new LeaderElector(kubeConfigFor(api.url), { namespace: 'default', name, identity, logger: silentLogger(), ...timings });
  const log: string[] = [];
  const running = elector.run({
    onStartedLeading: () => log.push('started'),
    onStoppedLeading: () => log.push('stopped'),
  });
  return { elector, log, running };
}

const waitFor = (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<true> =>
  poll(what, () => predicate(), { timeoutMs, intervalMs: 20 });

test('one leader at a time; release hands over at once', async () => {
  const a = candidate('a', 'lease-1');
  await waitFor('a to lead', () => a.elector.isLeader());
  const b = candidate('b', 'lease-1');
  await sleep(1000);
  assert.equal(b.elector.isLeader(), false, 'b must not lead while a renews');
  const lease = await kubeConfigFor(api.url).makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: 'default', name: 'lease-1' });
  assert.equal(lease.spec?.holderIdentity, 'a');

  const released = Date.now();
  await a.elector.stop();
  await waitFor('b to lead', () => b.elector.isLeader());
  // Released Leases last 1 s: b takes over well before a full lease duration would pass.
  assert.ok(Date.now() - released < 1900, `handover took ${Date.now() - released}ms`);
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
  const a = candidate('a', 'lease-3');
  await waitFor('a to lead', () => a.elector.isLeader());
  const port = api.port;
  const state = serverState(api);
  await api.stop();
  const lost = Date.now();
  await waitFor('a to stop leading', () => a.log.includes('stopped'), 5000);
  assert.ok(Date.now() - lost < timings.leaseDurationMs + 500, 'stopped before anybody else could take over');
  api = await startKubeApiServer({ port, state });
  await waitFor('a to lead again', () => a.log.filter((e) => e === 'started').length === 2);
  await a.elector.stop();
});
