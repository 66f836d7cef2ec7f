import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { compress as zstdCompress, decompress as zstdDecompress } from '@mongodb-js/zstd';
import {
  COMPRESS_BLOCK_BYTES,
  DEFAULT_COMPRESSION,
  createCompressStream,
  createDecompressStream,
  MAX_FRAME_CONTENT_BYTES,
  ZstdFormatError,
  type Compression,
} from '../../src/archive/compression.js';
import { zstdFrameLength, ZstdFrameError } from '../../src/archive/zstd-frames.js';
import { specSchema } from '../../src/api/v1alpha1/schema.js';
import { zstdRleFrame } from '../helpers/zstd-bomb.js';

/** Half text with repeated field names (compresses), half random (does not): both block kinds occur. */
function sample(bytes: number): Buffer {
  const text = Buffer.from('{"metadata":{"name":"web","namespace":"default","labels":{"app":"web"}}}\n'.repeat(Math.ceil(bytes / 140)));
  return Buffer.concat([text, randomBytes(bytes)]).subarray(0, bytes);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Writes `input` in uneven chunks through `stage` and returns what comes out. */
async function through(input: Buffer, stage: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0, step = 1; at < input.length; at += step, step = (step * 7 + 13) % 300_000 + 1) chunks.push(input.subarray(at, at + step));
  const [out] = await Promise.all([collect(stage), pipeline(Readable.from(chunks), stage)]);
  return out;
}

test('zstdFrameLength finds each frame of a sequence (compressed, raw, RLE, empty, skippable), and nothing before a frame ends', async () => {
  const skippable = Buffer.alloc(8 + 5);
  skippable.writeUInt32LE(0x184d2a5e, 0);
  skippable.writeUInt32LE(5, 4);
  const frames = [
    await zstdCompress(sample(200_000), 3),
    await zstdCompress(randomBytes(150_000), 1), // raw blocks
    await zstdCompress(Buffer.alloc(300_000, 7), 1), // an RLE block
    await zstdCompress(Buffer.alloc(0), 1),
    skippable,
  ];
  const all = Buffer.concat(frames);
  let offset = 0;
  for (const frame of frames) {
    for (const cut of [0, 3, 4, 5, 6, frame.length - 1]) {
      assert.equal(zstdFrameLength(all.subarray(0, offset + cut), offset), undefined, `cut ${cut} of a ${frame.length}-byte frame`);
    }
    assert.equal(zstdFrameLength(all, offset), frame.length);
    offset += frame.length;
  }
  assert.equal(offset, all.length);
});

test('zstdFrameLength refuses bytes that are not a zstd frame', () => {
  assert.throws(() => zstdFrameLength(Buffer.from('not zstd at all')), ZstdFrameError);
});

for (const compression of ['gzip', 'zstd'] as const satisfies Compression[]) {
  for (const parallelism of [1, 2, 4]) {
    test(`${compression} with ${parallelism} block(s) in flight round-trips every input size, readable by the plain decoder`, async () => {
      for (const size of [0, 1, COMPRESS_BLOCK_BYTES - 1, COMPRESS_BLOCK_BYTES, Math.floor(3.5 * COMPRESS_BLOCK_BYTES)]) {
        const input = sample(size);
        const compressed = await through(input, createCompressStream(compression, { parallelism })!);
        // What any gunzip or `zstd -d` does with a sequence of members or frames.
        const plain = compression === 'gzip' ? gunzipSync(compressed) : await zstdDecompress(compressed);
        assert.ok(plain.equals(input), `${size} bytes: the plain decoder reads them back`);
        const ours = await through(compressed, createDecompressStream(compression)!);
        assert.ok(ours.equals(input), `${size} bytes: the streaming decoder reads them back`);
        if (size > COMPRESS_BLOCK_BYTES) assert.ok(compressed.length < input.length, 'and the text half compressed');
      }
    });
  }
}

test('a zstd frame that may decompress past MAX_FRAME_CONTENT_BYTES is refused from its block headers, before it is whole', async () => {
  const small = zstdRleFrame(4 * 128 * 1024);
  // The hand-built frame is valid zstd: libzstd and our stream read it back.
  assert.ok((await zstdDecompress(small)).equals(Buffer.alloc(4 * 128 * 1024, 'A')));
  assert.ok((await through(small, createDecompressStream('zstd')!)).equals(Buffer.alloc(4 * 128 * 1024, 'A')));
  const bomb = zstdRleFrame(256 * 1024 * 1024);
  assert.equal(zstdFrameLength(bomb), bomb.length, 'without a limit the frame is just measured');
  const headersPastLimit = 6 + 4 * (MAX_FRAME_CONTENT_BYTES / (128 * 1024) + 1);
  assert.throws(() => zstdFrameLength(bomb.subarray(0, headersPastLimit), 0, MAX_FRAME_CONTENT_BYTES), /may decompress to more than/);
  await assert.rejects(through(bomb, createDecompressStream('zstd')!), /may decompress to more than/);
});

test('a truncated zstd object fails to decompress, saying so', async () => {
  const compressed = await through(sample(3 * COMPRESS_BLOCK_BYTES), createCompressStream('zstd')!);
  await assert.rejects(through(compressed.subarray(0, compressed.length - 10), createDecompressStream('zstd')!), ZstdFormatError);
  await assert.rejects(collect(Readable.from([Buffer.from('garbage!')]).pipe(createDecompressStream('zstd')!)), ZstdFrameError);
});

test("the spec's default compression is the CLI's", () => {
  assert.equal(specSchema.properties.fullSnapshot.properties.compression.default, DEFAULT_COMPRESSION);
});
