import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import {
  DEFAULT_SEGMENT_BYTES,
  EncryptionError,
  HEADER_BYTES,
  createDecryptStream,
  createEncryptStream,
  decodeEncryptionKey,
  keyProblem,
  encryptedSize,
  keyId,
} from '../../src/crypto/encryption.js';
import { generatedBytes } from '../harness/byte-streams.js';

const TAG = 16;
const KEY_A = Buffer.alloc(32, 0xa1);
const KEY_B = Buffer.alloc(32, 0xb2);
const WHERE = 'full/00000000000000000042-1700000000.db.gz.enc';

/** `data` as a stream of `chunkBytes`-sized chunks (odd sizes exercise the framing across chunk edges). */
function chunked(data: Buffer, chunkBytes: number): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) pieces.push(data.subarray(at, at + chunkBytes));
  return Readable.from(pieces);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function encrypt(plain: Buffer, key = KEY_A, segmentBytes?: number, chunkBytes = 4099): Promise<Buffer> {
  const stream = createEncryptStream(key, { objectKey: WHERE, segmentBytes });
  const done = collect(stream);
  await pipeline(chunked(plain, chunkBytes), stream);
  return done;
}

interface Decrypted {
  plain: Buffer;
  error?: unknown;
}

/** Decrypts, keeping what was released before a failure (it must be authenticated plaintext). */
async function decrypt(cipher: Buffer, keys: Buffer[] = [KEY_A], chunkBytes = 997, where = WHERE): Promise<Decrypted> {
  const released: Buffer[] = [];
  try {
    await pipeline(
      chunked(cipher, chunkBytes),
      createDecryptStream(keys, where),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          released.push(chunk);
          callback();
        },
      }),
    );
    return { plain: Buffer.concat(released) };
  } catch (error) {
    return { plain: Buffer.concat(released), error };
  }
}

function expectFailure(result: Decrypted, pattern: RegExp, plain: Buffer, what: string): void {
  assert.ok(result.error instanceof EncryptionError, `${what}: expected an EncryptionError, got ${String(result.error)}`);
  assert.ok(result.error.terminal, `${what}: decryption failures are terminal`);
  assert.ok(result.error.message.startsWith(`cannot decrypt ${WHERE}: `), `${what}: message names the object: ${result.error.message}`);
  assert.match(result.error.message, pattern, what);
  assert.ok(!result.error.message.includes('\n'), `${what}: one-line message`);
  // Whatever was released before the failure is authentic plaintext, never garbage.
  assert.ok(plain.subarray(0, result.plain.length).equals(result.plain), `${what}: released bytes are a prefix of the plaintext`);
}

test('round trip keeps the bytes for sizes around the segment size', async () => {
  const seg = DEFAULT_SEGMENT_BYTES;
  const cases: Array<{ name: string; size: number; segmentBytes?: number }> = [
    { name: 'empty', size: 0 },
    { name: '1 byte', size: 1 },
    { name: 'segment - 1', size: seg - 1 },
    { name: 'segment', size: seg },
    { name: 'segment + 1', size: seg + 1 },
    { name: 'two segments exactly', size: 2 * seg },
    { name: 'several MB', size: 5 * 1024 * 1024 + 12345 },
    { name: 'tiny segments, empty', size: 0, segmentBytes: 7 },
    { name: 'tiny segments, exact multiple', size: 70, segmentBytes: 7 },
    { name: 'tiny segments, ragged', size: 1000, segmentBytes: 7 },
  ];
  for (const c of cases) {
    const plain = generatedBytes(0, c.size, c.size + 1);
    const cipher = await encrypt(plain, KEY_A, c.segmentBytes);
    assert.equal(cipher.length, encryptedSize(c.size, c.segmentBytes), `${c.name}: size formula`);
    for (const chunkBytes of [1, 997, 1 << 20]) {
      if (chunkBytes === 1 && c.size > 2000) continue; // byte-at-a-time over large sizes only costs time
      const result = await decrypt(cipher, [KEY_A], chunkBytes);
      assert.equal(result.error, undefined, `${c.name}: decrypts (chunks of ${chunkBytes})`);
      assert.ok(result.plain.equals(plain), `${c.name}: same bytes back (chunks of ${chunkBytes})`);
    }
  }
});

