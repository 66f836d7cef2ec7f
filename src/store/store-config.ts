import type { ObjectLockSettings } from '../api/object-lock.js';

/**
 * What names a store: the config the factory builds from and each provider takes. Its own module so
 * that the factory and the providers both import it instead of each other.
 */
export interface LocalStoreConfig {
  kind: 'local';
  path: string;
}

export interface S3StoreConfig {
  kind: 's3';
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' for the bucket root). */
  prefix: string;
  region: string;
  /** Custom endpoint for S3-compatible servers; undefined means AWS. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Undefined means the standard AWS credential chain (environment, profile, IRSA...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Write every backup object with this Object Lock retention (the bucket must have Object Lock on). */
  objectLock?: ObjectLockSettings;
}

export type StoreConfig = LocalStoreConfig | S3StoreConfig;
