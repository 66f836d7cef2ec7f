/**
 * Encryption at rest: AES-256-GCM applied as a stream of framed segments, so that memory stays
 * bounded whatever the object's size and every byte handed to a consumer has been authenticated.
 *
 * Object layout (format version 1; all integers big-endian):
 *
 *   header (52 bytes)
 *     magic        6  "EBOENC"
 *     version      1  1
 *     algorithm    1  1 = AES-256-GCM, per-object key from HKDF-SHA256, 16-byte tags
 *     segmentSize  4  plaintext bytes per segment (every segment but the last is exactly this long)
 *     keyId        8  which master key sealed the object (keyId())
 *     salt        32  random per object: the per-object key is HKDF-SHA256(masterKey, salt, INFO)
 *   segments, in order: ciphertext (segmentSize bytes; the last one 0..segmentSize) + 16-byte tag
 *     nonce  = 8 zero bytes || uint32 segment index
 *     AAD    = the whole header || final flag (1 for the last segment, 0 for the others)
 *              || the object's store key (e.g. `delta/…-….jsonl.gz.enc`, relative to the store prefix)
 *
 * What this detects, and how:
 * - tampering with any byte (header, ciphertext, tag): the header is in every segment's AAD and
 *   each segment has its own tag, so the first segment touched fails authentication;
 * - reordered, duplicated or dropped segments: the index is in the nonce;
 * - segments spliced from another object: every object has its own key (random salt);
 * - an object renamed or copied over another (an old snapshot under a newer name): the name is in
 *   the AAD, so a name whose revisions disagree with the content never decrypts;
 * - truncation, at a segment boundary or inside one: the segment that ends the stream must carry the
 *   final flag, which only the true last segment does; appended bytes make the true last segment a
 *   non-final one, which fails too.
 * Nonces never repeat under a key: the per-object key is fresh (a 256-bit random salt) and the
 * index counts up within the object.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { OperatorError } from '../errors.js';

/** A backup object cannot be decrypted (no matching key, tampered, truncated); retrying cannot help. */
export class EncryptionError extends OperatorError {
  constructor(message: string, reason = 'DecryptionFailed') {
    super(reason, message, { terminal: true });
  }
}

export const KEY_BYTES = 32;
const MAGIC = Buffer.from('EBOENC', 'latin1');
const FORMAT_VERSION = 1;
const ALGORITHM_AES_256_GCM_HKDF = 1;
const SALT_BYTES = 32;
const KEY_ID_BYTES = 8;
export const HEADER_BYTES = MAGIC.length + 1 + 1 + 4 + KEY_ID_BYTES + SALT_BYTES;
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const HKDF_INFO = Buffer.from('etcd-backup-operator/encryption/v1 segment key', 'latin1');
const KEY_ID_DOMAIN = Buffer.from('etcd-backup-operator/encryption key id\0', 'latin1');
/** The index is a uint32 in the nonce: at 64 KiB that allows 256 TiB per object. */
const MAX_SEGMENTS = 2 ** 32;

/**
 * 64 KiB of plaintext per segment. The 16-byte tag costs 0.02% at this size; each stream holds
 * about two segments (one being filled, one sealed and waiting for the consumer), so ~128 KiB per
 * object in flight, small next to the memory budget and S3 parts (5 MiB and up). It matches the
 * 64 KiB chunks of fs streams and the delta encoder. Measured through this stream on the dev box:
 * 4 KiB segments 290 MiB/s, 16 KiB 770, 64 KiB 1320, 1 MiB 1960: 64 KiB is far above gzip and
 * etcd's snapshot stream, and 1 MiB would buy 1.5x speed for 16x the memory.
 */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024;
/**
 * Most bytes one encrypting stream holds: its writable buffer (a segment of plaintext), the segment
 * being filled plus one input chunk, and its readable buffer (a sealed segment and tag): at most four
 * segments (the bound test/unit/encryption.test.ts measures), 256 KiB. Writers reserve this from the
 * memory budget for every upload they encrypt (docs/encryption.md).
 */
export const ENCRYPT_STREAM_BYTES = 4 * (DEFAULT_SEGMENT_BYTES + TAG_BYTES);
/** A header may not make a decoder buffer more than this per segment (the header is only authenticated with segment 0). */
export const MAX_SEGMENT_BYTES = 16 * 1024 * 1024;

/**
 * The id objects record for the master key that sealed them: 8 bytes of a domain-separated
 * sha256 of the key, as 16 hex digits. It names the key (rotation: pick the right one of several)
 * without revealing anything usable about it.
 */