test('every object has a fresh salt: the same plaintext encrypts differently', async () => {
  const plain = Buffer.from('same content');
  const [one, two] = [await encrypt(plain), await encrypt(plain)];
  assert.ok(!one.equals(two), 'ciphertexts differ');
  assert.ok(one.subarray(0, 20).equals(two.subarray(0, 20)), 'magic, version, segment size and key id are the same');
});

test('truncation anywhere is detected: at every segment boundary, inside segments and inside the header', async () => {
  const seg = 256;
  const plain = generatedBytes(0, seg * 4 + 100, 7); // 5 segments, the last one short
  const cipher = await encrypt(plain, KEY_A, seg);
  const frame = seg + TAG;
  const cuts = new Set<number>([0, 1, HEADER_BYTES - 1, HEADER_BYTES, cipher.length - 1, cipher.length - TAG]);
  for (let k = 0; HEADER_BYTES + k * frame < cipher.length; k++) {
    const boundary = HEADER_BYTES + k * frame;
    cuts.add(boundary); // right after segment k-1
    cuts.add(boundary + 1);
    cuts.add(boundary + TAG - 1); // less than a tag
    cuts.add(boundary + Math.floor(frame / 2)); // mid-segment
  }
  for (const cut of [...cuts].filter((c) => c < cipher.length).sort((a, b) => a - b)) {
    const result = await decrypt(cipher.subarray(0, cut));
    expectFailure(result, /truncated/, plain, `cut at ${cut} of ${cipher.length}`);
    const atBoundary = cut > HEADER_BYTES && (cut - HEADER_BYTES) % frame === 0;
    if (atBoundary) {
      const segments = (cut - HEADER_BYTES) / frame;
      assert.match(String(result.error), new RegExp(`truncated after segment ${segments - 1} \\(the final segment is missing\\)`), `cut at ${cut}`);
      assert.equal(result.plain.length, (segments - 1) * seg, `cut at ${cut}: everything before the last complete segment was released`);
    }
  }
});

