import type { S3StoreSpec, StoreSpec } from '../api/v1alpha1/etcd-backup-types.js';
import type { StoreConfig } from './store-config.js';
import { parseObjectLock, type ObjectLockSettings } from '../api/object-lock.js';

/** The store config an EtcdBackup spec names (validation guarantees exactly one of s3/local). */
export function storeConfigFromSpec(
  store: StoreSpec,
  s3Credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
): StoreConfig {
  if (store.local) return { kind: 'local', path: store.local.path };
  if (store.s3) {
    return {
      kind: 's3',
      bucket: store.s3.bucket,
      prefix: (store.s3.prefix ?? '').replace(/^\/+|\/+$/g, ''),
      region: store.s3.region || 'us-east-1',
      endpoint: store.s3.endpoint || undefined,
      forcePathStyle: store.s3.forcePathStyle ?? false,
      credentials: s3Credentials,
      ...objectLockFromSpec(store.s3.objectLock),
    };
  }
  throw new RangeError('spec.store names no store');
}

/** Validation has checked the lock settings; a bad one here is a programming error. */
function objectLockFromSpec(lock: S3StoreSpec['objectLock']): { objectLock?: ObjectLockSettings } {
  if (!lock) return {};
  const parsed = parseObjectLock(lock.mode, lock.retainFor, 'spec.store.s3.objectLock');
  if ('problem' in parsed) throw new RangeError(parsed.problem);
  return { objectLock: parsed.settings };
}
