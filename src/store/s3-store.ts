import { createHash, randomBytes } from 'node:crypto';
import { addAbortSignal, Readable, type Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { MemoryBudget, Reservation } from '../budget/memory-budget.js';
import { parseBackupKey } from '../archive/naming.js';
import { ObjectLockedError, ObjectNotFoundError, OperatorError, StoreUnreachableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { sha256Hex, verifyingStream } from './checksum.js';
import type { S3StoreConfig } from './store-config.js';
import {
  defaultRetentionMs,
  isLocked,
  retainUntil,
  type ObjectLockSettings,
  type ObjectRetention,
} from './object-lock.js';
import {
  formatBytes,
  MIN_PART_SIZE_BYTES,
  planUpload,
  streamReservationBytes,
  type UploadPlan,
} from '../budget/s3-upload-plan.js';
import {
  SHA256_METADATA_KEY,
  type GetResult,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
} from './object-store.js';

const MiB = 1024 * 1024;
/** S3 refuses CopyObject above 5 GiB; larger objects are copied part by part. */
const MAX_COPY_OBJECT_BYTES = 5 * 1024 * MiB;
const COPY_PART_SIZE_BYTES = 512 * MiB;
const COPY_PARALLELISM = 4;
/** Standard retry mode: exponential backoff with jitter for throttling, 5xx, timeouts and resets. */
const DEFAULT_MAX_ATTEMPTS = 6;
const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;
/** Socket inactivity, not total duration: a 512 MiB part may take long but never goes silent this long. */
const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
const MAX_LIST_PAGE_SIZE = 1000;
/** Multipart uploads go to unique keys under here first; list() never shows them. */
export const INCOMPLETE_DIR = '.incomplete/';
/** Random bytes in a temporary key's name (hex): the staging names this store writes and sweeps. */
const TEMP_NAME_BYTES = 12;
const TEMP_NAME_RE = new RegExp(`^${INCOMPLETE_DIR.replace('.', '\\.')}[0-9a-f]{${TEMP_NAME_BYTES * 2}}$`);
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * Retention of temporary objects in a bucket with a default retention (which S3 and MinIO apply to
 * every new object version and which cannot be turned off per object): the shortest explicit
 * GOVERNANCE lock that survives a client clock somewhat behind the server's. The temporary object
 * is deleted right after the copy with s3:BypassGovernanceRetention, or after the lock has run out.
 */
const TEMP_RETAIN_FOR_MS = 5 * 60 * 1000;

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' for the bucket root). */
  prefix: string;
  /** Streamed puts reserve their part buffers here (the accountant the delta fetches use too). */
  budget?: MemoryBudget;
  /** Upper bound on the part size; default 8 MiB, shrunk to fit the budget. */
  partSizeBytes?: number;
  /** Upper bound on parts in flight per put; default 4, reduced to fit the budget. */
  queueSize?: number;
  logger?: Logger;
  /** For messages only: the custom endpoint (undefined means AWS) and region. */
  endpoint?: string;
  region?: string;
  /** ListObjectsV2 MaxKeys, 1..1000; default 1000. */
  listPageSize?: number;
  /** Objects above this are moved into place with UploadPartCopy; default (and S3's limit) 5 GiB. */
  maxCopyObjectBytes?: number;
  /** Range size of each UploadPartCopy; default 512 MiB. */
  copyPartSizeBytes?: number;
  /** Object Lock retention written on every backup object. */
  objectLock?: ObjectLockSettings;
  /** The clock retain-until dates are computed from (tests). */
  now?: () => Date;
}

/** What fromConfig needs besides the config: the budget and knobs tests turn. */
export interface S3StoreDependencies
  extends Pick<
    S3StoreOptions,
    'budget' | 'logger' | 'partSizeBytes' | 'queueSize' | 'listPageSize' | 'maxCopyObjectBytes' | 'copyPartSizeBytes'
  > {
  /** SDK attempts per request (first try included); default 6. */
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  /** Socket inactivity timeout per request. */
  requestTimeoutMs?: number;
}

type PendingCleanup =
  /** A temporary key: delete the object and, if the upload may not have completed, abort its uploads. */
  | {
      kind: 'temp';
      key: string;
      abortUploads: boolean;
      /** Versioned bucket (Object Lock): delete this version, or nothing when the object was never completed. */
      versioned?: boolean;
      versionId?: string;
      bypassGovernance?: boolean;
    }
  | { kind: 'upload'; key: string; uploadId: string };

/**
 * An S3 bucket (AWS or S3-compatible) as an object store.
 *
 * Why multipart uploads go to a temporary key: the sha256 must travel as object metadata, S3 fixes
 * metadata when an upload starts, and a streamed body's sha256 is known only at its end. So a stream
 * larger than one part is uploaded (multipart, through lib-storage) to a unique key under
 * `<prefix>/.incomplete/`, then copied server-side onto its real key with the sha256 as REPLACE
 * metadata, and the temporary object is deleted. The real key appears once, complete and with its
 * sha256 (CopyObject is atomic; a replaced key switches at once). Rejected alternatives:
 * copy-to-self with REPLACE leaves a window (forever, after a crash) where the final object has no
 * sha256; a `<key>.sha256` sidecar needs two requests per get and is not atomic with the object.
 * The cost is one server-side copy (no client bandwidth); above 5 GiB, CopyObject's limit, the copy
 * is done with UploadPartCopy. Bodies of at most one part (deltas, Buffers) are hashed first and sent
 * with a single PutObject: no copy.
 *
 * Failures: lib-storage aborts a failed multipart upload; if S3 is unreachable even for that, the
 * temporary key is remembered and its uploads are aborted (and object deleted) after the next
 * successful put. cleanupIncomplete() sweeps what a crashed process left (a bucket lifecycle rule
 * for `.incomplete/` and AbortIncompleteMultipartUpload is a good second net).
 */
export class S3Store implements ObjectStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly plan: UploadPlan;
  private readonly root: string;
  private readonly budget: MemoryBudget | undefined;
  private readonly logger: Logger | undefined;
  private readonly endpointText: string;
  private readonly listPageSize: number;
  private readonly maxCopyObjectBytes: number;
  private readonly copyPartSizeBytes: number;
  private readonly pending = new Map<string, PendingCleanup>();
  private readonly objectLock: ObjectLockSettings | undefined;
  private readonly now: () => Date;
  private bucketLock: Promise<BucketLock> | undefined;
  private ownsClient = false;

  constructor(
    private readonly client: S3Client,
    options: S3StoreOptions,
  ) {
    if (!options.bucket) throw new RangeError('S3 store needs a bucket');
    this.bucket = options.bucket;
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.root = this.prefix === '' ? '' : `${this.prefix}/`;
    this.budget = options.budget;
    this.logger = options.logger;
    this.plan = planUpload(options.budget?.limitBytes, options);
    this.endpointText = options.endpoint ?? `AWS S3 (region ${options.region ?? 'default'})`;
    this.listPageSize = options.listPageSize ?? MAX_LIST_PAGE_SIZE;
    if (!Number.isSafeInteger(this.listPageSize) || this.listPageSize < 1 || this.listPageSize > MAX_LIST_PAGE_SIZE) {
      throw new RangeError(`S3 list page size must be 1..${MAX_LIST_PAGE_SIZE}, got ${this.listPageSize}`);
    }
    this.maxCopyObjectBytes = options.maxCopyObjectBytes ?? MAX_COPY_OBJECT_BYTES;
    this.copyPartSizeBytes = options.copyPartSizeBytes ?? COPY_PART_SIZE_BYTES;
    this.objectLock = options.objectLock;
    this.now = options.now ?? (() => new Date());
    if (this.copyPartSizeBytes < MIN_PART_SIZE_BYTES) {
      throw new RangeError(`S3 copy part size must be at least ${formatBytes(MIN_PART_SIZE_BYTES)}`);
    }
  }

  /**
   * Builds the SDK client from a store config: checksums only when an operation requires them
   * (the SDK's default aws-chunked framing is stored verbatim by some S3-compatible servers, s3rver
   * among them, and our sha256 covers integrity end to end), standard retries with backoff, timeouts,
   * and the default credential chain when the config has no credentials.
   */
  static fromConfig(config: S3StoreConfig, deps: S3StoreDependencies = {}): S3Store {
    const client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      credentials: config.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      retryMode: 'standard',
      maxAttempts: deps.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      requestHandler: {
        connectionTimeout: deps.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
        requestTimeout: deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      },
    });
    const store = new S3Store(client, {
      ...deps,
      bucket: config.bucket,
      prefix: config.prefix,
      endpoint: config.endpoint,
      region: config.region,
      objectLock: config.objectLock,
    });
    store.ownsClient = true;
    return store;
  }

  /**
   * Bytes one streamed put reserves before it reads its first byte: one part plus lib-storage's two
   * assembly buffers. A body longer than one part then reserves one more part at a time (up to
   * plan.workingSetBytes), each freed by a part already in flight. Callers that keep budget room
   * free for their uploads (the delta poller's storeBufferBytes) keep this much per upload.
   * Buffer bodies reserve nothing: their owner has accounted for them.
   */
  get singleRequestMaxBytes(): number {
    return this.plan.partSizeBytes;
  }

  get streamReservationBytes(): number {
    return streamReservationBytes(this.plan.partSizeBytes);
  }

  describe(): string {
    return `s3://${this.bucket}/${this.prefix} (${this.location()})`;
  }

  /** Closes the SDK client's sockets if this store created it (fromConfig). */
  close(): void {
    if (this.ownsClient) this.client.destroy();
  }

  private location(): string {
    return this.endpointText.startsWith('AWS') ? this.endpointText : `endpoint ${this.endpointText}`;
  }

  private objectKey(key: string): string {
    if (key === '' || key.startsWith('/') || key.startsWith(INCOMPLETE_DIR)) {
      throw new RangeError(`invalid object key ${JSON.stringify(key)}`);
    }
    return this.root + key;
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<PutResult> {
    const objectKey = this.objectKey(key);
    try {
      options.signal?.throwIfAborted();
      const result = Buffer.isBuffer(body)
        ? await this.putBuffer(objectKey, body, options)
        : await this.putStream(objectKey, body, options);
      await this.runPendingCleanups();
      return result;
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      throw this.mapError(err, `cannot put ${key}`);
    }
  }

  /** A Buffer is already in memory (and accounted by its owner): nothing to reserve, sha256 known up front. */
  private async putBuffer(objectKey: string, body: Buffer, options: PutOptions): Promise<PutResult> {
    const sha256 = sha256Hex(body);
    const metadata = { ...options.metadata, [SHA256_METADATA_KEY]: sha256 };
    if (body.length <= this.plan.partSizeBytes) {
      const retention = await this.putSingle(objectKey, body, metadata, options.signal);
      return { size: body.length, sha256, ...retention };
    }
    return this.putViaTemporary(objectKey, body, body.length, metadata, options.signal);
  }

  private async putSingle(
    objectKey: string,
    body: Buffer,
    metadata: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<{ retention?: ObjectRetention }> {
    const lock = await this.lockState();
    const written = this.writeRetention(lock);
    // A Buffer body (not a stream) lets the SDK resend it on a retry. S3 wants a Content-MD5 (or
    // checksum) on every write that carries a retention, the bucket's default included.
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: objectKey,
        Body: body,
        ContentLength: body.length,
        Metadata: metadata,
        ...(lock.enabled ? { ContentMD5: createHash('md5').update(body).digest('base64') } : {}),
        ...this.lockHeaders(),
      }),
      { abortSignal: signal },
    );
    return written ? { retention: written } : {};
  }

  /**
   * Whether the bucket has Object Lock and a default retention, asked once
   * (GetObjectLockConfiguration). A bucket that cannot tell (no permission, a server without the
   * call) counts as unlocked unless the config asks for a lock; network failures are not cached.
   */
  private lockState(): Promise<BucketLock> {
    this.bucketLock ??= this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket })).then(
      (out): BucketLock => {
        const config = out.ObjectLockConfiguration;
        const rule = config?.Rule?.DefaultRetention;
        const defaultMs = defaultRetentionMs(rule);
        return {
          enabled: config?.ObjectLockEnabled === 'Enabled',
          ...(defaultMs !== undefined ? { defaultRetention: { mode: rule?.Mode, ms: defaultMs } } : {}),
        };
      },
      (err: unknown): BucketLock => {
        const mapped = this.mapError(err, 'cannot read the Object Lock configuration');
        const e = sdkError(err);
        const status = e.$metadata?.httpStatusCode;
        // 501: a server without Object Lock (s3rver, some S3-compatible stores) has none.
        if (status === undefined || (status >= 500 && status !== 501)) {
          this.bucketLock = undefined;
          throw mapped;
        }
        if (e.name !== 'ObjectLockConfigurationNotFoundError' && status !== 404 && status !== 501) {
          this.logger?.warn('Could not read the bucket Object Lock configuration; assuming none', {
            store: this.describe(),
            error: mapped.message,
          });
        }
        return { enabled: false };
      },
    );
    return this.bucketLock.then((lock) => {
      if (this.objectLock && !lock.enabled) {
        throw new OperatorError(
          'ObjectLockNotEnabled',
          `S3 Object Lock is configured but bucket "${this.bucket}" at ${this.endpointText} does not have Object Lock ` +
            'enabled (or its configuration cannot be read: s3:GetBucketObjectLockConfiguration); create the bucket with ' +
            'Object Lock or remove the objectLock setting',
          { terminal: true },
        );
      }
      return lock;
    });
  }

  /** The retention a backup object gets when written now: the configured one, else the bucket default. */
  private writeRetention(lock: BucketLock): ObjectRetention | undefined {
    const now = this.now();
    if (this.objectLock) return { mode: this.objectLock.mode, retainUntil: retainUntil(this.objectLock, now) };
    if (lock.defaultRetention) {
      return { mode: lock.defaultRetention.mode, retainUntil: new Date(now.getTime() + lock.defaultRetention.ms) };
    }
    return undefined;
  }

  /** Explicit retention headers for a backup object (none: the bucket default, if any, applies). */
  private lockHeaders(): { ObjectLockMode?: ObjectLockSettings['mode']; ObjectLockRetainUntilDate?: Date } {
    if (!this.objectLock) return {};
    return { ObjectLockMode: this.objectLock.mode, ObjectLockRetainUntilDate: retainUntil(this.objectLock, this.now()) };
  }

  private async putStream(objectKey: string, source: Readable, options: PutOptions): Promise<PutResult> {
    const { signal } = options;
    if (signal) addAbortSignal(signal, source); // a stalled source must not outlive an abort
    const { partSizeBytes: part } = this.plan;
    // Part 1 plus lib-storage's assembly copies, reserved before the first byte is read.
    const base = await this.budget?.reserve(this.streamReservationBytes, signal);
    try {
      const iterator = source[Symbol.asyncIterator]() as AsyncIterator<unknown>;
      const hash = createHash('sha256');
      // Read one part and one byte: a body that ends before that goes out in a single PutObject,
      // with its sha256 known; a longer one needs a multipart upload.
      const head: Buffer[] = [];
      let headBytes = 0;
      let ended = false;
      while (headBytes <= part) {
        const next = await iterator.next();
        if (next.done) {
          ended = true;
          break;
        }
        const chunk = toBuffer(next.value);
        hash.update(chunk);
        head.push(chunk);
        headBytes += chunk.length;
      }
      if (ended) {
        const body = head.length === 1 ? head[0]! : Buffer.concat(head, headBytes);
        const sha256 = hash.digest('hex');
        const retention = await this.putSingle(objectKey, body, { ...options.metadata, [SHA256_METADATA_KEY]: sha256 }, signal);
        return { size: headBytes, sha256, ...retention };
      }
      const feeder = new PartFeeder(head, iterator, hash, part, this.budget, base, signal);
      return await this.putViaTemporary(objectKey, feeder, undefined, options.metadata ?? {}, signal);
    } finally {
      base?.release();
    }
  }

  /**
   * Multipart upload to a unique temporary key, then a server-side copy onto the real key with the
   * sha256 as metadata (see the class comment for why).
   */
  private async putViaTemporary(
    objectKey: string,
    body: Buffer | PartFeeder,
    knownSize: number | undefined,
    metadata: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<PutResult> {
    const tempKey = `${this.root}${INCOMPLETE_DIR}${randomBytes(TEMP_NAME_BYTES).toString('hex')}`;
    const lock = await this.lockState();
    // A default retention would lock the temporary object for as long as a backup: give it the
    // shortest explicit lock instead (see TEMP_RETAIN_FOR_MS) and checksum its parts, which S3
    // requires of writes under a retention.
    const tempLock = lock.defaultRetention
      ? { ObjectLockMode: 'GOVERNANCE' as const, ObjectLockRetainUntilDate: new Date(this.now().getTime() + TEMP_RETAIN_FOR_MS) }
      : {};
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: tempKey,
        Body: body instanceof PartFeeder ? body.readable() : body,
        ...(lock.enabled ? { ChecksumAlgorithm: 'SHA256' as const } : {}),
        ...tempLock,
      },
      partSize: this.plan.partSizeBytes,
      queueSize: this.plan.queueSize,
      leavePartsOnError: false,
    });
    if (body instanceof PartFeeder) upload.on('httpUploadProgress', (progress) => body.partSent(progress.part));
    let size: number;
    let sha256: string;
    let versionId: string | undefined;
    const temp = { kind: 'temp' as const, key: tempKey, versioned: lock.enabled, bypassGovernance: lock.defaultRetention !== undefined };
    try {
      ({ VersionId: versionId } = await upload.done());
      if (body instanceof PartFeeder) {
        ({ size, sha256 } = body.result());
        metadata = { ...metadata, [SHA256_METADATA_KEY]: sha256 };
      } else {
        size = knownSize ?? body.length;
        sha256 = metadata[SHA256_METADATA_KEY] ?? '';
      }
      signal?.throwIfAborted();
      await this.copyIntoPlace(tempKey, objectKey, size, metadata, signal);
    } catch (err) {
      if (body instanceof PartFeeder) body.releaseAll();
      await this.cleanup({ ...temp, abortUploads: true, versionId });
      throw err;
    }
    await this.cleanup({ ...temp, abortUploads: false, versionId });
    const retention = this.writeRetention(lock);
    return { size, sha256, ...(retention ? { retention } : {}) };
  }

  private async copyIntoPlace(
    tempKey: string,
    objectKey: string,
    size: number,
    metadata: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const copySource = `${this.bucket}/${tempKey.split('/').map(encodeURIComponent).join('/')}`;
    if (size <= this.maxCopyObjectBytes) {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          CopySource: copySource,
          MetadataDirective: 'REPLACE',
          Metadata: metadata,
          ...this.lockHeaders(),
        }),
        { abortSignal: signal },
      );
      return;
    }
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, Metadata: metadata, ...this.lockHeaders() }),
      { abortSignal: signal },
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    try {
      const ranges: Array<{ partNumber: number; start: number; end: number }> = [];
      for (let start = 0, n = 1; start < size; start += this.copyPartSizeBytes, n++) {
        ranges.push({ partNumber: n, start, end: Math.min(size, start + this.copyPartSizeBytes) - 1 });
      }
      const parts: CompletedPart[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < ranges.length) {
          const range = ranges[next++]!;
          const out = await this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: objectKey,
              UploadId: uploadId,
              PartNumber: range.partNumber,
              CopySource: copySource,
              CopySourceRange: `bytes=${range.start}-${range.end}`,
            }),
            { abortSignal: signal },
          );
          parts.push({ PartNumber: range.partNumber, ETag: out.CopyPartResult?.ETag });
        }
      };
      await Promise.all(Array.from({ length: Math.min(COPY_PARALLELISM, ranges.length) }, worker));
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      await this.cleanup({ kind: 'upload', key: objectKey, uploadId });
      throw err;
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<GetResult> {
    const objectKey = this.objectKey(key);
    let out;
    try {
      out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }), {
        abortSignal: options.signal,
      });
    } catch (err) {
      throw this.mapError(err, `cannot get ${key}`, key);
    }
    const body = out.Body;
    if (!(body instanceof Readable)) throw new StoreUnreachableError(`cannot get ${key}: S3 returned no body stream`);
    const metadata = out.Metadata ?? {};
    let verify: Transform;
    try {
      // Refuses an object without a recorded sha256 (written by someone else): never read it unchecked.
      verify = verifyingStream(key, metadata[SHA256_METADATA_KEY], this.describe());
    } catch (err) {
      body.destroy();
      throw err;
    }
    body.on('error', (err) => verify.destroy(this.mapError(err, `cannot read ${key}`)));
    // A consumer that stops early must free the connection.
    verify.on('close', () => body.destroy());
    return { body: body.pipe(verify), size: out.ContentLength ?? 0, metadata };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const result: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.root + prefix,
            ContinuationToken: token,
            MaxKeys: this.listPageSize,
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          const key = object.Key.slice(this.root.length);
          if (key.startsWith(INCOMPLETE_DIR)) continue;
          result.push({ key, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.mapError(err, `cannot list ${prefix || '(all)'}`);
    }
    return result.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * In a bucket with Object Lock (always versioned), a plain DeleteObject would only hide the object
   * behind a delete marker and keep its bytes. So the current version is looked up first: one still
   * under retention is not touched (ObjectLockedError says until when); otherwise that version is
   * deleted for good.
   */
  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      if ((await this.lockState()).enabled) {
        const retention = await this.retentionOfKey(objectKey);
        if (retention === undefined) return; // already gone
        if (isLocked(retention, this.now())) {
          throw new ObjectLockedError(key, retention.retainUntil, retention.mode, this.describe());
        }
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey, VersionId: retention.versionId }));
        return;
      }
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (err) {
      const mapped = this.mapError(err, `cannot delete ${key}`, key);
      if (mapped instanceof ObjectNotFoundError) return;
      throw mapped;
    }
  }

  /** The Object Lock retention of `key` (undefined when the object carries none or does not exist). */
  async retentionOf(key: string): Promise<ObjectRetention | undefined> {
    try {
      const found = await this.retentionOfKey(this.objectKey(key));
      return found?.retainUntil.getTime() ? { mode: found.mode, retainUntil: found.retainUntil } : undefined;
    } catch (err) {
      throw this.mapError(err, `cannot read the retention of ${key}`);
    }
  }

  /** HeadObject: the current version and its retention (epoch 0 when none); undefined when missing. */
  private async retentionOfKey(objectKey: string): Promise<(ObjectRetention & { versionId?: string }) | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return {
        mode: head.ObjectLockMode,
        retainUntil: head.ObjectLockRetainUntilDate ?? new Date(0),
        ...(head.VersionId ? { versionId: head.VersionId } : {}),
      };
    } catch (err) {
      const e = sdkError(err);
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * Aborts multipart uploads and deletes temporary objects under this store's prefix that are older
   * than `olderThanMs` (default one day: no snapshot upload runs that long), plus whatever this
   * process failed to clean up before. For a process that starts after a crash. Servers without
   * ListMultipartUploads (some S3-compatible ones) only get the temporary objects swept.
   */
  async cleanupIncomplete(olderThanMs = DAY_MS): Promise<{ abortedUploads: number; deletedObjects: number }> {
    const cutoff = Date.now() - olderThanMs;
    let abortedUploads = 0;
    let deletedObjects = 0;
    await this.runPendingCleanups();
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        // Bucket-wide, filtered here: MinIO answers a Prefix only when it is an exact object name
        // (minio/minio#11686, #20989) and would hide every upload under the store's prefix.
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) > cutoff) continue;
          // The prefix may be shared (by default it is the whole bucket): never abort another writer's upload.
          if (!this.isOwnUploadKey(upload.Key)) continue;
          await this.client.send(
            new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }),
          );
          abortedUploads++;
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      const mapped = this.mapError(err, 'cannot list multipart uploads');
      this.logger?.warn('Skipped aborting stale multipart uploads', { store: this.describe(), error: mapped.message });
    }
    if ((await this.lockState()).enabled) {
      // Versioned: a temporary object is gone only when each of its versions is (their short
      // locks ran out long before the cutoff).
      for (const version of await this.listVersions(this.root + INCOMPLETE_DIR)) {
        if (version.lastModified.getTime() > cutoff || !this.isOwnUploadKey(version.key)) continue;
        await this.client.send(
          new DeleteObjectCommand({ Bucket: this.bucket, Key: version.key, VersionId: version.versionId }),
        );
        deletedObjects++;
      }
      return { abortedUploads, deletedObjects };
    }
    const temps = await this.listRaw(this.root + INCOMPLETE_DIR);
    for (const temp of temps) {
      if (temp.lastModified.getTime() > cutoff || !this.isOwnUploadKey(temp.key)) continue;
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: temp.key }));
      deletedObjects++;
    }
    return { abortedUploads, deletedObjects };
  }

  /**
   * A key this store uploads to in parts: a temporary key it names (`.incomplete/<24 hex>`), or a
   * backup object's key (the UploadPartCopy of an object above the CopyObject limit), under its root.
   */
  private isOwnUploadKey(key: string): boolean {
    if (!key.startsWith(this.root)) return false;
    const name = key.slice(this.root.length);
    return TEMP_NAME_RE.test(name) || parseBackupKey(name) !== undefined;
  }

  private async listRaw(prefix: string): Promise<ObjectInfo[]> {
    const result: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key) result.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return result;
  }

  /** Every version and delete marker under `prefix` (a versioned bucket). */
  private async listVersions(prefix: string): Promise<Array<{ key: string; versionId: string | undefined; lastModified: Date }>> {
    const result: Array<{ key: string; versionId: string | undefined; lastModified: Date }> = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
      );
      for (const v of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (v.Key) result.push({ key: v.Key, versionId: v.VersionId, lastModified: v.LastModified ?? new Date(0) });
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionIdMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    return result;
  }

  /** Best effort: on failure the work is remembered and retried after the next successful put. */
  private async cleanup(item: PendingCleanup): Promise<void> {
    const id = item.kind === 'temp' ? item.key : `${item.key}#${item.uploadId}`;
    try {
      if (item.kind === 'upload') {
        await this.abortUpload(item.key, item.uploadId);
      } else if (item.abortUploads) {
        // The exact key is unique to one put, so every upload listed for it is ours (an exact key
        // is also the one Prefix MinIO answers).
        const listed = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: item.key }),
        );
        for (const upload of listed.Uploads ?? []) {
          if (upload.Key === item.key && upload.UploadId) await this.abortUpload(item.key, upload.UploadId);
        }
      }
      // Without a version id a versioned bucket would only gain a delete marker for an object that
      // was never completed.
      if (item.kind === 'temp' && (!item.versioned || item.versionId)) {
        await this.client.send(
          new DeleteObjectCommand({
            Bucket: this.bucket,
            Key: item.key,
            // The version, else a versioned bucket keeps the bytes behind a delete marker.
            ...(item.versionId ? { VersionId: item.versionId } : {}),
            ...(item.bypassGovernance ? { BypassGovernanceRetention: true } : {}),
          }),
        );
      }
      this.pending.delete(id);
    } catch (err) {
      this.pending.set(id, item);
      this.logger?.warn('Failed to clean up an incomplete S3 upload; will retry', {
        store: this.describe(),
        object: item.key, // not "key": the logger redacts fields named like secrets
        error: this.mapError(err, 'cleanup').message,
      });
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      if (sdkError(err).name !== 'NoSuchUpload') throw err; // already gone is what we want
    }
  }

  private async runPendingCleanups(): Promise<void> {
    for (const item of [...this.pending.values()]) await this.cleanup(item);
  }

  /** Multipart-upload work still owed after failures (for tests and status). */
  get pendingCleanups(): number {
    return this.pending.size;
  }

  /**
   * Maps SDK and network errors to operator errors at the boundary, by error name, Node error code
   * and HTTP status, never by message. Messages are one line, name bucket and endpoint, and never
   * contain credentials.
   */
  private mapError(err: unknown, what: string, key?: string): Error {
    if (err instanceof OperatorError || err instanceof RangeError) return err;
    const e = sdkError(err);
    if (e.name === 'AbortError') return err instanceof Error ? err : new Error('aborted');
    const status = e.$metadata?.httpStatusCode;
    const attempts = e.$metadata?.attempts;
    const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
    const bucket = `bucket "${this.bucket}"`;
    const at = this.endpointText;
    if (key !== undefined && (e.name === 'NoSuchKey' || e.name === 'NotFound')) {
      return new ObjectNotFoundError(key, this.describe());
    }
    if (e.name === 'NoSuchBucket') {
      return new StoreUnreachableError(`${what}: ${bucket} does not exist at ${at}`, err);
    }
    if (e.name === 'CredentialsProviderError') {
      return new StoreUnreachableError(
        `${what}: no S3 credentials for ${bucket} at ${at}: set them in the store config or the AWS environment`,
        err,
      );
    }
    if (AUTH_ERRORS.has(e.name ?? '') || status === 401 || status === 403) {
      return new StoreUnreachableError(
        `${what}: access to ${bucket} at ${at} was denied (${e.name ?? `HTTP ${status}`}); check the S3 credentials`,
        err,
      );
    }
    const code = e.code ?? e.errors?.find((inner) => inner.code)?.code;
    if ((code && NETWORK_CODES.has(code)) || e.name === 'TimeoutError') {
      return new StoreUnreachableError(`${what}: cannot reach S3 endpoint ${at} for ${bucket} (${code ?? e.name}${tries})`, err);
    }
    if (status !== undefined && status >= 500) {
      return new StoreUnreachableError(
        `${what}: S3 endpoint ${at} failed for ${bucket} (${e.name ?? 'error'}, HTTP ${status}${tries})`,
        err,
      );
    }
    const detail = status !== undefined ? `${e.name ?? 'error'}, HTTP ${status}` : firstLine(err);
    return new StoreUnreachableError(`${what}: S3 request for ${bucket} at ${at} failed (${detail})`, err);
  }
}

