import type { SupervisorReport } from '../api/supervisor-report.js';
import type { SupervisorConfig, SupervisorEvent } from '../engine/supervisor-types.js';

/**
 * Messages between the operator and one EtcdBackup's worker process (supervisor-host.ts and
 * worker-entry.ts). The channel uses `serialization: 'advanced'` so the Buffers in ResolvedSecrets
 * arrive as Buffers. Secrets travel only here: never argv, never the environment.
 */
export type ParentMessage =
  | {
      type: 'start';
      config: SupervisorConfig;
      /** Put on every log line of the worker. */
      labels: { namespace: string; name: string };
      log: { level: string; format: 'json' | 'text' };
    }
  | { type: 'stop' };

export type ChildMessage =
  | { type: 'started' }
  | { type: 'report'; report: SupervisorReport }
  | { type: 'event'; event: SupervisorEvent }
  /** start() threw, or the supervisor hit an error it cannot recover from; the process exits next. */
  | { type: 'failed'; message: string; reason: string }
  | { type: 'stopped' };