test('a flipped byte anywhere fails with a clear error', async () => {
  const seg = 256;
  const plain = generatedBytes(0, seg * 3 + 10, 3);
  const cipher = await encrypt(plain, KEY_A, seg);
  const frame = seg + TAG;
  const segment1 = HEADER_BYTES + frame;
  const cases: Array<{ name: string; at: number; want: RegExp }> = [
    { name: 'magic', at: 0, want: /not an encrypted backup object \(bad magic/ },
    { name: 'version', at: 6, want: /unsupported encryption format version/ },
    { name: 'segment size', at: 11, want: /segment 0 failed authentication/ },
    { name: 'segment size, huge', at: 8, want: /segment size of \d+ bytes, outside/ },
    { name: 'key id', at: 13, want: /encrypted with key id [0-9a-f]{16}; the given key \(key id [0-9a-f]{16}\) does not match/ },
    { name: 'salt', at: HEADER_BYTES - 1, want: /segment 0 failed authentication/ },
    { name: 'ciphertext of segment 0', at: HEADER_BYTES, want: /segment 0 failed authentication/ },
    { name: 'tag of segment 0', at: HEADER_BYTES + frame - 1, want: /segment 0 failed authentication/ },
    { name: 'ciphertext of segment 1', at: segment1 + 5, want: /segment 1 failed authentication/ },
    { name: 'tag of the final segment', at: cipher.length - 1, want: /segment 3 failed authentication/ },
  ];
  for (const c of cases) {
    const tampered = Buffer.from(cipher);
    tampered[c.at] = tampered[c.at]! ^ (c.name.endsWith('huge') ? 0x80 : 0x01);
    expectFailure(await decrypt(tampered), c.want, plain, c.name);
  }
});

test('reordered, dropped, duplicated or appended segments fail authentication', async () => {
  const seg = 256;
  const plain = generatedBytes(0, seg * 4 + 1, 5);
  const cipher = await encrypt(plain, KEY_A, seg);
  const frame = seg + TAG;
  const header = cipher.subarray(0, HEADER_BYTES);
  const frames: Buffer[] = [];
  for (let at = HEADER_BYTES; at < cipher.length; at += frame) frames.push(cipher.subarray(at, at + frame));
  assert.equal(frames.length, 5, 'five segments');
  const [f0, f1, f2, f3, f4] = frames as [Buffer, Buffer, Buffer, Buffer, Buffer];
  const other = await encrypt(plain, KEY_A, seg); // same key and content, other object
  const cases: Array<{ name: string; parts: Buffer[]; want: RegExp }> = [
    { name: 'swapped 1 and 2', parts: [header, f0, f2, f1, f3, f4], want: /segment 1 failed authentication/ },
    { name: 'dropped segment 2', parts: [header, f0, f1, f3, f4], want: /segment 2 failed authentication/ },
    { name: 'duplicated segment 1', parts: [header, f0, f1, f1, f2, f3, f4], want: /segment 2 failed authentication/ },
    { name: 'final segment moved earlier', parts: [header, f0, f4, f1, f2, f3], want: /segment 1 failed authentication/ },
    { name: 'bytes appended after the final segment', parts: [cipher, Buffer.from('x'.repeat(40))], want: /segment 4 failed authentication/ },
    { name: 'segment from another object', parts: [header, f0, other.subarray(HEADER_BYTES + frame, HEADER_BYTES + 2 * frame), f2, f3, f4], want: /segment 1 failed authentication/ },
  ];
  for (const c of cases) expectFailure(await decrypt(Buffer.concat(c.parts)), c.want, plain, c.name);
});

test('an object decrypts only under the name it was stored as (no substitution of one object for another)', async () => {
  const plain = generatedBytes(0, 1000, 11);
  const cipher = await encrypt(plain);
  const renamed = await decrypt(cipher, [KEY_A], 997, 'full/00000000000000000099-1700000000.db.gz.enc');
  assert.ok(renamed.error instanceof EncryptionError, 'renamed object is rejected');
  assert.match(renamed.error.message, /^cannot decrypt full\/00000000000000000099-1700000000\.db\.gz\.enc: segment 0 failed authentication .*stored under another name/);
  assert.equal(renamed.plain.length, 0, 'nothing released');
});

test('wrong key, no key and key rotation', async () => {
  const plain = Buffer.from('secret revision data');
  const sealedA = await encrypt(plain, KEY_A);
  const sealedB = await encrypt(plain, KEY_B);

  const wrong = await decrypt(sealedA, [KEY_B]);
  expectFailure(wrong, new RegExp(`encrypted with key id ${keyId(KEY_A)}; the given key \\(key id ${keyId(KEY_B)}\\) does not match`), plain, 'wrong key');
  assert.equal((wrong.error as EncryptionError).reason, 'EncryptionKeyMismatch', 'wrong key has its own reason');
  expectFailure(await decrypt(sealedA, []), /encrypted with key id [0-9a-f]{16}; no key was given/, plain, 'no key');
  const third = Buffer.alloc(32, 0xc3);
  expectFailure(
    await decrypt(sealedA, [KEY_B, third]),
    new RegExp(`none of the 2 given keys match \\(key ids ${keyId(KEY_B)}, ${keyId(third)}\\)`),
    plain,
    'two wrong keys',
  );

  // Rotation: objects sealed by the old and the new key both restore when both keys are given, in any order.
  for (const keys of [[KEY_A, KEY_B], [KEY_B, KEY_A]]) {
    for (const sealed of [sealedA, sealedB]) {
      const result = await decrypt(sealed, keys);
      assert.equal(result.error, undefined, 'decrypts with the matching key of two');
      assert.ok(result.plain.equals(plain), 'same bytes back');
    }
  }
  const message = String(wrong.error);
  for (const form of [KEY_A.toString('hex'), KEY_B.toString('hex'), KEY_A.toString('base64'), KEY_B.toString('base64')]) {
    assert.ok(!message.includes(form), 'the error message never holds key material');
  }
});

test('key ids are stable, distinct and not a plain hash prefix of the key', () => {
  assert.match(keyId(KEY_A), /^[0-9a-f]{16}$/);
  assert.equal(keyId(KEY_A), keyId(Buffer.from(KEY_A)), 'same key, same id');
  assert.notEqual(keyId(KEY_A), keyId(KEY_B), 'different keys, different ids');
  assert.notEqual(keyId(KEY_A), createHash('sha256').update(KEY_A).digest('hex').slice(0, 16), 'domain-separated');
  assert.throws(() => createEncryptStream(Buffer.alloc(16), { objectKey: WHERE }), (err: unknown) => err instanceof EncryptionError && /16 bytes; AES-256-GCM needs 32/.test(err.message));
});

test('decodeEncryptionKey accepts 32 raw bytes, 64 hex digits or base64; nothing else', () => {
  // Raw keys must not be all printable (a passphrase); random bytes are, with probability ~1e-14.
  let key = randomBytes(32);
  while (key.every((b) => b >= 0x20 && b <= 0x7e)) key = randomBytes(32);
  const cases: Array<[string, Buffer, boolean]> = [
    ['raw', key, true],
    ['raw with one byte outside printable ASCII', Buffer.concat([Buffer.from('x'.repeat(31)), Buffer.from([0x80])]), true],
    ['hex with newline', Buffer.from(`${key.toString('hex')}\n`), true],
    ['upper-case hex', Buffer.from(key.toString('hex').toUpperCase()), true],
    ['base64 with newline', Buffer.from(`${key.toString('base64')}\n`), true],
    ['31 raw bytes', key.subarray(0, 31), false],
    ['33 raw bytes', Buffer.concat([key, Buffer.from([1])]), false],
    ['base64 of 16 bytes', Buffer.from(key.subarray(0, 16).toString('base64')), false],
    // 32 printable characters are a passphrase, not a key (they used to be taken as raw bytes).
    ['32 characters', Buffer.from('x'.repeat(32)), false],
    ['31 characters and a newline', Buffer.from(`${'correct horse battery staple 12'}\n`), false],
    ['hex of 16 bytes (32 hex digits)', Buffer.from(randomBytes(16).toString('hex')), false],
    ['hex of 31 bytes', Buffer.from(key.subarray(0, 31).toString('hex')), false],
  ];
  for (const [name, input, ok] of cases) {
    const decoded = decodeEncryptionKey(input);
    assert.equal(decoded !== undefined, ok, name);
    if (decoded && name !== 'raw with one byte outside printable ASCII') assert.ok(decoded.equals(key), `${name}: decodes to the key`);
  }
});

test('keyProblem explains a passphrase-looking key without showing it', () => {
  const passphrase = Buffer.from('x'.repeat(32));
  const problem = keyProblem(passphrase);
  assert.match(problem, /32 printable characters, which looks like a passphrase, not a key/);
  assert.match(problem, /xxd -p -c 32 FILE/, 'says how to keep using a key written as 32 text bytes');
  assert.ok(!problem.includes('xxxx'), 'never the content');
  assert.match(keyProblem(Buffer.from('abc')), /it holds 3 bytes/);
  // The conversion it suggests gives the same key: backups sealed with it stay readable.
  assert.ok(decodeEncryptionKey(Buffer.from(`${passphrase.toString('hex')}\n`))!.equals(passphrase));
});

/**
 * Streams a source through a crypto stream and tracks, at every step, what the crypto stream holds
 * (its writable buffer, its held partial segment and its readable buffer) while a consumer that
 * yields to the event loop between chunks drains it. Counts, no clocks: deterministic.
 */
async function peakBuffered(
  makeStream: () => { stream: Transform; held: () => number },
  source: (onChunk: () => void) => Readable,
): Promise<{ peak: number; out: number; digest: string }> {
  const { stream, held } = makeStream();
  let peak = 0;
  const sample = (): void => {
    peak = Math.max(peak, stream.writableLength + held() + stream.readableLength);
  };
  let out = 0;
  const hash = createHash('sha256');
  await pipeline(
    source(sample),
    stream,
    new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        sample();
        out += chunk.length;
        hash.update(chunk);
        setImmediate(callback);
      },
    }),
  );
  return { peak, out, digest: hash.digest('hex') };
}

