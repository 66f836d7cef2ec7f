import type { StoreSpec } from '../api/v1alpha1/etcd-backup-types.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import { listBackupObjects } from '../store/object-store.js';
import { retentionStatus } from '../store/object-lock.js';
import { storeConfigFromSpec } from '../store/spec-config.js';
import { StoreCache } from './store-cache.js';
import { observeStore, type StoreObservation } from './store-status.js';

/**
 * runner: pod: what each EtcdBackup's store holds, read from a listing. The store of a key is reused
 * while its config (and credentials) stay the same, so a status refresh does not build a client each time.
 */
export class StoreObserver {
  private readonly stores = new StoreCache();

  async observe(key: string, spec: StoreSpec, credentials: ResolvedSecrets['s3Credentials']): Promise<StoreObservation> {
    const store = await this.stores.get(key, storeConfigFromSpec(spec, credentials));
    const observation = observeStore(await listBackupObjects(store));
    const full = observation.lastFullSnapshot;
    // S3 Object Lock: the newest snapshot's retention is not in the listing; one HeadObject.
    if (full && store.retentionOf) {
      Object.assign(full, retentionStatus(await store.retentionOf(full.object)));
    }
    return observation;
  }

  /** Forgets (and closes) the store of `key`. */
  forget(key: string): void {
    this.stores.drop(key);
  }

  /** Closes every store (the operator stops). */
  clear(): void {
    this.stores.clear();
  }
}
