import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { ChecksumMismatchError, ChecksumMissingError } from '../../src/errors.js';
import { HashingStream, sha256Hex, verifyingStream } from '../../src/store/checksum.js';

// Known answers (FIPS 180-2 test vector "abc" and the empty string), so a wrong algorithm or encoding fails.
const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Several chunks, so that hashing across chunk boundaries is exercised. */
function chunks(): Buffer[] {
  return [Buffer.from('first chunk, '), Buffer.alloc(70_000, 0x61), Buffer.from('and the last one')];
}

async function drain(source: Readable, through: Transform): Promise<Buffer> {
  const out: Buffer[] = [];
  through.on('data', (chunk: Buffer) => out.push(chunk));
  await pipeline(source, through);
  return Buffer.concat(out);
}

test('sha256Hex: known answers for a Buffer and a string', () => {
  assert.equal(sha256Hex(Buffer.from('abc')), ABC_SHA256);
  assert.equal(sha256Hex('abc'), ABC_SHA256);
  assert.equal(sha256Hex(''), EMPTY_SHA256);
});

test('HashingStream: passes every byte through and reports the sha256 and size of all of them', async () => {
  const parts = chunks();
  const all = Buffer.concat(parts);
  const hashing = new HashingStream();
  const out = await drain(Readable.from(parts), hashing);
  assert.deepEqual(out, all);
  assert.equal(hashing.sha256, createHash('sha256').update(all).digest('hex'));
  assert.equal(hashing.size, all.length);
});

test('HashingStream: an empty stream has the empty sha256 and size 0', async () => {
  const hashing = new HashingStream();
  await drain(Readable.from([]), hashing);
  assert.equal(hashing.sha256, EMPTY_SHA256);
  assert.equal(hashing.size, 0);
});

test('HashingStream: reading the digest before the end is an error, not a partial hash', () => {
  const hashing = new HashingStream();
  hashing.write(Buffer.from('abc'));
  assert.throws(() => hashing.sha256, { message: 'HashingStream: digest read before the stream ended' });
  hashing.destroy();
});

test('verifyingStream: matching content flows through unchanged', async () => {
  const parts = chunks();
  const all = Buffer.concat(parts);
  const out = await drain(Readable.from(parts), verifyingStream('full/a', sha256Hex(all), 'file:///s'));
  assert.deepEqual(out, all);
});

test('verifyingStream: changed content fails at the end with a ChecksumMismatchError naming the object', async () => {
  const parts = chunks();
  const recorded = sha256Hex(Buffer.concat(parts));
  parts[1] = Buffer.alloc(70_000, 0x62);
  const actual = sha256Hex(Buffer.concat(parts));
  await assert.rejects(drain(Readable.from(parts), verifyingStream('deltas/0000000042', recorded, 'file:///s')), (err: unknown) => {
    assert.ok(err instanceof ChecksumMismatchError, String(err));
    assert.equal(err.key, 'deltas/0000000042');
    assert.equal(err.expected, recorded);
    assert.equal(err.actual, actual);
    assert.equal(err.message, `sha256 mismatch for deltas/0000000042: recorded ${recorded}, content has ${actual}`);
    return true;
  });
});

test('verifyingStream: empty content is checked too', async () => {
  await drain(Readable.from([]), verifyingStream('empty', EMPTY_SHA256, 'file:///s'));
  await assert.rejects(drain(Readable.from([]), verifyingStream('empty', ABC_SHA256, 'file:///s')), ChecksumMismatchError);
});

for (const missing of [undefined, '']) {
  test(`verifyingStream: a missing sha256 (${JSON.stringify(missing)}) is refused at once, naming the object and store`, () => {
    assert.throws(() => verifyingStream('full/unchecked', missing, 's3://bucket/prefix'), (err: unknown) => {
      assert.ok(err instanceof ChecksumMissingError, String(err));
      assert.equal(err.key, 'full/unchecked');
      assert.equal(err.message, 'full/unchecked in s3://bucket/prefix has no recorded sha256: refusing to read unchecked content');
      return true;
    });
  });
}
