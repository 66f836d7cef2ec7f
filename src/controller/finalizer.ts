import type { EtcdBackup } from '../api/v1alpha1/etcd-backup-types.js';
import type { ValidationResult } from '../api/validate.js';
import { parseBackupKey } from '../archive/naming.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import type { Logger } from '../observability/logger.js';
import { listBackupObjects, type ObjectStore } from '../store/object-store.js';
import { storeConfigFromSpec } from '../store/spec-config.js';
import { deleteUnlessLocked } from '../store/delete-unless-locked.js';
import { describeLocked, summariseLocked } from '../store/object-lock.js';
import { STORE_MARKER_KEY } from '../store/store-marker.js';
import type { EventInfo } from './events.js';
import { resolveSecrets, type SecretGetter } from './secrets.js';
import { withStore } from './store-cache.js';

export const FINALIZER = 'etcdbackup.io/finalizer';

export function hasFinalizer(obj: EtcdBackup): boolean {
  return (obj.metadata.finalizers ?? []).includes(FINALIZER);
}

export interface FinalizerOptions {
  getSecret: SecretGetter;
  /** The schema and the operator's policy: a spec the policy refuses names no store to empty either. */
  validate(obj: EtcdBackup): ValidationResult;
  /** Stops the local worker process of `key` and waits for it to exit. */
  stopProcess(key: string): Promise<void>;
  /** Removes the runner: pod worker; true once no pod of it can still write. */
  removePodWorker(key: string, obj: EtcdBackup, log: Logger): Promise<boolean>;
  /** PUT with the resourceVersion read. */
  replace(obj: EtcdBackup): Promise<EtcdBackup>;
  /** Drops everything the controller remembers about `key`. */
  forget(key: string): void;
  /** Counts a retry of `key`, returning how many came before (the backoff exponent). */
  nextRetryAttempt(key: string): number;
  recordEvent(key: string, event: EventInfo): void;
}

/**
 * Deletion of an EtcdBackup: stops its worker, applies deletionPolicy (Delete empties the store of
 * its backups), then removes the finalizer so the object can go.
 */
export class EtcdBackupFinalizer {
  constructor(private readonly options: FinalizerOptions) {}

  async finalize(key: string, obj: EtcdBackup, log: Logger): Promise<{ requeueAfterMs?: number }> {
    const { options } = this;
    await options.stopProcess(key);
    // Without relying on garbage collection: with deletionPolicy Delete no pod may still write.
    if (hasFinalizer(obj) && !(await options.removePodWorker(key, obj, log))) {
      return { requeueAfterMs: 1000 };
    }
    if (!hasFinalizer(obj)) {
      options.forget(key);
      return {};
    }
    if (obj.spec?.deletionPolicy === 'Delete') {
      const outcome = await this.deleteBackups(key, obj, log);
      if (outcome === 'retry') {
        const attempt = options.nextRetryAttempt(key);
        return { requeueAfterMs: Math.min(120_000, 2000 * 2 ** attempt) };
      }
    }
    await options.replace({ ...obj, metadata: { ...obj.metadata, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } });
    log.info('Removed finalizer from EtcdBackup', { deletionPolicy: obj.spec?.deletionPolicy ?? 'Retain' });
    options.forget(key);
    return {};
  }

  /** deletionPolicy Delete: removes every backup object (full/ and delta/) of the EtcdBackup's store. */
  private async deleteBackups(key: string, obj: EtcdBackup, log: Logger): Promise<'done' | 'retry'> {
    const { options } = this;
    const validation = options.validate(obj);
    if (!validation.ok) {
      // Without a valid (and allowed) spec we cannot know which store to empty; do not hold the object hostage.
      options.recordEvent(key, {
        type: 'Warning',
        reason: 'BackupsNotDeleted',
        action: 'Delete',
        note: `deletionPolicy is Delete but the spec is invalid, so stored backups were left in place: ${validation.problems.join('; ')}`,
      });
      return 'done';
    }
    const spec = validation.resolved.spec;
    const namespace = obj.metadata.namespace ?? '';
    let credentials: ResolvedSecrets['s3Credentials'];
    if (spec.store.s3?.credentialsSecretRef) {
      const s3Only = { ...spec, etcd: { endpoints: spec.etcd.endpoints }, encryption: undefined };
      const secrets = await resolveSecrets(namespace, s3Only, options.getSecret);
      if (secrets.problems.length > 0) {
        const note =
          `Cannot delete stored backups: ${secrets.problems.map((p) => p.message).join('; ')}. ` +
          `Restore the Secret, or remove the finalizer ${FINALIZER} to keep the backups.`;
        log.warn('Waiting for store credentials to delete backups', { problems: secrets.problems.map((p) => p.message) });
        options.recordEvent(key, { type: 'Warning', reason: 'BackupsNotDeleted', action: 'Delete', note });
        return 'retry';
      }
      credentials = secrets.secrets.s3Credentials;
    }
    return withStore(storeConfigFromSpec(spec.store, credentials), (store) => this.deleteStoredObjects(key, store, log));
  }

  private async deleteStoredObjects(key: string, store: ObjectStore, log: Logger): Promise<'done'> {
    const keys = (await listBackupObjects(store)).map((info) => info.key).filter((key) => parseBackupKey(key) !== undefined);
    // Bounded parallelism: a store with years of deltas has many objects, but hammering it helps nobody.
    const locked = await deleteUnlessLocked(store, keys, 8);
    const deleted = keys.length - locked.length;
    log.info('Deleted stored backups', { objects: deleted, store: store.describe() });
    if (locked.length > 0) {
      // Waiting could take years (COMPLIANCE): let the object go and say what stays. The marker stays
      // with the locked objects: the prefix still holds this cluster's backups.
      const summary = summariseLocked(locked);
      log.warn('Left backups under S3 Object Lock', { locked: summary.count, lockedUntil: summary.until?.toISOString() });
      this.options.recordEvent(key, {
        type: 'Warning',
        reason: 'BackupsNotDeleted',
        action: 'Delete',
        note: `Deleted ${deleted} backup objects from ${store.describe()} (deletionPolicy Delete); ${describeLocked(summary)}`,
      });
      return 'done';
    }
    await store.delete(STORE_MARKER_KEY); // last: the prefix is free for another cluster only once empty
    this.options.recordEvent(key, {
      type: 'Normal',
      reason: 'BackupsDeleted',
      action: 'Delete',
      note: `Deleted ${keys.length} backup objects from ${store.describe()} (deletionPolicy Delete)`,
    });
    return 'done';
  }
}
