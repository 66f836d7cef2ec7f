/**
 * kstatus, Flux's healthCheckExprs (config/flux/kustomization.yaml, evaluated as CEL) and Argo CD's
 * config/argocd/health.lua (run by the real lua5.1) over statuses the operator's computeStatus writes.
 * The operator e2e runs the same three over every status it observes (test/e2e/operator.e2e.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import type { EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';
import { computeStatus, STORE_UNREACHABLE_STALLED_MS, type StatusInputs } from '../../src/controller/conditions.js';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';
import { REPO_ROOT } from '../harness/test-tools.js';
import {
  ARGOCD_HEALTH_LUA,
  argoHealthOf,
  disagreement,
  fluxStatusOf,
  kstatusOf,
  luaLiteral,
  skipUnlessLua,
  type ArgoHealth,
  type KStatus,
} from '../helpers/gitops-health.js';

const T0 = new Date('2026-01-01T00:00:00Z');

function report(overrides: Partial<SupervisorReport> = {}): SupervisorReport {
  return {
    lastFullSnapshot: { revision: 100, time: '2026-01-01T00:00:00Z', object: 'full/x.db.gz', sizeBytes: 10, sha256: 'ab' },
    archivedRevision: 150,
    etcdRevision: 160,
    lagRevisions: 10,
    memory: { budgetBytes: 1000, peakBytes: 500, usedBytes: 0 },
    fullSnapshot: { consecutiveFailures: 0, lastSuccessTime: '2026-01-01T00:00:00Z' },
    delta: { consecutiveFailures: 0, lastSuccessTime: '2026-01-01T00:00:00Z' },
    bytesUploaded: 1,
    uploadedBytes: { full: 1, delta: 0 },
    ...overrides,
  };
}

type Obj = Pick<EtcdBackup, 'metadata' | 'status'> & { spec?: Partial<EtcdBackup['spec']> };

function object(inputs: Partial<StatusInputs>, options: { generation?: number; suspend?: boolean; steps?: number } = {}): Obj {
  const base: StatusInputs = {
    generation: 1,
    previous: undefined,
    now: T0,
    specProblems: [],
    secretProblems: [],
    suspended: options.suspend === true,
    deltasEnabled: true,
    worker: { phase: 'Running', report: report() },
    ...inputs,
  };
  // Recompute over time where a condition depends on how long something lasted.
  let status = computeStatus(base);
  for (let step = 1; step <= (options.steps ?? 0); step++) {
    status = computeStatus({ ...base, previous: status, now: new Date(T0.getTime() + step * STORE_UNREACHABLE_STALLED_MS) });
  }
  return {
    metadata: { name: 'main', namespace: 'etcd', generation: options.generation ?? 1 },
    spec: { suspend: options.suspend === true },
    status,
  };
}

const storeDown = report({ delta: { consecutiveFailures: 5, lastError: 'cannot reach S3', lastErrorReason: 'StoreUnreachable' } });

const cases: Array<{ name: string; obj: Obj; kstatus: KStatus; flux: KStatus; argo: ArgoHealth }> = [
  { name: 'backups current', obj: object({}), kstatus: 'Current', flux: 'Current', argo: 'Healthy' },
  {
    name: 'new object the operator has not seen',
    obj: { metadata: { name: 'main', generation: 1 }, spec: {} },
    kstatus: 'Current', // kstatus's own rule (no conditions); Flux and Argo CD wait
    flux: 'InProgress',
    argo: 'Progressing',
  },
  { name: 'spec edited, not observed yet', obj: object({}, { generation: 2 }), kstatus: 'InProgress', flux: 'InProgress', argo: 'Progressing' },
  { name: 'starting', obj: object({ worker: { phase: 'Starting' } }), kstatus: 'InProgress', flux: 'InProgress', argo: 'Progressing' },
  {
    name: 'first full snapshot pending',
    obj: object({ worker: { phase: 'Running', report: report({ lastFullSnapshot: undefined, fullSnapshot: { consecutiveFailures: 0 } }) } }),
    kstatus: 'InProgress',
    flux: 'InProgress',
    argo: 'Progressing',
  },
  {
    name: 'catching up a backlog',
    obj: object({ worker: { phase: 'Running', report: report({ lagRevisions: 250_000 }) } }),
    kstatus: 'InProgress',
    flux: 'InProgress',
    argo: 'Progressing',
  },
  {
    name: 'invalid spec',
    obj: object({ specProblems: ['spec.fullSnapshot.schedule: never fires'], worker: { phase: 'Stopped' } }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  {
    name: 'missing Secret',
    obj: object({
      secretProblems: [{ secretName: 's3', field: 'spec.store.s3.credentialsSecretRef', reason: 'SecretNotFound', message: 'Secret etcd/s3 not found' }],
      worker: { phase: 'Stopped' },
    }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  {
    name: 'etcd down for a while (retrying)',
    obj: object({
      worker: { phase: 'Running', report: report({ delta: { consecutiveFailures: 3, lastError: 'etcd down', lastErrorReason: 'EtcdUnavailable' } }) },
    }),
    kstatus: 'InProgress',
    flux: 'InProgress',
    argo: 'Degraded',
  },
  { name: 'store just became unreachable', obj: object({ worker: { phase: 'Running', report: storeDown } }), kstatus: 'InProgress', flux: 'InProgress', argo: 'Degraded' },
  {
    name: 'store unreachable past the threshold',
    obj: object({ worker: { phase: 'Running', report: storeDown } }, { steps: 2 }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  {
    // Hourly schedule, nothing failed, but no full snapshot for 2.5 hours: a stopped schedule.
    name: 'full snapshot stale',
    obj: object({
      freshness: { schedule: '0 * * * *', deltaPeriodMs: 20_000 },
      now: new Date('2026-01-01T02:30:00Z'),
      worker: { phase: 'Running', report: report({ deltasCurrentTime: '2026-01-01T02:29:50Z' }) },
    }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  {
    name: 'deltas stale',
    obj: object({
      freshness: { schedule: '0 * * * *', deltaPeriodMs: 20_000 },
      now: new Date('2026-01-01T00:10:00Z'),
      worker: { phase: 'Running', report: report({ startTime: '2026-01-01T00:00:00Z', deltasCurrentTime: '2026-01-01T00:00:00Z' }) },
    }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  {
    name: 'worker crash loop',
    obj: object({ worker: { phase: 'CrashLoop', lastError: 'exit code 134', restarts: 4 } }),
    kstatus: 'Failed',
    flux: 'Failed',
    argo: 'Degraded',
  },
  { name: 'suspended', obj: object({ worker: { phase: 'Stopped' } }, { suspend: true }), kstatus: 'InProgress', flux: 'Current', argo: 'Suspended' },
  {
    name: 'verification failed (backups still current)',
    obj: object({
      verificationEnabled: true,
      worker: { phase: 'Running', report: report({ verification: { consecutiveFailures: 1, lastError: 'keys differ' } }) },
    }),
    kstatus: 'Current',
    flux: 'Current',
    argo: 'Degraded',
  },
  {
    name: 'being deleted',
    obj: { ...object({ deleting: true, worker: { phase: 'Stopped' } }), metadata: { name: 'main', generation: 1, deletionTimestamp: '2026-01-01T00:00:00Z' } },
    kstatus: 'Terminating',
    flux: 'InProgress',
    argo: 'Progressing',
  },
];

test('kstatus, Flux healthCheckExprs and Argo CD health.lua read the operator\'s statuses as intended', { skip: skipUnlessLua() }, async () => {
  const argo = await argoHealthOf(cases.map((c) => c.obj));
  assert.equal(argo.length, cases.length, 'one line of lua output per object');
  const got = cases.map((c, i) => ({ name: c.name, kstatus: kstatusOf(c.obj), flux: fluxStatusOf(c.obj), argo: argo[i]!.status }));
  assert.deepEqual(got, cases.map((c) => ({ name: c.name, kstatus: c.kstatus, flux: c.flux, argo: c.argo })));
  for (const [i, c] of cases.entries()) {
    assert.equal(disagreement(c.obj, got[i]!.kstatus, got[i]!.flux, got[i]!.argo), undefined, c.name);
    assert.ok(argo[i]!.message.length > 0, `${c.name}: Argo CD shows a message`);
  }
  // The message names why: the Stalled reason and text.
  const stalled = argo[cases.findIndex((c) => c.name === 'store unreachable past the threshold')]!;
  assert.match(stalled.message, /^StoreUnreachable: Unreachable since .*cannot reach S3/);
});

test('the argocd-cm patch carries exactly config/argocd/health.lua', () => {
  const patch = parse(readFileSync(join(REPO_ROOT, 'config/argocd/argocd-cm-patch.yaml'), 'utf8')) as { data: Record<string, string> };
  assert.equal(patch.data['resource.customizations.health.etcdbackup.io_EtcdBackup'], readFileSync(ARGOCD_HEALTH_LUA, 'utf8'));
});

test('luaLiteral survives quotes, backslashes, newlines and UTF-8 through lua5.1', { skip: skipUnlessLua() }, async () => {
  const message = 'say "hi"\\ then\nnext line: ünïcode ✓ and\n1 digit after a newline';
  const [health] = await argoHealthOf([
    {
      metadata: { name: 'x', generation: 1 },
      status: {
        observedGeneration: 1,
        conditions: [{ type: 'Ready', status: 'True', reason: 'BackupsCurrent', message, lastTransitionTime: T0.toISOString() }],
      },
    },
  ]);
  assert.deepEqual(health, { status: 'Healthy', message: message.replace(/\n/g, ' ') });
  assert.equal(luaLiteral({ a: null, b: [1, true] }), '{["b"] = {1, true}}');
});
