import type { ObjectStore } from '../../src/store/object-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { contiguousChainEnd } from '../../src/restore/restore-plan.js';

/** What a store holds, as restore sees it: the newest full snapshot and the deltas that continue it. */
export interface Chain {
  fulls: number;
  deltas: number;
  fullRevision?: number;
  /** Last revision reachable from the newest full snapshot through contiguous deltas (0 without one). */
  end: number;
  keys: string[];
}

export async function chainOf(store: ObjectStore): Promise<Chain> {
  const keys = (await store.list('')).map((o) => o.key);
  const listing = classifyKeys(keys);
  const full = listing.fulls.at(-1);
  return {
    fulls: listing.fulls.length,
    deltas: listing.deltas.length,
    fullRevision: full?.revision,
    end: full ? contiguousChainEnd(listing.deltas, full.revision) : 0,
    keys,
  };
}
