import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';

/** One test file's shared source etcd and temp dirs; everything is released after the file's tests. */
export interface EtcdSuite {
  /** The source etcd (started in the file's first `before`). */
  readonly source: TestEtcd;
  /** A client of the source that holds no watches. */
  readonly writer: Etcd3;
  /** A fresh temp dir, removed after the file's tests. */
  tempDir(prefix: string): Promise<string>;
  /** Runs `cleanup` after the file's tests, the last deferred first; a failing one does not stop the others. */
  defer(cleanup: () => Promise<void>): void;
}

/**
 * Registers the file's `before`/`after` hooks. `setup` runs in the same `before`, once the source is
 * up: Node 20 runs a file's top-level `before` hooks concurrently, so a second hook could not rely on it.
 */
export function etcdSuite(setup?: (suite: EtcdSuite) => Promise<void>): EtcdSuite {
  let source: TestEtcd | undefined;
  let writer: Etcd3 | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('etcdSuite: the source etcd is not started yet (use it inside a hook or test)');
    return value;
  };
  before(async () => {
    source = await startTestEtcd();
    writer = source.client();
    await setup?.(suite);
  });
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await source?.stop();
  });
  const suite: EtcdSuite = {
    get source() {
      return started(source);
    },
    get writer() {
      return started(writer);
    },
    async tempDir(prefix) {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      return dir;
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
  };
  return suite;
}
