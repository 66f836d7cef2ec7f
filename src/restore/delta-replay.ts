/**
 * Replays archived delta revisions into a (temporary) etcd that was restored from a full snapshot,
 * one txn per source revision, so that the restored revision numbers, create revisions and versions
 * equal the source's. Several txns are in flight at once (TxnPipeline, which keeps each on its own
 * revision) and the next objects download while the current one is applied (DeltaPrefetcher,
 * bounded by a byte budget).
 *
 * Leases: keys are written on leases with the source's IDs and TTLs (LeaseRestorer), and every lease
 * of the member is kept alive while the replay runs (LeaseKeeper), so that the temporary member never
 * revokes one by itself. Deletions caused by lease expiry or revocation in the source are in the
 * deltas as ordinary DELETE events and are replayed.
 *
 * The etcd being restored must accept each source revision as one txn: start it with
 * --max-txn-ops at least the largest revision's event count (a delete-range or lease revocation can
 * touch many keys; contiguous deletions are sent as one delete-range when that is exact) and
 * --max-request-bytes at least the source's.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Etcd3 } from 'etcd3';
import { RestoreError, UnencryptedObjectError, UsageError } from '../errors.js';
import { headRevision } from '../etcd/client.js';
import { decodeDeltaEvents, groupByRevision, type RevisionEvents } from '../archive/delta-format.js';
import { MemoryBudget } from '../budget/memory-budget.js';
import type { Logger } from '../observability/logger.js';
import { DELTA_DIR, type DeltaName } from '../archive/naming.js';
import type { ObjectStore } from '../store/object-store.js';
import { DEFAULT_PREFETCH_BYTES, DEFAULT_PREFETCH_OBJECTS, DeltaPrefetcher } from './delta-prefetch.js';
import { describeForeignRevisions } from './foreign-revisions.js';
import { LeaseKeeper } from './lease-keeper.js';
import { LeaseRestorer, noLeaseChanges, type LeaseSummary } from './lease-restorer.js';
import { DEFAULT_PIPELINE_DEPTH, RevisionMismatchError, TxnPipeline, type PipelineStats } from './txn-pipeline.js';

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
  /**
   * Keeps the member's leases alive (withTemporaryMember's, which runs as long as the member);
   * without it the replay keeps them alive itself while it runs.
   */
  leases?: LeaseKeeper;
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
  /** Refuse objects that are not encrypted (keys were given without --allow-unencrypted). */
  requireEncrypted?: boolean;
  /** Where objects are spooled while their checksum is verified; default the OS temp dir. */
  tempDir?: string;
  /** Stored size per delta key (from the listing the deltas came from); listed again when absent. */
  objectSizes?: ReadonlyMap<string, number>;
  /**
   * Bounds the bytes of delta objects downloaded ahead of the replay (reserved from download start
   * until applied). Default a budget of DEFAULT_PREFETCH_BYTES (64 MiB).
   */
  prefetchBudget?: MemoryBudget;
  /** Objects downloading or waiting at once; default 8. */
  prefetchObjects?: number;
  /** Txns in flight; default DEFAULT_PIPELINE_DEPTH. 1 replays one revision at a time. */
  pipelineDepth?: number;
  /**
   * Restarts the member (on the same address, so `client` reconnects) each time this many bytes of
   * keys and values were replayed since its start, between two revisions with no txn in flight: etcd
   * holds the raft entries since its last raft snapshot plus its catch-up entries in memory, and a
   * restart drops them (it reloads only the entries after its last raft snapshot from the WAL).
   */
  memberRestart?: MemberRestart;
}

export interface MemberRestart {
  everyBytes: number;
  restart(): Promise<void>;
}

export interface ReplayResult {
  revision: number;
  revisionsApplied: number;
  pipeline: PipelineStats;
  leases: LeaseSummary;
  /** Times the member was restarted to drop its in-memory raft log (memberRestart). */
  memberRestarts: number;
}

/** The bytes a revision adds to the member's raft log: its keys and values (pure). */
export function revisionBytes(revision: RevisionEvents): number {
  return revision.events.reduce((sum, event) => sum + event.key.length + event.value.length, 0);
}

/**
 * Applies the archived revisions (afterRevision, toRevision] to `client`. Each object is downloaded
 * completely (to a temp file) and its sha256 verified before any of it is applied; later objects
 * download meanwhile. Returns the restored head revision (= toRevision) and how many revisions were
 * applied.
 */
