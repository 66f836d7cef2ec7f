import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SupervisorReport } from '../api/supervisor-report.js';
import type { EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';

/**
 * Prometheus metrics of the operator, in their own registry (not prom-client's global one, so tests
 * and a second operator in one process do not collide). Per-EtcdBackup series carry
 * `namespace` and `name` labels; `forget` removes them when the EtcdBackup goes away.
 *
 * Alerts need series that exist before anything goes wrong: counters start at 0 per EtcdBackup, and
 * the last-success times and snapshot size come from the store (the worker's first report lists it),
 * not only from work done since the operator started. Process metrics have the standard names
 * (process_*, nodejs_*). config/prometheus/ and config/grafana/ use only these names (a test checks).
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly lastSuccess: Gauge<'namespace' | 'name' | 'kind'>;
  private readonly archivedRevision: Gauge<'namespace' | 'name'>;
  private readonly etcdRevision: Gauge<'namespace' | 'name'>;
  private readonly lag: Gauge<'namespace' | 'name'>;
  private readonly replayRevisions: Gauge<'namespace' | 'name'>;
  private readonly bytesUploaded: Counter<'namespace' | 'name' | 'kind'>;
  private readonly lastFullSize: Gauge<'namespace' | 'name'>;
  private readonly memoryUsed: Gauge<'namespace' | 'name'>;
  private readonly fullInterval: Gauge<'namespace' | 'name'>;
  private readonly deltaPeriod: Gauge<'namespace' | 'name'>;
  private readonly verificationInterval: Gauge<'namespace' | 'name'>;
  private readonly revisionsLost: Counter<'namespace' | 'name'>;
  private readonly workerRss: Gauge<'namespace' | 'name'>;
  private readonly fullDuration: Histogram<'namespace' | 'name'>;
  private readonly verificationDuration: Histogram<'namespace' | 'name'>;
  private readonly failures: Counter<'namespace' | 'name' | 'kind'>;
  private readonly memoryPeak: Gauge<'namespace' | 'name'>;
  private readonly memoryBudget: Gauge<'namespace' | 'name'>;
  private readonly restarts: Counter<'namespace' | 'name'>;
  private readonly lastVerification: Gauge<'namespace' | 'name'>;
  private readonly backupFresh: Gauge<'namespace' | 'name'>;
  private readonly verificationFailures: Counter<'namespace' | 'name'>;
  private readonly fullRetainUntil: Gauge<'namespace' | 'name'>;
  private readonly lockedObjects: Gauge<'namespace' | 'name'>;
  readonly reconciles: Counter<'result'>;
  readonly leader: Gauge;
  /** Per supervisor run: counters in reports restart from zero when the supervisor restarts. */
  private readonly seen = new Map<string, SeenRun>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.lastSuccess = new Gauge({
      name: 'etcdbackup_last_success_timestamp_seconds',
      help: 'Unix time of the last successful backup, by kind (full or delta)',
      labelNames: ['namespace', 'name', 'kind'],
      registers,
    });
    this.archivedRevision = new Gauge({
      name: 'etcdbackup_archived_revision',
      help: 'Every etcd revision up to this one is in the store',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.etcdRevision = new Gauge({
      name: 'etcdbackup_etcd_revision',
      help: 'Head revision of etcd at the last poll',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.lag = new Gauge({
      name: 'etcdbackup_lag_revisions',
      help: 'Revisions written to etcd but not archived yet',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.replayRevisions = new Gauge({
      name: 'etcdbackup_replay_revisions',
      help: 'Delta revisions a restore to the latest point would replay now (spec.fullSnapshot.maxDeltaRevisions bounds it)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.bytesUploaded = new Counter({
      name: 'etcdbackup_uploaded_bytes_total',
      help: 'Bytes stored, by kind (full or delta)',
      labelNames: ['namespace', 'name', 'kind'],
      registers,
    });
    this.lastFullSize = new Gauge({
      name: 'etcdbackup_last_full_snapshot_size_bytes',
      help: 'Stored size of the newest full snapshot',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.fullInterval = new Gauge({
      name: 'etcdbackup_full_snapshot_interval_seconds',
      help: 'Longest gap between scheduled full snapshots (spec.fullSnapshot.schedule): what staleness alerts compare with',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.deltaPeriod = new Gauge({
      name: 'etcdbackup_delta_period_seconds',
      help: 'spec.deltaSnapshot.period in seconds (0: deltas disabled)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.verificationInterval = new Gauge({
      name: 'etcdbackup_verification_interval_seconds',
      help: 'Longest gap between scheduled verifications (spec.verification.schedule); absent without one',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.revisionsLost = new Counter({
      name: 'etcdbackup_revisions_lost_total',
      help: 'Times etcd compacted revisions before they were archived (condition RevisionsLost)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.memoryUsed = new Gauge({
      name: 'etcdbackup_memory_used_bytes',
      help: 'Bytes held under the memory budget at the last report',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.workerRss = new Gauge({
      name: 'etcdbackup_worker_resident_memory_bytes',
      help: "Resident memory of the EtcdBackup's worker process (runner: operator)",
      labelNames: ['namespace', 'name'],
      registers,
    });
    // Full snapshots take seconds (small clusters) to tens of minutes (multi-GiB databases to S3).
    const durationBuckets = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
    this.fullDuration = new Histogram({
      name: 'etcdbackup_full_snapshot_duration_seconds',
      help: 'Duration of successful full snapshots',
      labelNames: ['namespace', 'name'],
      buckets: durationBuckets,
      registers,
    });
    this.verificationDuration = new Histogram({
      name: 'etcdbackup_verification_duration_seconds',
      help: 'Duration of successful scheduled verifications (trial restores)',
      labelNames: ['namespace', 'name'],
      buckets: durationBuckets,
      registers,
    });
    this.failures = new Counter({
      name: 'etcdbackup_failures_total',
      help: 'Failed backup attempts, by kind (full or delta)',
      labelNames: ['namespace', 'name', 'kind'],
      registers,
    });
    this.memoryPeak = new Gauge({
      name: 'etcdbackup_memory_peak_bytes',
      help: 'Peak bytes held under the memory budget since the supervisor started',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.memoryBudget = new Gauge({
      name: 'etcdbackup_memory_budget_bytes',
      help: 'The memory budget (spec.memory.budget)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.restarts = new Counter({
      name: 'etcdbackup_supervisor_restarts_total',
      help: 'Times a supervisor worker process exited unexpectedly and was restarted',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.lastVerification = new Gauge({
      name: 'etcdbackup_last_verification_success_timestamp_seconds',
      help: 'Unix time of the last successful scheduled verification (trial restore of the latest backup)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.backupFresh = new Gauge({
      name: 'etcdbackup_backup_fresh',
      help: '1 while the BackupFresh condition is True, 0 while False (newest full snapshot older than two schedule intervals, or deltas not current for three periods); absent when unknown',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.verificationFailures = new Counter({
      name: 'etcdbackup_verification_failures_total',
      help: 'Failed scheduled verifications of the latest backup',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.fullRetainUntil = new Gauge({
      name: 'etcdbackup_full_snapshot_retain_until_timestamp_seconds',
      help: 'S3 Object Lock: Unix time until which the newest full snapshot cannot be deleted (absent without a lock)',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.lockedObjects = new Gauge({
      name: 'etcdbackup_retention_locked_objects',
      help: 'Objects the last retention run had to keep because they are still under S3 Object Lock',
      labelNames: ['namespace', 'name'],
      registers,
    });
    this.reconciles = new Counter({
      name: 'etcdbackup_reconcile_total',
      help: 'Reconciles by result (success, requeue, error, terminal)',
      labelNames: ['result'],
      registers,
    });
    this.leader = new Gauge({ name: 'etcdbackup_operator_leader', help: '1 while this replica holds the Lease', registers });
  }

  /** A new supervisor run started: its report counters begin at zero again. */
  supervisorStarted(namespace: string, name: string): void {
    this.seen.delete(`${namespace}/${name}`);
    this.initialise(namespace, name);
  }

  /** Counters exist at 0 from the first sight of an EtcdBackup, so rate() and increase() see the first failure. */
  private initialise(namespace: string, name: string): void {
    const labels = { namespace, name };
    for (const kind of ['full', 'delta']) {
      this.failures.inc({ ...labels, kind }, 0);
      this.bytesUploaded.inc({ ...labels, kind }, 0);
    }
    this.restarts.inc(labels, 0);
    this.verificationFailures.inc(labels, 0);
    this.revisionsLost.inc(labels, 0);
  }



  supervisorCrashed(namespace: string, name: string): void {
    this.restarts.inc({ namespace, name });
  }

  observeReport(namespace: string, name: string, report: SupervisorReport): void {
    const labels = { namespace, name };
    const key = `${namespace}/${name}`;
    let seen = this.seen.get(key);
    if (!seen) {
      seen = { uploaded: { full: 0, delta: 0 }, failureTimes: {}, successTimes: {} };
      this.seen.set(key, seen);
      this.initialise(namespace, name);
    }

    // What the store holds counts as the last success (seeded at start from its listing).
    const stored = { full: report.lastFullSnapshot?.time, delta: report.lastDeltaSnapshot?.time };
    const outcomes = { full: report.fullSnapshot, delta: report.delta };
    for (const [kind, outcome] of Object.entries(outcomes)) {
      const times = [outcome?.lastSuccessTime, stored[kind as keyof typeof stored]].filter((t): t is string => t !== undefined);
      if (times.length > 0) this.lastSuccess.set({ ...labels, kind }, Math.max(...times.map((t) => Date.parse(t))) / 1000);
      if (!outcome) continue;
      if (
        kind === 'full' &&
        outcome.lastSuccessTime &&
        outcome.lastSuccessTime !== seen.successTimes.full &&
        outcome.lastDurationSeconds !== undefined
      ) {
        this.fullDuration.observe(labels, outcome.lastDurationSeconds);
      }
      seen.successTimes[kind] = outcome.lastSuccessTime;
      // A failure is counted once: when its time is new.
      if (outcome.lastFailureTime && outcome.lastFailureTime !== seen.failureTimes[kind]) {
        this.failures.inc({ ...labels, kind });
      }
      seen.failureTimes[kind] = outcome.lastFailureTime;
    }
    const verification = report.verification;
    if (verification) {
      if (verification.lastSuccessTime) this.lastVerification.set(labels, Date.parse(verification.lastSuccessTime) / 1000);
      if (
        verification.lastSuccessTime &&
        verification.lastSuccessTime !== seen.successTimes.verification &&
        verification.lastDurationSeconds !== undefined
      ) {
        this.verificationDuration.observe(labels, verification.lastDurationSeconds);
      }
      seen.successTimes.verification = verification.lastSuccessTime;
      if (verification.lastFailureTime && verification.lastFailureTime !== seen.failureTimes.verification) {
        this.verificationFailures.inc(labels);
      }
      seen.failureTimes.verification = verification.lastFailureTime;
    }
    if (report.archivedRevision !== undefined) this.archivedRevision.set(labels, report.archivedRevision);
    if (report.etcdRevision !== undefined) this.etcdRevision.set(labels, report.etcdRevision);
    if (report.lagRevisions !== undefined) this.lag.set(labels, report.lagRevisions);
    if (report.replayRevisions !== undefined) this.replayRevisions.set(labels, report.replayRevisions);
    for (const kind of ['full', 'delta'] as const) {
      const now = report.uploadedBytes[kind];
      if (now > seen.uploaded[kind]) this.bytesUploaded.inc({ ...labels, kind }, now - seen.uploaded[kind]);
      seen.uploaded[kind] = now;
    }
    if (report.lastFullSnapshot?.sizeBytes) this.lastFullSize.set(labels, report.lastFullSnapshot.sizeBytes);
    this.memoryUsed.set(labels, report.memory.usedBytes);
    if (report.cadence) {
      this.fullInterval.set(labels, report.cadence.fullSnapshotIntervalSeconds);
      this.deltaPeriod.set(labels, report.cadence.deltaPeriodSeconds);
      const verification = report.cadence.verificationIntervalSeconds;
      if (verification !== undefined) this.verificationInterval.set(labels, verification);
      else this.verificationInterval.remove(labels);
    }
    if (report.revisionsLost && report.revisionsLost.time !== seen.revisionsLostTime) this.revisionsLost.inc(labels);
    seen.revisionsLostTime = report.revisionsLost?.time;
    if (report.memory.rssBytes !== undefined) this.workerRss.set(labels, report.memory.rssBytes);
    this.memoryPeak.set(labels, report.memory.peakBytes);
    this.memoryBudget.set(labels, report.memory.budgetBytes);
    const retainUntil = report.lastFullSnapshot?.retainUntil;
    if (retainUntil) this.fullRetainUntil.set(labels, Date.parse(retainUntil) / 1000);
    else this.fullRetainUntil.remove(labels);
    if (report.retention) this.lockedObjects.set(labels, report.retention.lockedObjects);
  }

  /** The BackupFresh condition of a computed status as 1/0; the series is removed while it is Unknown. */
  observeFreshness(namespace: string, name: string, status: EtcdBackupStatus): void {
    const condition = status.conditions?.find((c) => c.type === 'BackupFresh');
    if (condition?.status === 'True') this.backupFresh.set({ namespace, name }, 1);
    else if (condition?.status === 'False') this.backupFresh.set({ namespace, name }, 0);
    else this.backupFresh.remove({ namespace, name });
  }

  /** Drops the EtcdBackup's series (it was deleted or this replica stopped leading). */
  forget(namespace: string, name: string): void {
    const labels = { namespace, name };
    this.seen.delete(`${namespace}/${name}`);
    for (const metric of [
      this.archivedRevision,
      this.etcdRevision,
      this.lag,
      this.replayRevisions,
      this.lastFullSize,
      this.memoryUsed,
      this.fullInterval,
      this.deltaPeriod,
      this.verificationInterval,
      this.revisionsLost,
      this.workerRss,
      this.fullDuration,
      this.verificationDuration,
      this.memoryPeak,
      this.memoryBudget,
      this.restarts,
      this.lastVerification,
      this.verificationFailures,
      this.backupFresh,
      this.fullRetainUntil,
      this.lockedObjects,
    ]) {
      metric.remove(labels);
    }
    for (const kind of ['full', 'delta']) {
      this.lastSuccess.remove({ ...labels, kind });
      this.failures.remove({ ...labels, kind });
      this.bytesUploaded.remove({ ...labels, kind });
    }
  }
}

/** What one supervisor run reported so far: its counters restart from zero with the run. */
interface SeenRun {
  uploaded: { full: number; delta: number };
  failureTimes: Record<string, string | undefined>;
  successTimes: Record<string, string | undefined>;
  revisionsLostTime?: string;
}
