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
