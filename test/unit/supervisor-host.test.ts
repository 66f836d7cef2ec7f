import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SupervisorConfig, SupervisorEvent } from '../../src/engine/supervisor-types.js';
import { SupervisorHost } from '../../src/controller/supervisor-host.js';
import { silentLogger } from '../../src/observability/logger.js';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { waitFor as poll } from '../helpers/wait.js';

const worker = { modulePath: fileURLToPath(new URL('../fixtures/fake-supervisor-worker.ts', import.meta.url)), execArgv: ['--import', 'tsx'] };

function config(name: string): SupervisorConfig {
  const result = validateEtcdBackup({
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name: 'x' },
    spec: { etcd: { endpoints: ['http://127.0.0.1:2379'] }, store: { local: { path: '/tmp/x' } }, memory: { budget: '64Mi' } },
  });
  assert.ok(result.ok);
  return {
    resolved: result.resolved,
    secrets: { etcdAuth: { username: 'u', password: 'pw-' + Math.random().toString(36).slice(2) }, etcdTls: { ca: Buffer.from('CA') } },
    name,
  };
}

function recordingHost(options: Partial<ConstructorParameters<typeof SupervisorHost>[0]> = {}) {
  const log = { changes: 0, crashes: [] as string[], events: [] as SupervisorEvent[], started: 0 };
  const host = new SupervisorHost({
    logger: silentLogger(),
    // The fake worker speaks the protocol over a forked process's IPC channel.
    model: 'process',
    worker,
    restartBackoff: { initialMs: 50, maxMs: 200 },
    stopTimeoutMs: 2000,
    listener: {
      onChange: () => log.changes++,
      onReport: () => undefined,
      onEvent: (_key, event) => log.events.push(event),
      onCrash: (_key, message) => log.crashes.push(message),
      onStarted: () => log.started++,
    },
    ...options,
  });
  return { host, log };
}

const waitFor = (what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<true> =>
  poll(what, () => predicate(), { timeoutMs, intervalMs: 20 });

test('runs a worker: config and Buffers over IPC only, heap capped at budget + base, events forwarded', async () => {
  const { host, log } = recordingHost({ baseHeapMb: 100 });
  try {
    await host.ensure('ns/a', config('ok'), 'h1');
    await waitFor('running', () => host.state('ns/a').phase === 'Running' && log.events.length > 0);
    const state = host.state('ns/a');
    assert.equal(state.phase, 'Running');
    assert.equal(state.phase === 'Running' && state.report?.archivedRevision, 42, 'Buffer arrived, secret not in argv/env');
    assert.equal(state.phase === 'Running' && state.report?.etcdRevision, 64 + 100, 'heap = budget MiB + base');
    assert.equal(log.events[0]?.reason, 'FullSnapshotTaken');
    // Same hash: nothing happens.
    const started = log.started;
    await host.ensure('ns/a', config('ok'), 'h1');
    assert.equal(log.started, started);
  } finally {
    await host.stopAll();
  }
  assert.equal(host.state('ns/a').phase, 'Stopped');
});

test('a new config hash replaces the worker; never two at once', async () => {
  const { host, log } = recordingHost();
  try {
    await host.ensure('ns/a', config('ok'), 'h1');
    await waitFor('first start', () => log.started === 1);
    await host.ensure('ns/a', config('ok'), 'h2');
    await waitFor('second start', () => log.started === 2);
    assert.equal(host.hashOf('ns/a'), 'h2');
    assert.deepEqual(log.crashes, [], 'a requested stop is not a crash');
  } finally {
    await host.stopAll();
  }
});

test('a crashing worker is restarted with backoff and reported', async () => {
  const { host, log } = recordingHost();
  try {
    await host.ensure('ns/c', config('crash-after-start'), 'h');
    await waitFor('two crashes', () => log.crashes.length >= 2);
    const state = host.state('ns/c');
    assert.equal(state.phase === 'CrashLoop' || state.phase === 'Starting' || state.phase === 'Running', true);
    assert.match(log.crashes[0]!, /exited with code 3/);
    await waitFor('crash loop state', () => host.state('ns/c').phase === 'CrashLoop');
    const crashed = host.state('ns/c');
    assert.ok(crashed.phase === 'CrashLoop' && crashed.restarts >= 2 && crashed.nextRestartTime);
  } finally {
    await host.stopAll();
  }
});

test('a start failure carries its reason into the crash message', async () => {
  const { host, log } = recordingHost();
  try {
    await host.ensure('ns/f', config('fail-start'), 'h');
    await waitFor('crash', () => log.crashes.length >= 1);
    assert.match(log.crashes[0]!, /EtcdUnavailable: cannot reach etcd at http:\/\/127\.0\.0\.1:1 \(worker exited with code 1\)/);
  } finally {
    await host.stopAll();
  }
});

test('a worker that ignores stop is killed after the timeout', async () => {
  const { host, log } = recordingHost({ stopTimeoutMs: 300 });
  await host.ensure('ns/s', config('ignore-stop'), 'h');
  await waitFor('start', () => log.started === 1);
  const started = Date.now();
  await host.stop('ns/s');
  const took = Date.now() - started;
  // stop() resolving at all proves the kill (the worker never exits by itself); the lower bound that it waited.
  assert.ok(took >= 250, `stop took ${took}ms: killed before the timeout`);
  assert.equal(host.state('ns/s').phase, 'Stopped');
});
