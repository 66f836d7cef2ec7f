import type { Condition, EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';
import type { SupervisorReport, WorkOutcome } from '../api/supervisor-report.js';
import { assessFreshness, type Freshness } from '../engine/freshness.js';
import type { StoreObservation } from './store-status.js';

/**
 * EtcdBackup status as a PURE function of what the controller observed: the object's generation
 * and previous status, the validation result, Secret problems and the worker's state and report.
 * Status is rebuilt on every reconcile (never patched piecemeal), so it can always be reconstituted
 * from the state of the world; lastTransitionTime moves only when a condition's status changes.
 */

export const ConditionType = {
  Ready: 'Ready',
  /**
   * kstatus's abnormal-true conditions (what Flux, `kubectl wait` pipelines and Argo CD read):
   * Reconciling=True while the operator works towards Ready (starting, first snapshot, catching up),
   * Stalled=True when it cannot get there without a person (bad spec or Secret, store gone too long).
   */
  Reconciling: 'Reconciling',
  Stalled: 'Stalled',
  SpecValid: 'SpecValid',
  FullSnapshotSucceeded: 'FullSnapshotSucceeded',
  DeltaSnapshotSucceeded: 'DeltaSnapshotSucceeded',
  RevisionsLost: 'RevisionsLost',
  /**
   * False when the newest full snapshot is older than two schedule intervals or the delta archive was
   * last complete more than three delta periods ago, whatever the cause (etcd-druid's BackupReady rules).
   */
  BackupFresh: 'BackupFresh',
  /** Only when spec.verification is set: the last scheduled trial restore of the latest backup. */
  BackupVerified: 'BackupVerified',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** Condition reasons (PascalCase, stable: dashboards and alerts match on them). */
export const Reason = {
  // SpecValid
  SpecValid: 'SpecValid',
  InvalidSpec: 'InvalidSpec',
  // Ready
  BackupsCurrent: 'BackupsCurrent',
  SecretNotFound: 'SecretNotFound',
  SecretInvalid: 'SecretInvalid',
  Suspended: 'Suspended',
  Starting: 'Starting',
  WaitingForFirstSnapshot: 'WaitingForFirstSnapshot',
  SupervisorCrashed: 'SupervisorCrashed',
  BudgetExceedsOperatorMemory: 'BudgetExceedsOperatorMemory',
  Deleting: 'Deleting',
  /** runner: pod */
  WorkerUnavailable: 'WorkerUnavailable',
  StoreUnreachable: 'StoreUnreachable',
  // Reconciling (True: Starting, WaitingForFirstSnapshot, CatchingUp, Deleting, WorkerUnavailable)
  CatchingUp: 'CatchingUp',
  Reconciled: 'Reconciled',
  // Stalled (True: InvalidSpec, SecretNotFound, SecretInvalid, StoreUnreachable, SupervisorCrashed,
  // FullSnapshotStale, DeltasStale)
  NotStalled: 'NotStalled',
  // FullSnapshotSucceeded / DeltaSnapshotSucceeded
  SnapshotTaken: 'SnapshotTaken',
  NoSnapshotYet: 'NoSnapshotYet',
  FullSnapshotFailed: 'FullSnapshotFailed',
  DeltaUploaded: 'DeltaUploaded',
  NoDeltaYet: 'NoDeltaYet',
  DeltaSnapshotFailed: 'DeltaSnapshotFailed',
  DeltasDisabled: 'DeltasDisabled',
  NotRunning: 'NotRunning',
  // BackupFresh (the stale reasons also make Ready False)
  BackupsFresh: 'BackupsFresh',
  FullSnapshotStale: 'FullSnapshotStale',
  DeltasStale: 'DeltasStale',
  // RevisionsLost
  NoRevisionsLost: 'NoRevisionsLost',
  RevisionsCompacted: 'RevisionsCompacted',
  // BackupVerified
  Verified: 'Verified',
  VerificationFailed: 'VerificationFailed',
  NotVerifiedYet: 'NotVerifiedYet',
} as const;

/** A referenced Secret that is missing or lacks what the spec needs. The message never holds values. */
export interface SecretProblem {
  secretName: string;
  /** The spec field that references it, e.g. spec.etcd.tlsSecretRef. */
  field: string;
  reason: typeof Reason.SecretNotFound | typeof Reason.SecretInvalid;
  message: string;
}

/** What the controller knows about the EtcdBackup's worker process. */
export type WorkerState =
  | { phase: 'Stopped' }
  | { phase: 'Starting'; report?: SupervisorReport }
  | { phase: 'Running'; report?: SupervisorReport }
  | { phase: 'CrashLoop'; lastError: string; restarts: number; nextRestartTime?: string; report?: SupervisorReport }
  /** Not started: its budget does not fit what is left of the operator's memory (memory-admission.ts). */
  | { phase: 'Refused'; message: string }
  /**
   * runner: pod. The operator cannot ask the worker, so it knows only the Deployment's availability
   * and what the store holds (`store` undefined with `storeError` when listing it failed).
   */
  | { phase: 'Pod'; available: boolean; message: string; store?: StoreObservation; storeError?: string };

/** The last report of a worker the operator runs itself (none when stopped, refused, or a pod). */
export function reportOf(worker: WorkerState): SupervisorReport | undefined {
  return worker.phase === 'Stopped' || worker.phase === 'Pod' || worker.phase === 'Refused' ? undefined : worker.report;
}

export interface StatusInputs {
  generation: number;
  previous: EtcdBackupStatus | undefined;
  now: Date;
  /** Every field problem of the spec; empty means valid. */
  specProblems: string[];
  secretProblems: SecretProblem[];
  suspended: boolean;
  /** False when spec.deltaSnapshot.period is 0. */
  deltasEnabled: boolean;
  /** True when spec.verification is set; BackupVerified and lastVerification exist only then. */
  verificationEnabled?: boolean;
  worker: WorkerState;
  deleting?: boolean;
  /** The valid spec's schedule and delta period: BackupFresh is computed only when given. */
  freshness?: { schedule: string; deltaPeriodMs: number };
}

/** Lag beyond which the archive is catching up (Reconciling=True): ten default chunks. */
export const CATCHING_UP_LAG_REVISIONS = 10_000;
/** How long the store may stay unreachable before a person is needed (Stalled=True). */
export const STORE_UNREACHABLE_STALLED_MS = 5 * 60_000;
/** Worker crashes in a row after which restarting alone is not expected to help (Stalled=True). */
export const CRASHES_STALLED = 3;

const CONDITION_ORDER: ConditionType[] = [
  ConditionType.Ready,
  ConditionType.Reconciling,
  ConditionType.Stalled,
  ConditionType.SpecValid,
  ConditionType.FullSnapshotSucceeded,
  ConditionType.DeltaSnapshotSucceeded,
  ConditionType.BackupFresh,
  ConditionType.RevisionsLost,
  ConditionType.BackupVerified,
];

type ConditionCore = Pick<Condition, 'status' | 'reason' | 'message'>;

export function computeStatus(inputs: StatusInputs): EtcdBackupStatus {
  const previous = inputs.previous ?? {};
  const report = reportOf(inputs.worker);
  const stored = inputs.worker.phase === 'Pod' ? inputs.worker.store : undefined;
  const lastFull = report?.lastFullSnapshot ?? stored?.lastFullSnapshot;
  const previousCondition = (type: ConditionType) => previous.conditions?.find((c) => c.type === type);

  const verificationEnabled = inputs.verificationEnabled === true && inputs.specProblems.length === 0;
  const ready = readyCondition(inputs, report);
  const cores: Record<ConditionType, ConditionCore | undefined> = {
    [ConditionType.Ready]: ready,
    [ConditionType.Reconciling]: reconcilingCondition(ready, report),
    [ConditionType.Stalled]: stalledCondition(inputs, ready, previousCondition(ConditionType.Ready)),
    [ConditionType.SpecValid]:
      inputs.specProblems.length === 0
        ? { status: 'True', reason: Reason.SpecValid, message: 'The spec is valid' }
        : { status: 'False', reason: Reason.InvalidSpec, message: inputs.specProblems.join('; ') },
    [ConditionType.FullSnapshotSucceeded]: workCondition(
      report?.fullSnapshot ?? storedOutcome(stored?.lastFullSnapshot),
      lastFull
        ? `Stored full snapshot ${lastFull.object} at revision ${lastFull.revision}`
        : 'The last full snapshot was stored',
      { taken: Reason.SnapshotTaken, none: Reason.NoSnapshotYet, failed: Reason.FullSnapshotFailed },
      'No full snapshot has been taken yet',
      previousCondition(ConditionType.FullSnapshotSucceeded),
    ),
    [ConditionType.DeltaSnapshotSucceeded]:
      !inputs.deltasEnabled && inputs.specProblems.length === 0
        ? { status: 'Unknown', reason: Reason.DeltasDisabled, message: 'Deltas are disabled (spec.deltaSnapshot.period is 0)' }
        : workCondition(
            report?.delta ?? storedOutcome(stored?.lastDeltaSnapshot),
            'Revision history is being archived in deltas',
            { taken: Reason.DeltaUploaded, none: Reason.NoDeltaYet, failed: Reason.DeltaSnapshotFailed },
            'No delta has been stored yet',
            previousCondition(ConditionType.DeltaSnapshotSucceeded),
          ),
    [ConditionType.BackupFresh]: inputs.freshness && inputs.specProblems.length === 0 ? freshnessCondition(inputs) : undefined,
    [ConditionType.RevisionsLost]: revisionsLostCondition(report, previousCondition(ConditionType.RevisionsLost)),
    // Not part of Ready: a failed trial restore is alerted on by itself, backups keep running.
    [ConditionType.BackupVerified]: verificationEnabled
      ? verifiedCondition(report, previousCondition(ConditionType.BackupVerified))
      : undefined,
  };

  const conditions = CONDITION_ORDER.flatMap((type): Condition[] => {
    const core = cores[type];
    if (!core) return [];
    const before = previousCondition(type);
    return [{
      type,
      ...core,
      // Only a change of status is a transition; new messages and reasons are not.
      lastTransitionTime:
        before && before.status === core.status ? before.lastTransitionTime : inputs.now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      observedGeneration: inputs.generation,
    }];
  });

  const status: EtcdBackupStatus = { observedGeneration: inputs.generation, conditions };
  // What is in the store stays true while workers are stopped; live readings (head, lag, schedule,
  // memory) are dropped, since nobody is watching them.
  const lastFullSnapshot = lastFull ?? previous.lastFullSnapshot;
  if (lastFullSnapshot) status.lastFullSnapshot = { ...lastFullSnapshot };
  const lastDeltaSnapshot = report?.lastDeltaSnapshot ?? stored?.lastDeltaSnapshot ?? previous.lastDeltaSnapshot;
  if (lastDeltaSnapshot) status.lastDeltaSnapshot = { ...lastDeltaSnapshot };
  const retention = report?.retention ?? previous.retention;
  if (retention) status.retention = { ...retention };
  const archivedRevision = report?.archivedRevision ?? stored?.archivedRevision ?? previous.archivedRevision;
  if (archivedRevision !== undefined) status.archivedRevision = archivedRevision;
  // Both follow from the store listing, like archivedRevision: they stay true while workers are stopped.
  const recoverableWindow = report?.recoverableWindow ?? stored?.recoverableWindow ?? previous.recoverableWindow;
  if (recoverableWindow) status.recoverableWindow = { ...recoverableWindow };
  const replayRevisions = report?.replayRevisions ?? stored?.replayRevisions ?? previous.replayRevisions;
  if (replayRevisions !== undefined) status.replayRevisions = replayRevisions;
  if (report) {
    if (report.etcdRevision !== undefined) status.etcdRevision = report.etcdRevision;
    if (report.lagRevisions !== undefined) status.lagRevisions = report.lagRevisions;
    if (report.nextFullSnapshotTime !== undefined) status.nextFullSnapshotTime = report.nextFullSnapshotTime;
    status.memory = { budgetBytes: report.memory.budgetBytes, peakBytes: report.memory.peakBytes };
  }
  // The answer to a snapshot request stays until a newer request (the annotation) replaces it.
  const requested = report?.lastRequestedSnapshot ?? previous.lastRequestedSnapshot;
  if (requested) status.lastRequestedSnapshot = { ...requested };
  if (verificationEnabled) {
    const lastVerification = lastVerificationOf(report) ?? previous.lastVerification;
    if (lastVerification) status.lastVerification = { ...lastVerification };
  }
  return status;
}

/** A backup object in the store is proof that the work succeeded (failures are the worker's to log). */
function storedOutcome(object: { time: string } | undefined): WorkOutcome | undefined {
  return object ? { lastSuccessTime: object.time, consecutiveFailures: 0 } : undefined;
}

function lastVerificationOf(report: SupervisorReport | undefined): EtcdBackupStatus['lastVerification'] {
  const v = report?.verification;
  if (!v?.lastSuccessTime || v.verifiedRevision === undefined || v.keyCount === undefined || v.contentHash === undefined) {
    return undefined;
  }
  return { time: v.lastSuccessTime, revision: v.verifiedRevision, keyCount: v.keyCount, contentHash: v.contentHash };
}

/**
 * The last verification decides; with none since the worker (re)started, what was last observed
 * still holds (a restart proves nothing either way).
 */
function verifiedCondition(report: SupervisorReport | undefined, previous: Condition | undefined): ConditionCore {
  const outcome = report?.verification;
  if (outcome && outcome.consecutiveFailures > 0) {
    const times = outcome.consecutiveFailures === 1 ? '' : ` (${outcome.consecutiveFailures} times in a row)`;
    return { status: 'False', reason: Reason.VerificationFailed, message: `${outcome.lastError ?? 'verification failed'}${times}` };
  }
  const last = lastVerificationOf(report);
  if (last) {
    const live = outcome?.liveComparison ? `; ${outcome.liveComparison}` : '';
    return {
      status: 'True',
      reason: Reason.Verified,
      message: `Trial restore of ${outcome?.snapshot ?? 'the latest backup'} + deltas at ${last.time}: revision ${last.revision}, ${last.keyCount} keys${live}`,
    };
  }
  if (previous) return { status: previous.status, reason: previous.reason, message: previous.message };
  return { status: 'Unknown', reason: Reason.NotVerifiedYet, message: 'No scheduled verification has run yet (spec.verification.schedule)' };
}

function readyCondition(inputs: StatusInputs, report: SupervisorReport | undefined): ConditionCore {
  const notReady = (reason: string, message: string): ConditionCore => ({ status: 'False', reason, message });
  if (inputs.deleting) return notReady(Reason.Deleting, 'The EtcdBackup is being deleted; backups have stopped');
  if (inputs.specProblems.length > 0) {
    const count = inputs.specProblems.length;
    return notReady(Reason.InvalidSpec, `The spec has ${count} problem${count === 1 ? '' : 's'} (see SpecValid); fix the spec to start backups`);
  }
  const secretProblem = inputs.secretProblems[0];
  if (secretProblem) return notReady(secretProblem.reason, inputs.secretProblems.map((p) => p.message).join('; '));
  if (inputs.suspended) return notReady(Reason.Suspended, 'Backups are suspended (spec.suspend is true)');
  const worker = inputs.worker;
  if (worker.phase === 'CrashLoop') {
    const next = worker.nextRestartTime ? `; restarting at ${worker.nextRestartTime}` : '';
    return notReady(
      Reason.SupervisorCrashed,
      `The backup worker process failed ${worker.restarts} time${worker.restarts === 1 ? '' : 's'}: ${worker.lastError}${next}`,
    );
  }
  if (worker.phase === 'Refused') return notReady(Reason.BudgetExceedsOperatorMemory, worker.message);
  if (worker.phase === 'Pod') {
    if (!worker.available) return notReady(Reason.WorkerUnavailable, worker.message);
    if (worker.storeError !== undefined) return notReady(Reason.StoreUnreachable, `Cannot list the store: ${worker.storeError}`);
    if (!worker.store?.lastFullSnapshot) return notReady(Reason.WaitingForFirstSnapshot, 'Waiting for the worker pod to store the first full snapshot');
    const freshness = freshnessOf(inputs);
    if (freshness && !freshness.fresh) return notReady(freshness.reason, freshness.message);
    return { status: 'True', reason: Reason.BackupsCurrent, message: `Backups are being stored by the worker pod (${worker.message})` };
  }
  if (worker.phase === 'Stopped' || !report) return notReady(Reason.Starting, 'Starting the backup worker');
  const failing = failingOutcome(report);
  if (failing) return notReady(failing.reason, failing.message);
  if (!report.lastFullSnapshot) return notReady(Reason.WaitingForFirstSnapshot, 'Taking the first full snapshot');
  const freshness = freshnessOf(inputs);
  if (freshness && !freshness.fresh) return notReady(freshness.reason, freshness.message);
  return { status: 'True', reason: Reason.BackupsCurrent, message: 'Backups are being stored on schedule' };
}

/** Reasons of Ready=False that are steps towards Ready, not failures. */
const PROGRESSING_REASONS: ReadonlySet<string> = new Set([
  Reason.Starting,
  Reason.WaitingForFirstSnapshot,
  Reason.Deleting,
  Reason.WorkerUnavailable,
]);

function reconcilingCondition(ready: ConditionCore, report: SupervisorReport | undefined): ConditionCore {
  if (PROGRESSING_REASONS.has(ready.reason)) return { status: 'True', reason: ready.reason, message: ready.message };
  const lag = report?.lagRevisions ?? 0;
  if (ready.status === 'True' && lag > CATCHING_UP_LAG_REVISIONS) {
    return { status: 'True', reason: Reason.CatchingUp, message: `Archiving a backlog of ${lag} revisions` };
  }
  return { status: 'False', reason: Reason.Reconciled, message: 'Not working towards a new state' };
}

/**
 * Stalled=True needs a person: the spec or a Secret must change, the store has been unreachable
 * past STORE_UNREACHABLE_STALLED_MS, the worker keeps crashing, or the backups are stale (BackupFresh
 * False: its deadline of missed intervals already allows for passing failures). Passing failures
 * (etcd down for a minute, one failed upload) leave Ready=False alone, which kstatus reads as in progress.
 */
function stalledCondition(inputs: StatusInputs, ready: ConditionCore, previousReady: Condition | undefined): ConditionCore {
  const stalled = (reason: string, message: string): ConditionCore => ({ status: 'True', reason, message });
  if (!inputs.deleting) {
    if (inputs.specProblems.length > 0) return stalled(Reason.InvalidSpec, inputs.specProblems.join('; '));
    if (ready.reason === Reason.SecretNotFound || ready.reason === Reason.SecretInvalid) return stalled(ready.reason, ready.message);
    if (ready.reason === Reason.FullSnapshotStale || ready.reason === Reason.DeltasStale) return stalled(ready.reason, ready.message);
    const worker = inputs.worker;
    if (worker.phase === 'CrashLoop' && worker.restarts >= CRASHES_STALLED) return stalled(ready.reason, ready.message);
    if (worker.phase === 'Refused') return stalled(ready.reason, ready.message);
    if (ready.reason === Reason.StoreUnreachable) {
      const since = unreachableSince(inputs, previousReady);
      if (inputs.now.getTime() - since.getTime() >= STORE_UNREACHABLE_STALLED_MS) {
        return stalled(Reason.StoreUnreachable, `Unreachable since ${since.toISOString()}: ${ready.message}`);
      }
    }
  }
  return { status: 'False', reason: Reason.NotStalled, message: 'Nothing needs a person' };
}

/**
 * When the store outage began, as well as a pure function can tell: not before Ready last turned
 * False, nor before the last success; with Ready not False before, it begins now.
 */
function unreachableSince(inputs: StatusInputs, previousReady: Condition | undefined): Date {
  if (previousReady?.status !== 'False') return inputs.now;
  const worker = inputs.worker;
  const report = reportOf(worker);
  const times = [previousReady.lastTransitionTime, report?.fullSnapshot.lastSuccessTime, report?.delta?.lastSuccessTime]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t));
  return new Date(Math.max(...times));
}

