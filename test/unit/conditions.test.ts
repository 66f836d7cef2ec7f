import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Condition, EtcdBackupStatus } from '../../src/api/v1alpha1/etcd-backup-types.js';
import {
  computeStatus,
  isTransition,
  jsonEqual,
  mergePatch,
  Reason,
  STORE_UNREACHABLE_STALLED_MS,
  untilStale,
  type StatusInputs,
} from '../../src/controller/conditions.js';
import type { SupervisorReport } from '../../src/api/supervisor-report.js';

const T0 = new Date('2025-01-01T00:00:00.000Z');
const T1 = new Date('2025-01-01T00:05:00.000Z');

function report(overrides: Partial<SupervisorReport> = {}): SupervisorReport {
  return {
    lastFullSnapshot: { revision: 100, time: '2025-01-01T00:00:10Z', object: 'full/x.db.gz', sizeBytes: 10, sha256: 'ab' },
    lastDeltaSnapshot: { fromRevision: 101, toRevision: 150, time: '2025-01-01T00:00:30Z', object: 'delta/y.jsonl.gz' },
    archivedRevision: 150,
    etcdRevision: 160,
    lagRevisions: 10,
    nextFullSnapshotTime: '2025-01-01T01:00:00Z',
    memory: { budgetBytes: 1000, peakBytes: 500, usedBytes: 0 },
    fullSnapshot: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:10Z' },
    delta: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:30Z' },
    bytesUploaded: 123,
    uploadedBytes: { full: 100, delta: 23 },
    ...overrides,
  };
}

function inputs(overrides: Partial<StatusInputs> = {}): StatusInputs {
  return {
    generation: 2,
    previous: undefined,
    now: T0,
    specProblems: [],
    secretProblems: [],
    suspended: false,
    deltasEnabled: true,
    worker: { phase: 'Running', report: report() },
    ...overrides,
  };
}

function condition(status: EtcdBackupStatus, type: string): Condition {
  const found = status.conditions?.find((c) => c.type === type);
  assert.ok(found, `no ${type} condition`);
  return found;
}

test('conditions from observed state (table)', () => {
  const cases: Array<{
    name: string;
    in: Partial<StatusInputs>;
    expect: Record<string, [status: string, reason: string, messageIncludes?: string]>;
  }> = [
    {
      name: 'healthy',
      in: {},
      expect: {
        Ready: ['True', Reason.BackupsCurrent],
        Reconciling: ['False', Reason.Reconciled],
        Stalled: ['False', Reason.NotStalled],
        SpecValid: ['True', Reason.SpecValid],
        FullSnapshotSucceeded: ['True', Reason.SnapshotTaken, 'revision 100'],
        DeltaSnapshotSucceeded: ['True', Reason.DeltaUploaded],
        RevisionsLost: ['False', Reason.NoRevisionsLost],
      },
    },
    {
      name: 'invalid spec lists every problem and wins over everything else',
      in: {
        specProblems: ['spec.fullSnapshot.schedule: bad cron', 'spec.store: exactly one'],
        secretProblems: [{ secretName: 's', field: 'f', reason: 'SecretNotFound', message: 'Secret s not found' }],
        worker: { phase: 'Stopped' },
      },
      expect: {
        Ready: ['False', Reason.InvalidSpec, '2 problems'],
        Stalled: ['True', Reason.InvalidSpec, 'spec.fullSnapshot.schedule: bad cron; spec.store: exactly one'],
        Reconciling: ['False', Reason.Reconciled],
        SpecValid: ['False', Reason.InvalidSpec, 'spec.fullSnapshot.schedule: bad cron; spec.store: exactly one'],
        FullSnapshotSucceeded: ['Unknown', Reason.NoSnapshotYet],
      },
    },
    {
      name: 'missing secret is named',
      in: {
        secretProblems: [
          { secretName: 'etcd-tls', field: 'spec.etcd.tlsSecretRef', reason: 'SecretNotFound', message: 'Secret default/etcd-tls (spec.etcd.tlsSecretRef) not found' },
        ],
        worker: { phase: 'Stopped' },
      },
      expect: {
        Ready: ['False', Reason.SecretNotFound, 'default/etcd-tls'],
        Stalled: ['True', Reason.SecretNotFound, 'default/etcd-tls'],
        SpecValid: ['True', Reason.SpecValid],
      },
    },
    {
      name: 'suspended',
      in: { suspended: true, worker: { phase: 'Stopped' } },
      expect: { Ready: ['False', Reason.Suspended], Reconciling: ['False', Reason.Reconciled], Stalled: ['False', Reason.NotStalled] },
    },
    {
      name: 'crash loop',
      in: { worker: { phase: 'CrashLoop', lastError: 'exit code 134', restarts: 3 } },
      expect: {
        Ready: ['False', Reason.SupervisorCrashed, 'failed 3 times: exit code 134'],
        Stalled: ['True', Reason.SupervisorCrashed, 'failed 3 times'],
      },
    },
    {
      name: 'one crash is not stalled yet',
      in: { worker: { phase: 'CrashLoop', lastError: 'exit code 134', restarts: 1 } },
      expect: { Ready: ['False', Reason.SupervisorCrashed], Stalled: ['False', Reason.NotStalled] },
    },
    {
      name: 'starting without a report',
      in: { worker: { phase: 'Starting' } },
      expect: {
        Ready: ['False', Reason.Starting],
        Reconciling: ['True', Reason.Starting],
        Stalled: ['False', Reason.NotStalled],
        DeltaSnapshotSucceeded: ['Unknown', Reason.NoDeltaYet],
      },
    },
    {
      name: 'first snapshot pending',
      in: {
        worker: {
          phase: 'Running',
          report: report({ lastFullSnapshot: undefined, fullSnapshot: { consecutiveFailures: 0 }, delta: { consecutiveFailures: 0 } }),
        },
      },
      expect: {
        Ready: ['False', Reason.WaitingForFirstSnapshot],
        Reconciling: ['True', Reason.WaitingForFirstSnapshot],
        FullSnapshotSucceeded: ['Unknown', Reason.NoSnapshotYet],
      },
    },
    {
      name: 'catching up a large backlog',
      in: { worker: { phase: 'Running', report: report({ lagRevisions: 50_000 }) } },
      expect: { Ready: ['True', Reason.BackupsCurrent], Reconciling: ['True', Reason.CatchingUp, '50000 revisions'] },
    },
    {
      name: 'a lag at the threshold is not catching up',
      in: { worker: { phase: 'Running', report: report({ lagRevisions: 10_000 }) } },
      expect: { Reconciling: ['False', Reason.Reconciled] },
    },
    {
      name: 'store unreachable, Ready was True: a passing failure, not stalled',
      in: {
        worker: {
          phase: 'Running',
          report: report({ delta: { consecutiveFailures: 2, lastError: 'cannot reach S3', lastErrorReason: 'StoreUnreachable' } }),
        },
      },
      expect: { Ready: ['False', 'StoreUnreachable'], Stalled: ['False', Reason.NotStalled], Reconciling: ['False', Reason.Reconciled] },
    },
    {
      name: 'runner pod: deployment not available is progress',
      in: { worker: { phase: 'Pod', available: false, message: '0/1 replicas available' } },
      expect: { Ready: ['False', Reason.WorkerUnavailable], Reconciling: ['True', Reason.WorkerUnavailable] },
    },
    {
      name: 'etcd unavailable uses the failure reason',
      in: {
        worker: {
          phase: 'Running',
          report: report({
            delta: { consecutiveFailures: 4, lastError: 'cannot reach etcd at http://x', lastErrorReason: 'EtcdUnavailable' },
          }),
        },
      },
      expect: {
        Ready: ['False', 'EtcdUnavailable', '4 times in a row: cannot reach etcd'],
        Stalled: ['False', Reason.NotStalled],
        Reconciling: ['False', Reason.Reconciled],
        DeltaSnapshotSucceeded: ['False', 'EtcdUnavailable', 'cannot reach etcd'],
        FullSnapshotSucceeded: ['True', Reason.SnapshotTaken],
      },
    },
    {
      name: 'full failure without a reason falls back',
      in: { worker: { phase: 'Running', report: report({ fullSnapshot: { consecutiveFailures: 1, lastError: 'boom' } }) } },
      expect: { Ready: ['False', Reason.FullSnapshotFailed, 'failed once: boom'], FullSnapshotSucceeded: ['False', Reason.FullSnapshotFailed] },
    },
    {
      name: 'deltas disabled',
      in: { deltasEnabled: false, worker: { phase: 'Running', report: report({ delta: undefined }) } },
      expect: { Ready: ['True', Reason.BackupsCurrent], DeltaSnapshotSucceeded: ['Unknown', Reason.DeltasDisabled] },
    },
    {
      name: 'revisions lost',
      in: { worker: { phase: 'Running', report: report({ revisionsLost: { fromRevision: 151, toRevision: 900, time: '2025-01-01T00:01:00Z' } }) } },
      expect: { RevisionsLost: ['True', Reason.RevisionsCompacted, '151..900'], Ready: ['True', Reason.BackupsCurrent] },
    },
  ];
  for (const c of cases) {
    const status = computeStatus(inputs(c.in));
    assert.equal(status.observedGeneration, 2, c.name);
    assert.deepEqual(
      status.conditions?.map((x) => x.type),
      ['Ready', 'Reconciling', 'Stalled', 'SpecValid', 'FullSnapshotSucceeded', 'DeltaSnapshotSucceeded', 'RevisionsLost'],
      c.name,
    );
    for (const [type, [expectedStatus, reason, includes]] of Object.entries(c.expect)) {
      const got = condition(status, type);
      assert.equal(got.status, expectedStatus, `${c.name}: ${type}.status`);
      assert.equal(got.reason, reason, `${c.name}: ${type}.reason`);
      assert.match(got.reason, /^[A-Z][A-Za-z0-9]*$/, `${c.name}: ${type}.reason is PascalCase`);
      if (includes) assert.ok(got.message.includes(includes), `${c.name}: ${type}.message ${JSON.stringify(got.message)}`);
      assert.equal(got.observedGeneration, 2);
    }
  }
});

