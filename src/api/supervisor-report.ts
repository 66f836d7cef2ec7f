/**
 * What a backup supervisor reports about its cluster: the contract between the engine that fills it,
 * the controller that turns it into EtcdBackup status, and the metrics that export it. It lives beside
 * the spec and status types so that every one of them can read it without importing the engine.
 */
import type { EtcdBackupStatus, RequestedSnapshot } from './v1alpha1/etcd-backup-types.js';

/** Outcome of the last attempt of one kind of work. */
export interface WorkOutcome {
  lastSuccessTime?: string;
  lastFailureTime?: string;
  /** One-line message of the last failure; cleared by the next success. */
  lastError?: string;
  /** PascalCase reason of the last failure, e.g. EtcdUnavailable, StoreUnreachable. */
  lastErrorReason?: string;
  consecutiveFailures: number;
  /** How long the last successful attempt took (full snapshots and verifications). */
  lastDurationSeconds?: number;
}

/** Outcome of the last scheduled verification (trial restore of the latest full snapshot + deltas). */
export interface VerificationOutcome extends WorkOutcome {
  /** The revision the last successful verification restored. */
  verifiedRevision?: number;
  keyCount?: number;
  /** sha256 over every restored key, value, create/mod revision and version, in key order. */
  contentHash?: string;
  /** The full snapshot the last successful verification started from. */
  snapshot?: string;
  /** How the last successful verification compared with live etcd, e.g. why it could not. */
  liveComparison?: string;
}

/** What the supervisor observed; the operator turns it into EtcdBackup status with a pure function. */
export interface SupervisorReport
  extends Pick<
    EtcdBackupStatus,
    | 'lastFullSnapshot'
    | 'lastDeltaSnapshot'
    | 'archivedRevision'
    | 'etcdRevision'
    | 'lagRevisions'
    | 'nextFullSnapshotTime'
    | 'retention'
    | 'recoverableWindow'
    | 'replayRevisions'
  > {
  /** rssBytes: the worker process's resident memory, when it runs in a worker process of the operator. */
  memory: { budgetBytes: number; peakBytes: number; usedBytes: number; rssBytes?: number };
  fullSnapshot: WorkOutcome;
  /** Undefined when deltas are disabled (period 0). */
  delta?: WorkOutcome;
  /** Undefined when spec.verification is not set. */
  verification?: VerificationOutcome;
  /** Undefined when spec.compaction is not set. */
  compaction?: WorkOutcome;
  /** Set when etcd compacted revisions before they were archived. */
  revisionsLost?: { fromRevision: number; toRevision: number; time: string };
  /** The spec's cadence, for staleness alerts: the longest gap between scheduled full snapshots, the delta period (0: off). */
  cadence?: { fullSnapshotIntervalSeconds: number; deltaPeriodSeconds: number; verificationIntervalSeconds?: number };
  /** The last full snapshot asked for by annotation (requestFullSnapshot). */
  lastRequestedSnapshot?: RequestedSnapshot;
  /** When this supervisor was created (freshness is judged from here until its first delta poll ends). */
  startTime?: string;
  /**
   * The last time a delta was stored or a delta poll ended with every revision up to the head it read
   * in the store (an idle etcd writes no delta, so the newest delta's time alone would call it stale).
   */
  deltasCurrentTime?: string;
  /** Stored bytes since the supervisor started: full snapshots plus deltas. */
  bytesUploaded: number;
  /** The same bytes by kind. */
  uploadedBytes: { full: number; delta: number };
}
