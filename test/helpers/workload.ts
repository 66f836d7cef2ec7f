import type { Etcd3 } from 'etcd3';
import { readAllKeys, type KeyValueRecord } from '../../src/etcd/read-all.js';

/** A deterministic pseudo-random generator, so a failing workload can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Writes `operations` changes under `prefix`: puts of new keys, overwrites, deletes and multi-key
 * txns, so that create/mod revisions and versions all vary.
 */
export async function writeMixedWorkload(client: Etcd3, prefix: string, operations: number, seed = 1): Promise<void> {
  const random = seededRandom(seed);
  const keys: string[] = [];
  for (let i = 0; i < operations; i++) {
    const roll = random();
    if (keys.length < 10 || roll < 0.5) {
      const key = `${prefix}k${String(keys.length).padStart(6, '0')}`;
      keys.push(key);
      await client.put(key).value(`v${i}-${'x'.repeat(Math.floor(random() * 200))}`);
    } else if (roll < 0.75) {
      await client.put(keys[Math.floor(random() * keys.length)]!).value(`overwrite-${i}`);
    } else if (roll < 0.9) {
      await client.delete().key(keys[Math.floor(random() * keys.length)]!);
    } else {
      const a = keys[Math.floor(random() * keys.length)]!;
      const b = `${prefix}txn${i}`;
      keys.push(b);
      await client
        .if(a, 'Version', '>', -1)
        .then(client.put(b).value(`txn-${i}`), client.delete().key(`${prefix}absent`))
        .commit();
    }
  }
}

export async function allKeys(client: Etcd3, revision?: number): Promise<KeyValueRecord[]> {
  const result: KeyValueRecord[] = [];
  for await (const kv of readAllKeys(client, revision)) result.push(kv);
  return result;
}

/** Keys as plain objects for deepEqual: key, value (hex), create/mod revision (unless left out), version. */
export function comparableKeys(kvs: readonly KeyValueRecord[], options: { modRevision?: boolean } = {}): object[] {
  return kvs.map((kv) => ({
    key: kv.key.toString(),
    value: kv.value.toString('hex'),
    create: kv.createRevision,
    ...(options.modRevision === false ? {} : { mod: kv.modRevision }),
    version: kv.version,
  }));
}