test('a store unreachable for longer than the threshold stalls; shorter does not (pod and operator runners)', () => {
  const failing = report({
    fullSnapshot: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:00Z' },
    delta: { consecutiveFailures: 9, lastError: 'cannot reach S3', lastErrorReason: 'StoreUnreachable', lastSuccessTime: '2025-01-01T00:00:00Z' },
  });
  const workers = [
    { phase: 'Running', report: failing },
    { phase: 'Pod', available: true, message: '1/1', storeError: 'cannot reach S3' },
  ] as const;
  for (const worker of workers) {
    const first = computeStatus(inputs({ now: T0, worker }));
    assert.equal(condition(first, 'Ready').reason, 'StoreUnreachable', worker.phase);
    assert.equal(condition(first, 'Stalled').status, 'False', `${worker.phase}: the outage begins now`);
    const justBefore = new Date(T0.getTime() + STORE_UNREACHABLE_STALLED_MS - 1000);
    const second = computeStatus(inputs({ now: justBefore, previous: first, worker }));
    assert.equal(condition(second, 'Stalled').status, 'False', `${worker.phase}: under the threshold`);
    const past = new Date(T0.getTime() + STORE_UNREACHABLE_STALLED_MS);
    const third = computeStatus(inputs({ now: past, previous: second, worker }));
    assert.equal(condition(third, 'Stalled').status, 'True', `${worker.phase}: at the threshold`);
    assert.equal(condition(third, 'Stalled').reason, 'StoreUnreachable');
    assert.match(condition(third, 'Stalled').message, /^Unreachable since 2025-01-01T00:00:00\.000Z: /);
    // Recovery clears it.
    const healthy = computeStatus(inputs({ now: past, previous: third }));
    assert.equal(condition(healthy, 'Stalled').status, 'False');
  }
});

test('lastTransitionTime changes only when a condition status changes', () => {
  const first = computeStatus(inputs({ now: T0 }));
  // Same statuses, new message and generation: times stay.
  const second = computeStatus(
    inputs({
      now: T1,
      generation: 3,
      previous: first,
      worker: { phase: 'Running', report: report({ lastFullSnapshot: { ...report().lastFullSnapshot!, revision: 200 } }) },
    }),
  );
  for (const c of second.conditions!) {
    assert.equal(c.lastTransitionTime, '2025-01-01T00:00:00Z', `${c.type} kept its time`);
  }
  assert.match(condition(second, 'FullSnapshotSucceeded').message, /revision 200/);
  // Ready flips: only Ready (and the conditions that changed status) move.
  const third = computeStatus(inputs({ now: T1, previous: second, suspended: true, worker: { phase: 'Stopped' } }));
  assert.equal(condition(third, 'Ready').lastTransitionTime, '2025-01-01T00:05:00Z');
  assert.equal(condition(third, 'SpecValid').lastTransitionTime, '2025-01-01T00:00:00Z');
  assert.equal(condition(third, 'FullSnapshotSucceeded').lastTransitionTime, '2025-01-01T00:00:00Z');
});

