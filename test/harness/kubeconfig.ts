// Kubeconfigs pointing at a plain-http test API server, for kubectl and for client-node.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';

const NAME = 'kube-api-test';

/** Writes `<dir>/kubeconfig` (current context: the server, namespace "default") and returns its path. */
export async function writeKubeconfig(dir: string, url: string): Promise<string> {
  const path = join(dir, 'kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: NAME, cluster: { server: url } }],
    users: [{ name: NAME, user: { token: 'test' } }],
    contexts: [{ name: NAME, context: { cluster: NAME, user: NAME, namespace: 'default' } }],
    'current-context': NAME,
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
  return path;
}

/** client-node config for the server; skipTLSVerify is what lets client-node talk plain http. */
export function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: NAME, server: url, skipTLSVerify: true }],
    users: [{ name: NAME }],
    contexts: [{ name: NAME, cluster: NAME, user: NAME, namespace: 'default' }],
    currentContext: NAME,
  });
  return kc;
}