/**
 * The freshness verdict while a worker runs (undefined otherwise, or without inputs.freshness). The
 * newest full snapshot comes from the worker's report or, for runner: pod, the store listing; the
 * delta rule needs the worker's own word (runner: pod is judged on full snapshots only).
 */
export function freshnessOf(inputs: StatusInputs): Freshness | undefined {
  const config = inputs.freshness;
  const worker = inputs.worker;
  if (!config || inputs.suspended || inputs.deleting || inputs.specProblems.length > 0 || inputs.secretProblems.length > 0) return undefined;
  if (worker.phase === 'Stopped' || worker.phase === 'Refused') return undefined;
  const report = reportOf(worker);
  if (worker.phase !== 'Pod' && !report) return undefined;
  const lastFull = report?.lastFullSnapshot ?? (worker.phase === 'Pod' ? worker.store?.lastFullSnapshot : undefined);
  const date = (time: string | undefined): Date | undefined => (time ? new Date(time) : undefined);
  return assessFreshness({
    schedule: config.schedule,
    deltaPeriodMs: config.deltaPeriodMs,
    lastFullSnapshotTime: date(lastFull?.time),
    deltasCurrentTime: date(report?.deltasCurrentTime),
    since: date(report?.startTime),
    now: inputs.now,
  });
}

