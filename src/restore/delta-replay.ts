/**
 * Replays archived delta revisions into a (temporary) etcd that was restored from a full snapshot,
 * one txn per source revision, so that the restored revision numbers, create revisions and versions
 * equal the source's.
 *
 * Leases are NOT restored: keys are written without a lease (the source's lease IDs mean nothing in
 * the restored cluster, and expiring them during the restore would change the data). Deletions
 * caused by lease expiry in the source are in the deltas as ordinary DELETE events and are replayed.
 *
 * The etcd being restored must accept each source revision as one txn: start it with
 * --max-txn-ops at least the largest revision's event count (a delete-range or lease revocation can
 * touch many keys; contiguous deletions are sent as one delete-range when that is exact) and
 * --max-request-bytes at least the source's.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Etcd3, IRequestOp } from 'etcd3';
import { RestoreError, UsageError, errorMessage } from '../errors.js';
import { headRevision } from '../etcd/client.js';
import { decodeDeltaEvents, groupByRevision, type DeltaEvent, type RevisionEvents } from '../engine/delta-format.js';
import type { Logger } from '../observability/logger.js';
import type { DeltaName } from '../store/naming.js';
import type { ObjectStore } from '../store/object-store.js';

/** The delta archive does not hold some revisions a restore needs. */
export class DeltaGapError extends RestoreError {
  constructor(
    readonly missingFrom: number,
    readonly missingTo: number,
    detail?: string,
  ) {
    super(
      `the delta archive is missing revision${missingFrom === missingTo ? ` ${missingFrom}` : `s ${missingFrom}..${missingTo}`}` +
        (detail ? ` (${detail})` : ''),
    );
  }
}

/**
 * The delta objects to replay, in order, so that together they cover every revision in
 * (afterRevision, toRevision]. Overlapping objects (a crash-retry cut a chunk at another revision)
 * are fine: at each point the object reaching furthest is taken, and replay skips revisions it has
 * already applied. Throws DeltaGapError naming the first missing revisions.
 */
export function planDeltas(deltas: readonly DeltaName[], afterRevision: number, toRevision: number): DeltaName[] {
  const sorted = [...deltas].sort(
    (a, b) => a.fromRevision - b.fromRevision || b.toRevision - a.toRevision || (a.key < b.key ? -1 : 1),
  );
  const picked: DeltaName[] = [];
  let reached = afterRevision;
  let index = 0;
  while (reached < toRevision) {
    let best: DeltaName | undefined;
    // Every object starting at or before reached+1 is a candidate; `sorted` is by start, so scan on.
    for (; index < sorted.length && sorted[index]!.fromRevision <= reached + 1; index++) {
      const delta = sorted[index]!;
      if (delta.toRevision > reached && (!best || delta.toRevision > best.toRevision)) best = delta;
    }
    if (!best) {
      const next = sorted.slice(index).find((d) => d.toRevision > reached);
      const missingTo = next ? Math.min(next.fromRevision - 1, toRevision) : toRevision;
      throw new DeltaGapError(reached + 1, missingTo, next ? undefined : 'no delta object reaches that far');
    }
    picked.push(best);
    reached = best.toRevision;
  }
  return picked;
}

export interface ReplayOptions {
  /** The etcd being restored; its head revision must equal afterRevision. */
  client: Etcd3;
  store: ObjectStore;
  /** The store's delta objects (from classifyKeys); planDeltas picks the ones needed. */
  deltas: DeltaName[];
  /** Revision the restored etcd is at (read after restoring the full snapshot). */
  afterRevision: number;
  /** Last revision to apply. */
  toRevision: number;
  logger: Logger;
  /** Turns an encrypted object's bytes into plain ones; required when a needed object is `.enc`. */
  decrypt?: (body: Readable, key: string) => Readable;
  /** Where objects are spooled while their checksum is verified; default the OS temp dir. */
  tempDir?: string;
}

const NUL = Buffer.from([0]);

/**
 * Applies the archived revisions (afterRevision, toRevision] to `client`. Each object is downloaded
 * completely (to a temp file) and its sha256 verified before any of it is applied. Returns the
 * restored head revision (= toRevision) and how many revisions were applied.
 */