function generated(total: number, chunkBytes: number, onChunk: () => void): Readable {
  let produced = 0;
  return new Readable({
    highWaterMark: chunkBytes,
    read() {
      onChunk();
      if (produced >= total) return void this.push(null);
      const length = Math.min(chunkBytes, total - produced);
      this.push(generatedBytes(produced, length, 9));
      produced += length;
    },
  });
}

test('memory: a 50 MB stream is encrypted and decrypted holding a few segments, never the stream', async () => {
  const total = 50 * 1024 * 1024;
  const seg = DEFAULT_SEGMENT_BYTES;
  const plainDigest = createHash('sha256');
  for (let at = 0; at < total; at += seg) plainDigest.update(generatedBytes(at, Math.min(seg, total - at), 9));

  const enc = await peakBuffered(
    () => {
      const stream = createEncryptStream(KEY_A, { objectKey: WHERE });
      return { stream, held: () => stream.heldBytes };
    },
    (onChunk) => generated(total, seg, onChunk),
  );
  assert.equal(enc.out, encryptedSize(total), 'all of it came out');
  // Writable buffer (<= 1 segment) + held partial segment (< 1 segment + one input chunk) + readable
  // buffer (<= 1 sealed segment): far below the stream's size whatever that is.
  assert.ok(enc.peak <= 4 * (seg + TAG), `encrypt held at most 4 segments at once, peak ${enc.peak} bytes`);

  // Decrypt the same size; the ciphertext is generated by encrypting on the fly to keep the test's own memory small.
  const dec = await peakBuffered(
    () => {
      const stream = createDecryptStream([KEY_A], WHERE);
      return { stream, held: () => stream.heldBytes };
    },
    (onChunk) => {
      const source = generated(total, seg, onChunk);
      const sealing = createEncryptStream(KEY_A, { objectKey: WHERE });
      void pipeline(source, sealing).catch(() => undefined);
      return sealing;
    },
  );
  assert.equal(dec.out, total, 'all of it came back');
  assert.equal(dec.digest, plainDigest.digest('hex'), 'same bytes back');
  assert.ok(dec.peak <= 4 * (seg + TAG), `decrypt held at most 4 segments at once, peak ${dec.peak} bytes`);
});