interface BucketLock {
  enabled: boolean;
  /** The bucket's default retention, applied by S3 to every new object version. */
  defaultRetention?: { mode: string | undefined; ms: number };
}

const AUTH_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  errors?: Array<{ code?: string }>;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

function sdkError(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.split('\n', 1)[0]!.slice(0, 200);
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') return Buffer.from(value);
  throw new TypeError(`put: stream chunks must be bytes or strings, got ${typeof value}`);
}


/**
 * Feeds lib-storage's Upload from the source, reserving each part's bytes from the budget before
 * reading them and releasing them when the part has been sent (Upload reports each finished part).
 *
 * Reservation units are shifted by one byte against parts: lib-storage hands out part k only once it
 * holds one byte more than a part, so that byte is covered by part k's unit and the wait for part
 * k+1's reservation never holds back part k. While it waits, this put holds only parts already in
 * flight (they finish without more budget) and its fixed assembly share, so it cannot deadlock with
 * other budget users that do not hold-and-wait on it.
 */
class PartFeeder {
  private offset = 0;
  /** Bytes below this offset are covered by a reservation (unit 1 lives in the caller's base). */
  private covered: number;
  private readonly units = new Map<number, Reservation>();
  private done = false;
  private digest: string | undefined;

  constructor(
    private readonly head: Buffer[],
    private readonly source: AsyncIterator<unknown>,
    private readonly hash: ReturnType<typeof createHash>,
    private readonly partSize: number,
    private readonly budget: MemoryBudget | undefined,
    private readonly base: Reservation | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.covered = budget ? partSize + 1 : Number.POSITIVE_INFINITY;
  }

