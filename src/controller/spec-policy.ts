import type { EtcdBackupSpec } from '../api/v1alpha1/etcd-backup-types.js';

/**
 * What the operator lets an EtcdBackup author do with the operator's own privileges (see
 * docs/security.md). Whoever may create an EtcdBackup must not gain more than they could do with
 * their own rights: so by default a spec may not run an arbitrary image with Secrets mounted, borrow
 * the operator's cloud identity or filesystem, or send credentials over plain text. The operator's
 * flags widen this; each refusal is a SpecValid=False problem naming the field and the flag.
 */
export interface OperatorPolicy {
  /**
   * Images spec.pod.image may name besides the operator's default worker image. An entry ending in
   * `*` matches every image that starts with the rest (`registry.example/etcd-backup:*`).
   */
  allowedWorkerImages: readonly string[];
  /** S3 stores without credentialsSecretRef use the operator's (or worker pod's) own AWS identity. */
  allowAmbientCredentials: boolean;
  /** spec.store.local writes into the operator's (or worker pod's) filesystem. */
  allowLocalStore: boolean;
}

export const DEFAULT_POLICY: OperatorPolicy = { allowedWorkerImages: [], allowAmbientCredentials: false, allowLocalStore: false };

export function imageAllowed(image: string, defaultImage: string | undefined, allowed: readonly string[]): boolean {
  if (image === defaultImage) return true;
  return allowed.some((entry) => (entry.endsWith('*') ? image.startsWith(entry.slice(0, -1)) : image === entry));
}

/** Every way `spec` (valid by the schema) exceeds `policy`; empty when the operator may run it. */
export function policyProblems(spec: EtcdBackupSpec, policy: OperatorPolicy, defaultImage: string | undefined): string[] {
  const problems: string[] = [];
  const image = spec.pod?.image;
  if (spec.runner === 'pod' && image && !imageAllowed(image, defaultImage, policy.allowedWorkerImages)) {
    problems.push(
      `spec.pod.image: ${JSON.stringify(image)} is not allowed: the operator runs its default worker image` +
        `${defaultImage ? ` (${defaultImage})` : ''} and the images of its --allowed-worker-images flag only`,
    );
  }
  const s3 = spec.store.s3;
  if (s3 && !s3.credentialsSecretRef && !policy.allowAmbientCredentials) {
    problems.push(
      'spec.store.s3.credentialsSecretRef: required: the operator does not lend its own cloud identity ' +
        'to EtcdBackups unless it runs with --allow-ambient-credentials',
    );
  }
  if (spec.store.local && !policy.allowLocalStore) {
    problems.push(
      "spec.store.local: not allowed: a local store writes into the operator's filesystem; " +
        'use an s3 store, or run the operator with --allow-local-store',
    );
  }
  const plainEtcd = spec.etcd.endpoints.filter((endpoint) => endpoint.startsWith('http://'));
  if (spec.etcd.credentialsSecretRef && !spec.etcd.tlsSecretRef && plainEtcd.length > 0 && spec.etcd.insecure !== true) {
    problems.push(
      `spec.etcd.credentialsSecretRef: the password would be sent unencrypted to ${plainEtcd.join(', ')}; ` +
        'use https:// endpoints (or tlsSecretRef), or set spec.etcd.insecure: true',
    );
  }
  if (s3?.credentialsSecretRef && s3.endpoint?.startsWith('http://') && s3.insecure !== true) {
    problems.push(
      `spec.store.s3.credentialsSecretRef: requests signed with these keys (and a session token) would go to ${s3.endpoint} without TLS; ` +
        'use an https:// endpoint, or set spec.store.s3.insecure: true',
    );
  }
  return problems;
}
