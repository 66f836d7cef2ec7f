/**
 * Admission of memory budgets: the operator may only start a worker whose budget fits the memory it
 * was given, so that the sum of the budgets cannot get the operator OOM-killed. What a worker costs
 * is its budget plus what its runner model needs besides (bench/many-clusters.ts measures it); the
 * operator itself needs a base. Pure: the cgroup file is read by the caller (readCgroupMemoryLimit).
 */
import { readFileSync } from 'node:fs';
import type { RunnerModel } from './worker-protocol.js';

const MiB = 2 ** 20;

/**
 * Memory a worker takes besides its budget, per runner model, rounded up from the idle RSS per
 * EtcdBackup that bench/many-clusters.ts measured (docs/benchmarks.md) plus room for its clients'
 * buffers under load: a forked Node process, a worker thread's isolate, an in-process supervisor.
 */
export const WORKER_OVERHEAD_BYTES: Readonly<Record<RunnerModel, number>> = {
  process: 96 * MiB,
  thread: 48 * MiB,
  inline: 8 * MiB,
};

/** The operator's own memory (code, Kubernetes client, informers, AWS SDK) before any EtcdBackup. */
export const DEFAULT_OPERATOR_BASE_BYTES = 192 * MiB;

export interface OperatorMemory {
  /** All the memory the operator (and its forked workers) may use; undefined: no limit, admit all. */
  limitBytes?: number;
  /** The operator's own share before any worker. */
  baseBytes: number;
}

export type Admission = { admitted: true } | { admitted: false; message: string };

export function workerCost(model: RunnerModel, budgetBytes: number): number {
  return budgetBytes + WORKER_OVERHEAD_BYTES[model];
}

/**
 * Whether a worker costing `requestBytes` fits next to the ones admitted already (`admittedBytes`,
 * each a workerCost): base + sum(admitted) + request <= limit.
 */
export function admit(memory: OperatorMemory, admittedBytes: readonly number[], requestBytes: number): Admission {
  if (memory.limitBytes === undefined) return { admitted: true };
  const used = memory.baseBytes + admittedBytes.reduce((sum, bytes) => sum + bytes, 0);
  if (used + requestBytes <= memory.limitBytes) return { admitted: true };
  const free = Math.max(0, memory.limitBytes - used);
  return {
    admitted: false,
    message:
      `The worker needs ${mib(requestBytes)} (budget plus worker overhead) but the operator has ${mib(free)} left of its ` +
      `${mib(memory.limitBytes)} memory limit (base ${mib(memory.baseBytes)} + ${admittedBytes.length} running worker${admittedBytes.length === 1 ? '' : 's'}); ` +
      'lower spec.memory.budget, or raise the operator\'s --memory-limit; it starts when others leave room',
  };
}

function mib(bytes: number): string {
  return `${Math.round(bytes / MiB)} MiB`;
}

/** Limits this large mean "no limit" (cgroup v1 reports unlimited as ~2^63 rounded to a page). */
const UNLIMITED_FROM = 2 ** 60;

/**
 * The container's memory limit from the cgroup (v2 memory.max, else v1 memory.limit_in_bytes);
 * undefined when there is none or it cannot be read.
 */
export function readCgroupMemoryLimit(read: (path: string) => string = (path) => readFileSync(path, 'utf8')): number | undefined {
  for (const path of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = read(path).trim();
    } catch {
      continue;
    }
    if (text === 'max') return undefined;
    const bytes = Number(text);
    return Number.isFinite(bytes) && bytes > 0 && bytes < UNLIMITED_FROM ? bytes : undefined;
  }
  return undefined;
}
