import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ListMultipartUploadsCommand,
  S3Client,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import type { S3StoreConfig } from '../../src/store/store-config.js';

/**
 * A real S3 protocol server on 127.0.0.1 with one bucket, as the S3 tests see it: s3rver in-process
 * (startTestS3, below) or a real MinIO process (./minio.ts, startTestMinio). Suites that run on
 * both take the servers from ./s3-servers.ts.
 */
export interface TestS3 {
  /** 's3rver' or 'minio', for test names. */
  readonly name: string;
  /** `http://127.0.0.1:PORT`; stays the same across pause()/restart(). */
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  readonly region: string;
  /** Distinct from the secret, so that a test can tell a wrong secret from a wrong key id. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The server's own log so far, for a separate process (MinIO); s3rver runs in-process and has none. */
  serverLog?(): string;
  /** The server's data directory. */
  readonly directory: string;
  /** `s3://bucket/prefix?endpoint=...&forcePathStyle=true&region=us-east-1` */
  storeUrl(prefix?: string): string;
  /** The parsed form of storeUrl(prefix), with this server's credentials. */
  storeConfig(prefix?: string, overrides?: Partial<S3StoreConfig>): S3StoreConfig;
  /** An SDK client for this server (checksum settings as the store uses them); destroyed by stop(). */
  client(endpoint?: string): S3Client;
  /** Multipart uploads in progress, through the real ListMultipartUploads call. */
  listMultipartUploads(prefix?: string): Promise<MultipartUpload[]>;
  /** Outage: stops listening and cuts every open connection, keeping the data. */
  pause(): Promise<void>;
  /** Starts again on the same port with the same data (after pause(), or as pause + start). */
  restart(): Promise<void>;
  /** Stops for good and removes the data directory. */
  stop(): Promise<void>;
}

/** The parts of TestS3 that only depend on where the server is and who we are. */
export type S3Access = Pick<
  TestS3,
  'endpoint' | 'bucket' | 'region' | 'accessKeyId' | 'secretAccessKey' | 'storeUrl' | 'storeConfig' | 'client' | 'listMultipartUploads'
> & {
  destroyClients(): void;
};

export const TEST_S3_REGION = 'us-east-1';

export function s3Access(where: { endpoint: string; bucket: string; accessKeyId: string; secretAccessKey: string }): S3Access {
  const { endpoint, bucket, accessKeyId, secretAccessKey } = where;
  const region = TEST_S3_REGION;
  const clients: S3Client[] = [];
  const client = (clientEndpoint = endpoint): S3Client => {
    const made = new S3Client({
      endpoint: clientEndpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
    clients.push(made);
    return made;
  };
  return {
    endpoint,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    storeUrl(prefix = '') {
      const query = new URLSearchParams({ endpoint, forcePathStyle: 'true', region });
      return `s3://${bucket}/${prefix}?${query.toString()}`;
    },
    storeConfig(prefix = '', overrides = {}) {
      return {
        kind: 's3',
        bucket,
        prefix,
        region,
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey },
        ...overrides,
      };
    },
    client,
    async listMultipartUploads(prefix = '') {
      // MinIO answers a Prefix only when it names an exact object, and lists bucket-wide only the
      // uploads started since it last started: ask both ways and merge.
      const wide = await client().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      const exact = prefix ? await client().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix })) : undefined;
      const byId = new Map<string, MultipartUpload>();
      for (const upload of [...(wide.Uploads ?? []), ...(exact?.Uploads ?? [])]) {
        if (upload.UploadId && upload.Key?.startsWith(prefix)) byId.set(upload.UploadId, upload);
      }
      return [...byId.values()];
    },
    destroyClients() {
      for (const made of clients.splice(0)) made.destroy();
    },
  };
}

/**
 * s3rver 3.7.1 lacks three multipart operations that the S3 store relies on and real S3 has:
 * ListMultipartUploads, AbortMultipartUpload and UploadPartCopy; and its ListObjectsV2 pagination
 * fails with HTTP 500 on Node 20 (its continuation tokens use DES, which OpenSSL 3 no longer
 * offers). This harness answers those four itself over s3rver's own store and on-disk layout, so
 * the tests prove "no orphaned multipart upload" and pagination with the real SDK calls. Like
 * s3rver, the harness checks the access key id but not the signature or secret.
 */
