import type { ResolvedSpec } from '../api/validate.js';
import type { SupervisorReport } from '../api/supervisor-report.js';

/** Secret material resolved from Secrets (operator) or files/environment (CLI). Never logged. */
export interface ResolvedSecrets {
  etcdTls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  etcdAuth?: { username: string; password: string };
  s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  encryptionKey?: Buffer;
}

export interface SupervisorConfig {
  /** A validated, defaulted spec. */
  resolved: ResolvedSpec;
  secrets: ResolvedSecrets;
  /** For log lines and Events: `namespace/name` or the file name. */
  name: string;
}

/** Something a person should see as a Kubernetes Event. */
export interface SupervisorEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/**
 * Runs the backup of one etcd cluster: full snapshots on the cron schedule (one at start when the
 * store has none, or when a scheduled one was missed while down), deltas every period, retention.
 * `start` returns once running; `stop` waits for in-flight work to be cancelled or finished and
 * leaves nothing partial visible in the store.
 */
export interface BackupSupervisor {
  start(): Promise<void>;
  stop(): Promise<void>;
  report(): SupervisorReport;
  onReport(listener: (report: SupervisorReport) => void): void;
  onEvent(listener: (event: SupervisorEvent) => void): void;
}
