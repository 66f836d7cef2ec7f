import type { SupervisorReport } from '../api/supervisor-report.js';
import type { SupervisorConfig, SupervisorEvent } from '../engine/supervisor-types.js';

/**
 * Messages between the operator and one EtcdBackup's worker (supervisor-host.ts and worker-runtime.ts),
 * whatever the runner model (runner-models.ts): a forked process's IPC channel (`serialization:
 * 'advanced'`, so the Buffers in ResolvedSecrets arrive as Buffers), a worker thread's port, or a
 * direct call in-process. Secrets travel only here: never argv, never the environment.
 */
export type ParentMessage =
  | {
      type: 'start';
      config: SupervisorConfig;
      /** Put on every log line of the worker. */
      labels: { namespace: string; name: string };
      log: { level: string; format: 'json' | 'text' };
    }
  | { type: 'stop' }
  /** Take a full snapshot now for this annotation value (once per value). */
  | { type: 'snapshot'; requestedAt: string }
  /**
   * Fault injection for the isolation tests, as a bug in the worker's work would behave: `exception`
   * throws `message` from its own context, `heap` keeps allocating until its heap cap ends it. The
   * operator never sends it.
   */
  | { type: 'fault'; kind: 'exception' | 'heap'; message: string };

export type ChildMessage =
  | { type: 'started' }
  | { type: 'report'; report: SupervisorReport }
  | { type: 'event'; event: SupervisorEvent }
  /** start() threw, or the supervisor hit an error it cannot recover from; the process exits next. */
  | { type: 'failed'; message: string; reason: string }
  | { type: 'stopped' };

/** How an EtcdBackup's worker runs in the operator (runner-models.ts); here so the CLI can list them cheaply. */
export const RUNNER_MODELS = ['process', 'thread', 'inline'] as const;
export type RunnerModel = (typeof RUNNER_MODELS)[number];
/**
 * Inline: the only model that meets "a few MiB per idle EtcdBackup" (bench/many-clusters.ts); see
 * docs/architecture.md for what it gives up and when to choose `process` or `thread` instead.
 */
export const DEFAULT_RUNNER_MODEL: RunnerModel = 'inline';