/**
 * The requeue delay: `fallbackMs`, or sooner when the backups would turn stale with nothing new
 * stored, so that BackupFresh and Ready turn False on time even if the worker reports nothing.
 */
export function untilStale(inputs: StatusInputs, fallbackMs: number): number {
  const staleAt = freshnessOf(inputs)?.staleAt;
  if (!staleAt) return fallbackMs;
  // One second past the deadline: the verdict is "stale" only once the deadline has passed.
  return Math.max(1000, Math.min(fallbackMs, staleAt.getTime() - inputs.now.getTime() + 1000));
}

function freshnessCondition(inputs: StatusInputs): ConditionCore {
  const freshness = freshnessOf(inputs);
  if (!freshness) return { status: 'Unknown', reason: Reason.NotRunning, message: 'Freshness is judged while a backup worker runs' };
  if (!freshness.fresh) return { status: 'False', reason: freshness.reason, message: freshness.message };
  const worker = inputs.worker;
  const hasFull = worker.phase === 'Pod' ? worker.store?.lastFullSnapshot : reportOf(worker)?.lastFullSnapshot;
  if (!hasFull) return { status: 'Unknown', reason: Reason.NoSnapshotYet, message: 'No full snapshot has been taken yet' };
  return { status: 'True', reason: freshness.reason, message: freshness.message };
}