export function keyId(key: Buffer): string {
  checkKey(key);
  return createHash('sha256').update(KEY_ID_DOMAIN).update(key).digest().subarray(0, KEY_ID_BYTES).toString('hex');
}

/**
 * The one parser of key material (Secret data key `key`, --encryption-key-file, run -f's secrets
 * dir). AES-256 needs 32 bytes; accept them as 64 hex digits or as base64 text (what people paste),
 * surrounding whitespace ignored, or raw. 32 raw bytes that are all printable text are refused: that
 * is a passphrase (or a typo), not random key material; 32 random bytes are all printable with
 * probability (97/256)^32, about 1e-14. Undefined for anything else (keyProblem says why).
 */
export function decodeEncryptionKey(raw: Buffer): Buffer | undefined {
  if (raw.length === KEY_BYTES) return isAllPrintable(raw) ? undefined : Buffer.from(raw);
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) {
    const decoded = Buffer.from(text, 'base64');
    if (decoded.length === KEY_BYTES) return decoded;
  }
  return undefined;
}

/** What to tell people about a bad key file: sizes only, never content. */
export const KEY_FORMAT_HINT =
  'must hold a 32-byte AES-256-GCM key: 64 hex digits (openssl rand -hex 32), base64 (44 characters), or 32 raw bytes that are not all printable';

/** Why `raw` is not a key (for a value decodeEncryptionKey refused): never its content. */
export function keyProblem(raw: Buffer): string {
  if (raw.length === KEY_BYTES && isAllPrintable(raw)) {
    return (
      `holds 32 printable characters, which looks like a passphrase, not a key; it ${KEY_FORMAT_HINT}. ` +
      'A key kept as 32 raw text bytes (accepted before) is the same key as hex: xxd -p -c 32 FILE'
    );
  }
  return `${KEY_FORMAT_HINT} (it holds ${raw.length} bytes)`;
}

/** Printable ASCII, tab, CR and LF: what a text editor or `echo` writes. */
function isAllPrintable(bytes: Buffer): boolean {
  return bytes.every((b) => (b >= 0x20 && b <= 0x7e) || b === 0x09 || b === 0x0a || b === 0x0d);
}

function checkKey(key: Buffer): void {
  if (!(key as unknown instanceof Uint8Array)) throw new TypeError('encryption key must be a Buffer');
  if (key.length !== KEY_BYTES) {
    throw new EncryptionError(`encryption key is ${key.length} bytes; AES-256-GCM needs ${KEY_BYTES}`, 'InvalidEncryptionKey');
  }
}

function segmentKeyFor(masterKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, HKDF_INFO, KEY_BYTES));
}

function nonceFor(index: number): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES);
  nonce.writeUInt32BE(index, NONCE_BYTES - 4);
  return nonce;
}

function aadFor(header: Buffer, final: boolean, objectKey: Buffer): Buffer {
  return Buffer.concat([header, Buffer.from([final ? 1 : 0]), objectKey]);
}

/** A FIFO of buffers from which exact byte counts are taken without copying. */
class ByteQueue {
  private pieces: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pieces.push(chunk);
    this.length += chunk.length;
  }

  /** The next `n` bytes (n <= length) as pieces (views into the queued buffers). */
  take(n: number): Buffer[] {
    const out: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.pieces[0]!;
      if (head.length <= need) {
        out.push(head);
        this.pieces.shift();
        need -= head.length;
      } else {
        out.push(head.subarray(0, need));
        this.pieces[0] = head.subarray(need);
        need = 0;
      }
    }
    this.length -= n;
    return out;
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError('encryption streams carry bytes');
}

export interface EncryptOptions {
  /** The store key the object is written under (bound into every tag; decryption must name the same key). */
  objectKey: string;
  /** Plaintext bytes per segment; default DEFAULT_SEGMENT_BYTES. Tests use small ones. */
  segmentBytes?: number;
}

function checkSegmentBytes(segmentBytes: number): void {
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1 || segmentBytes > MAX_SEGMENT_BYTES) {
    throw new RangeError(`segment size must be 1..${MAX_SEGMENT_BYTES} bytes, got ${segmentBytes}`);
  }
}

/**
 * Plaintext in, encrypted object out. Holds less than one segment plus the current input chunk:
 * a full segment is sealed as soon as more input shows it is not the last one.
 */
export class EncryptStream extends Transform {
  readonly keyId: string;
  private readonly header: Buffer;
  private readonly segmentKey: Buffer;
  private readonly name: Buffer;
  private readonly segmentBytes: number;
  private readonly queue = new ByteQueue();
  private index = 0;
  private headerSent = false;

