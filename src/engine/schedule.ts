import { Cron } from 'croner';

export interface FullSnapshotDecision {
  /** A snapshot should start now: none exists yet, or a scheduled run was missed. */
  dueNow: boolean;
  /** The next scheduled time after now. */
  next: Date;
}

/**
 * When the next full snapshot is due (pure). A run missed while the process was down is caught up
 * ONCE at start (not once per missed tick): if the schedule fired between the last snapshot and now.
 */
export function decideFullSnapshot(schedule: string, lastSnapshotTime: Date | undefined, now: Date): FullSnapshotDecision {
  const cron = new Cron(schedule, { timezone: 'UTC', paused: true });
  const next = cron.nextRun(now);
  if (!next) throw new RangeError(`cron expression ${JSON.stringify(schedule)} never fires`);
  if (!lastSnapshotTime) return { dueNow: true, next };
  const firstAfterLast = cron.nextRun(lastSnapshotTime);
  return { dueNow: firstAfterLast !== null && firstAfterLast.getTime() <= now.getTime(), next };
}

/** Exponential backoff for retrying a failed snapshot: 5 s doubling to 5 min (a failure is usually transient). */
export function retryDelayMs(consecutiveFailures: number): number {
  const base = 5_000;
  return Math.min(300_000, base * 2 ** Math.max(0, Math.min(consecutiveFailures - 1, 10)));
}

/** The first time `schedule` (cron, UTC) fires after `after` (pure); RangeError if it never does. */
export function nextScheduledRun(schedule: string, after: Date): Date {
  const next = new Cron(schedule, { timezone: 'UTC', paused: true }).nextRun(after);
  if (!next) throw new RangeError(`cron expression ${JSON.stringify(schedule)} never fires`);
  return next;
}

/**
 * The longest gap between consecutive runs of `schedule` among the next `runs` after `from` (pure):
 * the interval a staleness alert compares with, long enough for weekday-only or monthly schedules.
 */
export function longestScheduleGapMs(schedule: string, from: Date, runs = 8): number {
  let previous = nextScheduledRun(schedule, from);
  let longest = 0;
  for (let i = 0; i < runs; i++) {
    const next = nextScheduledRun(schedule, previous);
    longest = Math.max(longest, next.getTime() - previous.getTime());
    previous = next;
  }
  return longest;
}

/**
 * Whether the chain after the newest full snapshot has grown past the bound a restore should replay
 * (pure): spec.fullSnapshot.maxDeltaRevisions. Past it a full snapshot is due whatever the cron says,
 * so that a restore to the latest point never replays more than about that many revisions.
 */
export function deltaChainTooLong(replayRevisions: number | undefined, maxDeltaRevisions: number): boolean {
  return replayRevisions !== undefined && replayRevisions > maxDeltaRevisions;
}
