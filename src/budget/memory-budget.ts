/**
 * A byte budget shared by every fetch and upload of one cluster. Every byte held in memory is
 * reserved here first; when the budget is full, reservations wait (FIFO, so a large request is not
 * starved by small ones) until others release. This is what keeps memory flat when etcd is written
 * faster than the store accepts uploads.
 */
export class MemoryBudget {
  private used = 0;
  private peak = 0;
  private readonly waiters: Array<{ bytes: number; resolve: () => void; reject: (err: Error) => void }> = [];

  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
      throw new RangeError(`memory budget must be a positive number of bytes, got ${limitBytes}`);
    }
  }

  get usedBytes(): number {
    return this.used;
  }

  get peakBytes(): number {
    return this.peak;
  }

  get availableBytes(): number {
    return this.limitBytes - this.used;
  }

  /** Reserves at once if there is room and nobody is queued ahead; otherwise returns undefined. */
  tryReserve(bytes: number): Reservation | undefined {
    this.check(bytes);
    if (this.waiters.length > 0 || this.used + bytes > this.limitBytes) return undefined;
    this.take(bytes);
    return new Reservation(this, bytes);
  }

  /** Waits until `bytes` fit. Rejects with the signal's reason when aborted. */
  async reserve(bytes: number, signal?: AbortSignal): Promise<Reservation> {
    const now = this.tryReserve(bytes);
    if (now) return now;
    signal?.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        bytes,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = (): void => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        this.wake(); // the head of the queue may have changed
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
    return new Reservation(this, bytes);
  }

  /** @internal used by Reservation */
  giveBack(bytes: number): void {
    this.used -= bytes;
    this.wake();
  }

  /**
   * @internal used by Reservation.tryGrow. Like tryReserve it does not jump the queue: letting
   * small growths pass a queued large request would starve it.
   */
  takeMore(bytes: number): boolean {
    if (this.waiters.length > 0 || this.used + bytes > this.limitBytes) return false;
    this.take(bytes);
    return true;
  }

  private check(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`invalid reservation size ${bytes}`);
    if (bytes > this.limitBytes) {
      throw new RangeError(`a reservation of ${bytes} bytes can never fit the memory budget of ${this.limitBytes} bytes`);
    }
  }

  private take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  private wake(): void {
    while (this.waiters.length > 0) {
      const head = this.waiters[0]!;
      if (this.used + head.bytes > this.limitBytes) return;
      this.waiters.shift();
      this.take(head.bytes);
      head.resolve();
    }
  }
}

/** Bytes held from a MemoryBudget. `release` is idempotent. */
export class Reservation {
  private held: number;

  constructor(
    private readonly budget: MemoryBudget,
    bytes: number,
  ) {
    this.held = bytes;
  }

  get bytes(): number {
    return this.held;
  }

  /** Tries to hold `bytes` more without waiting; false when the budget has no room. */
  tryGrow(bytes: number): boolean {
    checkByteCount(bytes);
    if (bytes <= 0) return true;
    if (!this.budget.takeMore(bytes)) return false;
    this.held += bytes;
    return true;
  }

  /**
   * Waits (in the budget's FIFO queue) until `bytes` more can be held. Callers must not hold bytes
   * that another waiter needs to make progress while they wait, or the budget deadlocks.
   */
  async grow(bytes: number, signal?: AbortSignal): Promise<void> {
    checkByteCount(bytes);
    if (bytes <= 0) return;
    this.checkGrowth(bytes);
    const extra = await this.budget.reserve(bytes, signal);
    this.held += extra.detach();
  }

  /** A growth that is not a byte count, or that could never fit while this is held, is a bug. */
  private checkGrowth(bytes: number): void {
    if (this.held + bytes > this.budget.limitBytes) {
      throw new RangeError(
        `growing a reservation of ${this.held} bytes by ${bytes} can never fit the memory budget of ${this.budget.limitBytes} bytes`,
      );
    }
  }

  /** @internal hands the held bytes over to another Reservation without giving them back. */
  detach(): number {
    const bytes = this.held;
    this.held = 0;
    return bytes;
  }

  /** Gives back part of the reservation. */
  shrink(bytes: number): void {
    checkByteCount(bytes);
    const give = Math.min(bytes, this.held);
    if (give <= 0) return;
    this.held -= give;
    this.budget.giveBack(give);
  }

  release(): void {
    this.shrink(this.held);
  }
}

/** NaN or a fraction would corrupt the accounting for good; zero and negatives are harmless no-ops. */
function checkByteCount(bytes: number): void {
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`invalid byte count ${bytes}`);
}
