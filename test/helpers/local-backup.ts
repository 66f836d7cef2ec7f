import { join } from 'node:path';
import type { EtcdBackup } from '../../src/api/v1alpha1/etcd-backup-types.js';

/**
 * A small EtcdBackup of `etcdUrl` into a local store under `storeRoot`: a full snapshot only at
 * start (the schedule does not fire in a test), deltas every second, one fetch at a time.
 */
export function localBackup(name: string, namespace: string, etcdUrl: string, storeRoot: string, budget = '16Mi'): EtcdBackup {
  return {
    apiVersion: 'etcdbackup.io/v1alpha1',
    kind: 'EtcdBackup',
    metadata: { name, namespace },
    spec: {
      etcd: { endpoints: [etcdUrl] },
      store: { local: { path: join(storeRoot, name) } },
      fullSnapshot: { schedule: '0 0 1 1 *' },
      deltaSnapshot: { period: '1s', chunkRevisions: 1000, chunkParallelism: 1 },
      memory: { budget },
    },
  } as EtcdBackup;
}