test('stopped workers keep store facts, drop live readings, keep sticky conditions', () => {
  const lost = report({ revisionsLost: { fromRevision: 5, toRevision: 9, time: '2025-01-01T00:01:00Z' } });
  const running = computeStatus(inputs({ worker: { phase: 'Running', report: lost } }));
  const suspended = computeStatus(inputs({ now: T1, previous: running, suspended: true, worker: { phase: 'Stopped' } }));
  assert.equal(suspended.archivedRevision, 150);
  assert.deepEqual(suspended.lastFullSnapshot, running.lastFullSnapshot);
  assert.deepEqual(suspended.lastDeltaSnapshot, running.lastDeltaSnapshot);
  assert.equal(suspended.lagRevisions, undefined);
  assert.equal(suspended.etcdRevision, undefined);
  assert.equal(suspended.nextFullSnapshotTime, undefined);
  assert.equal(suspended.memory, undefined);
  assert.equal(condition(suspended, 'FullSnapshotSucceeded').status, 'True');
  assert.equal(condition(suspended, 'RevisionsLost').status, 'True');
  // A restarted supervisor that has not snapshotted yet does not erase what the store holds.
  const restarted = computeStatus(
    inputs({
      now: T1,
      previous: suspended,
      worker: {
        phase: 'Running',
        report: report({ lastFullSnapshot: undefined, lastDeltaSnapshot: undefined, archivedRevision: undefined, fullSnapshot: { consecutiveFailures: 0 }, delta: { consecutiveFailures: 0 } }),
      },
    }),
  );
  assert.equal(restarted.archivedRevision, 150);
  assert.equal(condition(restarted, 'RevisionsLost').status, 'True');
});

test('status mirrors the report', () => {
  const status = computeStatus(inputs());
  assert.deepEqual(
    { ...status, conditions: undefined },
    {
      observedGeneration: 2,
      conditions: undefined,
      lastFullSnapshot: report().lastFullSnapshot,
      lastDeltaSnapshot: report().lastDeltaSnapshot,
      archivedRevision: 150,
      etcdRevision: 160,
      lagRevisions: 10,
      nextFullSnapshotTime: '2025-01-01T01:00:00Z',
      memory: { budgetBytes: 1000, peakBytes: 500 },
    },
  );
});

test('merge patch and equality helpers (table)', () => {
  const cases: Array<{ name: string; before: unknown; after: unknown; patch: unknown }> = [
    { name: 'no change', before: { a: 1 }, after: { a: 1 }, patch: {} },
    { name: 'removed key becomes null', before: { a: 1, b: 2 }, after: { a: 1 }, patch: { b: null } },
    { name: 'nested objects recurse', before: { o: { x: 1, y: 2 } }, after: { o: { x: 1 } }, patch: { o: { y: null } } },
    { name: 'arrays replace', before: { l: [1, 2] }, after: { l: [1] }, patch: { l: [1] } },
    { name: 'new key', before: {}, after: { n: { z: 1 } }, patch: { n: { z: 1 } } },
    { name: 'key order is not a change', before: { a: { x: 1, y: 2 } }, after: { a: { y: 2, x: 1 } }, patch: {} },
  ];
  for (const c of cases) assert.deepEqual(mergePatch(c.before, c.after), c.patch, c.name);
  assert.ok(jsonEqual({ a: 1, b: [1, { c: 2, d: 3 }] }, { b: [1, { d: 3, c: 2 }], a: 1 }));
  assert.ok(!jsonEqual({ a: [1, 2] }, { a: [2, 1] }));
});

test('isTransition: generation or condition status/reason changes, not messages or numbers', () => {
  const a = computeStatus(inputs());
  const moreRevisions = computeStatus(inputs({ previous: a, worker: { phase: 'Running', report: report({ archivedRevision: 999 }) } }));
  assert.equal(isTransition(a, moreRevisions), false);
  assert.equal(isTransition(a, computeStatus(inputs({ previous: a, generation: 3 }))), true);
  assert.equal(isTransition(a, computeStatus(inputs({ previous: a, suspended: true, worker: { phase: 'Stopped' } }))), true);
  assert.equal(isTransition(undefined, a), true);
});