  constructor(masterKey: Buffer, options: EncryptOptions) {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    checkSegmentBytes(segmentBytes);
    checkKey(masterKey);
    super({ writableHighWaterMark: segmentBytes, readableHighWaterMark: segmentBytes + TAG_BYTES });
    this.segmentBytes = segmentBytes;
    this.keyId = keyId(masterKey);
    const salt = randomBytes(SALT_BYTES);
    const header = Buffer.alloc(HEADER_BYTES);
    let at = MAGIC.copy(header, 0);
    at = header.writeUInt8(FORMAT_VERSION, at);
    at = header.writeUInt8(ALGORITHM_AES_256_GCM_HKDF, at);
    at = header.writeUInt32BE(segmentBytes, at);
    at += Buffer.from(this.keyId, 'hex').copy(header, at);
    salt.copy(header, at);
    this.header = header;
    this.segmentKey = segmentKeyFor(masterKey, salt);
    this.name = Buffer.from(options.objectKey, 'utf8');
  }

  /** Plaintext held until it fills a segment (for memory accounting and tests). */
  get heldBytes(): number {
    return this.queue.length;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.queue.push(toBuffer(chunk));
      // Strictly more than a segment: the last full segment waits until we know whether it is final.
      while (this.queue.length > this.segmentBytes) this.seal(this.queue.take(this.segmentBytes), false);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.seal(this.queue.take(this.queue.length), true);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header);
  }

  private seal(pieces: Buffer[], final: boolean): void {
    if (this.index >= MAX_SEGMENTS) throw new EncryptionError('object too large to encrypt: segment index overflow', 'EncryptionFailed');
    const cipher = createCipheriv('aes-256-gcm', this.segmentKey, nonceFor(this.index), { authTagLength: TAG_BYTES });
    cipher.setAAD(aadFor(this.header, final, this.name));
    const out = pieces.map((piece) => cipher.update(piece));
    out.push(cipher.final(), cipher.getAuthTag());
    this.index += 1;
    this.push(Buffer.concat(out));
  }
}

export interface DecryptOptions {
  /** Largest segment size a header may declare; default MAX_SEGMENT_BYTES. */
  maxSegmentBytes?: number;
}

/**
 * Encrypted object in, plaintext out; only authenticated segments are released. Errors are
 * EncryptionError naming `objectKey` (the store key, for messages).
 */
export class DecryptStream extends Transform {
  /** The key id the object's header records (set once the header is read). */
  objectKeyId: string | undefined;
  private readonly keys: Array<{ id: string; key: Buffer }>;
  private readonly queue = new ByteQueue();
  private readonly maxSegmentBytes: number;
  private readonly name: Buffer;
  private header: Buffer | undefined;
  private segmentKey: Buffer | undefined;
  private segmentBytes = 0;
  private index = 0;

  constructor(
    keys: readonly Buffer[],
    private readonly where: string,
    options: DecryptOptions = {},
  ) {
    super();
    this.keys = keys.map((key) => ({ id: keyId(key), key }));
    this.maxSegmentBytes = options.maxSegmentBytes ?? MAX_SEGMENT_BYTES;
    this.name = Buffer.from(where, 'utf8');
  }

