import { classifyKeys } from '../archive/naming.js';
import type { ObjectStore } from '../store/object-store.js';

export interface ListedBackup {
  kind: 'full' | 'delta';
  key: string;
  /** Full: the snapshot's revision (lower bound); delta: the last revision it holds. */
  revision: number;
  fromRevision?: number;
  sizeBytes: number;
  time: string;
  compression: 'gzip' | 'none';
}

/** Every backup in the store, full snapshots and deltas, oldest first. */
export async function listBackups(store: ObjectStore): Promise<ListedBackup[]> {
  const objects = await store.list('');
  const info = new Map(objects.map((o) => [o.key, o]));
  const listing = classifyKeys(objects.map((o) => o.key));
  const entries: ListedBackup[] = [
    ...listing.fulls.map((full) => ({
      kind: 'full' as const,
      key: full.key,
      revision: full.revision,
      sizeBytes: info.get(full.key)!.size,
      time: full.time.toISOString(),
      compression: full.compression,
    })),
    ...listing.deltas.map((delta) => ({
      kind: 'delta' as const,
      key: delta.key,
      revision: delta.toRevision,
      fromRevision: delta.fromRevision,
      sizeBytes: info.get(delta.key)!.size,
      time: info.get(delta.key)!.lastModified.toISOString(),
      compression: delta.compression,
    })),
  ];
  return entries.sort((a, b) => a.revision - b.revision || (a.kind === 'full' ? -1 : 1));
}

export function formatListing(entries: ListedBackup[]): string {
  if (entries.length === 0) return 'no backups';
  const rows = entries.map((e) => [
    e.kind,
    e.fromRevision === undefined ? String(e.revision) : `${e.fromRevision}-${e.revision}`,
    String(e.sizeBytes),
    e.time,
    e.key,
  ]);
  const header = ['KIND', 'REVISION', 'BYTES', 'TIME', 'OBJECT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