export async function replayDeltas(options: ReplayOptions): Promise<ReplayResult> {
  const { client, store, afterRevision, toRevision, logger } = options;
  if (toRevision < afterRevision) {
    throw new UsageError(`cannot restore to revision ${toRevision}: the full snapshot is already at revision ${afterRevision}`);
  }
  const plan = planDeltas(options.deltas, afterRevision, toRevision);
  const start = await headRevision(client);
  if (start !== afterRevision) {
    throw new RestoreError(`the etcd being restored is at revision ${start}, but deltas are to be applied after revision ${afterRevision}`);
  }
  const pipeline = new TxnPipeline(client, options.pipelineDepth ?? DEFAULT_PIPELINE_DEPTH);
  if (plan.length === 0) {
    return { revision: afterRevision, revisionsApplied: 0, pipeline: pipeline.stats, leases: noLeaseChanges(), memberRestarts: 0 };
  }
  // Refuse before downloading anything rather than halfway through.
  const locked = plan.find((delta) => delta.encrypted && !options.decrypt);
  if (locked) throw new UsageError(`delta object ${locked.key} is encrypted: an encryption key is needed to restore it`);
  const plain = options.requireEncrypted ? plan.filter((delta) => !delta.encrypted) : [];
  if (plain.length > 0) throw new UnencryptedObjectError(plain.map((delta) => delta.key));

  const sizes = options.objectSizes ?? new Map((await store.list(DELTA_DIR)).map((o) => [o.key, o.size]));
  const spoolDir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'etcd-backup-delta-'));
  const prefetchBudget = options.prefetchBudget ?? new MemoryBudget(DEFAULT_PREFETCH_BYTES);
  // The budget counts stored (compressed) bytes; what is held decompressed, the decoder's line and
  // the revision being grouped for its txn, is bounded by the same figure each, so a gzip bomb
  // cannot take memory past what --memory allows.
  const maxLineBytes = prefetchBudget.limitBytes;
  const maxRevisionBytes = prefetchBudget.limitBytes;
  const prefetcher = new DeltaPrefetcher(
    store,
    plan,
    sizes,
    prefetchBudget,
    spoolDir,
    options.prefetchObjects ?? DEFAULT_PREFETCH_OBJECTS,
  );
  let applied = afterRevision; // the last revision queued; confirmed once the pipeline drains
  let sinceRestart = 0;
  let memberRestarts = 0;
  // No lease of the member may expire while the replay runs (see LeaseKeeper).
  const keeper = options.leases ?? (await LeaseKeeper.start(client, logger));
  let leases: LeaseSummary;
  try {
    const restorer = await LeaseRestorer.start(client, keeper);
    for (let i = 0; i < plan.length; i++) {
      const { delta, file, done } = await prefetcher.next();
      const plain = delta.encrypted ? options.decrypt!(createReadStream(file), delta.key) : createReadStream(file);
      const last = Math.min(delta.toRevision, toRevision);
      const before = applied;
      for await (const revision of groupByRevision(decodeDeltaEvents(plain, delta.compression, delta.key, maxLineBytes), maxRevisionBytes, delta.key)) {
        restorer.learn(revision);
        if (revision.rev <= applied) continue;
        if (revision.rev > last) break;
        if (revision.rev < delta.fromRevision) {
          throw new RestoreError(`delta object ${delta.key} holds revision ${revision.rev}, outside its name's range`);
        }
        if (revision.rev !== applied + 1) throw new DeltaGapError(applied + 1, revision.rev - 1, `inside ${delta.key}`);
        await restorer.prepare(revision);
        await pipeline.apply(revision);
        applied = revision.rev;
        sinceRestart += revisionBytes(revision);
        if (options.memberRestart && sinceRestart >= options.memberRestart.everyBytes && applied < toRevision) {
          await pipeline.drain();
          await options.memberRestart.restart();
          memberRestarts += 1;
          sinceRestart = 0;
        }
      }
      if (applied < last) throw new DeltaGapError(applied + 1, last, `${delta.key} ends early`);
      logger.debug('Replayed delta object', { object: delta.key, fromRevision: before + 1, toRevision: applied });
      await done();
    }
    await pipeline.drain();
    leases = await restorer.finish();
  } catch (err) {
    await pipeline.abandon();
    if (err instanceof RevisionMismatchError && err.got > err.expected) {
      // Revisions expected..got-1 were made by something other than the replay: say what they hold.
      const found = await describeForeignRevisions(client, err.expected, err.got - 1);
      throw new RevisionMismatchError(err.expected, err.got, `the etcd being restored made revisions the replay did not: ${found}`);
    }
    throw err;
  } finally {
    if (!options.leases) await keeper.stop();
    await prefetcher.close();
    await rm(spoolDir, { recursive: true, force: true });
  }
  logger.info('Replayed delta revisions', {
    afterRevision,
    toRevision: applied,
    objects: plan.length,
    ...pipeline.stats,
    leasesGranted: leases.granted,
    leasesRevoked: leases.revoked,
    memberRestarts,
  });
  if (leases.goneWhenArchived.length > 0 || leases.withoutTtl.length > 0) {
    logger.warn('Some keys were restored without their lease', {
      goneWhenArchived: leases.goneWhenArchived.length,
      withoutRecordedTtl: leases.withoutTtl.length,
    });
  }
  return { revision: applied, revisionsApplied: applied - afterRevision, pipeline: pipeline.stats, leases, memberRestarts };
}