// Written by this format's first version (KEY_A, WHERE, 16-byte segments): objects already in stores
// must decrypt forever, so any change to the magic, header layout, key id, HKDF info, nonces or the
// associated data fails here, not in someone's restore.
const KNOWN_PLAIN = Buffer.from('known answer: 40 bytes in 3 segments..');
const KNOWN_CIPHER = Buffer.from(
  'RUJPRU5DAQEAAAAQ/aTtygZjvmAjveUxfXAVTlMtVaF16hBaq4YSz8kYq4qSNg5EgqQ0abtyumUIFUTAZYFLGkh+1788q2BOq66RBj3MrW7KQbzYCOSPrlUn16izdvUbBE7THY3+fJixUYuBzBgrUArhIdICFR+juu+uIBBdmdzFV3ybcLDhJjfe',
  'base64',
);

test('known answer: an object written by the first format version decrypts to its plaintext', async () => {
  assert.equal(KNOWN_CIPHER.subarray(0, 6).toString('latin1'), 'EBOENC');
  assert.equal(keyId(KEY_A), 'fda4edca0663be60');
  assert.equal(keyId(KEY_B), '39af7856da6d25f2');
  for (const chunkBytes of [1, 997]) {
    const result = await decrypt(KNOWN_CIPHER, [KEY_A], chunkBytes);
    assert.equal(result.error, undefined, String(result.error));
    assert.ok(result.plain.equals(KNOWN_PLAIN), `chunks of ${chunkBytes}`);
  }
});