  /** Ciphertext held until it completes a segment (for memory accounting and tests). */
  get heldBytes(): number {
    return this.queue.length;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.queue.push(toBuffer(chunk));
      if (!this.header) {
        if (this.queue.length < HEADER_BYTES) return callback();
        this.readHeader(Buffer.concat(this.queue.take(HEADER_BYTES)));
      }
      const frame = this.segmentBytes + TAG_BYTES;
      // Strictly more than a frame: the stream's last frame must be opened as the final one.
      while (this.queue.length > frame) this.push(this.open(this.queue.take(frame), false));
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (!this.header) {
        throw this.fail(
          this.queue.length === 0
            ? 'empty object (truncated)'
            : `truncated: ${this.queue.length} bytes, shorter than the ${HEADER_BYTES}-byte header`,
        );
      }
      const rest = this.queue.take(this.queue.length);
      const restBytes = rest.reduce((sum, piece) => sum + piece.length, 0);
      if (restBytes < TAG_BYTES) {
        throw this.fail(
          this.index === 0 && restBytes === 0
            ? 'truncated: nothing follows the header'
            : `truncated: segment ${this.index} is incomplete`,
        );
      }
      const last = this.index;
      const plain = this.tryOpen(rest, true);
      if (plain) {
        this.push(plain);
        return callback();
      }
      // Authentic as a non-final segment: the stream was cut right after it.
      if (this.tryOpen(rest, false)) throw this.fail(`truncated after segment ${last} (the final segment is missing)`);
      throw this.fail(`segment ${last} failed authentication (tampered with, truncated inside it, or stored under another name)`);
    } catch (err) {
      callback(err as Error);
    }
  }

  private fail(why: string): EncryptionError {
    return new EncryptionError(`cannot decrypt ${this.where}: ${why}`);
  }

  private readHeader(header: Buffer): void {
    if (!header.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw this.fail('not an encrypted backup object (bad magic; tampered with, or not written by etcd-backup)');
    }
    let at = MAGIC.length;
    const version = header.readUInt8(at++);
    const algorithm = header.readUInt8(at++);
    if (version !== FORMAT_VERSION || algorithm !== ALGORITHM_AES_256_GCM_HKDF) {
      throw this.fail(`unsupported encryption format version ${version} algorithm ${algorithm} (this version reads ${FORMAT_VERSION}/${ALGORITHM_AES_256_GCM_HKDF})`);
    }
    const segmentBytes = header.readUInt32BE(at);
    at += 4;
    if (segmentBytes < 1 || segmentBytes > this.maxSegmentBytes) {
      throw this.fail(`header declares a segment size of ${segmentBytes} bytes, outside 1..${this.maxSegmentBytes} (tampered with?)`);
    }
    const id = header.subarray(at, at + KEY_ID_BYTES).toString('hex');
    at += KEY_ID_BYTES;
    this.objectKeyId = id;
    const match = this.keys.find((k) => k.id === id);
    if (!match) {
      const ids = this.keys.map((k) => k.id);
      const given =
        ids.length === 0
          ? 'no key was given'
          : ids.length === 1
            ? `the given key (key id ${ids[0]}) does not match`
            : `none of the ${ids.length} given keys match (key ids ${ids.join(', ')})`;
      throw new EncryptionError(`cannot decrypt ${this.where}: encrypted with key id ${id}; ${given}`, 'EncryptionKeyMismatch');
    }
    this.segmentBytes = segmentBytes;
    this.header = header;
    this.segmentKey = segmentKeyFor(match.key, header.subarray(at, at + SALT_BYTES));
  }

  private open(pieces: Buffer[], final: boolean): Buffer {
    const plain = this.tryOpen(pieces, final);
    if (!plain) throw this.fail(`segment ${this.index} failed authentication (tampered with, reordered, or stored under another name)`);
    return plain;
  }

  /** The segment's plaintext, or undefined when it does not authenticate; advances the index on success. */
  private tryOpen(pieces: Buffer[], final: boolean): Buffer | undefined {
    const frame = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const cipherText = frame.subarray(0, frame.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.segmentKey!, nonceFor(this.index), { authTagLength: TAG_BYTES });
    decipher.setAAD(aadFor(this.header!, final, this.name));
    decipher.setAuthTag(frame.subarray(frame.length - TAG_BYTES));
    try {
      const plain = Buffer.concat([decipher.update(cipherText), decipher.final()]);
      this.index += 1;
      return plain;
    } catch {
      return undefined;
    }
  }
}

/** A stream that encrypts with `key` (a 32-byte master key) an object to be stored as `options.objectKey`. */
export function createEncryptStream(key: Buffer, options: EncryptOptions): EncryptStream {
  return new EncryptStream(key, options);
}

/**
 * A stream that decrypts the object stored as `objectKey` (it must be the name it was encrypted
 * under; errors name it too), sealed by any of `keys` (rotation: old and new keys).
 */
export function createDecryptStream(keys: readonly Buffer[], objectKey: string, options?: DecryptOptions): DecryptStream {
  return new DecryptStream(keys, objectKey, options);
}

/** `source` encrypted; a failure of either side fails the returned stream. */
export function encryptReadable(source: Readable, key: Buffer, options: EncryptOptions): EncryptStream {
  const encrypt = createEncryptStream(key, options);
  pipeline(source, encrypt).catch(() => undefined); // errors reach the consumer through `encrypt`
  return encrypt;
}

/** `source` decrypted; a failure of either side fails the returned stream. */
export function decryptReadable(source: Readable, keys: readonly Buffer[], objectKey: string, options?: DecryptOptions): DecryptStream {
  const decrypt = createDecryptStream(keys, objectKey, options);
  pipeline(source, decrypt).catch(() => undefined); // errors reach the consumer through `decrypt`
  return decrypt;
}

/** Bytes of the encrypted object for `plainBytes` of content. */
export function encryptedSize(plainBytes: number, segmentBytes = DEFAULT_SEGMENT_BYTES): number {
  const segments = Math.max(1, Math.ceil(plainBytes / segmentBytes));
  return HEADER_BYTES + plainBytes + segments * TAG_BYTES;
}
