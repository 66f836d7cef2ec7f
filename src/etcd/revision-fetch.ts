/**
 * Fetches whole etcd revisions [from, to] through a SHORT watch, under the shared memory budget.
 *
 * Why the raw WatchClient and not etcd3's Watcher (see docs/library-facts, etcd3 section):
 * - the Watcher's automatic reconnect resumes from the head revision during catch-up and silently
 *   skips events; here every (re)connect starts at our own last complete revision + 1;
 * - the Watcher loses compact_revision (it emits a bare 'error'); raw responses carry it;
 * - the Watcher shares one stream per client and cannot pause; a raw stream per fetch is read one
 *   response at a time (pull, no read-ahead), so etcd is not read faster than the budget allows, and
 *   closing it removes the watch from etcd at once (no watch stays open between polls);
 * - the stream runs on a connection of the fetch's own (dedicatedWatchClient) with HTTP/2's small
 *   default window, so what the transport holds is bounded per fetch (WATCH_TRANSPORT_BYTES, charged
 *   in the fetch's window);
 * - fragment=true bounds each response to etcd's --max-request-bytes plus 512 KiB (2 MiB by default)
 *   instead of up to 1000 revisions in one gRPC message.
 *
 * Revision boundaries: etcd never splits a revision across (unfragmented) watch responses, and a
 * txn's events share one revision. A revision is complete when an event of a higher revision arrives
 * or a response with fragment=false ends. Every etcd revision has at least one event (mvcc only bumps
 * the revision for a write that changes something), so a missing revision is an error, not a skip.
 */
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GRPCOutOfRangeError,
  WatchClient,
  type Etcd3,
  type IDuplexStream,
  type IEvent,
  type IWatchRequest,
  type IWatchResponse,
} from 'etcd3';
import { EtcdUnavailableError, OperatorError, RevisionCompactedError, errorMessage } from '../errors.js';
import { eventCost, type DeltaEvent } from '../archive/delta-format.js';
import { MemoryBudget, Reservation } from '../budget/memory-budget.js';
import { MAX_WATCH_RESPONSE_BYTES } from '../budget/fetch-budget.js';
import type { Logger } from '../observability/logger.js';
import { dedicatedWatchClient } from './client.js';

/** Complete revisions handed to the caller for upload. */
export interface RevisionSegment {
  fromRevision: number;
  toRevision: number;
  /** In revision order; every revision of the range has at least one event. */
  events: DeltaEvent[];
  /** Budget bytes the fetch charged for these events (eventCost, plus the gRPC message a kept view pins). */
  bytes: number;
}

export interface FetchRevisionsOptions {
  client: Etcd3;
  /**
   * The client whose connection carries the watch: one from dedicatedWatchClient, used by one fetch
   * at a time, so the transport holds no more than the window charges. Default: one opened for this
   * fetch and closed at its end (a new connection each time; a poller keeps one per fetch slot).
   */
  watchClient?: Etcd3;
  fromRevision: number;
  toRevision: number;
  budget: MemoryBudget;
  /**
   * Held for the whole fetch on top of the events: what the watch transport holds (fetch-budget's
   * WATCH_TRANSPORT_BYTES) and the upload's encoder/store buffers (onSegment runs inside this window).
   */
  windowBytes: number;
  /** Event bytes held before complete revisions are handed to onSegment as a smaller object. */
  maxSegmentBytes: number;
  /**
   * Uploads a segment; the fetch frees the segment's bytes once it resolves. A rejection ends the
   * fetch with that error. Called in revision order, segments adjacent.
   */
  onSegment: (segment: RevisionSegment) => Promise<void>;
  signal?: AbortSignal;
  logger?: Logger;
  /** A watch that delivers nothing for this long is treated as broken and re-created. Default 30 s. */
  idleTimeoutMs?: number;
  /** Consecutive watch failures without progress before giving up. Default 6 (~15 s of backoff). */
  maxReconnects?: number;
}

