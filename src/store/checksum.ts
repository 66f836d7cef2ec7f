import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ChecksumMismatchError, ChecksumMissingError } from '../errors.js';

/** A pass-through that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;
  private hex: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.hex = this.hash.digest('hex');
    done();
  }

  /** Valid once the stream has flushed. */
  get sha256(): string {
    if (this.hex === undefined) throw new Error('HashingStream: digest read before the stream ended');
    return this.hex;
  }

  get size(): number {
    return this.bytes;
  }
}

/**
 * A pass-through that fails at its end with ChecksumMismatchError when the content's sha256 differs.
 * Without a recorded sha256 (`store` names where `key` lives) it throws ChecksumMissingError at once:
 * every put records one, so content without it was written by someone else and is never read unchecked.
 */
export function verifyingStream(key: string, expectedSha256: string | undefined, store: string): Transform {
  if (!expectedSha256) throw new ChecksumMissingError(key, store);
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest('hex');
      if (actual !== expectedSha256) done(new ChecksumMismatchError(key, expectedSha256, actual));
      else done();
    },
  });
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