function failingOutcome(report: SupervisorReport): { reason: string; message: string } | undefined {
  const candidates: Array<[string, WorkOutcome | undefined, string]> = [
    ['Full snapshot', report.fullSnapshot, Reason.FullSnapshotFailed],
    ['Delta', report.delta, Reason.DeltaSnapshotFailed],
  ];
  for (const [what, outcome, fallback] of candidates) {
    if (outcome && outcome.consecutiveFailures > 0) {
      const times = outcome.consecutiveFailures === 1 ? 'once' : `${outcome.consecutiveFailures} times in a row`;
      return {
        reason: outcome.lastErrorReason ?? fallback,
        message: `${what} failed ${times}: ${outcome.lastError ?? 'unknown error'}`,
      };
    }
  }
  return undefined;
}

function workCondition(
  outcome: WorkOutcome | undefined,
  successMessage: string,
  reasons: { taken: string; none: string; failed: string },
  noneMessage: string,
  previous: Condition | undefined,
): ConditionCore {
  if (outcome && outcome.consecutiveFailures > 0) {
    return { status: 'False', reason: outcome.lastErrorReason ?? reasons.failed, message: outcome.lastError ?? 'failed' };
  }
  if (outcome?.lastSuccessTime) return { status: 'True', reason: reasons.taken, message: successMessage };
  // Nothing new (workers stopped or just restarted): what was last observed still holds.
  if (previous) return { status: previous.status, reason: previous.reason, message: previous.message };
  return { status: 'Unknown', reason: reasons.none, message: noneMessage };
}