export interface FetchSummary {
  revisions: number;
  events: number;
  segments: number;
  /** Watches re-created after a failure (disconnect, idle). */
  reconnects: number;
  /** Watches re-created after waiting for memory. */
  memoryWaits: number;
  /** The largest watch response read, in bytes of its gRPC message (the window counts MAX_WATCH_RESPONSE_BYTES). */
  largestResponseBytes: number;
}

/** etcd skipped revisions in a watch: the archive would have a silent hole, so stop. */
export class RevisionGapError extends OperatorError {
  constructor(
    readonly expectedRevision: number,
    readonly gotRevision: number,
  ) {
    super(
      'WatchRevisionGap',
      `etcd watch delivered revision ${gotRevision} while ${expectedRevision} was expected; ` +
        `revisions ${expectedRevision}..${gotRevision - 1} are missing`,
    );
  }
}

/** One etcd revision does not fit the memory budget: deltas cannot go past it until the budget grows. */
export class RevisionTooLargeError extends OperatorError {
  constructor(
    readonly revision: number,
    readonly neededBytes: number,
    readonly budgetBytes: number,
  ) {
    super(
      'RevisionTooLarge',
      `etcd revision ${revision} needs more than ${neededBytes} bytes to archive (with the fetch's buffers), ` +
        `more than the memory budget of ${budgetBytes} bytes; raise memory.budget`,
      { terminal: true },
    );
  }
}

const NUL = Buffer.from([0]);
const EMPTY = Buffer.alloc(0);

/** A watch failure worth re-creating the watch for. */
class WatchInterrupted extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'WatchInterrupted';
  }
}

/** The fetch let go of its memory and the watch, and must re-open from its position. */
class RestartAfterWait extends Error {}

type RawWatchStream = Duplex & IDuplexStream<IWatchRequest, IWatchResponse>;
type Pool = ConstructorParameters<typeof WatchClient>[0];

function watchClientOf(client: Etcd3): WatchClient {
  // The pool is `protected` in etcd3's typings; using it keeps TLS, auth tokens and host failover.
  return new WatchClient((client as unknown as { pool: Pool }).pool);
}

/**
 * grpc-js reads up to 16 responses ahead (objectMode highWaterMark) before it stops reading the HTTP/2
 * stream: 32 MiB of 2 MiB responses outside the budget. Even one response ahead is two more copies
 * alive (the response and the decoder slices it was assembled from), so read none ahead: the next
 * response is requested when the fetch asks for it.
 */
