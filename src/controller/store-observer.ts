import { createHash } from 'node:crypto';
import type { StoreSpec } from '../api/v1alpha1/etcd-backup-types.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import { createStore } from '../store/factory.js';
import { listBackupObjects, type ObjectStore } from '../store/object-store.js';
import { storeConfigFromSpec } from '../store/spec-config.js';
import { observeStore, type StoreObservation } from './store-status.js';

/**
 * runner: pod: what each EtcdBackup's store holds, read from a listing. The store of a key is reused
 * while its config (and credentials) stay the same, so a status refresh does not build a client each time.
 */
export class StoreObserver {
  private readonly stores = new Map<string, { id: string; store: ObjectStore }>();

  async observe(key: string, spec: StoreSpec, credentials: ResolvedSecrets['s3Credentials']): Promise<StoreObservation> {
    const config = storeConfigFromSpec(spec, credentials);
    const id = createHash('sha256').update(JSON.stringify(config)).digest('hex');
    let cached = this.stores.get(key);
    if (cached?.id !== id) {
      cached = { id, store: await createStore(config) };
      this.stores.set(key, cached);
    }
    return observeStore(await listBackupObjects(cached.store));
  }

  forget(key: string): void {
    this.stores.delete(key);
  }
}
