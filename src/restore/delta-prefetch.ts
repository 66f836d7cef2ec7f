/**
 * Downloads the delta objects a replay needs ahead of the replay, several at once, each spooled to
 * its own temp file and checked against its recorded sha256 before the replay may read it.
 *
 * What is downloaded ahead is bounded by a MemoryBudget: an object holds a reservation of its stored
 * size from the moment its download starts until the replay has applied it and removed its file
 * (an object larger than the whole budget reserves all of it, so it is fetched alone). Objects are
 * reserved in replay order (the budget is FIFO), so a large next object is never starved by small
 * later ones, and at most `maxObjects` objects are downloading or waiting at once.
 */
import { setMaxListeners } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { MemoryBudget, Reservation } from '../budget/memory-budget.js';
import type { DeltaName } from '../archive/naming.js';
import type { ObjectStore } from '../store/object-store.js';

/** Default for the restore's --memory: bytes of delta objects fetched ahead of the replay. */
export const DEFAULT_PREFETCH_BYTES = 64 * 1024 * 1024;
export const DEFAULT_PREFETCH_OBJECTS = 8;

export interface SpooledObject {
  delta: DeltaName;
  /** The object's stored bytes (sha256 verified). */
  file: string;
}

interface Slot {
  delta: DeltaName;
  file: string;
  /** Settles when the download is complete and verified (or failed, or never started). */
  ready: Promise<void>;
  settle: (outcome: Promise<void>) => void;
  reservation?: Reservation;
}

export class DeltaPrefetcher {
  private readonly slots: Slot[];
  private readonly abort = new AbortController();
  private started = 0;
  private consumed = 0;
  private wakeFiller: (() => void) | undefined;
  private readonly filler: Promise<void>;

  constructor(
    private readonly store: ObjectStore,
    private readonly plan: readonly DeltaName[],
    /** Stored size per object key (from the store listing). A missing size reserves the whole budget. */
    private readonly sizes: ReadonlyMap<string, number>,
    private readonly budget: MemoryBudget,
    private readonly spoolDir: string,
    private readonly maxObjects = DEFAULT_PREFETCH_OBJECTS,
  ) {
    this.slots = plan.map((delta, index) => {
      let settle!: (outcome: Promise<void>) => void;
      const ready = new Promise<void>((resolve) => (settle = resolve));
      ready.catch(() => undefined); // observed by next() or close()
      return { delta, file: join(spoolDir, `object-${index}`), ready, settle };
    });
    // Each download in progress listens on the shared signal a few times (get, file stream, pipeline).
    setMaxListeners(4 * maxObjects + 10, this.abort.signal);
    this.filler = this.fill();
  }

  /**
   * The next object in plan order, once downloaded and verified. Call `done` after applying it: that
   * removes the file and frees its share of the budget for the next download.
   */
  async next(): Promise<SpooledObject & { done: () => Promise<void> }> {
    const index = this.consumed;
    if (index >= this.plan.length) throw new RangeError('no more delta objects in the plan');
    const slot = this.slots[index]!;
    await slot.ready;
    this.consumed += 1;
    this.wakeFiller?.();
    return {
      delta: slot.delta,
      file: slot.file,
      done: async () => {
        await rm(slot.file, { force: true });
        slot.reservation?.release();
        slot.reservation = undefined;
        this.wakeFiller?.();
      },
    };
  }

  /** Stops downloading, waits for downloads in progress to end, removes their files, frees the budget. */
  async close(): Promise<void> {
    this.abort.abort(new Error('replay finished'));
    this.wakeFiller?.();
    await this.filler;
    await Promise.all(
      this.slots.map(async (slot) => {
        await slot.ready.catch(() => undefined);
        await rm(slot.file, { force: true });
        slot.reservation?.release();
      }),
    );
  }

  private async fill(): Promise<void> {
    const signal = this.abort.signal;
    for (let index = 0; index < this.plan.length && !signal.aborted; index++) {
      while (this.started - this.consumed >= this.maxObjects && !signal.aborted) {
        await new Promise<void>((resolve) => (this.wakeFiller = resolve));
      }
      if (signal.aborted) break;
      const slot = this.slots[index]!;
      const size = this.sizes.get(slot.delta.key) ?? this.budget.limitBytes;
      this.started += 1;
      try {
        slot.reservation = await this.budget.reserve(Math.min(size, this.budget.limitBytes), signal);
      } catch (err) {
        slot.settle(Promise.reject(err));
        break;
      }
      slot.settle(this.download(slot.delta.key, slot.file, signal));
    }
    // Slots never started fail, so a next() waiting on one does not hang.
    for (const slot of this.slots.slice(this.started)) slot.settle(Promise.reject(new Error('prefetch stopped')));
  }

  private async download(key: string, file: string, signal: AbortSignal): Promise<void> {
    const object = await this.store.get(key, { signal });
    // The store stream fails at its end on a sha256 mismatch, so a resolved download is verified.
    await pipeline(object.body, createWriteStream(file, { mode: 0o600 }), { signal });
  }
}