function disableReadAhead(stream: Duplex): void {
  const state = (stream as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (state && typeof state.highWaterMark === 'number') state.highWaterMark = 0;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/** One raw watch stream, read one response at a time. */
class WatchSession {
  private error: Error | undefined;
  private ended = false;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly settled: Promise<void>;

  private constructor(private readonly stream: RawWatchStream) {
    stream.on('readable', () => this.wake?.());
    stream.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    stream.on('error', (err: Error) => {
      this.error ??= err;
      this.wake?.();
    });
    this.settled = new Promise((resolve) => {
      stream.once('status', () => resolve());
      stream.once('close', () => resolve());
    });
  }

  static async open(
    client: Etcd3,
    startRevision: number,
    range: { key: Buffer; rangeEnd?: Buffer } = { key: NUL, rangeEnd: NUL },
  ): Promise<WatchSession> {
    const stream = (await watchClientOf(client).watch()) as RawWatchStream;
    disableReadAhead(stream);
    const session = new WatchSession(stream);
    stream.write({
      create_request: {
        key: range.key,
        range_end: range.rangeEnd,
        start_revision: String(startRevision),
        fragment: true,
      },
    });
    return session;
  }

  /** The next response; undefined when the server ended the stream. */
  async next(idleTimeoutMs: number, signal?: AbortSignal): Promise<IWatchResponse | undefined> {
    for (;;) {
      const message = this.stream.read() as IWatchResponse | null;
      if (message !== null) return message;
      if (this.error) throw this.error;
      if (this.ended) return undefined;
      await this.activity(idleTimeoutMs, signal);
    }
  }

  private activity(idleTimeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.wake = undefined;
      };
      const onAbort = (): void => {
        cleanup();
        reject(abortReason(signal!));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new WatchInterrupted(`etcd watch delivered nothing for ${Math.round(idleTimeoutMs / 1000)}s`));
      }, idleTimeoutMs);
      this.wake = () => {
        cleanup();
        resolve();
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Cancels the watch and the stream; etcd drops the watcher when the stream's context ends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Half-close first: etcd3's pool marks a host failed when a still-writable stream errors, and
    // the cancellation below surfaces as a CANCELLED error.
    this.stream.end();
    this.stream.cancel();
    const grace = new AbortController();
    await Promise.race([this.settled, sleep(2000, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    this.stream.destroy();
  }
}

/**
 * The revision etcd has compacted up to, learnt from a watch at revision 1 on one key (etcd answers
 * it with compact_revision). Only called once a compaction is known to be past revision 1.
 */
async function probeCompactRevision(client: Etcd3): Promise<number | undefined> {
  const session = await WatchSession.open(client, 1, { key: NUL });
  try {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const response = await session.next(Math.max(1, deadline - Date.now()));
      if (!response) return undefined;
      const compact = Number(response.compact_revision ?? 0);
      if (compact > 0) return compact;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    await session.close();
  }
}

/**
 * Throws RevisionCompactedError when `revision` cannot be watched completely: etcd accepts a watch
 * starting AT the compact revision but has dropped that revision's deletions (tombstones) then, so
 * revision r is safe only when r-1 can still be read.
 */
async function assertWatchable(client: Etcd3, revision: number): Promise<void> {
  if (revision <= 1) return;
  try {
    await client.kv.range({ key: NUL, revision: String(revision - 1) });
  } catch (err) {
    if (err instanceof GRPCOutOfRangeError) {
      throw new RevisionCompactedError(revision, (await probeCompactRevision(client)) ?? revision);
    }
    throw new WatchInterrupted(`cannot read revision ${revision - 1} from etcd: ${errorMessage(err)}`, err);
  }
}

/**
 * Decoded Buffers are views into the whole gRPC message, which stays alive as long as any view is
 * held. A view that is most of its message (a big value) is kept as is and charged for the whole
 * message; a small view is copied so it does not pin a large message.
 */
function retain(view: Buffer): { buffer: Buffer; extraBytes: number } {
  const backing = view.buffer.byteLength;
  if (view.byteLength * 2 >= backing) return { buffer: view, extraBytes: backing - view.byteLength };
  return { buffer: Buffer.from(view), extraBytes: 0 };
}

/** Bytes of the gRPC message a response was decoded from: its key and value Buffers are views into it. */
function messageBytes(response: IWatchResponse): number {
  let bytes = 0;
  for (const event of response.events ?? []) {
    bytes = Math.max(bytes, event.kv.key.buffer.byteLength, event.kv.value?.buffer.byteLength ?? 0);
  }
  return bytes;
}

/** One warning per process: every fetch of a misconfigured etcd would repeat it. */
let oversizeReported = false;

function toDeltaEvent(event: IEvent): { event: DeltaEvent; cost: number } {
  const kv = event.kv;
  const rev = Number(kv.mod_revision);
  if (!Number.isSafeInteger(rev) || rev <= 0) throw new Error(`watch event with invalid mod_revision ${kv.mod_revision}`);
  const put = event.type === 'Put';
  const key = retain(kv.key);
  const value = put && kv.value && kv.value.length > 0 ? retain(kv.value) : { buffer: EMPTY, extraBytes: 0 };
  const delta: DeltaEvent = {
    rev,
    type: put ? 'PUT' : 'DELETE',
    key: key.buffer,
    value: value.buffer,
    createRev: put ? Number(kv.create_revision) : 0,
    modRev: rev,
    version: put ? Number(kv.version) : 0,
    lease: put ? String(kv.lease || '0') : '0',
  };
  return { event: delta, cost: eventCost(delta) + key.extraBytes + value.extraBytes };
}

/**
 * Fetches every event of revisions [fromRevision, toRevision] and hands them to `onSegment` as
 * complete, adjacent segments (several when they do not fit `maxSegmentBytes` or the budget).
 * `toRevision` must not be above etcd's head revision (the fetch waits for it otherwise).
 *
 * Memory: every held event is reserved from `budget` first. When the budget is full the fetch first
 * uploads the revisions it has completed; if that is not enough it closes its watch, gives back
 * everything it holds (its window too), waits in the budget's FIFO queue, and re-opens the watch from
 * its next revision. A fetch never waits while holding memory, so fetches cannot deadlock each other.
 *
 * Errors: RevisionCompactedError when etcd has compacted a revision still to be read (revisions
 * completed before are uploaded first); EtcdUnavailableError after `maxReconnects` failed attempts;
 * RevisionGapError if etcd skips revisions; RevisionTooLargeError if one revision cannot fit the
 * budget; the abort reason when `signal` aborts; onSegment's error.
 */
export async function fetchRevisions(options: FetchRevisionsOptions): Promise<FetchSummary> {
  const { client, fromRevision, toRevision, budget, windowBytes, signal } = options;
  if (!Number.isSafeInteger(fromRevision) || fromRevision < 1 || !Number.isSafeInteger(toRevision) || toRevision < fromRevision) {
    throw new RangeError(`invalid revision range ${fromRevision}..${toRevision}`);
  }
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const maxReconnects = options.maxReconnects ?? 6;
  const summary: FetchSummary = { revisions: 0, events: 0, segments: 0, reconnects: 0, memoryWaits: 0, largestResponseBytes: 0 };

  let lastComplete = fromRevision - 1; // every revision <= this is uploaded or in `complete`
  let segmentStart = fromRevision;
  let complete: DeltaEvent[] = [];
  let completeBytes = 0;
  let current: DeltaEvent[] = []; // events of currentRev, not known to be complete yet
  let currentBytes = 0;
  let currentRev = 0;
  let failures = 0;

  const held: Reservation = await budget.reserve(windowBytes, signal);
  const ownWatchClient = options.watchClient ? undefined : dedicatedWatchClient(client);
  const watchClient = options.watchClient ?? ownWatchClient!;
  const fitHeld = (): void => held.shrink(held.bytes - (windowBytes + completeBytes + currentBytes));

  const seal = (): void => {
    if (currentRev === 0) return;
    for (const event of current) complete.push(event);
    completeBytes += currentBytes;
    summary.revisions += 1;
    summary.events += current.length;
    lastComplete = currentRev;
    current = [];
    currentBytes = 0;
    currentRev = 0;
    failures = 0;
  };
  const dropCurrent = (): void => {
    current = [];
    currentBytes = 0;
    currentRev = 0;
  };
  const flush = async (): Promise<void> => {
    if (complete.length === 0) return;
    await options.onSegment({ fromRevision: segmentStart, toRevision: lastComplete, events: complete, bytes: completeBytes });
    summary.segments += 1;
    segmentStart = lastComplete + 1;
    complete = [];
    completeBytes = 0;
    fitHeld();
  };
  const makeRoom = async (cost: number): Promise<void> => {
    if (complete.length > 0 && completeBytes + currentBytes + cost > options.maxSegmentBytes) await flush();
    const need = (): number => windowBytes + completeBytes + currentBytes + cost - held.bytes;
    if (need() <= 0 || held.tryGrow(need())) return;
    if (complete.length > 0) {
      await flush();
      if (need() <= 0 || held.tryGrow(need())) return;
    }
    // Nothing left to upload: let go of everything, wait for room for this revision, read it again.
    const want = windowBytes + currentBytes + cost;
    if (want > budget.limitBytes) throw new RevisionTooLargeError(currentRev, want, budget.limitBytes);
    dropCurrent();
    held.release();
    summary.memoryWaits += 1;
    await held.grow(want, signal);
    throw new RestartAfterWait();
  };

  try {
    while (lastComplete < toRevision) {
      signal?.throwIfAborted();
      const position = lastComplete + 1;
      let session: WatchSession | undefined;
      try {
        await assertWatchable(client, position);
        session = await WatchSession.open(watchClient, position).catch((err: unknown) => {
          throw new WatchInterrupted(`cannot open an etcd watch: ${errorMessage(err)}`, err);
        });
        for (;;) {
          let response: IWatchResponse | undefined;
          try {
            response = await session.next(idleTimeoutMs, signal);
          } catch (err) {
            if (signal?.aborted || err instanceof WatchInterrupted) throw err;
            throw new WatchInterrupted(`etcd watch failed: ${errorMessage(err)}`, err);
          }
          if (!response) throw new WatchInterrupted('etcd ended the watch stream');
          const compact = Number(response.compact_revision ?? 0);
          if (compact > 0) throw new RevisionCompactedError(lastComplete + 1, compact);
          if (response.canceled) {
            throw new WatchInterrupted(`etcd cancelled the watch${response.cancel_reason ? `: ${response.cancel_reason}` : ''}`);
          }
          const responseBytes = messageBytes(response);
          summary.largestResponseBytes = Math.max(summary.largestResponseBytes, responseBytes);
          if (responseBytes > MAX_WATCH_RESPONSE_BYTES && !oversizeReported) {
            // The window charges two responses of MAX_WATCH_RESPONSE_BYTES: larger ones are not counted.
            oversizeReported = true;
            options.logger?.warn('etcd sent a watch response larger than the memory budget counts; the process may hold more than the budget', {
              responseBytes,
              countedBytes: MAX_WATCH_RESPONSE_BYTES,
              hint: "etcd's --max-request-bytes above its 1.5 MiB default?",
            });
          }
          let reachedEnd = false;
          for (const raw of response.events ?? []) {
            const rev = Number(raw.kv.mod_revision);
            if (rev <= lastComplete) continue; // already held or uploaded
            if (rev !== currentRev) {
              seal();
              if (rev > toRevision) {
                reachedEnd = true;
                break;
              }
              if (rev !== lastComplete + 1) throw new RevisionGapError(lastComplete + 1, rev);
              currentRev = rev;
            }
            const { event, cost } = toDeltaEvent(raw);
            await makeRoom(cost);
            current.push(event);
            currentBytes += cost;
          }
          // An unfragmented response ends on a revision boundary.
          if (!response.fragment || reachedEnd) seal();
          if (lastComplete >= toRevision) break;
        }
      } catch (err) {
        if (err instanceof RestartAfterWait) continue;
        if (err instanceof RevisionCompactedError) {
          dropCurrent();
          await flush().catch(() => undefined); // what was read before the compaction is still valid history
          throw err;
        }
        if (!(err instanceof WatchInterrupted) || signal?.aborted) throw err;
        failures += 1;
        summary.reconnects += 1;
        dropCurrent();
        fitHeld();
        if (failures > maxReconnects) {
          throw new EtcdUnavailableError(
            `etcd watch for revisions ${lastComplete + 1}..${toRevision} failed ${failures} times: ${err.message}`,
            err,
          );
        }
        const delayMs = Math.min(5000, 250 * 2 ** (failures - 1));
        options.logger?.warn('Delta watch interrupted; re-creating it', {
          fromRevision: lastComplete + 1,
          toRevision,
          attempt: failures,
          delayMs,
          error: err.message,
        });
        await sleep(delayMs, undefined, { signal });
      } finally {
        await session?.close();
      }
    }
    await flush();
    return summary;
  } finally {
    held.release();
    ownWatchClient?.close();
  }
}
