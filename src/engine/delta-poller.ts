/**
 * Poll-based delta backups: every period, archive etcd's new revisions as delta objects, fetching
 * chunks through short watches in parallel under the shared memory budget.
 *
 * Rules this poller follows (design.md "Delta"):
 * - Where the chain starts: deltas only make sense after a full snapshot (a restore replays them on
 *   top of one). Until the store holds a full snapshot the poller waits (each poll re-lists the store;
 *   the supervisor takes the first full snapshot at start). On start the position is recovered from
 *   the store listing alone (recoverArchivedRevision): the end of the gap-free delta chain after the
 *   NEWEST full snapshot's revision, or that revision itself, so deltas resume right after it.
 * - Each poll reads the head revision H and archives (archivedRevision, H]: chunks of
 *   chunkRevisions, up to `parallelism` fetched at once, each through its own short watch that is
 *   closed at the chunk's end. While a poll's fetches run, the head is re-read once a period and new
 *   revisions are planned into free slots. No watch stays open between polls.
 * - Objects are named by their revision range and their bytes depend only on those revisions, so a
 *   retry after a crash rewrites identical objects; the store only shows complete objects.
 * - archivedRevision advances only over a contiguous prefix of uploaded objects.
 * - History: once etcd's head is seen behind the archived revision (restored to an earlier point or
 *   replaced), the poller archives nothing more for its lifetime, so the new history is never appended
 *   to the old chain when its head later passes the archived revision. No false alarm from a lagging
 *   member: the head is read linearizably (headRevision), so it is never behind an archived revision.
 * - Compaction: when etcd has compacted revisions not archived yet, `onRevisionsLost` is called with
 *   the lost range; the supervisor takes a full snapshot at once and returns its revision, and the
 *   chain continues after it. Without the hook the poll fails with RevisionCompactedError.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { EtcdUnavailableError, OperatorError, RevisionCompactedError, StoreUnreachableError, errorMessage } from '../errors.js';
import { dedicatedWatchClient, headRevision } from '../etcd/client.js';
import { fetchRevisions, type RevisionSegment } from '../etcd/revision-fetch.js';
import type { Logger } from '../observability/logger.js';
import { classifyKeys, deltaKey, type Compression } from '../archive/naming.js';
import { listBackupObjects, type ObjectStore } from '../store/object-store.js';
import { ENCRYPT_STREAM_BYTES, encryptReadable } from '../crypto/encryption.js';
import { planChunks } from './chunk-planner.js';
import { advanceContiguous, recoverArchivedRevision, type RevisionRange } from '../archive/revision-ranges.js';
import { planFetchBudget, type FetchBudgetPlan } from '../budget/fetch-budget.js';
import { encodeDeltaStream } from '../archive/delta-format.js';
import { LeaseTtlReader, recordLeaseTtls } from '../etcd/lease-ttl.js';
import type { MemoryBudget } from '../budget/memory-budget.js';
import { buffer } from 'node:stream/consumers';

export interface DeltaProgress {
  /** Every revision after the newest full snapshot up to this one is in the store (0 while waiting). */
  archivedRevision: number;
  /** Head revision read at the last poll. */
  etcdRevision: number;
  lagRevisions: number;
  /** True until the store holds a full snapshot for the chain to start from. */
  waitingForFullSnapshot: boolean;
  lastDelta?: { fromRevision: number; toRevision: number; key: string; time: Date };
  /** Stored bytes of every delta object uploaded since start. */
  bytesUploaded: number;
  /** One-line message of the last failed poll; cleared by the next successful one. */
  lastError?: string;
  /** The OperatorError reason of that failure (EtcdUnavailable, StoreUnreachable...), when it had one. */
  lastErrorReason?: string;
  /**
   * Polls that ended failed (with lastError set) since start, including repeats of the same error.
   * Progress is also reported mid-poll, so a listener counts failed polls by this number's increase.
   */
  failedPolls: number;
  /** The last compaction that cost revisions, and the full snapshot the chain continued after. */
  revisionsLost?: { fromRevision: number; toRevision: number; snapshotRevision: number; time: Date };
  budgetPeakBytes: number;
  budgetUsedBytes: number;
}

