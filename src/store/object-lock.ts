import type { ObjectLockSettings } from '../api/object-lock.js';

export type { ObjectLockMode, ObjectLockSettings } from '../api/object-lock.js';

/** The retention an object carries (or, for a put, was written with). */
export interface ObjectRetention {
  mode: string | undefined;
  retainUntil: Date;
}

/** The retain-until date of an object written at `now`. */
export function retainUntil(settings: ObjectLockSettings, now: Date): Date {
  return new Date(now.getTime() + settings.retainForMs);
}

/** A bucket default retention rule (Days or Years, as S3 stores it) as a duration. */
export function defaultRetentionMs(rule: { Days?: number; Years?: number } | undefined): number | undefined {
  if (!rule) return undefined;
  const DAY_MS = 86_400_000;
  if (rule.Days) return rule.Days * DAY_MS;
  // S3 counts a retention year as 365 days.
  if (rule.Years) return rule.Years * 365 * DAY_MS;
  return undefined;
}

/** True while `retention` forbids deleting the object. */
export function isLocked(retention: ObjectRetention | undefined, now: Date): boolean {
  return retention !== undefined && retention.retainUntil.getTime() > now.getTime();
}

/** Keys that retention or deletion had to leave because of Object Lock, for one report line. */
export interface LockedObjects {
  count: number;
  /** The latest retain-until among them: when all of them can go. */
  until?: Date;
  /** A few of the keys, for the message. */
  sample: string[];
}

export function summariseLocked(locked: ReadonlyArray<{ key: string; retainUntil: Date | undefined }>, sampleSize = 5): LockedObjects {
  let until: Date | undefined;
  for (const item of locked) {
    if (item.retainUntil && (!until || item.retainUntil > until)) until = item.retainUntil;
  }
  return { count: locked.length, until, sample: locked.slice(0, sampleSize).map((item) => item.key) };
}

/** "3 objects are under S3 Object Lock until 2027-01-01T00:00:00.000Z and were kept: a, b, c" */
export function describeLocked(summary: LockedObjects): string {
  const more = summary.count > summary.sample.length ? `, and ${summary.count - summary.sample.length} more` : '';
  return (
    `${summary.count} object${summary.count === 1 ? ' is' : 's are'} under S3 Object Lock` +
    (summary.until ? ` until ${summary.until.toISOString()}` : '') +
    ` and could not be deleted: ${summary.sample.join(', ')}${more}`
  );
}

/** The status fields (lastFullSnapshot) of an object's retention; none when it carries none. */
export function retentionStatus(retention: ObjectRetention | undefined): { retainUntil?: string; retentionMode?: string } {
  if (!retention) return {};
  return { retainUntil: retention.retainUntil.toISOString(), ...(retention.mode ? { retentionMode: retention.mode } : {}) };
}