  /** highWaterMark 0: no read-ahead, so a unit is reserved only when Upload asks for its bytes. */
  readable(): Readable {
    return Readable.from(this.feed(), { objectMode: true, highWaterMark: 0 });
  }

  private async *feed(): AsyncGenerator<Buffer> {
    for (const chunk of this.head) yield* this.emit(chunk);
    this.head.length = 0;
    for (;;) {
      const next = await this.source.next();
      if (next.done) break;
      const chunk = toBuffer(next.value);
      this.hash.update(chunk);
      yield* this.emit(chunk);
    }
    this.digest = this.hash.digest('hex');
    this.done = true;
  }

  private async *emit(chunk: Buffer): AsyncGenerator<Buffer> {
    while (chunk.length > 0) {
      this.signal?.throwIfAborted();
      if (this.offset >= this.covered && this.budget) {
        const part = Math.floor((this.offset - 1) / this.partSize) + 1;
        this.units.set(part, await this.budget.reserve(this.partSize, this.signal));
        this.covered += this.partSize;
      }
      const take = Math.min(chunk.length, this.covered - this.offset);
      this.offset += take;
      yield chunk.subarray(0, take);
      chunk = chunk.subarray(take);
    }
  }

  partSent(part: number | undefined): void {
    if (part === undefined) return;
    if (part === 1) this.base?.shrink(this.partSize);
    this.units.get(part)?.release();
    this.units.delete(part);
  }

  releaseAll(): void {
    for (const unit of this.units.values()) unit.release();
    this.units.clear();
  }

  result(): { size: number; sha256: string } {
    if (!this.done || this.digest === undefined) throw new Error('PartFeeder: result read before the body ended');
    this.releaseAll();
    return { size: this.offset, sha256: this.digest };
  }
}

export {
  formatBytes,
  MIN_PART_SIZE_BYTES,
  MIN_S3_BUDGET_BYTES,
  planUpload,
  streamReservationBytes,
  uploadWorkingSetBytes,
  type UploadPlan,
} from '../budget/s3-upload-plan.js';
