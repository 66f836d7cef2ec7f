/**
 * Object naming: the store is the source of truth, so names carry what planning needs
 * (kind, revisions, time, encoding) and listings can be parsed back without reading objects.
 *
 *   full/<revision %020d>-<unix seconds>.db[.gz][.enc]
 *   delta/<fromRevision %020d>-<toRevision %020d>.jsonl[.gz][.enc]
 *
 * Revisions are zero-padded to 20 digits (int64 max has 19) so that lexical order is numeric order.
 */

export type Compression = 'gzip' | 'none';

export interface Encoding {
  compression: Compression;
  encrypted: boolean;
}

export interface FullSnapshotName extends Encoding {
  kind: 'full';
  key: string;
  /** Head revision read just before the snapshot started: the snapshot holds every revision <= this. */
  revision: number;
  time: Date;
}

export interface DeltaName extends Encoding {
  kind: 'delta';
  key: string;
  fromRevision: number;
  toRevision: number;
}

export type BackupName = FullSnapshotName | DeltaName;

export const FULL_DIR = 'full/';
export const DELTA_DIR = 'delta/';

const REVISION_WIDTH = 20;
const FULL_RE = /^full\/(\d{20})-(\d{1,12})\.db(\.gz)?(\.enc)?$/;
const DELTA_RE = /^delta\/(\d{20})-(\d{20})\.jsonl(\.gz)?(\.enc)?$/;

function pad(revision: number): string {
  if (!Number.isSafeInteger(revision) || revision < 0) throw new RangeError(`invalid revision ${revision}`);
  return String(revision).padStart(REVISION_WIDTH, '0');
}

function suffix(encoding: Encoding): string {
  return (encoding.compression === 'gzip' ? '.gz' : '') + (encoding.encrypted ? '.enc' : '');
}

export function fullSnapshotKey(revision: number, time: Date, encoding: Encoding): string {
  const seconds = Math.floor(time.getTime() / 1000);
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new RangeError(`invalid snapshot time ${String(time)}`);
  return `${FULL_DIR}${pad(revision)}-${seconds}.db${suffix(encoding)}`;
}

export function deltaKey(fromRevision: number, toRevision: number, encoding: Encoding): string {
  if (toRevision < fromRevision) throw new RangeError(`delta range ${fromRevision}..${toRevision} is empty`);
  return `${DELTA_DIR}${pad(fromRevision)}-${pad(toRevision)}.jsonl${suffix(encoding)}`;
}

function encodingOf(gz: string | undefined, enc: string | undefined): Encoding {
  return { compression: gz ? 'gzip' : 'none', encrypted: Boolean(enc) };
}

/** Parses a key back; returns undefined for keys that are not backups (callers skip them with a warning). */
export function parseBackupKey(key: string): BackupName | undefined {
  const full = FULL_RE.exec(key);
  if (full) {
    const revision = Number(full[1]);
    const seconds = Number(full[2]);
    if (!Number.isSafeInteger(revision)) return undefined;
    return { kind: 'full', key, revision, time: new Date(seconds * 1000), ...encodingOf(full[3], full[4]) };
  }
  const delta = DELTA_RE.exec(key);
  if (delta) {
    const fromRevision = Number(delta[1]);
    const toRevision = Number(delta[2]);
    if (!Number.isSafeInteger(toRevision) || toRevision < fromRevision) return undefined;
    return { kind: 'delta', key, fromRevision, toRevision, ...encodingOf(delta[3], delta[4]) };
  }
  return undefined;
}

export interface BackupListing {
  /** Sorted by revision, then time. */
  fulls: FullSnapshotName[];
  /** Sorted by fromRevision, then toRevision. */
  deltas: DeltaName[];
  /** Keys that are not backups. */
  unknown: string[];
}

/** Splits a store listing into full snapshots and deltas, sorted, keeping unparseable keys apart. */
export function classifyKeys(keys: Iterable<string>): BackupListing {
  const fulls: FullSnapshotName[] = [];
  const deltas: DeltaName[] = [];
  const unknown: string[] = [];
  for (const key of keys) {
    const name = parseBackupKey(key);
    if (!name) unknown.push(key);
    else if (name.kind === 'full') fulls.push(name);
    else deltas.push(name);
  }
  fulls.sort((a, b) => a.revision - b.revision || a.time.getTime() - b.time.getTime());
  deltas.sort((a, b) => a.fromRevision - b.fromRevision || a.toRevision - b.toRevision);
  return { fulls, deltas, unknown };
}
