/**
 * What the S3 store's staging copy costs, on a real MinIO (built by scripts/install-test-tools.sh):
 * a multipart full snapshot goes to `.incomplete/<random>` and is then copied server-side onto its
 * real key with the sha256 as metadata (see docs/s3.md, "Integrity"). For each size, in one run:
 *
 *   direct   multipart upload straight to the final key (what the upload alone costs)
 *   store    S3Store.put of the same stream: multipart to the temporary key + CopyObject + delete
 *   copy     the CopyObject alone (REPLACE metadata), of an object already there
 *   crc32    multipart upload with a full-object CRC32 (x-amz-checksum-type FULL_OBJECT) given at
 *            CompleteMultipartUpload: the alternative that would carry an integrity check without a copy
 *
 * Time is wall time; bytes are what the client sent and what MinIO wrote to storage
 * (/proc/<minio>/io write_bytes). It also checks whether MinIO verifies the full-object checksum
 * (a wrong one at completion must be refused) and returns it on HeadObject. Writes its section into
 * docs/s3.md.
 *
 *   node --import tsx bench/s3-staging-copy.ts [--sizes-mib 200,1024] [--no-write]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { S3Store } from '../src/store/s3-store.js';
import { generatedStream } from '../test/harness/byte-streams.js';
import { startTestMinio, type TestMinio } from '../test/harness/minio.js';
import { minioBinary } from '../test/harness/test-tools.js';
import { writeDocsSection } from './lib/docs-section.js';

const MiB = 1024 * 1024;
/** The store's part size and parallelism with the default 128 MiB budget (docs/s3.md, "Memory"). */
const PART_BYTES = 8 * MiB;
const QUEUE = 4;

interface Row {
  sizeBytes: number;
  method: 'direct' | 'store' | 'copy' | 'crc32';
  seconds: number;
  clientBytes: number;
  serverWrittenBytes: number;
}

function writtenBytes(minio: TestMinio): number {
  const pid = minio.pid();
  if (pid === undefined) return 0;
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/^write_bytes: (\d+)$/m.exec(io)?.[1] ?? 0);
}

async function measure(
  minio: TestMinio,
  row: Omit<Row, 'seconds' | 'serverWrittenBytes'>,
  work: () => Promise<void>,
): Promise<Row> {
  const before = writtenBytes(minio);
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // MinIO writes through the page cache; write_bytes counts pages as they are dirtied, so the figure
  // is complete when the call returns.
  return { ...row, seconds, serverWrittenBytes: writtenBytes(minio) - before };
}

/** Multipart upload of a generated stream with a full-object CRC32 that MinIO checks at completion. */
async function uploadWithFullObjectCrc(
  client: S3Client,
  bucket: string,
  key: string,
  sizeBytes: number,
  corruptChecksum = false,
): Promise<void> {
  const created = await client.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC32', ChecksumType: 'FULL_OBJECT' }),
  );
  const uploadId = created.UploadId!;
  let crc = 0;
  const parts: CompletedPart[] = [];
  let partNumber = 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const inFlight = new Set<Promise<void>>();
  const send = (body: Buffer, n: number): void => {
    const p = client
      .send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body, ChecksumAlgorithm: 'CRC32' }))
      .then((out) => {
        parts.push({ PartNumber: n, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 });
      });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  for await (const chunk of generatedStream(sizeBytes, { seed: 9 }).stream as AsyncIterable<Buffer>) {
    crc = crc32(chunk, crc);
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= PART_BYTES) {
      const all = Buffer.concat(pending, pendingBytes);
      send(all.subarray(0, PART_BYTES), partNumber++);
      pending = pendingBytes > PART_BYTES ? [all.subarray(PART_BYTES)] : [];
      pendingBytes -= PART_BYTES;
      while (inFlight.size >= QUEUE) await Promise.race(inFlight);
    }
  }
  if (pendingBytes > 0) send(Buffer.concat(pending, pendingBytes), partNumber);
  await Promise.all(inFlight);
  parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
  const value = Buffer.alloc(4);
  value.writeUInt32BE(corruptChecksum ? (crc ^ 1) >>> 0 : crc >>> 0);
  await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts },
      ChecksumCRC32: value.toString('base64'),
      ChecksumType: 'FULL_OBJECT',
    }),
  );
}

