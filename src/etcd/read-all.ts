import type { Etcd3 } from 'etcd3';
import { createHash } from 'node:crypto';

export interface KeyValueRecord {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
}

/**
 * Keys per range request: with etcd's largest values (1.5 MiB by default) a page stays below the
 * client's receive limit (src/etcd/client.ts).
 */
const PAGE_SIZE = 100;

/**
 * Every key at `revision` (default: head), in key order, paged so that a large keyspace is never
 * held at once. Reads the whole keyspace: '\0' to '\0' is etcd's "all keys" range.
 */
export async function* readAllKeys(client: Etcd3, revision?: number): AsyncGenerator<KeyValueRecord> {
  let start = Buffer.from([0]);
  for (;;) {
    const response = await client.kv.range({
      key: start,
      range_end: Buffer.from([0]),
      limit: String(PAGE_SIZE),
      revision: revision === undefined ? undefined : String(revision),
      sort_order: 'Ascend',
      sort_target: 'Key',
    });
    for (const kv of response.kvs) {
      yield {
        key: kv.key,
        value: kv.value,
        createRevision: Number(kv.create_revision),
        modRevision: Number(kv.mod_revision),
        version: Number(kv.version),
      };
    }
    if (!response.more || response.kvs.length === 0) return;
    start = Buffer.concat([response.kvs[response.kvs.length - 1]!.key, Buffer.from([0])]);
    // Pin later pages to the revision of the first one, so the listing is one consistent view.
    revision ??= Number(response.header.revision);
  }
}

export interface KeyspaceSummary {
  revision: number;
  keyCount: number;
  /** sha256 over every key, value, create/mod revision and version, in key order. */
  contentHash: string;
}

export function recordLine(kv: KeyValueRecord): string {
  return `${kv.key.toString('base64')} ${kv.value.toString('base64')} ${kv.createRevision} ${kv.modRevision} ${kv.version}\n`;
}

export async function summarizeKeyspace(client: Etcd3, revision: number): Promise<KeyspaceSummary> {
  const hash = createHash('sha256');
  let keyCount = 0;
  for await (const kv of readAllKeys(client, revision)) {
    hash.update(recordLine(kv));
    keyCount++;
  }
  return { revision, keyCount, contentHash: hash.digest('hex') };
}
