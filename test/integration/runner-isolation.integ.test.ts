/**
 * One EtcdBackup's trouble stays its own, in every runner model (runner-models.ts): three
 * EtcdBackups of a real etcd run in one SupervisorHost; one of them throws from inside its work, or
 * (thread and process) leaks until its heap cap ends it (the worker protocol's fault injection, as a
 * bug would). Only that one is reported as crashed and
 * restarted with backoff; the other two keep archiving the revisions written after the fault, and
 * the restarted one catches up with them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import { validateEtcdBackup } from '../../src/api/validate.js';
import { RUNNER_MODELS } from '../../src/controller/runner-models.js';
import { SupervisorHost } from '../../src/controller/supervisor-host.js';
import type { SupervisorConfig } from '../../src/engine/supervisor-types.js';
import { headRevision } from '../../src/etcd/client.js';
import { silentLogger } from '../../src/observability/logger.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { localBackup } from '../helpers/local-backup.js';
import { waitFor } from '../helpers/wait.js';

let etcd: TestEtcd;
let work: string;

before(async () => {
  etcd = await startTestEtcd();
  work = await mkdtemp(join(tmpdir(), 'runner-isolation-'));
});

after(async () => {
  await etcd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function configFor(key: string, storeRoot: string): SupervisorConfig {
  const [namespace = '', name = ''] = key.split('/');
  const validation = validateEtcdBackup(localBackup(name, namespace, etcd.clientUrl, storeRoot));
  assert.ok(validation.ok, JSON.stringify(validation));
  return { resolved: validation.resolved, secrets: {}, name: key };
}

/** The uncaughtException listeners that are not the operator's (installed before any inline worker ran). */
const nodeTestListeners = process.listeners('uncaughtException');
const runnerListeners = () => nodeTestListeners.filter((listener) => process.listeners('uncaughtException').includes(listener));

const cases = [
  ...RUNNER_MODELS.map((model) => ({ model, kind: 'exception' as const, trouble: 'an exception', expected: /injected fault: poisoned by the test/ })),
  // Inline shares the operator's heap: nothing but the process's own limit caps it (docs/architecture.md).
  { model: 'thread' as const, kind: 'heap' as const, trouble: 'a runaway heap', expected: /out of memory/i },
  { model: 'process' as const, kind: 'heap' as const, trouble: 'a runaway heap', expected: /SIGABRT|SIGKILL|out of memory/ },
];

for (const { model, kind, trouble, expected } of cases) {
  test(`${model}: ${trouble} in one EtcdBackup's work restarts only that one; the others keep archiving`, { timeout: 180_000 }, async () => {
    const reports = new Map<string, SupervisorReport>();
    const crashes: Array<{ key: string; message: string }> = [];
    const starts = new Map<string, number>();
    const host = new SupervisorHost({
      logger: silentLogger(),
      model,
      restartBackoff: { initialMs: 500, maxMs: 2000 },
      listener: {
        onChange: () => undefined,
        onReport: (key, report) => reports.set(key, report),
        onEvent: () => undefined,
        onCrash: (key, message) => crashes.push({ key, message }),
        onStarted: (key) => starts.set(key, (starts.get(key) ?? 0) + 1),
      },
    });
    const keys = ['iso/a', 'iso/b', 'iso/c'];
    const client = etcd.client();
    const archivedAtLeast = (key: string, revision: number) => (reports.get(key)?.archivedRevision ?? -1) >= revision;
    try {
      for (const key of keys) await host.ensure(key, configFor(key, join(work, `${model}-${kind}`)), 'h1');
      await client.put(`${model}/${kind}/before`).value('x');
      const before = await headRevision(client);
      for (const key of keys) await waitFor(`${key} archives revision ${before}`, () => archivedAtLeast(key, before), { timeoutMs: 60_000 });

      // node:test fails the running test on ANY uncaught exception, also one the operator's own
      // handler (inline: runner-models.ts routes it to its worker) deals with; hold the runner's off.
      const testRunnerListeners = model === 'inline' ? runnerListeners() : [];
      for (const listener of testRunnerListeners) process.off('uncaughtException', listener);
      try {
        assert.equal(host.injectFault('iso/b', 'poisoned by the test', kind), true);
        await waitFor('the crash of iso/b', () => crashes.length > 0, { timeoutMs: 60_000 });
      } finally {
        for (const listener of testRunnerListeners) process.on('uncaughtException', listener);
      }
      assert.deepEqual(crashes.map((c) => c.key), ['iso/b'], 'only the poisoned EtcdBackup crashed');
      assert.match(crashes[0]!.message, expected);
      assert.equal(host.state('iso/b').phase, 'CrashLoop');

      // Written after the fault: the others archive it while iso/b is down or restarting.
      for (let i = 0; i < 20; i++) await client.put(`${model}/${kind}/after/${i}`).value('y'.repeat(100));
      const afterFault = await headRevision(client);
      for (const key of ['iso/a', 'iso/c']) {
        await waitFor(`${key} archives revision ${afterFault}`, () => archivedAtLeast(key, afterFault), { timeoutMs: 60_000 });
      }
      assert.equal(starts.get('iso/a'), 1, 'iso/a was never restarted');
      assert.equal(starts.get('iso/c'), 1, 'iso/c was never restarted');

      await waitFor('iso/b restarts', () => starts.get('iso/b') === 2 && host.state('iso/b').phase === 'Running', { timeoutMs: 60_000 });
      await waitFor(`iso/b catches up to ${afterFault}`, () => archivedAtLeast('iso/b', afterFault), { timeoutMs: 60_000 });
      assert.deepEqual(crashes.map((c) => c.key), ['iso/b']);
    } finally {
      await host.stopAll();
    }
  });
}
