/**
 * Applies source revisions to the etcd being restored as one txn each, with several txns in flight,
 * while guaranteeing that every txn lands on exactly its source revision.
 *
 * Why in-flight txns cannot simply be trusted to arrive in order: every unary gRPC call is its own
 * HTTP/2 stream, and etcd serves each stream on its own goroutine before proposing it to raft, so two
 * txns sent back to back on one connection may be applied in either order. Instead each txn carries a
 * compare that holds only when its predecessor has been applied:
 *
 *   txn for source revision r:  if mod_revision(k) == r-1  then <ops of r>  else (nothing)
 *
 * where k is a key PUT by revision r-1. Only this restore writes to the temporary etcd, every
 * successful txn makes exactly one revision, and a failed compare writes nothing (no revision). By
 * induction over the revisions applied so far, mod_revision(k) == r-1 means store revision r-1 was
 * made by the txn for source revision r-1, and no later txn can have been applied yet (each needs its
 * own predecessor, which is r), so the txn for r lands on store revision r. A txn sent while nothing
 * else is in flight needs no compare: the state is known. So:
 * - a txn whose predecessor PUT nothing (a deletion-only revision, or the first one) is sent only
 *   after the pipeline drained;
 * - a deletion-only revision that may become one delete-range reads the current keys first (opsFor),
 *   so it too waits for the pipeline to drain, to read the state after its predecessor;
 * - when a result says the compare failed (the txn overtook its predecessor), it is sent again, with
 *   the same compare; the txns behind it fail in turn and are resent in the same order. Only one
 *   copy of a revision is in flight at a time, so none can be applied twice.
 * Every successful result's header revision is still checked against the source revision: anything
 * else (a revision missing from the archive, a base snapshot that does not match, a txn that a
 * transport retry applied twice) aborts the restore with an error, never a silent difference.
 */
import type { Etcd3, ICompare, IRequestOp, ITxnResponse } from 'etcd3';
import { RestoreError, errorMessage } from '../errors.js';
import type { DeltaEvent, RevisionEvents } from '../archive/delta-format.js';

const NUL = Buffer.from([0]);

/**
 * Default txns in flight, chosen with bench/restore.ts's depth sweep (docs/benchmarks.md): against
 * etcd 3.4 on 2 busy cores so many pipelined txns were overtaken that one at a time was fastest.
 * Larger depths stay exact (restore --txns-in-flight) for etcds that reorder less.
 */
export const DEFAULT_PIPELINE_DEPTH = 1;

export interface PipelineStats {
  /** Txns that overtook their predecessor, failed their compare and were resent. */
  resent: number;
  /** Times the pipeline was drained before a revision that needed the exact current state. */
  drains: number;
}

interface InFlight {
  revision: RevisionEvents;
  ops: IRequestOp[];
  /** A key its predecessor PUT; undefined when it was sent with nothing in flight (no compare). */
  guard: Buffer | undefined;
  attempt: number;
  result: Promise<ITxnResponse | Error>;
}

/** After this many failed compares a revision is sent once the pipeline has drained (sure to apply). */
const MAX_PIPELINED_ATTEMPTS = 3;

export class TxnPipeline {
  readonly stats: PipelineStats = { resent: 0, drains: 0 };
  private readonly inFlight: InFlight[] = [];
  /** The revision passed to apply() last: the predecessor of the next one. */
  private previous: RevisionEvents | undefined;

  constructor(
    private readonly client: Etcd3,
    readonly depth = DEFAULT_PIPELINE_DEPTH,
  ) {
    if (!Number.isSafeInteger(depth) || depth < 1) throw new RangeError(`pipeline depth must be a positive integer, got ${depth}`);
  }

  /** Queues the txn for `revision` (the next source revision after the previous call's). */
  async apply(revision: RevisionEvents): Promise<void> {
    const guard = this.previous ? putKeyOf(this.previous) : undefined;
    this.previous = revision;
    if (this.inFlight.length > 0 && (mayBecomeDeleteRange(revision.events) || !guard)) {
      this.stats.drains += 1;
      await this.drain();
    }
    const alone = this.inFlight.length === 0;
    const ops = await opsFor(this.client, revision.events, alone);
    this.send(revision, ops, alone ? undefined : guard, 1);
    while (this.inFlight.length >= this.depth) await this.settleOldest();
  }

  /** Waits until every queued txn is applied and checked. */
  async drain(): Promise<void> {
    while (this.inFlight.length > 0) await this.settleOldest();
  }

