import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { SupervisorReport } from '../api/supervisor-report.js';
import type { EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';

/**
 * Prometheus metrics of the operator, in their own registry (not prom-client's global one, so tests
 * and a second operator in one process do not collide). Per-EtcdBackup series carry
 * `namespace` and `name` labels; `forget` removes them when the EtcdBackup goes away.
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  private readonly lastSuccess: Gauge<'namespace' | 'name' | 'kind'>;
  private readonly archivedRevision: Gauge<'namespace' | 'name'>;
  private readonly etcdRevision: Gauge<'namespace' | 'name'>;
  private readonly lag: Gauge<'namespace' | 'name'>;
  private readonly bytesUploaded: Counter<'namespace' | 'name'>;
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
  private readonly seen = new Map<string, { bytesUploaded: number; failureTimes: Record<string, string | undefined> }>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'etcdbackup_operator_' });
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
    this.bytesUploaded = new Counter({
      name: 'etcdbackup_uploaded_bytes_total',
      help: 'Bytes stored (full snapshots and deltas)',
      labelNames: ['namespace', 'name'],
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
  }

  supervisorCrashed(namespace: string, name: string): void {
    this.restarts.inc({ namespace, name });
  }

  observeReport(namespace: string, name: string, report: SupervisorReport): void {
    const labels = { namespace, name };
    const key = `${namespace}/${name}`;
    const seen = this.seen.get(key) ?? { bytesUploaded: 0, failureTimes: {} };
    this.seen.set(key, seen);

    const outcomes = { full: report.fullSnapshot, delta: report.delta };
    for (const [kind, outcome] of Object.entries(outcomes)) {
      if (!outcome) continue;
      if (outcome.lastSuccessTime) {
        this.lastSuccess.set({ ...labels, kind }, Date.parse(outcome.lastSuccessTime) / 1000);
      }
      // A failure is counted once: when its time is new.
      if (outcome.lastFailureTime && outcome.lastFailureTime !== seen.failureTimes[kind]) {
        this.failures.inc({ ...labels, kind });
      }
      seen.failureTimes[kind] = outcome.lastFailureTime;
    }
    const verification = report.verification;
    if (verification) {
      if (verification.lastSuccessTime) this.lastVerification.set(labels, Date.parse(verification.lastSuccessTime) / 1000);
      if (verification.lastFailureTime && verification.lastFailureTime !== seen.failureTimes.verification) {
        this.verificationFailures.inc(labels);
      }
      seen.failureTimes.verification = verification.lastFailureTime;
    }
    if (report.archivedRevision !== undefined) this.archivedRevision.set(labels, report.archivedRevision);
    if (report.etcdRevision !== undefined) this.etcdRevision.set(labels, report.etcdRevision);
    if (report.lagRevisions !== undefined) this.lag.set(labels, report.lagRevisions);
    if (report.bytesUploaded > seen.bytesUploaded) this.bytesUploaded.inc(labels, report.bytesUploaded - seen.bytesUploaded);
    seen.bytesUploaded = report.bytesUploaded;
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
      this.bytesUploaded,
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
    }
  }
}
