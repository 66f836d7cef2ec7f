import type { EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';
import { recoverArchivedRevision } from '../archive/revision-ranges.js';
import type { ObjectInfo } from '../store/object-store.js';
import { classifyKeys } from '../archive/naming.js';
import { reachStatus } from '../restore/restore-plan.js';

/**
 * What the store says about an EtcdBackup whose worker the operator cannot ask (runner: pod): the
 * store is the source of truth, so the last full snapshot, the last delta and the archived
 * revision follow from a listing alone, by the same rules the worker resumes with.
 */
export type StoreObservation = Pick<
  EtcdBackupStatus,
  'lastFullSnapshot' | 'lastDeltaSnapshot' | 'archivedRevision' | 'recoverableWindow' | 'replayRevisions'
>;

export function observeStore(objects: readonly ObjectInfo[]): StoreObservation {
  const infos = new Map(objects.map((o) => [o.key, o]));
  const listing = classifyKeys(infos.keys());
  const observation: StoreObservation = {};
  const full = listing.fulls.at(-1);
  if (full) {
    observation.lastFullSnapshot = {
      revision: full.revision,
      time: full.time.toISOString(),
      object: full.key,
      sizeBytes: infos.get(full.key)?.size ?? 0,
    };
  }
  // The newest delta is the one reaching furthest; its upload time is the object's.
  let delta = listing.deltas[0];
  for (const d of listing.deltas) if (d.toRevision > (delta?.toRevision ?? -1)) delta = d;
  if (delta) {
    observation.lastDeltaSnapshot = {
      fromRevision: delta.fromRevision,
      toRevision: delta.toRevision,
      time: (infos.get(delta.key)?.lastModified ?? new Date(0)).toISOString(),
      object: delta.key,
    };
  }
  const archived = recoverArchivedRevision(listing);
  if (archived !== undefined) observation.archivedRevision = archived;
  Object.assign(observation, reachStatus(listing, objects));
  return observation;
}
