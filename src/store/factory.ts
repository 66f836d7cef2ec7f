import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.js';
import type { MemoryBudget } from '../budget/memory-budget.js';
import { LocalStore } from './local-store.js';
import { parseObjectLock, type ObjectLockSettings } from '../api/object-lock.js';
import type { ObjectStore } from './object-store.js';
import type { StoreConfig } from './store-config.js';

/**
 * Parses a CLI store URL:
 *   file:///abs/path
 *   s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true
 *   s3://BUCKET/PREFIX?objectLockMode=COMPLIANCE&objectLockRetainFor=720h   (S3 Object Lock; both or neither)
 */
export function parseStoreUrl(raw: string): StoreConfig {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`invalid store URL ${JSON.stringify(raw)}: expected file:///abs/path or s3://bucket/prefix`);
  }
  if (url.protocol === 'file:') {
    if (url.host !== '' && url.host !== 'localhost') {
      throw new UsageError(`invalid store URL ${raw}: file URLs must be file:///absolute/path`);
    }
    const path = fileURLToPath(url);
    if (!isAbsolute(path)) throw new UsageError(`invalid store URL ${raw}: path must be absolute`);
    return { kind: 'local', path };
  }
  if (url.protocol === 's3:') {
    if (!url.hostname) throw new UsageError(`invalid store URL ${raw}: missing bucket (s3://BUCKET/PREFIX)`);
    const params = url.searchParams;
    const known = new Set(['endpoint', 'region', 'forcePathStyle', 'objectLockMode', 'objectLockRetainFor']);
    for (const name of params.keys()) {
      if (!known.has(name)) throw new UsageError(`invalid store URL: unknown parameter ${JSON.stringify(name)}`);
    }
    const forcePathStyle = params.get('forcePathStyle');
    if (forcePathStyle !== null && forcePathStyle !== 'true' && forcePathStyle !== 'false') {
      throw new UsageError(`invalid store URL: forcePathStyle must be true or false`);
    }
    const lockMode = params.get('objectLockMode');
    const lockFor = params.get('objectLockRetainFor');
    let objectLock: ObjectLockSettings | undefined;
    if (lockMode !== null || lockFor !== null) {
      if (lockMode === null || lockFor === null) {
        throw new UsageError('invalid store URL: objectLockMode and objectLockRetainFor go together');
      }
      const parsed = parseObjectLock(lockMode, lockFor, 'store URL objectLock');
      if ('problem' in parsed) throw new UsageError(`invalid ${parsed.problem}`);
      objectLock = parsed.settings;
    }
    return {
      kind: 's3',
      ...(objectLock ? { objectLock } : {}),
      bucket: url.hostname,
      prefix: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
      region: params.get('region') ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: params.get('endpoint') ?? undefined,
      forcePathStyle: forcePathStyle === 'true',
    };
  }
  throw new UsageError(`unsupported store URL ${JSON.stringify(raw)}: use file:///abs/path or s3://bucket/prefix`);
}

export interface StoreDependencies {
  /** Memory budget that streaming uploads reserve their buffers from (S3 multipart parts). */
  budget?: MemoryBudget | undefined;
}

/** Builds the store a config names. The S3 store (and the AWS SDK) is loaded only when named. */
export async function createStore(config: StoreConfig, deps: StoreDependencies = {}): Promise<ObjectStore> {
  switch (config.kind) {
    case 'local':
      return new LocalStore(config.path);
    case 's3': {
      const { S3Store } = await import('./s3-store.js');
      return S3Store.fromConfig(config, { budget: deps.budget });
    }
  }
}

export async function openStoreUrl(raw: string, deps: StoreDependencies = {}): Promise<ObjectStore> {
  return createStore(parseStoreUrl(raw), deps);
}
