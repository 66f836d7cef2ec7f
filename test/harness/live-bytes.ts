/**
 * What the test process really holds, measured rather than accounted: the bytes of every live
 * ArrayBuffer (Buffers, gRPC messages, stream chunks) after a full garbage collection, so garbage
 * not yet collected does not count and held bytes always do. Budget tests compare this with the
 * budget: a byte path that bypasses the MemoryBudget shows up here even though the accountant,
 * which only grants what fits, never sees it.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Transform, pipeline, type Readable } from 'node:stream';
import type { ObjectStore, PutOptions, PutResult } from '../../src/store/object-store.js';
import { DelegatingStore } from './throttled-store.js';

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Live ArrayBuffer bytes of this process. Two collections and a turn: V8 frees backing stores lazily. */
export async function liveBufferBytes(): Promise<number> {
  collectGarbage();
  collectGarbage();
  await nextTurn();
  return process.memoryUsage().arrayBuffers;
}

/** The largest live-byte figure seen above a baseline taken at creation. */
export class LiveBytesProbe {
  private max = 0;
  samples = 0;

  private constructor(readonly baselineBytes: number) {}

  static async start(): Promise<LiveBytesProbe> {
    return new LiveBytesProbe(await liveBufferBytes());
  }

  /** Measures now; returns the bytes held above the baseline. */
  async sample(): Promise<number> {
    const held = (await liveBufferBytes()) - this.baselineBytes;
    this.samples += 1;
    if (held > this.max) this.max = held;
    return held;
  }

  get maxHeldBytes(): number {
    return this.max;
  }
}

/**
 * A store that measures live bytes at the point a delta fetch holds the most: when an upload starts
 * (the whole segment is in memory). Each sample is two full GCs, so only there.
 */
export class LiveBytesStore extends DelegatingStore {
  constructor(
    inner: ObjectStore,
    readonly probe: LiveBytesProbe,
  ) {
    super(inner);
  }

  override async put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult> {
    await this.probe.sample();
    return super.put(key, body, options);
  }
}

/**
 * Passes `source` through and measures live bytes each time another `everyBytes` have been read
 * from it, holding the stream back until the sample is taken: for a body an upload pulls, the
 * moments it has parts in flight and the next one half assembled.
 */
export function sampledEvery(source: Readable, probe: LiveBytesProbe, everyBytes: number): Readable {
  let read = 0;
  let next = everyBytes;
  const sampler = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      read += chunk.length;
      if (read < next) return done(null, chunk);
      while (next <= read) next += everyBytes;
      probe.sample().then(() => done(null, chunk), done);
    },
  });
  return pipeline(source, sampler, () => undefined);
}

/**
 * Passes `body` through and measures live bytes when it has been read to its end (a download
 * complete and verified), before the reader sees the end. `measure` may take more figures then.
 */
export function sampledAtEnd(body: Readable, measure: () => Promise<unknown>): Readable {
  const sampler = new Transform({
    transform: (chunk: Buffer, _encoding, done) => done(null, chunk),
    flush: (done) => void measure().then(() => done(), done),
  });
  return pipeline(body, sampler, () => undefined);
}