/**
 * Sticky: a gap in the archived history stays a fact after the supervisor restarts, so a True
 * condition is kept (naming the range and when) until a newer loss replaces it.
 */
function revisionsLostCondition(report: SupervisorReport | undefined, previous: Condition | undefined): ConditionCore {
  const lost = report?.revisionsLost;
  if (lost) {
    return {
      status: 'True',
      reason: Reason.RevisionsCompacted,
      message:
        `etcd compacted revisions ${lost.fromRevision}..${lost.toRevision} before they were archived (${lost.time}); ` +
        'a full snapshot was taken to continue. Point-in-time restores into that range are not possible',
    };
  }
  if (previous?.status === 'True') return { status: 'True', reason: previous.reason, message: previous.message };
  return { status: 'False', reason: Reason.NoRevisionsLost, message: 'No revisions were lost' };
}

/** Key-order-insensitive deep equality of JSON values. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : inner,
  );
}

/**
 * The RFC 7386 merge patch that turns `before` into `after`: removed keys become null (a merge
 * patch cannot remove them otherwise), objects recurse, arrays and scalars are replaced whole.
 */
export function mergePatch(before: unknown, after: unknown): unknown {
  if (!isPlainObject(before) || !isPlainObject(after)) return after;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(before)) if (!(key in after)) patch[key] = null;
  for (const [key, value] of Object.entries(after)) {
    if (key in before && jsonEqual(before[key], value)) continue;
    patch[key] = key in before ? mergePatch(before[key], value) : value;
  }
  return patch;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** True when `next` differs from `previous` in a condition's status or the observed generation. */
export function isTransition(previous: EtcdBackupStatus | undefined, next: EtcdBackupStatus): boolean {
  if (previous?.observedGeneration !== next.observedGeneration) return true;
  for (const condition of next.conditions ?? []) {
    const before = previous?.conditions?.find((c) => c.type === condition.type);
    if (!before || before.status !== condition.status || before.reason !== condition.reason) return true;
  }
  return false;
}