  /** After a failure: lets the txns still in flight finish, unchecked, so none runs on unobserved. */
  async abandon(): Promise<void> {
    const rest = this.inFlight.splice(0);
    await Promise.all(rest.map((entry) => entry.result));
  }

  private send(revision: RevisionEvents, ops: IRequestOp[], guard: Buffer | undefined, attempt: number): void {
    const compare: ICompare[] = guard
      ? [{ key: guard, target: 'Mod', result: 'Equal', mod_revision: String(revision.rev - 1) }]
      : [];
    const result = this.client.kv.txn({ compare, success: ops }).then(
      (response) => response,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    this.inFlight.push({ revision, ops, guard, attempt, result });
  }

  private async settleOldest(): Promise<void> {
    const oldest = this.inFlight.shift()!;
    const result = await oldest.result;
    if (result instanceof Error) {
      await this.abandon();
      throw applyError(oldest.revision, result);
    }
    if (result.succeeded) {
      checkRevision(oldest.revision, result);
      return;
    }
    // It overtook its predecessor and wrote nothing. Send it again, behind the predecessor's own
    // resend if that failed too: failures are handled in send order, so resends stay in order. Only
    // one copy of a revision is ever in flight (a resend follows the previous copy's answer), so it
    // cannot be applied twice. A revision sent alone has no compare and cannot get here.
    this.stats.resent += 1;
    if (oldest.attempt >= MAX_PIPELINED_ATTEMPTS) return this.resendOneByOne(oldest);
    this.send(oldest.revision, oldest.ops, oldest.guard, oldest.attempt + 1);
  }

  /**
   * The slow, sure way out of repeated overtaking: wait for every txn in flight, then send the ones
   * that failed one at a time in revision order, each once the one before it is confirmed.
   */
  private async resendOneByOne(first: InFlight): Promise<void> {
    this.stats.drains += 1;
    const failed = [first];
    for (const entry of this.inFlight.splice(0)) {
      const result = await entry.result;
      if (result instanceof Error) {
        await this.abandon();
        throw applyError(entry.revision, result);
      }
      if (result.succeeded) checkRevision(entry.revision, result);
      else failed.push(entry);
    }
    failed.sort((a, b) => a.revision.rev - b.revision.rev);
    this.stats.resent += failed.length - 1;
    for (const entry of failed) {
      this.send(entry.revision, entry.ops, entry.guard, entry.attempt + 1);
      const sent = this.inFlight.shift()!;
      const result = await sent.result;
      if (result instanceof Error) throw applyError(sent.revision, result);
      if (!result.succeeded) {
        throw new RestoreError(`source revision ${sent.revision.rev} cannot be applied after revision ${sent.revision.rev - 1}: replay order broken`);
      }
      checkRevision(sent.revision, result);
    }
  }
}

/** A key the revision PUTs (its mod_revision then equals the revision), if any. */
function putKeyOf(revision: RevisionEvents): Buffer | undefined {
  return revision.events.find((e) => e.type === 'PUT')?.key;
}

function mayBecomeDeleteRange(events: readonly DeltaEvent[]): boolean {
  return events.length > 1 && events.every((e) => e.type === 'DELETE');
}

/** The smallest key after `key`: makes an inclusive upper bound exclusive. */
function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, NUL]);
}

/**
 * The txn ops for one source revision. A revision made only of deletions (a delete-range, a lease
 * revocation) can hold more events than etcd's --max-txn-ops; when the deleted keys are exactly the
 * keys currently between the first and the last of them, one delete-range reproduces it. That check
 * reads the current state, so it is only made when nothing is in flight (`stateIsCurrent`).
 */
async function opsFor(client: Etcd3, events: DeltaEvent[], stateIsCurrent: boolean): Promise<IRequestOp[]> {
  if (stateIsCurrent && mayBecomeDeleteRange(events)) {
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

function applyError(revision: RevisionEvents, err: Error): RestoreError {
  const hint = /too many operations/i.test(errorMessage(err))
    ? '; start the restore etcd with a larger --max-txn-ops'
    : /too large/i.test(errorMessage(err))
      ? '; start the restore etcd with a larger --max-request-bytes'
      : '';
  return new RestoreError(
    `cannot apply source revision ${revision.rev} (${revision.events.length} events): ${errorMessage(err)}${hint}`,
    err,
  );
}

function checkRevision(revision: RevisionEvents, result: ITxnResponse): void {
  const got = Number(result.header.revision);
  if (got !== revision.rev) {
    throw new RestoreError(
      `applying source revision ${revision.rev} produced revision ${got}: the restored data and the deltas ` +
        `disagree (a revision is missing or the deltas belong to another base snapshot)`,
    );
  }
}