test('BackupVerified condition and lastVerification (table)', () => {
  const verified = {
    consecutiveFailures: 0,
    lastSuccessTime: '2025-01-01T03:30:20Z',
    verifiedRevision: 150,
    keyCount: 42,
    contentHash: 'c0ffee',
    snapshot: 'full/x.db.gz',
    liveComparison: 'matches live etcd at revision 150',
  };
  const failing = {
    ...verified,
    consecutiveFailures: 2,
    lastFailureTime: '2025-01-01T04:30:20Z',
    lastError: 'verification of the latest backup failed: sha256 mismatch for delta/101-150.jsonl.gz',
    lastErrorReason: 'ChecksumMismatch',
  };
  const previousTrue: Condition = {
    type: 'BackupVerified',
    status: 'True',
    reason: Reason.Verified,
    message: 'earlier success',
    lastTransitionTime: '2024-12-31T00:00:00Z',
  };
  const previousLast = { time: '2024-12-31T00:00:00Z', revision: 90, keyCount: 7, contentHash: 'old' };
  const cases: Array<{
    name: string;
    in: Partial<StatusInputs>;
    /** undefined: the condition must be absent. */
    expect: [status: string, reason: string, messageIncludes: string[]] | undefined;
    lastVerification: EtcdBackupStatus['lastVerification'];
  }> = [
    {
      name: 'not configured: absent, even with a report',
      in: { worker: { phase: 'Running', report: report({ verification: verified }) } },
      expect: undefined,
      lastVerification: undefined,
    },
    {
      name: 'configured, nothing run yet',
      in: { verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: { consecutiveFailures: 0 } }) } },
      expect: ['Unknown', Reason.NotVerifiedYet, ['spec.verification.schedule']],
      lastVerification: undefined,
    },
    {
      name: 'configured, worker starting without a report',
      in: { verificationEnabled: true, worker: { phase: 'Starting' } },
      expect: ['Unknown', Reason.NotVerifiedYet, []],
      lastVerification: undefined,
    },
    {
      name: 'verified names the revision and key count',
      in: { verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: verified }) } },
      expect: ['True', Reason.Verified, ['revision 150', '42 keys', 'full/x.db.gz', 'matches live etcd']],
      lastVerification: { time: '2025-01-01T03:30:20Z', revision: 150, keyCount: 42, contentHash: 'c0ffee' },
    },
    {
      name: 'failed: the error, how often, Ready untouched; the last success stays in lastVerification',
      in: { verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: failing }) } },
      expect: ['False', Reason.VerificationFailed, ['sha256 mismatch for delta/101-150.jsonl.gz', '2 times in a row']],
      lastVerification: { time: '2025-01-01T03:30:20Z', revision: 150, keyCount: 42, contentHash: 'c0ffee' },
    },
    {
      name: 'restarted worker keeps the previous condition and lastVerification',
      in: {
        verificationEnabled: true,
        previous: { conditions: [previousTrue], lastVerification: previousLast },
        worker: { phase: 'Running', report: report({ verification: { consecutiveFailures: 0 } }) },
      },
      expect: ['True', Reason.Verified, ['earlier success']],
      lastVerification: previousLast,
    },
    {
      name: 'suspended keeps the previous condition and lastVerification',
      in: { verificationEnabled: true, suspended: true, previous: { conditions: [previousTrue], lastVerification: previousLast }, worker: { phase: 'Stopped' } },
      expect: ['True', Reason.Verified, ['earlier success']],
      lastVerification: previousLast,
    },
    {
      name: 'verification removed from the spec: condition and lastVerification go',
      in: { previous: { conditions: [previousTrue], lastVerification: previousLast } },
      expect: undefined,
      lastVerification: undefined,
    },
    {
      name: 'invalid spec: absent',
      in: { verificationEnabled: true, specProblems: ['spec.verification.schedule: bad'], worker: { phase: 'Stopped' } },
      expect: undefined,
      lastVerification: undefined,
    },
  ];
  for (const c of cases) {
    const status = computeStatus(inputs(c.in));
    const got = status.conditions?.find((x) => x.type === 'BackupVerified');
    assert.deepEqual(status.lastVerification, c.lastVerification, `${c.name}: lastVerification`);
    if (!c.expect) {
      assert.equal(got, undefined, `${c.name}: BackupVerified must be absent`);
      continue;
    }
    assert.ok(got, `${c.name}: BackupVerified missing`);
    assert.equal(status.conditions?.at(-1)?.type, 'BackupVerified', `${c.name}: BackupVerified comes last`);
    const [expectedStatus, reason, includes] = c.expect;
    assert.equal(got.status, expectedStatus, `${c.name}: status`);
    assert.equal(got.reason, reason, `${c.name}: reason`);
    for (const text of includes) assert.ok(got.message.includes(text), `${c.name}: message ${JSON.stringify(got.message)} lacks ${text}`);
    assert.doesNotMatch(got.message, /\n/, `${c.name}: one-line message`);
  }
  // A failed verification is its own alert: Ready stays True.
  const failed = computeStatus(inputs({ verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: failing }) } }));
  assert.equal(condition(failed, 'Ready').status, 'True');
  assert.equal(condition(failed, 'Ready').reason, Reason.BackupsCurrent);
  // Verified -> failed is a transition (status change); a second failure is not.
  const ok = computeStatus(inputs({ verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: verified }) } }));
  const bad = computeStatus(inputs({ now: T1, previous: ok, verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: failing }) } }));
  assert.equal(isTransition(ok, bad), true);
  assert.equal(condition(bad, 'BackupVerified').lastTransitionTime, '2025-01-01T00:05:00Z');
  const again = computeStatus(
    inputs({ now: T1, previous: bad, verificationEnabled: true, worker: { phase: 'Running', report: report({ verification: { ...failing, consecutiveFailures: 3 } }) } }),
  );
  assert.equal(isTransition(bad, again), false);
});

test('the answer to a snapshot request stays in status after the worker stops or restarts', () => {
  const answer = { requestedAt: '2025-01-01T00:04:00Z', phase: 'Succeeded' as const, object: 'full/z.db.gz', revision: 300, time: '2025-01-01T00:04:05Z' };
  const running = computeStatus(inputs({ worker: { phase: 'Running', report: report({ lastRequestedSnapshot: answer }) } }));
  assert.deepEqual(running.lastRequestedSnapshot, answer);
  const stopped = computeStatus(inputs({ now: T1, previous: running, suspended: true, worker: { phase: 'Stopped' } }));
  assert.deepEqual(stopped.lastRequestedSnapshot, answer);
  const restarted = computeStatus(inputs({ now: T1, previous: stopped, worker: { phase: 'Running', report: report() } }));
  assert.deepEqual(restarted.lastRequestedSnapshot, answer);
});