export interface DeltaPollerOptions {
  client: Etcd3;
  /** The cluster's store, rooted at its prefix (keys `full/...`, `delta/...`). */
  store: ObjectStore;
  /** Shared with full snapshots and the store: every byte held by deltas is reserved here. */
  budget: MemoryBudget;
  /** Pause between the end of one poll and the start of the next (start()). */
  periodMs: number;
  /** Most revisions per chunk (one watch each). */
  chunkRevisions: number;
  /** Chunks fetched at once; lowered when the budget cannot hold that many (logged). */
  parallelism: number;
  compression: Compression;
  /** When set, delta objects are encrypted (after compression) and named `.enc`. */
  encryptionKey?: Buffer;
  logger: Logger;
  /**
   * Called when etcd compacted revisions before they were archived. Must take a full snapshot now and
   * resolve with its revision; the chain continues after it. Also the place to set the RevisionsLost
   * condition and emit an Event.
   */
  onRevisionsLost?: (lost: RevisionRange) => Promise<{ revision: number }>;
  /** Called after every uploaded object and at the end of each poll. Must not throw. */
  onProgress?: (progress: DeltaProgress) => void;
  /**
   * Bytes the store itself reserves from `budget` per concurrent upload (e.g. S3 part buffers).
   * They are kept free for each fetch so an upload never waits for memory its own fetch holds.
   * Default 0 (the local store reserves nothing).
   */
  storeBufferBytes?: number;
  /**
   * Largest delta object (encoded bytes). Set it for a store that reserves more budget for bigger
   * objects (S3: its single-request size, one part), so uploads never wait for budget fetches hold.
   * A revision larger than this still goes out whole. Default: bounded by the budget share only.
   */
  maxObjectBytes?: number;
  /** A watch silent this long is re-created. Default 30 s. */
  idleTimeoutMs?: number;
  /** Attempts per object when the store is unreachable. Default 3. */
  uploadAttempts?: number;
  /** Injected clock (tests). */
  now?: () => Date;
}

function stoppedError(): Error {
  const err = new Error('delta poller stopped');
  err.name = 'AbortError';
  return err;
}

/** Compaction rounds handled within one poll before giving up (etcd compacting faster than we snapshot). */
const MAX_COMPACTION_ROUNDS = 3;

export class DeltaPoller {
  private readonly plan: FetchBudgetPlan;
  /** Granted TTLs of leases met in events, recorded in the delta objects for restore. */
  private readonly leaseTtls: LeaseTtlReader;
  private readonly now: () => Date;
  private archived: number | undefined;
  /** Uploaded ranges past archivedRevision (beyond a gap), skipped when planning. */
  private covered: RevisionRange[] = [];
  private etcdRevision = 0;
  private lastDelta: DeltaProgress['lastDelta'];
  private bytesUploaded = 0;
  private lastError: string | undefined;
  private lastErrorReason: string | undefined;
  private failedPolls = 0;
  private revisionsLost: DeltaProgress['revisionsLost'];
  private control = new AbortController();
  private loop: Promise<void> | undefined;
  /** Serialises passes: the loop and direct pollOnce() calls never overlap. */
  private running: Promise<unknown> = Promise.resolve();
  private waitingLogged = false;
  /**
   * Set once etcd's head was seen behind the archive (etcd restored to an earlier point, or replaced):
   * from then on this poller archives nothing, even when the new history's head passes the archived
   * revision, which would otherwise append the new history's revisions to the old chain.
   */
  private historyChanged: { headRevision: number; archivedRevision: number } | undefined;

  constructor(private readonly options: DeltaPollerOptions) {
    if (!Number.isSafeInteger(options.chunkRevisions) || options.chunkRevisions < 1) {
      throw new RangeError(`chunkRevisions must be a positive integer, got ${options.chunkRevisions}`);
    }
    if (!Number.isSafeInteger(options.parallelism) || options.parallelism < 1) {
      throw new RangeError(`parallelism must be a positive integer, got ${options.parallelism}`);
    }
    if (!(options.periodMs >= 0)) throw new RangeError(`periodMs must be >= 0, got ${options.periodMs}`);
    this.leaseTtls = new LeaseTtlReader(options.client);
    this.plan = planFetchBudget({
      budgetBytes: options.budget.limitBytes,
      parallelism: options.parallelism,
      storeBufferBytes: options.storeBufferBytes,
      encryptionBytes: options.encryptionKey ? ENCRYPT_STREAM_BYTES : 0,
      maxObjectBytes: options.maxObjectBytes,
    });
    if (this.plan.parallelism < options.parallelism) {
      options.logger.warn('Lowered delta chunk parallelism to fit the memory budget', {
        requested: options.parallelism,
        parallelism: this.plan.parallelism,
        budgetBytes: options.budget.limitBytes,
      });
    }
    this.now = options.now ?? (() => new Date());
  }

