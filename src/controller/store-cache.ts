import { createHash } from 'node:crypto';
import { createStore } from '../store/factory.js';
import type { StoreConfig } from '../store/store-config.js';
import type { ObjectStore } from '../store/object-store.js';

export type StoreFactory = (config: StoreConfig) => Promise<ObjectStore>;

/**
 * The stores the operator opens for itself (runner: pod status), one per EtcdBackup, reused while
 * its config is unchanged. An S3 store holds an SDK client with pooled sockets: a store that is
 * replaced or dropped is closed, or every config change and deleted EtcdBackup leaked one.
 */
export class StoreCache {
  private readonly stores = new Map<string, { id: string; store: ObjectStore }>();

  constructor(private readonly create: StoreFactory = createStore) {}

  async get(key: string, config: StoreConfig): Promise<ObjectStore> {
    const id = createHash('sha256').update(JSON.stringify(config)).digest('hex');
    const cached = this.stores.get(key);
    if (cached?.id === id) return cached.store;
    this.drop(key);
    const store = await this.create(config);
    this.stores.set(key, { id, store });
    return store;
  }

  drop(key: string): void {
    this.stores.get(key)?.store.close?.();
    this.stores.delete(key);
  }

  clear(): void {
    for (const key of [...this.stores.keys()]) this.drop(key);
  }
}

/** Opens a store for one task and closes it afterwards, whatever the task's outcome. */
export async function withStore<T>(config: StoreConfig, task: (store: ObjectStore) => Promise<T>, create: StoreFactory = createStore): Promise<T> {
  const store = await create(config);
  try {
    return await task(store);
  } finally {
    store.close?.();
  }
}
