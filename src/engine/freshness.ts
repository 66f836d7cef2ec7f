import { nextScheduledRun } from './schedule.js';

/**
 * Whether the backups are fresh, whatever the cause of staleness (a stopped schedule, a stuck
 * upload, a worker that reports nothing): etcd-druid's BackupReady rules. Pure: spec, what is
 * stored and the clock in, a verdict and when it will change out.
 */
export interface FreshnessInputs {
  /** spec.fullSnapshot.schedule (cron, UTC). */
  schedule: string;
  /** spec.deltaSnapshot.period in ms; 0 when deltas are disabled. */
  deltaPeriodMs: number;
  /** Time of the newest full snapshot; undefined when there is none (the rule is not applied). */
  lastFullSnapshotTime?: Date;
  /**
   * When a delta was last stored, or a poll last ended with the archive at the head it read (an idle
   * etcd writes no delta, so the newest delta's time alone would not do). Undefined when unknown
   * (runner: pod): the delta rule is then applied from `since`, or not at all.
   */
  deltasCurrentTime?: Date;
  /** When the worker started: the delta rule's reference until a first poll completes. */
  since?: Date;
  now: Date;
}

export type FreshnessReason = 'BackupsFresh' | 'FullSnapshotStale' | 'DeltasStale';

export interface Freshness {
  fresh: boolean;
  reason: FreshnessReason;
  message: string;
  /** When a fresh verdict turns stale if nothing new is stored (re-evaluate then); undefined when stale. */
  staleAt?: Date;
}

/** How many delta periods without a current archive make the deltas stale (etcd-druid uses 3). */
export const STALE_DELTA_PERIODS = 3;
/** How many schedule ticks without a newer full snapshot make it stale: two intervals. */
export const STALE_SCHEDULE_TICKS = 2;

export function assessFreshness(inputs: FreshnessInputs): Freshness {
  const { now } = inputs;
  const deadlines: Date[] = [];
  if (inputs.lastFullSnapshotTime) {
    let tick = inputs.lastFullSnapshotTime;
    for (let i = 0; i < STALE_SCHEDULE_TICKS; i++) tick = nextScheduledRun(inputs.schedule, tick);
    if (tick.getTime() <= now.getTime()) {
      return {
        fresh: false,
        reason: 'FullSnapshotStale',
        message:
          `The newest full snapshot (${iso(inputs.lastFullSnapshotTime)}) is older than ${STALE_SCHEDULE_TICKS} intervals of ` +
          `the schedule "${inputs.schedule}": no full snapshot since ${iso(tick)}`,
      };
    }
    deadlines.push(tick);
  }
  const deltaReference = inputs.deltasCurrentTime ?? inputs.since;
  if (inputs.deltaPeriodMs > 0 && deltaReference) {
    const staleAt = new Date(deltaReference.getTime() + STALE_DELTA_PERIODS * inputs.deltaPeriodMs);
    if (staleAt.getTime() <= now.getTime()) {
      const what = inputs.deltasCurrentTime
        ? `last advanced or was complete at ${iso(inputs.deltasCurrentTime)}`
        : `has not advanced or been complete since the worker started at ${iso(deltaReference)}`;
      return {
        fresh: false,
        reason: 'DeltasStale',
        message: `The delta archive ${what}, more than ${STALE_DELTA_PERIODS} delta periods (${inputs.deltaPeriodMs / 1000}s each) ago`,
      };
    }
    deadlines.push(staleAt);
  }
  const staleAt = deadlines.sort((a, b) => a.getTime() - b.getTime())[0];
  return {
    fresh: true,
    reason: 'BackupsFresh',
    message: 'The newest full snapshot and the delta archive are within their schedules',
    ...(staleAt ? { staleAt } : {}),
  };
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
