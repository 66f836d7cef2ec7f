import { ObjectNotFoundError, OperatorError } from '../errors.js';
import { buffer } from 'node:stream/consumers';
import type { ObjectStore } from './object-store.js';

/**
 * A store knows whose it is: `<prefix>/store.json` names the etcd cluster (its cluster ID) whose
 * history the store holds and who started it. A writer refuses a store of another cluster, so two
 * clusters (a second EtcdBackup on the same prefix, or a cluster replaced or restored) never
 * interleave their chains, and restore can say which cluster's chain it uses.
 */
export const STORE_MARKER_KEY = 'store.json';
/** Object metadata key naming the etcd cluster an object was taken from. */
export const CLUSTER_ID_METADATA_KEY = 'cluster-id';

export interface StoreMarker {
  format: 1;
  /** etcd's cluster ID, as the response header has it (a decimal string). */
  clusterId: string;
  /** Who created the store: `namespace/name` of the EtcdBackup, or the spec file's name for `run`. */
  owner: string;
  created: string;
}

export class StoreOwnedByAnotherClusterError extends OperatorError {
  constructor(message: string) {
    super('StoreOfAnotherCluster', message);
  }
}

export async function readStoreMarker(store: Pick<ObjectStore, 'get' | 'describe'>, signal?: AbortSignal): Promise<StoreMarker | undefined> {
  let text: string;
  try {
    const object = await store.get(STORE_MARKER_KEY, { signal });
    text = (await buffer(object.body)).toString('utf8');
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined;
    throw err;
  }
  const parsed = parseMarker(text);
  if (!parsed) throw new StoreOwnedByAnotherClusterError(`${store.describe()}: ${STORE_MARKER_KEY} is not a store marker of this tool; refusing to write`);
  return parsed;
}

export function parseMarker(text: string): StoreMarker | undefined {
  try {
    const value = JSON.parse(text) as Partial<StoreMarker>;
    if (value.format !== 1 || typeof value.clusterId !== 'string' || !value.clusterId) return undefined;
    return { format: 1, clusterId: value.clusterId, owner: String(value.owner ?? ''), created: String(value.created ?? '') };
  } catch {
    return undefined;
  }
}

export async function writeStoreMarker(store: Pick<ObjectStore, 'put'>, marker: StoreMarker): Promise<void> {
  await store.put(STORE_MARKER_KEY, Buffer.from(`${JSON.stringify(marker, null, 2)}\n`), {
    metadata: { [CLUSTER_ID_METADATA_KEY]: marker.clusterId },
  });
}

/**
 * The store as restore reads it: an object recorded as taken from another cluster than `clusterId`
 * (the marker's) fails its get, naming it, so a restore never mixes two clusters' chains. Objects
 * without the record (written before markers existed) pass.
 */
export function withClusterCheck(store: ObjectStore, clusterId: string): ObjectStore {
  return {
    put: (key, body, options) => store.put(key, body, options),
    list: (prefix) => store.list(prefix),
    delete: (key) => store.delete(key),
    describe: () => store.describe(),
    async get(key, options) {
      const object = await store.get(key, options);
      const recorded = object.metadata[CLUSTER_ID_METADATA_KEY];
      if (recorded !== undefined && recorded !== clusterId) {
        object.body.destroy();
        throw new StoreOwnedByAnotherClusterError(
          `${key} in ${store.describe()} was taken from etcd cluster ${recorded}, but the store holds cluster ${clusterId}'s chain: ` +
            'the store mixes two clusters; refusing to restore from it',
        );
      }
      return object;
    },
  };
}
