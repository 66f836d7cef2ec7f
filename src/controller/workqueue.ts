import { defaultControllerRateLimiter, type RateLimiter } from './rate-limiter.js';

/**
 * A rate-limited work queue with client-go's semantics (util/workqueue):
 * - an item waiting in the queue is held once, however often it is added (dedup);
 * - an item being processed is never handed to a second worker: adding it meanwhile marks it dirty
 *   and it is queued again when the first worker calls `done`;
 * - `addAfter` keeps only the earliest pending time per item;
 * - `addRateLimited` waits what the limiter says; `forget` (on success) resets the item's backoff.
 * Every `get` must be paired with a `done`, whatever the outcome.
 */
export class WorkQueue<T> {
  private readonly queue: T[] = [];
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly waiting = new Map<T, { readyAt: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(item: T | undefined) => void> = [];
  private readonly drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(private readonly rateLimiter: RateLimiter<T> = defaultControllerRateLimiter<T>()) {}

  add(item: T): void {
    if (this.shuttingDown || this.dirty.has(item)) return;
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    this.enqueue(item);
  }

  /** Adds the item once `delayMs` has passed; a pending earlier time for it wins. */
  addAfter(item: T, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(item);
      return;
    }
    const readyAt = Date.now() + delayMs;
    const pending = this.waiting.get(item);
    if (pending && pending.readyAt <= readyAt) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.waiting.delete(item);
      this.add(item);
    }, delayMs);
    this.waiting.set(item, { readyAt, timer });
  }

  addRateLimited(item: T): void {
    this.addAfter(item, this.rateLimiter.when(item));
  }

  forget(item: T): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.rateLimiter.numRequeues(item);
  }

  /** The next item to process, or undefined once the queue is shut down. */
  get(): Promise<T | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const item = this.queue.shift();
    if (item !== undefined) return Promise.resolve(this.startProcessing(item));
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(item: T): void {
    this.processing.delete(item);
    if (this.shuttingDown) {
      if (this.processing.size === 0) this.drainWaiters.splice(0).forEach((resolve) => resolve());
      return;
    }
    if (this.dirty.has(item)) this.enqueue(item);
  }

  /** Items waiting to be processed (not counting delayed or in-process ones). */
  len(): number {
    return this.queue.length;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops handing out items and drops pending ones; waiting `get`s resolve to undefined. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.getters.splice(0).forEach((resolve) => resolve(undefined));
  }

  /** Shuts down, then resolves once every item handed out has been marked done. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private enqueue(item: T): void {
    const getter = this.getters.shift();
    if (getter) getter(this.startProcessing(item));
    else this.queue.push(item);
  }

  private startProcessing(item: T): T {
    this.dirty.delete(item);
    this.processing.add(item);
    return item;
  }
}