  /** The budget split in use (parallelism may be lower than requested). */
  get budgetPlan(): FetchBudgetPlan {
    return { ...this.plan };
  }

  get progress(): DeltaProgress {
    const budget = this.options.budget;
    const archivedRevision = this.archived ?? 0;
    return {
      archivedRevision,
      etcdRevision: this.etcdRevision,
      lagRevisions: this.archived === undefined ? 0 : Math.max(0, this.etcdRevision - archivedRevision),
      waitingForFullSnapshot: this.archived === undefined,
      ...(this.lastDelta ? { lastDelta: { ...this.lastDelta } } : {}),
      bytesUploaded: this.bytesUploaded,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastError !== undefined && this.lastErrorReason !== undefined ? { lastErrorReason: this.lastErrorReason } : {}),
      failedPolls: this.failedPolls,
      ...(this.revisionsLost ? { revisionsLost: { ...this.revisionsLost } } : {}),
      budgetPeakBytes: budget.peakBytes,
      budgetUsedBytes: budget.usedBytes,
    };
  }

  /**
   * Recovers the archive position from the store, then polls every period in the background until
   * stop(). Failures are logged and reported in `progress.lastError`; the next period retries.
   */
  async start(): Promise<void> {
    if (this.loop) return;
    const signal = this.control.signal;
    try {
      await this.recover();
    } catch (err) {
      this.lastError = errorMessage(err);
      this.lastErrorReason = err instanceof OperatorError ? err.reason : undefined;
      this.failedPolls += 1;
      this.options.logger.warn('Could not read the delta archive position; will retry', { error: this.lastError });
    }
    this.loop = this.runLoop(signal);
  }

  /** Cancels in-flight fetches and uploads (closing their watches) and waits for them to end. */
  async stop(): Promise<void> {
    const control = this.control;
    this.control = new AbortController();
    control.abort(stoppedError());
    const loop = this.loop;
    this.loop = undefined;
    await loop;
    await this.running;
  }

  /**
   * One catch-up pass: archives up to the head revision read at its start (and whatever later head
   * reads planned while its fetches ran). Resolves with the progress; rejects if the pass failed.
   */
  pollOnce(): Promise<DeltaProgress> {
    return this.enqueue(this.control.signal);
  }

  private enqueue(signal: AbortSignal): Promise<DeltaProgress> {
    const pass = this.running.then(() => this.pass(signal));
    this.running = pass.catch(() => undefined);
    return pass;
  }

  private async runLoop(signal: AbortSignal): Promise<void> {
    // A failure that repeats every period is logged once (and again when it changes); the
    // progress's failedPolls counts every one.
    let logged: string | undefined;
    while (!signal.aborted) {
      try {
        await this.enqueue(signal);
        logged = undefined;
      } catch (err) {
        if (signal.aborted) break;
        const message = errorMessage(err);
        if (message !== logged) this.options.logger.warn('Delta poll failed', { error: message });
        else this.options.logger.debug('Delta poll failed again', { error: message, failedPolls: this.failedPolls });
        logged = message;
      }
      await sleep(this.options.periodMs, undefined, { signal }).catch(() => undefined);
    }
  }

  private async pass(signal: AbortSignal): Promise<DeltaProgress> {
    try {
      signal.throwIfAborted();
      let head = await this.readHead();
      if (this.archived === undefined && !(await this.recover())) {
        this.lastError = undefined;
        this.emit();
        return this.progress;
      }
      let warning: string | undefined;
      const startedAt = this.archived!;
      for (let round = 1; ; round++) {
        const archived = this.archived!;
        if (head < archived && !this.historyChanged) {
          this.historyChanged = { headRevision: head, archivedRevision: archived };
          this.options.logger.warn('etcd is behind the delta archive', { headRevision: head, archivedRevision: archived });
        }
        if (this.historyChanged) {
          // Not ours to fix: archiving the new revisions would mix two histories under one chain.
          const seen = this.historyChanged;
          warning =
            `etcd's head revision went back to ${seen.headRevision}, behind the archived revision ${seen.archivedRevision}: ` +
            `was etcd restored or replaced? Deltas stopped so that two histories never share one chain; ` +
            `back up this etcd to a new store location`;
          break;
        }
        if (head === archived) break;
        try {
          await this.catchUp(head, signal);
          break;
        } catch (err) {
          if (!(err instanceof RevisionCompactedError) || signal.aborted || round >= MAX_COMPACTION_ROUNDS) throw err;
          await this.handleCompaction(err);
          head = await this.readHead();
        }
      }
      this.lastError = warning;
      this.lastErrorReason = undefined;
      if (warning !== undefined) this.failedPolls += 1;
      if (this.archived! > startedAt) {
        // One line per poll that archived something: what an operator reading logs needs to see.
        this.options.logger.info('Archived delta revisions', {
          fromRevision: startedAt + 1,
          toRevision: this.archived,
          headRevision: this.etcdRevision,
        });
      }
    } catch (err) {
      if (!signal.aborted) {
        this.lastError = errorMessage(err);
        this.lastErrorReason = err instanceof OperatorError ? err.reason : undefined;
        this.failedPolls += 1;
      }
      this.emit();
      throw err;
    }
    this.emit();
    return this.progress;
  }

  private async readHead(): Promise<number> {
    try {
      this.etcdRevision = await headRevision(this.options.client);
      return this.etcdRevision;
    } catch (err) {
      throw new EtcdUnavailableError(`cannot read etcd's head revision: ${errorMessage(err)}`, err);
    }
  }

  /** Reads the archive position from the store listing; false while there is no full snapshot. */
  private async recover(): Promise<boolean> {
    const { store, logger } = this.options;
    const objects = await listBackupObjects(store);
    const listing = classifyKeys(objects.map((o) => o.key));
    for (const key of listing.unknown) logger.warn('Skipped an object that is not a backup', { object: key });
    const archived = recoverArchivedRevision(listing);
    if (archived === undefined) {
      if (!this.waitingLogged) logger.info('Delta backups wait for the first full snapshot', { store: store.describe() });
      this.waitingLogged = true;
      return false;
    }
    this.archived = archived;
    this.covered = advanceContiguous(archived, listing.deltas).pending;
    // The newest archived delta, as stored, so status and metrics show it before the next upload.
    const newest = listing.deltas.filter((d) => d.toRevision <= archived).at(-1);
    const stored = newest && objects.find((o) => o.key === newest.key);
    if (newest && stored && !this.lastDelta) {
      this.lastDelta = { fromRevision: newest.fromRevision, toRevision: newest.toRevision, key: newest.key, time: stored.lastModified };
    }
    logger.info('Recovered the delta archive position', {
      archivedRevision: archived,
      fullSnapshotRevision: listing.fulls[listing.fulls.length - 1]?.revision,
      deltaObjects: listing.deltas.length,
      uploadedPastGap: this.covered.length,
    });
    return true;
  }

  /**
   * Archives (archivedRevision, head] with up to plan.parallelism fetches at once. While fetches run,
   * the head is read again once a period and revisions written meanwhile are planned too, so a slot
   * freed by a finished chunk does not idle while a long chunk crawls through a slow store. Ends when
   * every planned chunk is archived and no fetch is running.
   */
  private async catchUp(head: number, signal: AbortSignal): Promise<void> {
    const { chunkRevisions, logger } = this.options;
    const replanMs = Math.max(this.options.periodMs, 100); // period 0 must not spin on head reads
    this.record([]); // covered ranges may already bridge to the head
    const queue: RevisionRange[] = [];
    let plannedTo = this.archived!;
    const plan = (to: number): void => {
      if (to <= plannedTo) return;
      queue.push(...planChunks(plannedTo, to, chunkRevisions, this.covered));
      plannedTo = to;
    };
    plan(head);
    const control = new AbortController();
    const onAbort = (): void => control.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    let failed = false;
    let failure: unknown;
    const worker = async (): Promise<void> => {
      // One connection per fetch slot for the pass, so the transport bound the budget charges holds
      // (fetch-budget.ts WATCH_TRANSPORT_BYTES) without a new connection (and login) per chunk.
      const watchClient = dedicatedWatchClient(this.options.client);
      try {
        await fetchChunks(watchClient);
      } finally {
        watchClient.close();
      }
    };
    const fetchChunks = async (watchClient: Etcd3): Promise<void> => {
      for (let chunk = queue.shift(); chunk && !control.signal.aborted; chunk = queue.shift()) {
        try {
          const summary = await fetchRevisions({
            client: this.options.client,
            watchClient,
            fromRevision: chunk.fromRevision,
            toRevision: chunk.toRevision,
            budget: this.options.budget,
            windowBytes: this.plan.windowBytes,
            maxSegmentBytes: this.plan.segmentBytes,
            signal: control.signal,
            logger,
            idleTimeoutMs: this.options.idleTimeoutMs,
            onSegment: (segment) => this.upload(segment, control.signal),
          });
          logger.debug('Fetched delta chunk', { ...chunk, ...summary });
        } catch (err) {
          if (!failed) {
            failed = true;
            failure = err;
            control.abort(err); // the other fetches stop and close their watches
          }
          return;
        }
      }
    };
    const workers = new Set<Promise<void>>();
    const fill = (): void => {
      while (!control.signal.aborted && workers.size < this.plan.parallelism && queue.length > 0) {
        const running = worker();
        workers.add(running);
        void running.finally(() => workers.delete(running));
      }
    };
    try {
      fill();
      let lastHeadRead = Date.now();
      while (workers.size > 0) {
        const untilNextRead = Math.max(0, lastHeadRead + replanMs - Date.now());
        const tick = new AbortController();
        await Promise.race([...workers, sleep(untilNextRead, undefined, { signal: tick.signal }).catch(() => undefined)]);
        tick.abort();
        if (control.signal.aborted) continue; // wait for the fetches to wind down
        if (workers.size < this.plan.parallelism && Date.now() - lastHeadRead >= replanMs) {
          lastHeadRead = Date.now();
          try {
            plan(await this.readHead());
          } catch (err) {
            logger.debug('Could not re-read the head revision during a poll', { error: errorMessage(err) });
          }
        }
        fill();
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (failed) throw failure;
  }

  private async upload(segment: RevisionSegment, signal: AbortSignal): Promise<void> {
    const { store, compression, encryptionKey, logger } = this.options;
    const key = deltaKey(segment.fromRevision, segment.toRevision, { compression, encrypted: encryptionKey !== undefined });
    const attempts = this.options.uploadAttempts ?? 3;
    // Each lease's first event in the object carries its granted TTL, read now (delta-format.ts).
    await recordLeaseTtls(segment.events, this.leaseTtls);
    for (let attempt = 1; ; attempt++) {
      try {
        const encoded = encodeDeltaStream(segment.events, compression);
        const body = encryptionKey ? encryptReadable(encoded, encryptionKey, { objectKey: key }) : encoded;
        // A store that reserves budget for streamed bodies (S3 part buffers) gets the object as one
        // Buffer instead: its bytes sit in this fetch's window, which already counts the store's
        // buffers. Streamed, the put would reserve them a second time and, while the other fetches
        // hold the rest of the budget (an S3 outage), wait forever.
        const payload = this.options.storeBufferBytes ? await buffer(body) : body;
        const result = await store.put(key, payload, { signal });
        logger.debug('Uploaded delta', {
          object: key,
          fromRevision: segment.fromRevision,
          toRevision: segment.toRevision,
          events: segment.events.length,
          sizeBytes: result.size,
        });
        this.bytesUploaded += result.size;
        break;
      } catch (err) {
        if (signal.aborted || attempt >= attempts || !(err instanceof StoreUnreachableError)) throw err;
        const delayMs = 500 * 2 ** (attempt - 1);
        logger.warn('Delta upload failed; retrying', { object: key, attempt, delayMs, error: errorMessage(err) });
        await sleep(delayMs, undefined, { signal });
      }
    }
    this.lastDelta = { fromRevision: segment.fromRevision, toRevision: segment.toRevision, key, time: this.now() };
    this.record([segment]);
  }

  private record(uploaded: RevisionRange[]): void {
    const before = this.archived!;
    const next = advanceContiguous(before, [...this.covered, ...uploaded]);
    this.archived = next.archivedRevision;
    this.covered = next.pending;
    if (this.archived !== before || uploaded.length > 0) this.emit();
  }

  private async handleCompaction(err: RevisionCompactedError): Promise<void> {
    const { logger, onRevisionsLost } = this.options;
    const fromRevision = this.archived! + 1;
    // Revisions below the compact revision are gone; the compact revision itself has lost its
    // deletions (etcd drops tombstones at it), so it cannot be archived either.
    const lost: RevisionRange = { fromRevision, toRevision: Math.max(fromRevision, err.compactRevision ?? err.requestedRevision) };
    logger.warn('etcd compacted revisions before they were archived', { ...lost, compactRevision: err.compactRevision });
    if (!onRevisionsLost) throw err;
    const { revision } = await onRevisionsLost(lost);
    this.revisionsLost = { ...lost, snapshotRevision: revision, time: this.now() };
    if (revision > this.archived!) {
      this.archived = revision;
      this.record([]);
    }
    logger.info('Delta backups continue after the new full snapshot', { snapshotRevision: revision, archivedRevision: this.archived });
  }

  private emit(): void {
    try {
      this.options.onProgress?.(this.progress);
    } catch (err) {
      this.options.logger.warn('Delta progress listener failed', { error: errorMessage(err) });
    }
  }
}
