import { parseDuration } from './duration.js';

/**
 * S3 Object Lock as this operator uses it: every backup object is written with a retention (mode and
 * retain-until date) that nobody can shorten (COMPLIANCE) or only a principal with
 * s3:BypassGovernanceRetention can (GOVERNANCE). The settings as the spec and the CLI spell them;
 * src/store/object-lock.ts has the runtime helpers.
 */
export const OBJECT_LOCK_MODES = ['GOVERNANCE', 'COMPLIANCE'] as const;
export type ObjectLockMode = (typeof OBJECT_LOCK_MODES)[number];

/** What the spec (spec.store.s3.objectLock) or the store URL asks for. */
export interface ObjectLockSettings {
  mode: ObjectLockMode;
  /** How long each object stays locked after it is written. */
  retainForMs: number;
}

/** S3 refuses retain-until dates in the past, and a lock shorter than a second protects nothing. */
export const MIN_RETAIN_FOR_MS = 1000;

/**
 * Parses mode and duration as the spec and the CLI spell them; returns the settings or the problem
 * (one line, naming `field`).
 */
export function parseObjectLock(
  mode: string,
  retainFor: string,
  field: string,
): { settings: ObjectLockSettings } | { problem: string } {
  if (!(OBJECT_LOCK_MODES as readonly string[]).includes(mode)) {
    return { problem: `${field}.mode: must be one of ${OBJECT_LOCK_MODES.join(', ')} (got ${JSON.stringify(mode)})` };
  }
  const retainForMs = parseDuration(retainFor);
  if (retainForMs === undefined || retainForMs < MIN_RETAIN_FOR_MS) {
    return { problem: `${field}.retainFor: ${JSON.stringify(retainFor)} is not a duration of at least 1s (e.g. 720h)` };
  }
  return { settings: { mode: mode as ObjectLockMode, retainForMs } };
}