test('a tampered header is refused with what is wrong with it', async () => {
  const patched = (at: number, bytes: number[]): Buffer => {
    const copy = Buffer.from(KNOWN_CIPHER);
    Buffer.from(bytes).copy(copy, at);
    return copy;
  };
  const segmentSize = (n: number): number[] => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  const cases: Array<[string, Buffer, RegExp]> = [
    ['magic', patched(0, [0x58]), /not an encrypted backup object \(bad magic/],
    ['version 2', patched(6, [2]), /unsupported encryption format version 2 algorithm 1 \(this version reads 1\/1\)$/],
    ['algorithm 2', patched(7, [2]), /unsupported encryption format version 1 algorithm 2 \(this version reads 1\/1\)$/],
    ['segment size 0', patched(8, segmentSize(0)), /header declares a segment size of 0 bytes, outside 1\.\.16777216 \(tampered with\?\)$/],
    ['segment size past the maximum', patched(8, segmentSize(16 * 1024 * 1024 + 1)), /segment size of 16777217 bytes, outside 1\.\.16777216/],
    // Within the limits the header is checked by segment 0's authentication.
    ['segment size 1', patched(8, segmentSize(1)), /segment 0 failed authentication/],
    ['segment size at the maximum', patched(8, segmentSize(16 * 1024 * 1024)), /failed authentication|truncated/],
  ];
  for (const [name, cipher, pattern] of cases) expectFailure(await decrypt(cipher), pattern, KNOWN_PLAIN, name);
});

test('segment sizes outside 1..16 MiB and keys that are not Buffers are refused when encrypting', () => {
  for (const segmentBytes of [0, -1, 1.5, 16 * 1024 * 1024 + 1]) {
    assert.throws(() => createEncryptStream(KEY_A, { objectKey: WHERE, segmentBytes }), {
      name: 'RangeError',
      message: `segment size must be 1..16777216 bytes, got ${segmentBytes}`,
    });
  }
  for (const segmentBytes of [1, 16 * 1024 * 1024]) createEncryptStream(KEY_A, { objectKey: WHERE, segmentBytes }).destroy();
  assert.throws(() => createEncryptStream('a'.repeat(32) as unknown as Buffer, { objectKey: WHERE }), {
    name: 'TypeError',
    message: 'encryption key must be a Buffer',
  });
  assert.throws(() => keyId(Buffer.alloc(31)), { message: 'encryption key is 31 bytes; AES-256-GCM needs 32' });
});

test('decodeEncryptionKey: hex and base64 must be the whole text; every printable byte, tab and CR count as text', () => {
  const key = Buffer.alloc(32, 0x9c);
  const cases: Array<[string, Buffer, boolean]> = [
    ['hex with a prefix', Buffer.from(`k${key.toString('hex')}`), false],
    ['hex with a suffix', Buffer.from(`${key.toString('hex')}k`), false],
    ['base64 with a prefix', Buffer.from(`k${key.toString('base64')}`), false],
    ['base64 with a suffix', Buffer.from(`${key.toString('base64')}k`), false],
    ['base64 without its padding', Buffer.from(key.toString('base64').replace(/=$/, '')), true],
    ['32 tildes (0x7e)', Buffer.alloc(32, '~'), false],
    ['31 characters and a tab', Buffer.from(`${'x'.repeat(31)}\t`), false],
    ['31 characters and a CR', Buffer.from(`${'x'.repeat(31)}\r`), false],
    ['31 characters and DEL (0x7f)', Buffer.from(`${'x'.repeat(31)}\x7f`), true],
    ['31 characters and 0x1f', Buffer.from(`${'x'.repeat(31)}\x1f`), true],
  ];
  for (const [name, input, ok] of cases) assert.equal(decodeEncryptionKey(input) !== undefined, ok, name);
});
