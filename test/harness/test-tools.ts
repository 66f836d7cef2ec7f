import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the test tiers find the real programs that scripts/install-test-tools.sh builds into .tools/.
 * The versions here and in that script are one pin: change both together.
 *
 * A tier whose tool is missing skips with one line naming the command that builds it, so `npm test`
 * still passes on a machine with Node and Debian's packages only; `.ci/run` builds every tool first.
 */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TOOLS_DIR = process.env.ETCD_BACKUP_TOOLS_DIR ?? join(REPO_ROOT, '.tools');

export const ETCD_VERSIONS = { '3.5': 'v3.5.36', '3.6': 'v3.6.17' } as const;
export const KUBERNETES_VERSION = 'v1.37.2';
export const MINIO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';

export type EtcdMinor = '3.4' | keyof typeof ETCD_VERSIONS;

/** The etcd binaries of one version: 3.4 is Debian's (on PATH), 3.5 and 3.6 are built into .tools/. */
export interface EtcdTools {
  readonly minor: EtcdMinor;
  readonly etcd: string;
  readonly etcdctl: string;
  /** undefined for 3.4, which has no etcdutl. */
  readonly etcdutl?: string;
  /** Directory holding the binaries, to put first on PATH for a child process; undefined for 3.4. */
  readonly binDir?: string;
}

function built(dir: string, names: string[]): string | undefined {
  const bin = join(TOOLS_DIR, dir, 'bin');
  return names.every((name) => existsSync(join(bin, name))) ? bin : undefined;
}

/** The tools of an etcd minor version, or undefined when they are not built. */
export function etcdTools(minor: EtcdMinor): EtcdTools | undefined {
  if (minor === '3.4') return { minor, etcd: 'etcd', etcdctl: 'etcdctl' };
  const bin = built(`etcd-${ETCD_VERSIONS[minor]}`, ['etcd', 'etcdctl', 'etcdutl']);
  if (!bin) return undefined;
  return { minor, etcd: join(bin, 'etcd'), etcdctl: join(bin, 'etcdctl'), etcdutl: join(bin, 'etcdutl'), binDir: bin };
}

export function kubeApiServerBinary(): string | undefined {
  const bin = built(`kubernetes-${KUBERNETES_VERSION}`, ['kube-apiserver']);
  return bin && join(bin, 'kube-apiserver');
}

export function minioBinary(): string | undefined {
  const bin = built(`minio-${MINIO_VERSION}`, ['minio']);
  return bin && join(bin, 'minio');
}

/**
 * The `skip` option for a test that needs a built tool: false when present, else the one line that says
 * how to build it (node:test prints it beside the skipped test).
 */
export function skipUnlessBuilt(present: unknown, tool: string): false | string {
  return present ? false : `${tool} is not built: run scripts/install-test-tools.sh`;
}
