import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../src/etcd/client.js';
import { startLocalEtcd, type LocalEtcd, type LocalEtcdOptions } from '../../src/etcd/local-etcd.js';
import type { EtcdTools } from './test-tools.js';

/** A real etcd on free 127.0.0.1 ports in its own temp dir: Debian's 3.4 by default, or a built 3.5 / 3.6. */
export interface TestEtcd extends LocalEtcd {
  readonly workDir: string;
  /** The tools it runs; undefined for the default (ETCD_BIN or `etcd` on PATH). */
  readonly tools?: EtcdTools;
  /** A client for this etcd; closed by stop(). */
  client(): Etcd3;
  /** Stops etcd, closes clients and removes the temp dir. */
  stop(): Promise<void>;
  /** Stops etcd but keeps the data dir (for restart tests). */
  stopProcess(): Promise<void>;
}

export interface TestEtcdOptions extends Partial<LocalEtcdOptions> {
  /** Which etcd to run (etcdTools('3.6')...); default ETCD_BIN or `etcd` on PATH (Debian's 3.4). */
  tools?: EtcdTools;
}

export async function startTestEtcd({ tools, ...options }: TestEtcdOptions = {}): Promise<TestEtcd> {
  const workDir = await mkdtemp(join(tmpdir(), 'etcd-test-'));
  const etcd = await startLocalEtcd({ dataDir: join(workDir, 'data'), name: 'test', binary: tools?.etcd, ...options });
  const clients: Etcd3[] = [];
  return {
    ...etcd,
    workDir,
    tools,
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