const ACCESS_KEY_ID = 'S3RVER-TEST-KEY-ID';
const SECRET_ACCESS_KEY = 's3rver-test-secret-key';
/** s3rver knows one hard-coded key pair (S3RVER/S3RVER); register ours with its account registry. */
const s3rverAccounts = createRequire(import.meta.url)('s3rver/lib/models/account.js') as {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
};
s3rverAccounts.DUMMY_ACCOUNT.createKeyPair(ACCESS_KEY_ID, SECRET_ACCESS_KEY);
/** s3rver keeps in-progress multipart uploads in `<dir>/<bucket>/._S3rver_uploads/<uploadId>/`. */
const UPLOADS_DIR = '._S3rver_uploads';

export interface TestS3Options {
  bucket?: string;
  /** Sees every request's method, path and headers before it is served (s3rver ignores session tokens). */
  onRequest?: (request: { method: string; path: string; headers: IncomingMessage['headers'] }) => void;
}

export async function startTestS3(options: TestS3Options = {}): Promise<TestS3> {
  const bucket = options.bucket ?? 'backups';
  const directory = await mkdtemp(join(tmpdir(), 's3rver-test-'));
  let server: Server | undefined;
  let port = 0;

  const listen = async (): Promise<void> => {
    const s3rver = new S3rver({ silent: true, directory, configureBuckets: [{ name: bucket }] });
    await s3rver.configureBuckets();
    const koa = s3rver.callback();
    const uploadsDir = join(directory, bucket, UPLOADS_DIR);
    const http = createServer((req, res) => {
      options.onRequest?.({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
      shim(req, res, { bucket, uploadsDir, s3rver }).then(
        (handled) => {
          if (!handled) koa(req, res);
        },
        (err: unknown) => sendError(res, 500, 'InternalError', err instanceof Error ? err.message : String(err)),
      );
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, '127.0.0.1', () => {
        http.off('error', reject);
        resolve();
      });
    });
    // Never keep the test process alive because a test forgot stop().
    http.unref();
    port = (http.address() as AddressInfo).port;
    server = http;
  };

  const close = async (): Promise<void> => {
    const http = server;
    server = undefined;
    if (!http) return;
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections(); // keep-alive sockets would otherwise keep serving during an "outage"
    await closed;
  };

  await listen();
  const endpoint = `http://127.0.0.1:${port}`;

  const access = s3Access({ endpoint, bucket, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
  return {
    ...access,
    port,
    directory,
    name: 's3rver',
    pause: close,
    async restart() {
      await close();
      await listen();
    },
    async stop() {
      await close();
      access.destroyClients();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

interface ShimContext {
  bucket: string;
  uploadsDir: string;
  s3rver: S3rver;
}

/** Answers the multipart calls s3rver lacks; returns false for everything else. */
async function shim(req: IncomingMessage, res: ServerResponse, ctx: ShimContext): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const [, bucket = '', ...keyParts] = url.pathname.split('/');
  const key = decodeURIComponent(keyParts.join('/'));
  const query = url.searchParams;
  if (decodeURIComponent(bucket) !== ctx.bucket) return false;
  const handled =
    (req.method === 'GET' && key === '' && (query.has('uploads') || query.get('list-type') === '2')) ||
    (req.method === 'DELETE' && key !== '' && query.has('uploadId')) ||
    (req.method === 'PUT' && query.has('uploadId') && req.headers['x-amz-copy-source'] !== undefined);
  if (!handled) return false;
  if (!String(req.headers.authorization ?? '').includes(`Credential=${ACCESS_KEY_ID}/`)) {
    await drain(req);
    sendError(res, 403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
    return true;
  }

  if (req.method === 'GET' && key === '' && query.get('list-type') === '2') {
    await drain(req);
    await listObjectsV2(res, ctx, query);
    return true;
  }
  if (req.method === 'GET' && key === '' && query.has('uploads')) {
    await drain(req);
    await listUploads(res, ctx, query.get('prefix') ?? '');
    return true;
  }
  const uploadId = query.get('uploadId');
  if (req.method === 'DELETE' && key !== '' && uploadId !== null) {
    await drain(req);
    const dir = await uploadDirFor(ctx, uploadId, key);
    if (dir) {
      await rm(dir, { recursive: true, force: true });
      res.writeHead(204).end();
    } else {
      sendError(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    }
    return true;
  }
  const copySource = req.headers['x-amz-copy-source'];
  if (req.method === 'PUT' && uploadId !== null && typeof copySource === 'string') {
    await drain(req);
    await uploadPartCopy(res, ctx, { key, uploadId, copySource, partNumber: Number(query.get('partNumber')), req });
    return true;
  }
  return false;
}

async function listObjectsV2(res: ServerResponse, ctx: ShimContext, query: URLSearchParams): Promise<void> {
  const prefix = query.get('prefix') ?? '';
  const maxKeys = Math.min(1000, Number(query.get('max-keys') ?? 1000));
  const token = query.get('continuation-token');
  const startAfter = token ? Buffer.from(token, 'base64url').toString('utf8') : (query.get('start-after') ?? undefined);
  const result = await ctx.s3rver.store.listObjects(ctx.bucket, {
    prefix,
    maxKeys,
    startAfter,
    delimiter: query.get('delimiter') ?? undefined,
  });
  const last = result.objects[result.objects.length - 1];
  const next = result.isTruncated && last ? Buffer.from(last.key, 'utf8').toString('base64url') : undefined;
  const contents = result.objects
    .map(
      (o) =>
        `<Contents><Key>${xml(o.key)}</Key><LastModified>${o.lastModifiedDate.toISOString()}</LastModified>` +
        `<ETag>${xml(o.metadata.etag ?? '')}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    )
    .join('');
  const prefixes = result.commonPrefixes.map((p) => `<CommonPrefixes><Prefix>${xml(p)}</Prefix></CommonPrefixes>`).join('');
  sendXml(
    res,
    200,
    `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xml(ctx.bucket)}</Name>` +
      `<Prefix>${xml(prefix)}</Prefix><KeyCount>${result.objects.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>` +
      `<IsTruncated>${result.isTruncated}</IsTruncated>` +
      (token ? `<ContinuationToken>${xml(token)}</ContinuationToken>` : '') +
      (next ? `<NextContinuationToken>${next}</NextContinuationToken>` : '') +
      `${contents}${prefixes}</ListBucketResult>`,
  );
}

async function listUploads(res: ServerResponse, ctx: ShimContext, prefix: string): Promise<void> {
  const ids = await readdir(ctx.uploadsDir).catch(() => [] as string[]);
  const uploads: string[] = [];
  for (const id of ids.sort()) {
    const key = await readFile(join(ctx.uploadsDir, id, 'key'), 'utf8').catch(() => undefined);
    if (key === undefined || !key.startsWith(prefix)) continue;
    const initiated = (await stat(join(ctx.uploadsDir, id))).mtime.toISOString();
    uploads.push(
      `<Upload><Key>${xml(key)}</Key><UploadId>${xml(id)}</UploadId><Initiated>${initiated}</Initiated>` +
        `<StorageClass>STANDARD</StorageClass></Upload>`,
    );
  }
  sendXml(
    res,
    200,
    `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xml(ctx.bucket)}</Bucket>` +
      `<Prefix>${xml(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>` +
      `${uploads.join('')}</ListMultipartUploadsResult>`,
  );
}

async function uploadPartCopy(
  res: ServerResponse,
  ctx: ShimContext,
  args: { key: string; uploadId: string; copySource: string; partNumber: number; req: IncomingMessage },
): Promise<void> {
  if (!(await uploadDirFor(ctx, args.uploadId, args.key))) {
    return sendError(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  }
  const source = decodeURIComponent(args.copySource).replace(/^\//, '');
  const slash = source.indexOf('/');
  const [srcBucket, srcKey] = [source.slice(0, slash), source.slice(slash + 1)];
  const range = /^bytes=(\d+)-(\d+)$/.exec(String(args.req.headers['x-amz-copy-source-range'] ?? ''));
  const object = await ctx.s3rver.store.getObject(
    srcBucket,
    srcKey,
    range ? { start: Number(range[1]), end: Number(range[2]) } : undefined,
  );
  if (!object?.content) return sendError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
  const { md5 } = await ctx.s3rver.store.putPart(ctx.bucket, args.uploadId, args.partNumber, object.content);
  sendXml(
    res,
    200,
    `<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`,
  );
}

async function uploadDirFor(ctx: ShimContext, uploadId: string, key: string): Promise<string | undefined> {
  if (!/^[A-Za-z0-9_-]+$/.test(uploadId)) return undefined;
  const dir = join(ctx.uploadsDir, uploadId);
  const stored = await readFile(join(dir, 'key'), 'utf8').catch(() => undefined);
  return stored === key ? dir : undefined;
}

function drain(req: IncomingMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('end', resolve);
    req.resume();
  });
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function sendXml(res: ServerResponse, status: number, body: string): void {
  const payload = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendXml(res, status, `<Error><Code>${xml(code)}</Code><Message>${xml(message)}</Message></Error>`);
}

/**
 * A test-only HTTP proxy in front of the S3 server that injects faults: HTTP errors (503 SlowDown by
 * default, which the SDK retries as throttling) or dropped connections (reset after the request
 * line, which the SDK retries as a transient network error). Host headers pass through untouched, so
 * SigV4 signatures made for the proxy's address stay valid.
 */
export interface FaultProxy {
  readonly endpoint: string;
  /** Answers the next `count` matching requests with `status`/`code` instead of forwarding them. */
  failNext(count: number, options?: { status?: number; code?: string; match?: RequestMatcher }): void;
  /** Resets the connection of the next `count` matching requests. */
  dropNext(count: number, options?: { match?: RequestMatcher }): void;
  /** Counters since start. */
  readonly stats: { forwarded: number; failed: number; dropped: number };
  /** Every request seen, in order (method, path and query, copy source header). */
  readonly requests: Array<{ method: string; url: URL; copySource?: string }>;
  stop(): Promise<void>;
}

export type RequestMatcher = (req: { method: string; url: URL }) => boolean;

interface Fault {
  kind: 'fail' | 'drop';
  remaining: number;
  status: number;
  code: string;
  match: RequestMatcher;
}

export async function startFaultProxy(targetEndpoint: string): Promise<FaultProxy> {
  const target = new URL(targetEndpoint);
  const faults: Fault[] = [];
  const stats = { forwarded: 0, failed: 0, dropped: 0 };
  const requests: FaultProxy['requests'] = [];

  const takeFault = (req: IncomingMessage): Fault | undefined => {
    const info = { method: req.method ?? 'GET', url: new URL(req.url ?? '/', 'http://127.0.0.1') };
    const fault = faults.find((f) => f.remaining > 0 && f.match(info));
    if (fault) fault.remaining -= 1;
    return fault;
  };

  const server = createServer((req, res) => {
    const copySource = req.headers['x-amz-copy-source'];
    requests.push({
      method: req.method ?? 'GET',
      url: new URL(req.url ?? '/', 'http://127.0.0.1'),
      ...(typeof copySource === 'string' ? { copySource } : {}),
    });
    const fault = takeFault(req);
    if (fault?.kind === 'drop') {
      stats.dropped += 1;
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'fail') {
      stats.failed += 1;
      drain(req).then(
        () => sendError(res, fault.status, fault.code, 'injected fault'),
        () => res.destroy(),
      );
      return;
    }
    stats.forwarded += 1;
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
    req.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    requests,
    failNext(count, options = {}) {
      faults.push({
        kind: 'fail',
        remaining: count,
        status: options.status ?? 503,
        code: options.code ?? 'SlowDown',
        match: options.match ?? (() => true),
      });
    },
    dropNext(count, options = {}) {
      faults.push({ kind: 'drop', remaining: count, status: 0, code: '', match: options.match ?? (() => true) });
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