test('BackupFresh and Ready follow the freshness rules when the schedule is given', () => {
  const freshness = { schedule: '0 * * * *', deltaPeriodMs: 20_000 };
  const running = (overrides: Partial<SupervisorReport>): StatusInputs['worker'] => ({ phase: 'Running', report: report(overrides) });
  const fresh = computeStatus(
    inputs({ freshness, now: new Date('2025-01-01T00:30:00Z'), worker: running({ deltasCurrentTime: '2025-01-01T00:29:50Z' }) }),
  );
  assert.equal(condition(fresh, 'BackupFresh').status, 'True');
  assert.equal(condition(fresh, 'BackupFresh').reason, Reason.BackupsFresh);
  assert.equal(condition(fresh, 'Ready').status, 'True');

  // The report says nothing failed, but no full snapshot since 00:00:10 and it is 02:00: a stopped schedule.
  const staleFull = computeStatus(
    inputs({ freshness, now: new Date('2025-01-01T02:00:00Z'), worker: running({ deltasCurrentTime: '2025-01-01T01:59:50Z' }) }),
  );
  assert.equal(condition(staleFull, 'BackupFresh').status, 'False');
  assert.equal(condition(staleFull, 'BackupFresh').reason, Reason.FullSnapshotStale);
  assert.equal(condition(staleFull, 'Ready').status, 'False');
  assert.equal(condition(staleFull, 'Ready').reason, Reason.FullSnapshotStale);

  const staleDeltas = computeStatus(
    inputs({ freshness, now: new Date('2025-01-01T00:30:00Z'), worker: running({ deltasCurrentTime: '2025-01-01T00:28:00Z' }) }),
  );
  assert.equal(condition(staleDeltas, 'BackupFresh').reason, Reason.DeltasStale);
  assert.equal(condition(staleDeltas, 'Ready').reason, Reason.DeltasStale);
  // Stale is past its own deadline (it allows for retries): a person must look, kstatus reads Failed.
  for (const [stale, reason] of [[staleFull, Reason.FullSnapshotStale], [staleDeltas, Reason.DeltasStale]] as const) {
    assert.equal(condition(stale, 'Stalled').status, 'True');
    assert.equal(condition(stale, 'Stalled').reason, reason);
    assert.equal(condition(stale, 'Reconciling').status, 'False');
  }
  assert.equal(condition(fresh, 'Stalled').status, 'False');

  // runner: pod: judged on the stored full snapshot only.
  const pod = computeStatus(
    inputs({
      freshness,
      now: new Date('2025-01-01T03:00:00Z'),
      worker: { phase: 'Pod', available: true, message: '1/1 ready', store: { lastFullSnapshot: report().lastFullSnapshot! } },
    }),
  );
  assert.equal(condition(pod, 'BackupFresh').reason, Reason.FullSnapshotStale);
  assert.equal(condition(pod, 'Ready').status, 'False');

  const suspended = computeStatus(inputs({ freshness, suspended: true, worker: { phase: 'Stopped' } }));
  assert.equal(condition(suspended, 'BackupFresh').status, 'Unknown');
  const firstSnapshot = computeStatus(inputs({ freshness, worker: running({ lastFullSnapshot: undefined }) }));
  assert.equal(condition(firstSnapshot, 'BackupFresh').reason, Reason.NoSnapshotYet);
  // Without the schedule (invalid spec) there is no such condition.
  assert.equal(computeStatus(inputs()).conditions?.some((c) => c.type === 'BackupFresh'), false);
});

