import type { Etcd3 } from 'etcd3';
import { Readable, Transform } from 'node:stream';
import { EtcdUnavailableError, errorMessage } from '../errors.js';

/**
 * etcd's Maintenance.Snapshot as a byte stream. etcd sends the bbolt file in messages of
 * `{ blob }` and appends the file's sha256 (32 bytes), which `etcdctl snapshot restore` checks, so
 * the bytes are kept exactly as sent. Backpressure reaches the gRPC stream through pipe().
 */
export async function openSnapshotStream(client: Etcd3, endpoints: string[]): Promise<Readable> {
  let source: Readable;
  try {
    source = (await client.maintenance.snapshot()) as unknown as Readable;
  } catch (err) {
    throw new EtcdUnavailableError(`cannot start a snapshot from etcd at ${endpoints.join(',')}: ${errorMessage(err)}`, err);
  }
  const bytes = new Transform({
    readableObjectMode: false,
    writableObjectMode: true,
    transform(message: { blob?: Buffer }, _enc, done) {
      done(null, message.blob && message.blob.length > 0 ? message.blob : undefined);
    },
  });
  source.on('error', (err) =>
    bytes.destroy(new EtcdUnavailableError(`snapshot stream from ${endpoints.join(',')} failed: ${errorMessage(err)}`, err)),
  );
  bytes.on('close', () => source.destroy());
  return source.pipe(bytes);
}
