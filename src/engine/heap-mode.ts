import { setFlagsFromString } from 'node:v8';

/**
 * Makes V8 collect garbage sooner and grow its heap less, for the long-running backup processes
 * (`run`, the operator's per-cluster workers) whose memory must stay near the budget.
 *
 * Held bytes are bounded by the MemoryBudget, but what a process uses is held bytes plus garbage
 * not collected yet: decoded watch responses that lived long enough to be promoted. With small
 * values at 10-20 MB/s that garbage was about twice the budget (bench/delta-memory.ts: RSS growth
 * 138-147 MiB for a 64 MiB budget); with --optimize-for-size it is 0.4-0.6x that, for up to 20%
 * less throughput at P=4. One-shot commands (snapshot, restore) do not call this: there speed
 * matters and their memory does not grow with the write rate (a snapshot was 18% slower with it).
 *
 * Set at run time because the launcher (bin/etcd-backup.js, the image's entrypoint) is shared by
 * every command; the flag is read by V8's GC heuristics whenever they run, so setting it before
 * the work starts takes full effect (measured: same figures as passing it on the command line).
 */
export function favourSmallHeap(): void {
  setFlagsFromString('--optimize-for-size');
}
