import type { BackupListing, DeltaName, FullSnapshotName } from '../archive/naming.js';

export interface RetentionPolicy {
  policy: 'LimitBased' | 'Exponential';
  /** LimitBased only: how many of the newest full snapshots to keep. Exponential ignores it (see below). */
  maxFullSnapshots: number;
}

export interface RetentionPlan {
  /** Full snapshots kept, in listing order (revision, then time). */
  keep: FullSnapshotName[];
  /** Keys to delete: full snapshots past the policy and deltas that end at or before the oldest kept full. */
  deleteKeys: string[];
  /** Set when the plan deletes nothing because the listing cannot be reasoned about; says why (for a warning). */
  held?: string;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday: weeks start on Monday 00:00 UTC, 4 days after the epoch. */
const MONDAY_OFFSET_MS = 4 * DAY_MS;

/** The calendar buckets of the Exponential policy: how many of each, counting the one `now` is in. */
export const EXPONENTIAL_BUCKETS: ReadonlyArray<{ name: string; count: number; index: (ms: number) => number }> = [
  { name: 'hourly', count: 24, index: (ms) => Math.floor(ms / HOUR_MS) },
  { name: 'daily', count: 7, index: (ms) => Math.floor(ms / DAY_MS) },
  { name: 'weekly', count: 4, index: (ms) => Math.floor((ms - MONDAY_OFFSET_MS) / WEEK_MS) },
];

/**
 * Decides what to delete from a listing (pure; `now` is only read by Exponential).
 *
 * Policies choose which full snapshots to keep:
 * - LimitBased keeps the newest `maxFullSnapshots` (at least one).
 * - Exponential keeps, in UTC calendar buckets relative to `now`, the newest full snapshot (latest
 *   time; same second: highest revision) of each bucket that has one:
 *     hourly: the clock hour that contains `now` and the 23 before it (24 buckets [HH:00:00, HH+1:00:00));
 *     daily:  the UTC day that contains `now` and the 6 before it (7 buckets [00:00, 24:00));
 *     weekly: the ISO week (Monday 00:00 to Monday 00:00) that contains `now` and the 3 before it (4 buckets).
 *   A snapshot may be the pick of several buckets; empty buckets keep nothing (buckets are calendar
 *   spans, not "the last N that exist"), so anything older than Monday 00:00 UTC three weeks before
 *   `now`'s week goes. Snapshots dated after `now` (clock skew) are kept: they cannot be placed.
 *   `maxFullSnapshots` does not apply: its default (7) would silently cut the schedule to a week, and the
 *   buckets already bound the count (at most 24 + 7 + 4, plus the exceptions below).
 *
 * Safety rules, for both policies:
 * 1. The newest full snapshot is always kept.
 * 2. Deltas: a delta is deleted only when it ends at or before the OLDEST kept full snapshot's
 *    revision (that snapshot holds every revision it could replay); every other delta is kept, so any
 *    kept snapshot can be rolled forward to the end of the archive as far as the deltas reach.
 * 3. Chain starts: when the deltas have a gap (revisions lost to compaction; the chain restarted from
 *    the full snapshot taken then), the oldest full snapshot from which the run of deltas after the gap
 *    can be replayed is kept even if the policy drops it. Together with 2, every revision after the
 *    oldest kept snapshot that is restorable before retention (a full snapshot + contiguous deltas) is
 *    still restorable after it. Deltas no full snapshot can reach (past a missing object) are kept:
 *    deleting nothing near them cannot make them worse, and holding for them would stop retention for
 *    good (a missing object never comes back).
 * 4. Held: when full snapshot times go against their revisions (a higher revision taken at an earlier
 *    time), the store mixes two etcd histories (a restored or replaced cluster restarts revisions) or a
 *    clock went back. "Newest" and "oldest kept" are then ambiguous and the revision-based delta rule
 *    could delete the live history, so nothing is deleted and `held` says why.
 * 5. With no full snapshot nothing is deleted: deltas alone are not restorable, but they are all we have.
 * Keys whose names do not parse are not in the listing, so they are never deleted.
 *
 * Throws RangeError for an invalid `now` (it would put every snapshot outside every bucket).
 */
export function planRetention(listing: BackupListing, policy: RetentionPolicy, now: Date = new Date()): RetentionPlan {
  const fulls = listing.fulls;
  if (fulls.length === 0) return { keep: [], deleteKeys: [] };

  const contradiction = timeAgainstRevision(fulls);
  if (contradiction) return { keep: [...fulls], deleteKeys: [], held: contradiction };

  const kept = new Set<FullSnapshotName>(selectByPolicy(fulls, policy, now));
  kept.add(fulls[fulls.length - 1]!); // rule 1: with times in revision order, the last is newest by both
  const oldestKept = fulls.find((full) => kept.has(full))!.revision;
  for (const start of chainStarts(fulls, listing.deltas, oldestKept, kept)) kept.add(start);

  const keep = fulls.filter((full) => kept.has(full));
  const dropped = fulls.filter((full) => !kept.has(full));
  const staleDeltas = listing.deltas.filter((delta) => delta.toRevision <= oldestKept);
  return { keep, deleteKeys: [...dropped.map((f) => f.key), ...staleDeltas.map((d) => d.key)] };
}

function selectByPolicy(fulls: FullSnapshotName[], policy: RetentionPolicy, now: Date): FullSnapshotName[] {
  switch (policy.policy) {
    case 'LimitBased':
      return fulls.slice(-Math.max(1, policy.maxFullSnapshots));
    case 'Exponential':
      return selectExponential(fulls, now);
    default: {
      // Unreachable for typed callers; never guess what to delete for a policy we do not know.
      const unknown: never = policy.policy;
      throw new RangeError(`retention policy ${String(unknown)} is not supported`);
    }
  }
}

function selectExponential(fulls: FullSnapshotName[], now: Date): FullSnapshotName[] {
  const nowMs = now.getTime();
  if (!Number.isFinite(nowMs)) throw new RangeError(`invalid retention time ${String(now)}`);
  const picks = new Set<FullSnapshotName>();
  for (const bucket of EXPONENTIAL_BUCKETS) {
    const current = bucket.index(nowMs);
    const newest = new Map<number, FullSnapshotName>();
    for (const full of fulls) {
      const ms = full.time.getTime();
      if (ms > nowMs) continue;
      const index = bucket.index(ms);
      if (index <= current - bucket.count) continue;
      // Fulls are in time order (checked by the caller): a later one is at least as new.
      newest.set(index, full);
    }
    for (const full of newest.values()) picks.add(full);
  }
  for (const full of fulls) if (full.time.getTime() > nowMs) picks.add(full);
  return [...picks];
}

/** Describes the first pair of full snapshots whose times go against their revisions, if any. */
function timeAgainstRevision(fulls: FullSnapshotName[]): string | undefined {
  for (let i = 1; i < fulls.length; i++) {
    const before = fulls[i - 1]!;
    const after = fulls[i]!;
    if (before.revision < after.revision && before.time.getTime() > after.time.getTime()) {
      return (
        `full snapshot ${after.key} has a higher revision but an earlier time than ${before.key}: ` +
        'the store holds two etcd histories or the clock went back; retention deletes nothing until one is removed'
      );
    }
  }
  return undefined;
}

/**
 * For each run of contiguous (or overlapping) deltas that reaches past `oldestKept`, the oldest full
 * snapshot the run can be replayed from (its revision is in [run start - 1, run end), at or after
 * `oldestKept`) when no snapshot at that revision is kept. Keeping it keeps every revision of the run
 * after it restorable.
 */
function chainStarts(
  fulls: FullSnapshotName[],
  deltas: DeltaName[],
  oldestKept: number,
  kept: ReadonlySet<FullSnapshotName>,
): FullSnapshotName[] {
  const starts: FullSnapshotName[] = [];
  for (const run of deltaRuns(deltas)) {
    if (run.toRevision <= oldestKept) continue;
    const low = Math.max(run.fromRevision - 1, oldestKept);
    const first = fulls.find((full) => full.revision >= low && full.revision < run.toRevision);
    if (!first) continue; // not reachable from any snapshot: nothing to protect
    // Several snapshots may share that revision: any kept one serves, else keep the newest of them.
    const same = fulls.filter((full) => full.revision === first.revision);
    if (!same.some((full) => kept.has(full))) starts.push(same.at(-1)!);
  }
  return starts;
}

/** Merges deltas into maximal runs of contiguous or overlapping revision ranges, in order. */
function deltaRuns(deltas: DeltaName[]): Array<{ fromRevision: number; toRevision: number }> {
  const sorted = [...deltas].sort((a, b) => a.fromRevision - b.fromRevision || a.toRevision - b.toRevision);
  const runs: Array<{ fromRevision: number; toRevision: number }> = [];
  for (const delta of sorted) {
    const last = runs.at(-1);
    if (last && delta.fromRevision <= last.toRevision + 1) last.toRevision = Math.max(last.toRevision, delta.toRevision);
    else runs.push({ fromRevision: delta.fromRevision, toRevision: delta.toRevision });
  }
  return runs;
}
