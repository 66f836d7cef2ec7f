import { ObjectLockedError } from '../errors.js';
import type { ObjectStore } from './object-store.js';

/**
 * Deletes `keys`, `parallelism` at a time; an object still under S3 Object Lock is left (the store
 * never sends a delete for it) and returned with its retain-until date, in key order. Any other
 * failure is thrown.
 */
export async function deleteUnlessLocked(
  store: Pick<ObjectStore, 'delete'>,
  keys: readonly string[],
  parallelism = 1,
): Promise<Array<{ key: string; retainUntil: Date | undefined }>> {
  const locked: Array<{ key: string; retainUntil: Date | undefined }> = [];
  const pending = [...keys];
  await Promise.all(
    Array.from({ length: Math.min(parallelism, pending.length) }, async () => {
      for (let key = pending.shift(); key !== undefined; key = pending.shift()) {
        try {
          await store.delete(key);
        } catch (err) {
          if (!(err instanceof ObjectLockedError)) throw err;
          locked.push({ key, retainUntil: err.retainUntil });
        }
      }
    }),
  );
  return locked.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
