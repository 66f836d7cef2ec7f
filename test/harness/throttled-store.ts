import { Readable, Transform } from 'node:stream';
import type { GetResult, ObjectInfo, ObjectStore, PutOptions, PutResult } from '../../src/store/object-store.js';

/** Passes every call to `inner`; fault-injecting test stores override what they change. */
export class DelegatingStore implements ObjectStore {
  constructor(protected readonly inner: ObjectStore) {}

  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    return this.inner.put(key, body, options);
  }

  get(key: string, options?: { signal?: AbortSignal }): Promise<GetResult> {
    return this.inner.get(key, options);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  describe(): string {
    return this.inner.describe();
  }
}

/**
 * A store whose uploads crawl at `bytesPerSecond` each (like one slow S3 connection), counting what
 * it stores: the slow store of the delta tests and bench/delta-memory.ts.
 */
export class ThrottledStore extends DelegatingStore {
  uploadedBytes = 0;

  constructor(
    inner: ObjectStore,
    private readonly bytesPerSecond: number,
  ) {
    super(inner);
  }

  override put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    const rate = this.bytesPerSecond;
    const throttle = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        this.uploadedBytes += chunk.length;
        setTimeout(() => done(null, chunk), (chunk.length / rate) * 1000);
      },
    });
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    source.on('error', (err) => throttle.destroy(err));
    return this.inner.put(key, source.pipe(throttle), options);
  }

  override describe(): string {
    return `throttled ${this.inner.describe()}`;
  }
}

/**
 * A store that can hold its full-snapshot uploads for as long as a test likes: a snapshot "longer
 * than the schedule interval" under a fake clock, without any real waiting. hold() makes every
 * following full/ put wait before it reads its body; release() lets the waiting ones through.
 */
export class GatedStore extends DelegatingStore {
  private readonly held: Array<() => void> = [];
  private holding = false;

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const resume of this.held.splice(0)) resume();
  }

  /** Full-snapshot uploads waiting for release(). */
  get waiting(): number {
    return this.held.length;
  }

  override async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    if (this.holding && key.startsWith('full/')) await new Promise<void>((resume) => this.held.push(resume));
    return this.inner.put(key, body, options);
  }
}