test('every condition message, whole (table)', () => {
  const running = (overrides: Partial<SupervisorReport>): StatusInputs['worker'] => ({ phase: 'Running', report: report(overrides) });
  const pod = (overrides: Partial<Extract<StatusInputs['worker'], { phase: 'Pod' }>>): StatusInputs['worker'] => ({
    phase: 'Pod',
    available: true,
    message: '1/1 replicas available',
    ...overrides,
  });
  const cases: Array<{ name: string; in: Partial<StatusInputs>; type: string; status: string; reason: string; message: string }> = [
    { name: 'healthy', in: {}, type: 'Ready', status: 'True', reason: Reason.BackupsCurrent, message: 'Backups are being stored on schedule' },
    { name: 'healthy', in: {}, type: 'Reconciling', status: 'False', reason: Reason.Reconciled, message: 'Not working towards a new state' },
    { name: 'healthy', in: {}, type: 'Stalled', status: 'False', reason: Reason.NotStalled, message: 'Nothing needs a person' },
    { name: 'healthy', in: {}, type: 'SpecValid', status: 'True', reason: Reason.SpecValid, message: 'The spec is valid' },
    { name: 'healthy', in: {}, type: 'FullSnapshotSucceeded', status: 'True', reason: Reason.SnapshotTaken, message: 'Stored full snapshot full/x.db.gz at revision 100' },
    { name: 'healthy', in: {}, type: 'DeltaSnapshotSucceeded', status: 'True', reason: Reason.DeltaUploaded, message: 'Revision history is being archived in deltas' },
    { name: 'healthy', in: {}, type: 'RevisionsLost', status: 'False', reason: Reason.NoRevisionsLost, message: 'No revisions were lost' },
    {
      name: 'a success without the snapshot named',
      in: { worker: running({ lastFullSnapshot: undefined }) },
      type: 'FullSnapshotSucceeded',
      status: 'True',
      reason: Reason.SnapshotTaken,
      message: 'The last full snapshot was stored',
    },
    {
      name: 'nothing yet',
      in: { worker: { phase: 'Starting' } },
      type: 'FullSnapshotSucceeded',
      status: 'Unknown',
      reason: Reason.NoSnapshotYet,
      message: 'No full snapshot has been taken yet',
    },
    { name: 'nothing yet', in: { worker: { phase: 'Starting' } }, type: 'DeltaSnapshotSucceeded', status: 'Unknown', reason: Reason.NoDeltaYet, message: 'No delta has been stored yet' },
    { name: 'starting', in: { worker: { phase: 'Starting' } }, type: 'Ready', status: 'False', reason: Reason.Starting, message: 'Starting the backup worker' },
    { name: 'starting', in: { worker: { phase: 'Starting' } }, type: 'Reconciling', status: 'True', reason: Reason.Starting, message: 'Starting the backup worker' },
    {
      name: 'deltas disabled',
      in: { deltasEnabled: false },
      type: 'DeltaSnapshotSucceeded',
      status: 'Unknown',
      reason: Reason.DeltasDisabled,
      message: 'Deltas are disabled (spec.deltaSnapshot.period is 0)',
    },
    {
      name: 'a failure without a message',
      in: { worker: running({ delta: { consecutiveFailures: 1 } }) },
      type: 'DeltaSnapshotSucceeded',
      status: 'False',
      reason: Reason.DeltaSnapshotFailed,
      message: 'failed',
    },
    {
      name: 'a failure without a message',
      in: { worker: running({ delta: { consecutiveFailures: 1 } }) },
      type: 'Ready',
      status: 'False',
      reason: Reason.DeltaSnapshotFailed,
      message: 'Delta failed once: unknown error',
    },
    {
      name: 'repeated full failures',
      in: { worker: running({ fullSnapshot: { consecutiveFailures: 2, lastError: 'boom', lastErrorReason: 'EtcdUnavailable' } }) },
      type: 'Ready',
      status: 'False',
      reason: 'EtcdUnavailable',
      message: 'Full snapshot failed 2 times in a row: boom',
    },
    { name: 'deleting', in: { deleting: true }, type: 'Ready', status: 'False', reason: Reason.Deleting, message: 'The EtcdBackup is being deleted; backups have stopped' },
    { name: 'deleting', in: { deleting: true }, type: 'Reconciling', status: 'True', reason: Reason.Deleting, message: 'The EtcdBackup is being deleted; backups have stopped' },
    {
      name: 'deleting with a bad spec is not stalled',
      in: { deleting: true, specProblems: ['spec.x: bad'] },
      type: 'Stalled',
      status: 'False',
      reason: Reason.NotStalled,
      message: 'Nothing needs a person',
    },
    {
      name: 'one spec problem',
      in: { specProblems: ['spec.x: bad'], worker: { phase: 'Stopped' } },
      type: 'Ready',
      status: 'False',
      reason: Reason.InvalidSpec,
      message: 'The spec has 1 problem (see SpecValid); fix the spec to start backups',
    },
    {
      name: 'two secret problems',
      in: {
        secretProblems: [
          { secretName: 'a', field: 'spec.etcd.tlsSecretRef', reason: 'SecretNotFound', message: 'Secret default/a not found' },
          { secretName: 'b', field: 'spec.store.s3.credentialsSecretRef', reason: 'SecretInvalid', message: 'Secret default/b lacks secretAccessKey' },
        ],
        worker: { phase: 'Stopped' },
      },
      type: 'Stalled',
      status: 'True',
      reason: Reason.SecretNotFound,
      message: 'Secret default/a not found; Secret default/b lacks secretAccessKey',
    },
    {
      name: 'an invalid secret stalls',
      in: { secretProblems: [{ secretName: 'b', field: 'f', reason: 'SecretInvalid', message: 'Secret default/b is empty' }], worker: { phase: 'Stopped' } },
      type: 'Stalled',
      status: 'True',
      reason: Reason.SecretInvalid,
      message: 'Secret default/b is empty',
    },
    { name: 'suspended', in: { suspended: true, worker: { phase: 'Stopped' } }, type: 'Ready', status: 'False', reason: Reason.Suspended, message: 'Backups are suspended (spec.suspend is true)' },
    {
      name: 'one crash, restart planned',
      in: { worker: { phase: 'CrashLoop', lastError: 'exit code 1', restarts: 1, nextRestartTime: '2025-01-01T00:00:05Z' } },
      type: 'Ready',
      status: 'False',
      reason: Reason.SupervisorCrashed,
      message: 'The backup worker process failed 1 time: exit code 1; restarting at 2025-01-01T00:00:05Z',
    },
    {
      name: 'two crashes',
      in: { worker: { phase: 'CrashLoop', lastError: 'exit code 1', restarts: 2 } },
      type: 'Stalled',
      status: 'False',
      reason: Reason.NotStalled,
      message: 'Nothing needs a person',
    },
    {
      name: 'three crashes',
      in: { worker: { phase: 'CrashLoop', lastError: 'exit code 1', restarts: 3 } },
      type: 'Stalled',
      status: 'True',
      reason: Reason.SupervisorCrashed,
      message: 'The backup worker process failed 3 times: exit code 1',
    },
    {
      name: 'a backlog one past the threshold',
      in: { worker: running({ lagRevisions: 10_001 }) },
      type: 'Reconciling',
      status: 'True',
      reason: Reason.CatchingUp,
      message: 'Archiving a backlog of 10001 revisions',
    },
    {
      name: 'a backlog while failing is not catching up',
      in: { worker: running({ lagRevisions: 50_000, delta: { consecutiveFailures: 1, lastError: 'x' } }) },
      type: 'Reconciling',
      status: 'False',
      reason: Reason.Reconciled,
      message: 'Not working towards a new state',
    },
    {
      name: 'revisions lost',
      in: { worker: running({ revisionsLost: { fromRevision: 151, toRevision: 900, time: '2025-01-01T00:01:00Z' } }) },
      type: 'RevisionsLost',
      status: 'True',
      reason: Reason.RevisionsCompacted,
      message:
        'etcd compacted revisions 151..900 before they were archived (2025-01-01T00:01:00Z); a full snapshot was taken to continue. ' +
        'Point-in-time restores into that range are not possible',
    },
    {
      name: 'runner pod unavailable',
      in: { worker: pod({ available: false, message: '0/1 replicas available' }) },
      type: 'Ready',
      status: 'False',
      reason: Reason.WorkerUnavailable,
      message: '0/1 replicas available',
    },
    {
      name: 'runner pod, store not listable',
      in: { worker: pod({ storeError: 'cannot reach S3' }) },
      type: 'Ready',
      status: 'False',
      reason: Reason.StoreUnreachable,
      message: 'Cannot list the store: cannot reach S3',
    },
    {
      name: 'runner pod, nothing stored yet',
      in: { worker: pod({ store: {} }) },
      type: 'Ready',
      status: 'False',
      reason: Reason.WaitingForFirstSnapshot,
      message: 'Waiting for the worker pod to store the first full snapshot',
    },
    {
      name: 'runner pod, nothing stored yet',
      in: { worker: pod({ store: {} }) },
      type: 'Reconciling',
      status: 'True',
      reason: Reason.WaitingForFirstSnapshot,
      message: 'Waiting for the worker pod to store the first full snapshot',
    },
    {
      name: 'runner pod storing',
      in: { worker: pod({ store: { lastFullSnapshot: report().lastFullSnapshot! } }) },
      type: 'Ready',
      status: 'True',
      reason: Reason.BackupsCurrent,
      message: 'Backups are being stored by the worker pod (1/1 replicas available)',
    },
    {
      name: 'runner pod storing: the stored objects are the proof of success',
      in: { worker: pod({ store: { lastFullSnapshot: report().lastFullSnapshot!, lastDeltaSnapshot: report().lastDeltaSnapshot! } }) },
      type: 'DeltaSnapshotSucceeded',
      status: 'True',
      reason: Reason.DeltaUploaded,
      message: 'Revision history is being archived in deltas',
    },
    {
      name: 'first snapshot',
      in: { worker: running({ lastFullSnapshot: undefined, fullSnapshot: { consecutiveFailures: 0 } }) },
      type: 'Ready',
      status: 'False',
      reason: Reason.WaitingForFirstSnapshot,
      message: 'Taking the first full snapshot',
    },
    {
      name: 'freshness without a worker',
      in: { freshness: { schedule: '0 * * * *', deltaPeriodMs: 20_000 }, worker: { phase: 'Stopped' } },
      type: 'BackupFresh',
      status: 'Unknown',
      reason: Reason.NotRunning,
      message: 'Freshness is judged while a backup worker runs',
    },
    {
      name: 'freshness before the first snapshot',
      in: { freshness: { schedule: '0 * * * *', deltaPeriodMs: 20_000 }, worker: running({ lastFullSnapshot: undefined }) },
      type: 'BackupFresh',
      status: 'Unknown',
      reason: Reason.NoSnapshotYet,
      message: 'No full snapshot has been taken yet',
    },
    {
      name: 'verification: none run yet',
      in: { verificationEnabled: true },
      type: 'BackupVerified',
      status: 'Unknown',
      reason: Reason.NotVerifiedYet,
      message: 'No scheduled verification has run yet (spec.verification.schedule)',
    },
    {
      name: 'verification failed once, without a message',
      in: { verificationEnabled: true, worker: running({ verification: { consecutiveFailures: 1 } }) },
      type: 'BackupVerified',
      status: 'False',
      reason: Reason.VerificationFailed,
      message: 'verification failed',
    },
    {
      name: 'verified, no snapshot named, no live comparison',
      in: {
        verificationEnabled: true,
        worker: running({ verification: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:40Z', verifiedRevision: 150, keyCount: 3, contentHash: 'ab' } }),
      },
      type: 'BackupVerified',
      status: 'True',
      reason: Reason.Verified,
      message: 'Trial restore of the latest backup + deltas at 2025-01-01T00:00:40Z: revision 150, 3 keys',
    },
  ];
  for (const c of cases) {
    const got = condition(computeStatus(inputs(c.in)), c.type);
    assert.deepEqual([got.status, got.reason, got.message], [c.status, c.reason, c.message], `${c.name}: ${c.type}`);
  }
});

test('a verification needs all of its facts to count as one', () => {
  const facts = { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:40Z', verifiedRevision: 150, keyCount: 3, contentHash: 'ab' };
  for (const missing of ['lastSuccessTime', 'verifiedRevision', 'keyCount', 'contentHash'] as const) {
    const verification = { ...facts, [missing]: undefined };
    const status = computeStatus(inputs({ verificationEnabled: true, worker: { phase: 'Running', report: report({ verification }) } }));
    assert.equal(status.lastVerification, undefined, missing);
    assert.equal(condition(status, 'BackupVerified').reason, Reason.NotVerifiedYet, missing);
  }
});

test('a status with nothing observed has no optional fields at all', () => {
  const status = computeStatus(inputs({ worker: { phase: 'Stopped' }, verificationEnabled: true }));
  assert.deepEqual(Object.keys(status).sort(), ['conditions', 'observedGeneration']);
  const bare = computeStatus(
    inputs({
      worker: {
        phase: 'Running',
        report: {
          ...report({ lastFullSnapshot: undefined, lastDeltaSnapshot: undefined, archivedRevision: undefined }),
          etcdRevision: undefined,
          lagRevisions: undefined,
          nextFullSnapshotTime: undefined,
        },
      },
    }),
  );
  assert.deepEqual(Object.keys(bare).sort(), ['conditions', 'memory', 'observedGeneration']);
});

test('a store outage began at the latest of: Ready turning False, the last full or delta success', () => {
  const outage = (lastSuccess: { full?: string; delta?: string }): StatusInputs['worker'] => ({
    phase: 'Running',
    report: report({
      fullSnapshot: { consecutiveFailures: 0, ...(lastSuccess.full ? { lastSuccessTime: lastSuccess.full } : {}) },
      delta: { consecutiveFailures: 3, lastError: 'cannot reach S3', lastErrorReason: 'StoreUnreachable', ...(lastSuccess.delta ? { lastSuccessTime: lastSuccess.delta } : {}) },
    }),
  });
  const previousReady: Condition = { type: 'Ready', status: 'False', reason: 'StoreUnreachable', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' };
  const now = new Date('2025-01-01T01:00:00Z');
  for (const [lastSuccess, since] of [
    [{}, '2025-01-01T00:00:00.000Z'],
    [{ full: '2025-01-01T00:20:00Z' }, '2025-01-01T00:20:00.000Z'],
    [{ full: '2025-01-01T00:20:00Z', delta: '2025-01-01T00:30:00Z' }, '2025-01-01T00:30:00.000Z'],
    [{ delta: '2025-01-01T00:10:00Z' }, '2025-01-01T00:10:00.000Z'],
  ] as const) {
    const stalled = condition(computeStatus(inputs({ now, previous: { conditions: [previousReady] }, worker: outage(lastSuccess) })), 'Stalled');
    assert.equal(stalled.status, 'True', JSON.stringify(lastSuccess));
    assert.equal(stalled.message, `Unreachable since ${since}: Delta failed 3 times in a row: cannot reach S3`, JSON.stringify(lastSuccess));
  }
  // Within the threshold of the latest success: not yet.
  const recent = condition(
    computeStatus(inputs({ now, previous: { conditions: [previousReady] }, worker: outage({ delta: '2025-01-01T00:59:00Z' }) })),
    'Stalled',
  );
  assert.equal(recent.status, 'False');
});

test('conditions at the edges of their rules', () => {
  const freshness = { schedule: '0 * * * *', deltaPeriodMs: 20_000 };
  const now = new Date('2025-01-01T00:30:00Z');
  const freshReport = report({ deltasCurrentTime: '2025-01-01T00:29:50Z' });
  const get = (overrides: Partial<StatusInputs>, type: string): [string, string] => {
    const found = computeStatus(inputs(overrides)).conditions?.find((c) => c.type === type);
    return found ? [found.status, found.reason] : ['absent', ''];
  };
  // Deltas disabled by an invalid spec are not reported as disabled: the spec decides nothing yet.
  assert.deepEqual(get({ deltasEnabled: false, specProblems: ['spec.x: bad'], worker: { phase: 'Stopped' } }, 'DeltaSnapshotSucceeded'), ['Unknown', Reason.NoDeltaYet]);
  assert.deepEqual(get({ freshness, specProblems: ['spec.x: bad'], worker: { phase: 'Stopped' } }, 'BackupFresh'), ['absent', '']);
  // Freshness is judged only while backups are meant to run.
  const notRunning: Array<[string, Partial<StatusInputs>]> = [
    ['deleting', { deleting: true }],
    ['a Secret problem', { secretProblems: [{ secretName: 's', field: 'f', reason: 'SecretNotFound', message: 'Secret s not found' }] }],
  ];
  for (const [name, overrides] of notRunning) {
    assert.deepEqual(get({ freshness, now, worker: { phase: 'Running', report: freshReport }, ...overrides }, 'BackupFresh'), ['Unknown', Reason.NotRunning], name);
  }
  assert.deepEqual(get({ freshness, now, worker: { phase: 'Running', report: freshReport } }, 'BackupFresh'), ['True', Reason.BackupsFresh]);
  assert.deepEqual(
    get({ freshness, now, worker: { phase: 'Pod', available: true, message: '1/1', store: { lastFullSnapshot: report().lastFullSnapshot! } } }, 'BackupFresh'),
    ['True', Reason.BackupsFresh],
  );
  assert.deepEqual(get({ freshness, now, worker: { phase: 'Pod', available: true, message: '1/1' } }, 'BackupFresh'), ['Unknown', Reason.NoSnapshotYet]);
  // A stopped worker that is not suspended is being started.
  assert.deepEqual(get({ worker: { phase: 'Stopped' } }, 'Ready'), ['False', Reason.Starting]);
  // A pod worker whose store listing has not come in yet waits for its first snapshot.
  assert.deepEqual(get({ worker: { phase: 'Pod', available: true, message: '1/1' } }, 'Ready'), ['False', Reason.WaitingForFirstSnapshot]);
  // Only the store being unreachable stalls after a while; etcd being down for as long does not.
  const previousReady: Condition = { type: 'Ready', status: 'False', reason: 'EtcdUnavailable', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' };
  const etcdDown = report({
    fullSnapshot: { consecutiveFailures: 0, lastSuccessTime: '2025-01-01T00:00:00Z' },
    delta: { consecutiveFailures: 60, lastError: 'cannot reach etcd', lastErrorReason: 'EtcdUnavailable' },
  });
  assert.deepEqual(get({ now: T1, previous: { conditions: [previousReady] }, worker: { phase: 'Running', report: etcdDown } }, 'Stalled'), ['False', Reason.NotStalled]);
  // With deltas disabled the outage starts at Ready's transition or the last full snapshot.
  const storeDown = report({
    delta: undefined,
    fullSnapshot: { consecutiveFailures: 3, lastError: 'cannot reach S3', lastErrorReason: 'StoreUnreachable', lastSuccessTime: '2025-01-01T00:01:00Z' },
  });
  const stalled = condition(
    computeStatus(inputs({ deltasEnabled: false, now: new Date('2025-01-01T00:10:00Z'), previous: { conditions: [previousReady] }, worker: { phase: 'Running', report: storeDown } })),
    'Stalled',
  );
  assert.equal(stalled.message, 'Unreachable since 2025-01-01T00:01:00.000Z: Full snapshot failed 3 times in a row: cannot reach S3');
});

test('retention facts are reported and kept while workers are stopped', () => {
  const retention = { lockedObjects: 2, lockedUntil: '2025-02-01T00:00:00Z', message: '2 objects are locked' };
  const running = computeStatus(inputs({ worker: { phase: 'Running', report: report({ retention }) } }));
  assert.deepEqual(running.retention, retention);
  const stopped = computeStatus(inputs({ previous: running, suspended: true, worker: { phase: 'Stopped' } }));
  assert.deepEqual(stopped.retention, retention);
  const newer = { lockedObjects: 0 };
  assert.deepEqual(computeStatus(inputs({ previous: running, worker: { phase: 'Running', report: report({ retention: newer }) } })).retention, newer);
});

test('untilStale: the requeue comes one second after the backups would turn stale, or at the fallback', () => {
  const freshness = { schedule: '0 * * * *', deltaPeriodMs: 20_000 };
  const now = new Date('2025-01-01T00:30:00Z');
  // Deltas current at 00:29:50 turn stale three periods later, at 00:30:50.
  const running = inputs({ freshness, now, worker: { phase: 'Running', report: report({ deltasCurrentTime: '2025-01-01T00:29:50Z' }) } });
  assert.equal(untilStale(running, 600_000), 51_000);
  assert.equal(untilStale(running, 10_000), 10_000);
  assert.equal(untilStale(inputs({ now }), 600_000), 600_000, 'without freshness rules');
});

test('isTransition: a new reason or a new condition type is a transition', () => {
  const a = computeStatus(inputs());
  const ready = condition(a, 'Ready');
  const withReason = (reason: string): EtcdBackupStatus => ({ ...a, conditions: a.conditions!.map((c) => (c === ready ? { ...c, reason } : c)) });
  assert.equal(isTransition(a, withReason('SomethingElse')), true, 'reason changed, status the same');
  assert.equal(isTransition(a, withReason(ready.reason)), false);
  assert.equal(isTransition({ observedGeneration: 2 }, a), true, 'no conditions before');
  assert.equal(isTransition({ ...a, conditions: a.conditions!.filter((c) => c.type !== 'Stalled') }, a), true, 'a condition type appeared');
});

test('jsonEqual is canonical and mergePatch replaces what is not an object on either side', () => {
  assert.ok(jsonEqual({ a: 1, b: 2, c: 3, d: 4, e: 5 }, { e: 5, c: 3, a: 1, d: 4, b: 2 }));
  assert.ok(jsonEqual({ d: 4, b: 2, e: 5, a: 1, c: 3 }, { c: 3, e: 5, b: 2, d: 4, a: 1 }));
  assert.ok(!jsonEqual({ a: 1, b: 2 }, { a: 2, b: 1 }));
  assert.deepEqual(mergePatch({ a: { x: 1 } }, { a: [1] }), { a: [1] });
  assert.deepEqual(mergePatch({ a: [1] }, { a: { x: 1 } }), { a: { x: 1 } });
  assert.deepEqual(mergePatch({ a: null }, { a: { x: 1 } }), { a: { x: 1 } });
  assert.deepEqual(mergePatch({ a: { x: 1 } }, { a: null }), { a: null });
  assert.deepEqual(mergePatch({ a: 'text' }, { a: { x: 1 } }), { a: { x: 1 } });
});
