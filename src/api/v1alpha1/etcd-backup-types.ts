/**
 * EtcdBackup (etcdbackup.io/v1alpha1). Spec is desired state, status is observed state.
 * The JSON schema in ./schema.ts is the one source for validation and for the CRD; these types
 * mirror it (a unit test checks that defaults and schema agree).
 */
export const GROUP = 'etcdbackup.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'EtcdBackup';
export const PLURAL = 'etcdbackups';
export const SINGULAR = 'etcdbackup';
export const SHORT_NAMES = ['eb'];

export interface SecretRef {
  name: string;
}

export interface EtcdSpec {
  endpoints: string[];
  /** Secret with ca.crt, tls.crt, tls.key (each optional). */
  tlsSecretRef?: SecretRef;
  /** Secret with username and password. */
  credentialsSecretRef?: SecretRef;
  /** Allows sending credentialsSecretRef's password to http:// endpoints without TLS. */
  insecure?: boolean;
}

export interface S3StoreSpec {
  bucket: string;
  prefix?: string;
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Secret with accessKeyId and secretAccessKey; absent means the default AWS credential chain. */
  credentialsSecretRef?: SecretRef;
  /** S3 Object Lock retention written on every backup object (the bucket must have Object Lock enabled). */
  objectLock?: ObjectLockSpec;
  /** Allows credentialsSecretRef with an http:// endpoint (requests signed and data sent without TLS). */
  insecure?: boolean;
}

export interface ObjectLockSpec {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** Go duration, e.g. 720h: how long each object stays locked after it is written. */
  retainFor: string;
}

export interface LocalStoreSpec {
  path: string;
}

export interface StoreSpec {
  s3?: S3StoreSpec;
  local?: LocalStoreSpec;
}

export interface FullSnapshotSpec {
  /** Five-field cron expression (or @hourly, @daily...), evaluated in UTC. */
  schedule: string;
  compression: 'gzip' | 'zstd' | 'none';
  /** Go duration, e.g. 15m. */
  timeout: string;
  /** Take a full snapshot early once more revisions than this follow the newest one; 0 or absent: the default. */
  maxDeltaRevisions?: number;
}

export interface DeltaSnapshotSpec {
  /** Go duration between polls of the head revision; "0" disables deltas. */
  period: string;
  chunkRevisions: number;
  chunkParallelism: number;
}

export interface MemorySpec {
  /** Kubernetes quantity, e.g. 128Mi. */
  budget: string | number;
}

export interface RetentionSpec {
  policy: 'LimitBased' | 'Exponential';
  maxFullSnapshots: number;
}

export interface VerificationSpec {
  /** Five-field cron expression (or @daily...), evaluated in UTC: when to trial-restore the latest backup. */
  schedule: string;
}

export interface CompactionSpec {
  /** Compact in the worker once a restore to the latest point would replay this many delta revisions. */
  everyDeltaRevisions: number;
}

export interface EncryptionSpec {
  keySecretRef: SecretRef;
}

/** Where the backup worker runs (see docs/operator.md, "Runner: pod"). */
export type Runner = 'operator' | 'pod';

export interface PodRunnerSpec {
  /** Default: the operator's --worker-image. */
  image?: string;
  nodeSelector?: Record<string, string>;
}

export interface EtcdBackupSpec {
  etcd: EtcdSpec;
  store: StoreSpec;
  fullSnapshot: FullSnapshotSpec;
  deltaSnapshot: DeltaSnapshotSpec;
  memory: MemorySpec;
  retention: RetentionSpec;
  /** Absent: no scheduled verification. */
  verification?: VerificationSpec;
  /** Absent: no compaction in the worker. */
  compaction?: CompactionSpec;
  encryption?: EncryptionSpec;
  suspend: boolean;
  runner: Runner;
  /** Used only when runner is pod. */
  pod?: PodRunnerSpec;
  deletionPolicy: 'Retain' | 'Delete';
}

/** metav1.Condition */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface EtcdBackupStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  lastFullSnapshot?: {
    revision: number;
    time: string;
    object: string;
    sizeBytes: number;
    sha256?: string;
    /** S3 Object Lock: until when the object cannot be deleted, and the lock mode. */
    retainUntil?: string;
    retentionMode?: string;
  };
  /** Objects the last retention run had to leave because they are still under S3 Object Lock. */
  retention?: { lockedObjects: number; lockedUntil?: string; message?: string };
  lastDeltaSnapshot?: { fromRevision: number; toRevision: number; time: string; object: string };
  archivedRevision?: number;
  etcdRevision?: number;
  lagRevisions?: number;
  nextFullSnapshotTime?: string;
  /** The revisions a restore can reach, with the store times of the first and the last (RFC 3339). */
  recoverableWindow?: { firstRevision: number; firstTime: string; lastRevision: number; lastTime: string };
  /** Delta revisions a restore to the latest point would replay now (bounded by spec.fullSnapshot.maxDeltaRevisions). */
  replayRevisions?: number;
  /** The last successful verification: when, the revision restored, its key count and content hash. */
  lastVerification?: { time: string; revision: number; keyCount: number; contentHash: string };
  memory?: { budgetBytes: number; peakBytes: number };
  /** The full snapshot asked for with the SNAPSHOT_REQUEST_ANNOTATION, once per annotation value. */
  lastRequestedSnapshot?: RequestedSnapshot;
}

/** `kubectl annotate etcdbackup NAME etcdbackup.io/snapshot-requested-at=<RFC 3339 time>` takes a full snapshot now. */
export const SNAPSHOT_REQUEST_ANNOTATION = 'etcdbackup.io/snapshot-requested-at';

export interface RequestedSnapshot {
  /** The annotation's value this result answers. */
  requestedAt: string;
  phase: 'InProgress' | 'Succeeded' | 'Failed';
  /** Succeeded: the stored snapshot. */
  object?: string;
  revision?: number;
  time?: string;
  /** Failed: why. */
  message?: string;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  finalizers?: string[];
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
}

export interface EtcdBackup {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: EtcdBackupSpec;
  status?: EtcdBackupStatus;
}