export async function replayDeltas(options: ReplayOptions): Promise<{ revision: number; revisionsApplied: number }> {
  const { client, store, afterRevision, toRevision, logger } = options;
  if (toRevision < afterRevision) {
    throw new UsageError(`cannot restore to revision ${toRevision}: the full snapshot is already at revision ${afterRevision}`);
  }
  const plan = planDeltas(options.deltas, afterRevision, toRevision);
  const start = await headRevision(client);
  if (start !== afterRevision) {
    throw new RestoreError(`the etcd being restored is at revision ${start}, but deltas are to be applied after revision ${afterRevision}`);
  }
  if (plan.length === 0) return { revision: afterRevision, revisionsApplied: 0 };

  const spoolDir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'etcd-backup-delta-'));
  let applied = afterRevision;
  try {
    for (const delta of plan) {
      if (delta.encrypted && !options.decrypt) {
        throw new UsageError(`delta object ${delta.key} is encrypted: an encryption key is needed to restore it`);
      }
      const file = join(spoolDir, 'object');
      const object = await store.get(delta.key);
      await pipeline(object.body, createWriteStream(file)); // rejects on a checksum mismatch, at the end
      const plain = delta.encrypted ? options.decrypt!(createReadStream(file), delta.key) : createReadStream(file);
      const last = Math.min(delta.toRevision, toRevision);
      const before = applied;
      for await (const revision of groupByRevision(decodeDeltaEvents(plain, delta.compression, delta.key))) {
        if (revision.rev <= applied) continue;
        if (revision.rev > last) break;
        if (revision.rev < delta.fromRevision) {
          throw new RestoreError(`delta object ${delta.key} holds revision ${revision.rev}, outside its name's range`);
        }
        if (revision.rev !== applied + 1) throw new DeltaGapError(applied + 1, revision.rev - 1, `inside ${delta.key}`);
        await applyRevision(client, revision);
        applied = revision.rev;
      }
      if (applied < last) throw new DeltaGapError(applied + 1, last, `${delta.key} ends early`);
      logger.debug('Replayed delta object', { object: delta.key, fromRevision: before + 1, toRevision: applied });
      await rm(file, { force: true });
    }
  } finally {
    await rm(spoolDir, { recursive: true, force: true });
  }
  logger.info('Replayed delta revisions', { afterRevision, toRevision: applied, objects: plan.length });
  return { revision: applied, revisionsApplied: applied - afterRevision };
}

/** The smallest key after `key`: makes an inclusive upper bound exclusive. */
function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, NUL]);
}

/**
 * The txn ops for one source revision. A revision made only of deletions (a delete-range, a lease
 * revocation) can hold more events than etcd's --max-txn-ops; when the deleted keys are exactly the
 * keys currently between the first and the last of them, one delete-range reproduces it.
 */
async function opsFor(client: Etcd3, events: DeltaEvent[]): Promise<IRequestOp[]> {
  if (events.length > 1 && events.every((e) => e.type === 'DELETE')) {
    const keys = events.map((e) => e.key).sort(Buffer.compare);
    const range = { key: keys[0]!, range_end: keyAfter(keys[keys.length - 1]!) };
    const present = await client.kv.range({ ...range, count_only: true });
    if (Number(present.count) === keys.length) return [{ request_delete_range: range }];
  }
  return events.map((event) =>
    event.type === 'PUT'
      ? { request_put: { key: event.key, value: event.value } }
      : { request_delete_range: { key: event.key } },
  );
}

async function applyRevision(client: Etcd3, revision: RevisionEvents): Promise<void> {
  const ops = await opsFor(client, revision.events);
  let result;
  try {
    result = await client.kv.txn({ success: ops });
  } catch (err) {
    const hint = /too many operations/i.test(errorMessage(err))
      ? '; start the restore etcd with a larger --max-txn-ops'
      : /too large/i.test(errorMessage(err))
        ? '; start the restore etcd with a larger --max-request-bytes'
        : '';
    throw new RestoreError(
      `cannot apply source revision ${revision.rev} (${revision.events.length} events): ${errorMessage(err)}${hint}`,
      err,
    );
  }
  const got = Number(result.header.revision);
  if (got !== revision.rev) {
    throw new RestoreError(
      `applying source revision ${revision.rev} produced revision ${got}: the restored data and the deltas ` +
        `disagree (a revision is missing or the deltas belong to another base snapshot)`,
    );
  }
}
