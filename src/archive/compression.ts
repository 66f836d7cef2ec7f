/**
 * Compressed object bodies: gzip (`.gz`) and zstd (`.zst`), both written as independent blocks
 * compressed in parallel on libuv's thread pool (zlib's async calls and the zstd binding run there),
 * so compression keeps pace with the snapshot stream on more than one core.
 *
 * - gzip: one gzip member per block (as pigz does); every gunzip reads a sequence of members.
 * - zstd: one zstd frame per block; `zstd -d` reads a sequence of frames.
 *
 * Memory: at most `parallelism` blocks in flight, each an input block plus its output (no larger than
 * the input plus a few bytes for data that does not compress) plus the compressor's state;
 * `compressStreamBytes` gives the figure to reserve.
 */
import { compress as zstdCompress, decompress as zstdDecompress } from '@mongodb-js/zstd';
import { availableParallelism } from 'node:os';
import { Duplex, Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, createGzip, gzip } from 'node:zlib';
import { zstdFrame } from './zstd-frames.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export const COMPRESSIONS: readonly Compression[] = ['gzip', 'zstd', 'none'];

/** The spec's and the CLI's default (chosen from bench/full-snapshot.ts; docs/architecture.md says why). */
export const DEFAULT_COMPRESSION: Compression = 'zstd';

export interface CompressOptions {
  /** gzip 1-9, zstd 1-19; defaults: gzip 1, zstd 1 (bench/full-snapshot.ts). */
  level?: number;
  /** Blocks compressed at once; 1 for gzip keeps the single-stream gzip of earlier versions. */
  parallelism?: number;
}

/** Uncompressed bytes per block: small enough to keep blocks in flight well inside the RSS goal, large enough that per-block restarts cost little output (bench/full-snapshot.ts). */
export const COMPRESS_BLOCK_BYTES = 256 * 1024;
/** zstd frames we write hold one block; a frame this large is not ours (or corrupt): refuse rather than buffer it. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/**
 * The most a zstd frame may decompress to (ours hold COMPRESS_BLOCK_BYTES). Bounds what one frame
 * puts in memory, as zlib's chunked output does for gzip, so that a bomb reaches the delta decoder's
 * line and revision limits instead of being decompressed whole first.
 */
export const MAX_FRAME_CONTENT_BYTES = 16 * 1024 * 1024;
/** Whole frames decompressed in one call, by their decompressed bound (at least one frame). */
const DECOMPRESS_RUN_BYTES = 1024 * 1024;
/** Compressor state per block in flight (zstd level <= 3 on a 256 KiB block needs ~1.5 MiB, deflate ~300 KiB). */
const COMPRESSOR_STATE_BYTES = 2 * 1024 * 1024;

export const DEFAULT_LEVEL: Record<Exclude<Compression, 'none'>, number> = { gzip: 1, zstd: 1 };

export function defaultParallelism(): number {
  return Math.max(2, Math.min(4, availableParallelism()));
}

/** Bytes the compressing stream may hold at once (for the memory budget). */
export function compressStreamBytes(compression: Compression, options: CompressOptions = {}): number {
  if (compression === 'none') return 0;
  const parallelism = options.parallelism ?? defaultParallelism();
  // Input block + output block + state per block in flight, and one block being gathered.
  return parallelism * (2 * COMPRESS_BLOCK_BYTES + COMPRESSOR_STATE_BYTES) + COMPRESS_BLOCK_BYTES;
}

const gzipAsync = promisify(gzip);

/** A stream that compresses what it is written; undefined for `none`. */
export function createCompressStream(compression: Compression, options: CompressOptions = {}): Transform | undefined {
  if (compression === 'none') return undefined;
  const level = options.level ?? DEFAULT_LEVEL[compression];
  const parallelism = options.parallelism ?? defaultParallelism();
  if (compression === 'gzip') {
    if (parallelism === 1) return createGzip({ level });
    return new BlockCompressStream((block) => gzipAsync(block, { level }), parallelism);
  }
  return new BlockCompressStream((block) => zstdCompress(block, level), parallelism);
}

/**
 * A stream that decompresses an object body written in `compression` (any block layout). Its output
 * is pulled: at most one bounded piece (zlib's chunk, or a run of zstd frames of at most
 * DECOMPRESS_RUN_BYTES or one frame) is produced beyond what the reader has asked for.
 */
export function createDecompressStream(compression: Compression): Duplex | undefined {
  if (compression === 'none') return undefined;
  if (compression === 'gzip') return createGunzip();
  return Duplex.from(decompressZstdFrames);
}

/** Cuts the input into blocks, compresses up to `parallelism` of them at once, and emits them in order. */
class BlockCompressStream extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly inFlight: Promise<Buffer>[] = [];
  private blocks = 0;

  constructor(
    private readonly compressBlock: (block: Buffer) => Promise<Buffer>,
    private readonly parallelism: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainBlocks(COMPRESS_BLOCK_BYTES).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    const finish = async (): Promise<void> => {
      // An empty input still becomes one valid (empty) member or frame.
      if (this.pendingBytes > 0 || this.blocks === 0) this.start(this.takeBlock(this.pendingBytes));
      while (this.inFlight.length > 0) this.push(await this.inFlight.shift()!);
    };
    finish().then(() => callback(), callback);
  }

  private async drainBlocks(blockBytes: number): Promise<void> {
    while (this.pendingBytes >= blockBytes) {
      this.start(this.takeBlock(blockBytes));
      // Output stays in input order: wait for the oldest block once all slots are busy.
      while (this.inFlight.length >= this.parallelism) this.push(await this.inFlight.shift()!);
    }
  }

  private start(block: Buffer): void {
    const compressed = this.compressBlock(block);
    compressed.catch(() => undefined); // awaited in order later; keep a failure meanwhile from being unhandled
    this.inFlight.push(compressed);
    this.blocks += 1;
  }

  private takeBlock(bytes: number): Buffer {
    const block = Buffer.allocUnsafeSlow(bytes);
    let filled = 0;
    while (filled < bytes) {
      const head = this.pending[0]!;
      const n = Math.min(head.length, bytes - filled);
      head.copy(block, filled, 0, n);
      filled += n;
      if (n === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(n);
    }
    this.pendingBytes -= bytes;
    return block;
  }
}

export class ZstdFormatError extends Error {}

/** Splits the input at zstd frame boundaries and decompresses runs of whole frames, one run per read. */
async function* decompressZstdFrames(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let start = 0;
    for (;;) {
      let end = start;
      let runBound = 0;
      for (;;) {
        const frame = zstdFrame(pending, end, MAX_FRAME_CONTENT_BYTES);
        if (frame === undefined) break;
        if (end > start && runBound + frame.contentBound > DECOMPRESS_RUN_BYTES) break;
        end += frame.length;
        runBound += frame.contentBound;
      }
      if (end === start) break;
      yield await zstdDecompress(pending.subarray(start, end));
      start = end;
    }
    pending = pending.subarray(start);
    if (pending.length > MAX_FRAME_BYTES) throw new ZstdFormatError(`zstd: a frame larger than ${MAX_FRAME_BYTES} bytes`);
  }
  if (pending.length > 0) throw new ZstdFormatError(`zstd: ${pending.length} bytes after the last whole frame (truncated object?)`);
}