async function benchSize(minio: TestMinio, client: S3Client, sizeBytes: number): Promise<{ rows: Row[]; notes: string[] }> {
  const bucket = minio.bucket;
  const rows: Row[] = [];
  const notes: string[] = [];
  const label = `${sizeBytes / MiB}`;

  rows.push(
    await measure(minio, { sizeBytes, method: 'direct', clientBytes: sizeBytes }, async () => {
      await new Upload({
        client,
        params: { Bucket: bucket, Key: `direct/${label}`, Body: generatedStream(sizeBytes, { seed: 9 }).stream, Metadata: { sha256: 'x' } },
        partSize: PART_BYTES,
        queueSize: QUEUE,
      }).done();
    }),
  );

  const store = S3Store.fromConfig(minio.storeConfig('store'), { partSizeBytes: PART_BYTES, queueSize: QUEUE });
  rows.push(
    await measure(minio, { sizeBytes, method: 'store', clientBytes: sizeBytes }, async () => {
      await store.put(`full/${label}.db`, generatedStream(sizeBytes, { seed: 9 }).stream);
    }),
  );
  await store.delete(`full/${label}.db`);
  store.close();

  rows.push(
    await measure(minio, { sizeBytes, method: 'copy', clientBytes: 0 }, async () => {
      await client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: `copied/${label}`,
          CopySource: `${bucket}/direct/${label}`,
          MetadataDirective: 'REPLACE',
          Metadata: { sha256: 'y' },
        }),
      );
    }),
  );

  rows.push(
    await measure(minio, { sizeBytes, method: 'crc32', clientBytes: sizeBytes }, () =>
      uploadWithFullObjectCrc(client, bucket, `crc32/${label}`, sizeBytes),
    ),
  );
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `crc32/${label}`, ChecksumMode: 'ENABLED' }));
  notes.push(
    `${label} MiB: HeadObject (ChecksumMode ENABLED) returned ChecksumCRC32 ${head.ChecksumCRC32 ?? 'none'}, ` +
      `ChecksumType ${head.ChecksumType ?? 'none'}`,
  );
  const refused = await uploadWithFullObjectCrc(client, bucket, `crc32-wrong/${label}`, Math.min(sizeBytes, 20 * MiB), true).then(
    () => 'accepted',
    (err: unknown) => `refused (${(err as { name?: string }).name ?? String(err)})`,
  );
  notes.push(`a wrong full-object CRC32 at CompleteMultipartUpload was ${refused}`);
  for (const key of [`direct/${label}`, `copied/${label}`, `crc32/${label}`, `crc32-wrong/${label}`]) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
  return { rows, notes };
}

function table(rows: Row[]): string[] {
  const direct = new Map(rows.filter((r) => r.method === 'direct').map((r) => [r.sizeBytes, r.seconds]));
  return [
    '| object MiB | method | seconds | MiB/s | x direct | client MiB sent | MinIO MiB written |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => {
      const base = direct.get(r.sizeBytes)!;
      return (
        `| ${r.sizeBytes / MiB} | ${r.method} | ${r.seconds.toFixed(1)} | ${(r.sizeBytes / MiB / r.seconds).toFixed(0)} | ` +
        `${(r.seconds / base).toFixed(2)} | ${(r.clientBytes / MiB).toFixed(0)} | ${(r.serverWrittenBytes / MiB).toFixed(0)} |`
      );
    }),
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'sizes-mib': { type: 'string', default: '200,1024' }, 'no-write': { type: 'boolean', default: false } },
  });
  if (!minioBinary()) {
    console.log('MinIO is not built: run scripts/install-test-tools.sh; skipped');
    return;
  }
  const sizes = values['sizes-mib'].split(',').map((s) => Number(s) * MiB);
  const minio = await startTestMinio();
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    const client = minio.client();
    for (const size of sizes) {
      const result = await benchSize(minio, client, size);
      rows.push(...result.rows);
      notes.push(...result.notes);
      for (const line of table(result.rows).slice(2)) console.log(line);
    }
  } finally {
    await minio.stop();
  }
  const body = [
    '### Measured: the staging copy on MinIO (`bench/s3-staging-copy.ts`)',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}, MinIO on 127.0.0.1 (one drive, a`,
    `temp dir), ${PART_BYTES / MiB} MiB parts x ${QUEUE} in flight (the store's plan for the default budget), a`,
    'generated stream. direct: multipart to the final key; store: `S3Store.put` (multipart to `.incomplete/`,',
    'CopyObject, delete); copy: the CopyObject alone; crc32: multipart with a full-object CRC32 given at',
    'completion. MinIO MiB written: `write_bytes` of the MinIO process.',
    '',
    ...table(rows),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
    'Re-run: `node --import tsx bench/s3-staging-copy.ts` (it rewrites only this section).',
  ].join('\n');
  console.log(body);
  if (!values['no-write']) {
    await writeDocsSection(join(fileURLToPath(new URL('..', import.meta.url)), 'docs', 's3.md'), 's3-staging-copy', body);
  }
}

await main();
