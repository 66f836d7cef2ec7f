/**
 * Says what a revision the replay did not make holds, for the error that aborts the restore: which
 * keys it wrote or deleted, and whether the deleted keys were on a lease (then the temporary member
 * revoked a lease by itself). Guessing the cause sent users after the wrong problem.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import { errorMessage } from '../errors.js';

const KEYS_SHOWN = 5;
const WAIT_MS = 3000;

interface RevisionContent {
  puts: string[];
  deletes: string[];
  /** Lease IDs the deleted keys were attached to. */
  leases: Set<string>;
}

/** One line describing revisions [from, to] of `client`'s etcd; never throws. */
export async function describeForeignRevisions(client: Etcd3, from: number, to: number): Promise<string> {
  let content: Map<number, RevisionContent>;
  try {
    content = await readRevisions(client, from, to);
  } catch (err) {
    return `what revision ${from} holds could not be read (${errorMessage(err)})`;
  }
  if (content.size === 0) return `revision ${from} could not be read back`;
  return [...content].map(([rev, c]) => describeOne(rev, c)).join('; ');
}

/** Pure: the words for one revision's content. */
export function describeOne(rev: number, c: RevisionContent): string {
  const parts: string[] = [];
  if (c.deletes.length > 0) {
    const onLease = c.leases.size > 0
      ? ` on lease ${[...c.leases].map((id) => BigInt(id).toString(16)).join(', ')} (hex): a lease was revoked or expired in the etcd being restored (its TTL ran out, or something else revoked it)`
      : '';
    parts.push(`deleted ${listKeys(c.deletes)}${onLease}`);
  }
  if (c.puts.length > 0) parts.push(`wrote ${listKeys(c.puts)}`);
  return `revision ${rev} ${parts.join(' and ')}`;
}

function listKeys(keys: string[]): string {
  const shown = keys.slice(0, KEYS_SHOWN).map((k) => JSON.stringify(k.length > 60 ? `${k.slice(0, 57)}...` : k));
  return `${keys.length} key${keys.length === 1 ? '' : 's'} (${shown.join(', ')}${keys.length > KEYS_SHOWN ? ', ...' : ''})`;
}

async function readRevisions(client: Etcd3, from: number, to: number): Promise<Map<number, RevisionContent>> {
  const content = new Map<number, RevisionContent>();
  const watcher = await client.watch().prefix('').withPreviousKV().startRevision(String(from)).create();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, WAIT_MS);
      const record = (kind: 'puts' | 'deletes', kv: IKeyValue, previous?: IKeyValue): void => {
        const rev = Number(kv.mod_revision);
        if (rev > to) {
          clearTimeout(timer);
          resolve();
          return;
        }
        let entry = content.get(rev);
        if (!entry) content.set(rev, (entry = { puts: [], deletes: [], leases: new Set() }));
        entry[kind].push(kv.key.toString());
        if (kind === 'deletes' && previous && String(previous.lease) !== '0') entry.leases.add(String(previous.lease));
        if (rev === to) {
          // The rest of this revision arrives in the same response; resolve on the next tick.
          clearTimeout(timer);
          setImmediate(resolve);
        }
      };
      watcher.on('put', (kv, previous) => record('puts', kv, previous));
      watcher.on('delete', (kv, previous) => record('deletes', kv, previous));
      watcher.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
  return content;
}
