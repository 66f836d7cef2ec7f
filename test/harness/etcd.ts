import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/etcd/client.js';
import { startLocalEtcd, type LocalEtcd, type LocalEtcdOptions } from '../../src/etcd/local-etcd.js';

/** A real etcd (Debian etcd-server) on free 127.0.0.1 ports in its own temp dir. */
export interface TestEtcd extends LocalEtcd {
  readonly workDir: string;
  /** A client for this etcd; closed by stop(). */
  client(): Etcd3;
  /** Stops etcd, closes clients and removes the temp dir. */
  stop(): Promise<void>;
  /** Stops etcd but keeps the data dir (for restart tests). */
  stopProcess(): Promise<void>;
}

export async function startTestEtcd(options: Partial<LocalEtcdOptions> = {}): Promise<TestEtcd> {
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-test-'));
  const etcd = await startLocalEtcd({ dataDir: join(workDir, 'data'), name: 'test', ...options });
  const clients: Etcd3[] = [];
  return {
    ...etcd,
    workDir,
    client() {
      const client = createEtcdClient({ endpoints: [etcd.clientUrl] });
      clients.push(client);
      return client;
    },
    stopProcess: () => etcd.stop(),
    async stop() {
      for (const client of clients) client.close();
      await etcd.stop();
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
