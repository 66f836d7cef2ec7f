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
import type { Readable } from 'node:stream';
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
