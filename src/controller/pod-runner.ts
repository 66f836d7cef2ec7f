import { createHash } from 'node:crypto';
import type { V1ConfigMap, V1Deployment, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { API_VERSION, KIND, type EtcdBackup } from '../api/v1alpha1/etcd-backup-types.js';
import { referencedSecrets } from './secrets.js';
import { DEFAULT_BASE_HEAP_MB } from './supervisor-host.js';

/**
 * `spec.runner: pod`: the objects that run one EtcdBackup's worker as a one-replica Deployment
 * (`etcd-backup run -f`), built as PURE functions of the EtcdBackup so they can be unit-tested and
 * reused (e.g. by a benchmark) without an API server. The controller does the I/O.
 *
 * - ConfigMap: `backup.yaml`, the EtcdBackup itself (same spec) in the file format `run -f` reads.
 * - Secrets: the user's referenced Secrets are mounted directly at `<SECRETS_DIR>/<name>/<key>`,
 *   the layout `--secrets-dir` reads. No copies: the operator needs no write access to Secrets
 *   and no second object holds the values.
 * - Deployment: Recreate (the old pod is gone before the new one starts, so two workers never
 *   write the same store), non-root, read-only root filesystem, no service-account token (the
 *   worker never calls the API), memory limit = budget + WORKER_BASE_MEMORY_MIB.
 */

export const CONFIG_DIR = '/etc/etcd-backup/config';
export const CONFIG_FILE = 'backup.yaml';
export const SECRETS_DIR = '/etc/etcd-backup/secrets';
/** The worker's V8 heap besides the budget: the same base as an operator-hosted worker. */
export const WORKER_BASE_HEAP_MIB = DEFAULT_BASE_HEAP_MB;
/**
 * Memory limit besides the budget: the heap base plus 64 MiB for what lives outside the V8 heap
 * (Node itself, code, native TLS/gzip state).
 */
export const WORKER_BASE_MEMORY_MIB = WORKER_BASE_HEAP_MIB + 64;
export const WORKER_UID = 65532;

export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
/** The selector label: the EtcdBackup's uid (names may be longer than a label value allows). */
export const LABEL_INSTANCE = 'etcdbackup.io/instance';
/** On the pod template: changes with the config or a referenced Secret, which rolls the pod. */
export const ANNOTATION_CONFIG_HASH = 'etcdbackup.io/config-hash';
/** On the ConfigMap and Deployment: what was applied, so an unchanged reconcile writes nothing. */
export const ANNOTATION_APPLIED_HASH = 'etcdbackup.io/applied-hash';

const MiB = 2 ** 20;

export interface PodRunnerInput {
  /** A validated, defaulted EtcdBackup with metadata.name, namespace and uid. */
  backup: EtcdBackup;
  budgetBytes: number;
  /** spec.pod.image, else the operator's default worker image. */
  image: string;
  /** `Secret name -> resourceVersion` of the referenced Secrets: a change restarts the worker. */
  secretVersions?: Record<string, string>;
}

export interface PodRunnerObjects {
  configMap: V1ConfigMap;
  deployment: V1Deployment;
}

/** Both objects share this name: `etcd-backup-<name>`, shortened with a hash if too long. */
export function workerName(backupName: string): string {
  const name = `etcd-backup-${backupName}`;
  if (name.length <= 63) return name;
  const hash = createHash('sha256').update(backupName).digest('hex').slice(0, 8);
  return `${name.slice(0, 54).replace(/[-.]+$/, '')}-${hash}`;
}

/** Memory limit and heap cap (MiB) for a worker with this budget. */
export function workerMemory(budgetBytes: number): { limitMiB: number; heapMiB: number } {
  const budgetMiB = Math.ceil(budgetBytes / MiB);
  return { limitMiB: budgetMiB + WORKER_BASE_MEMORY_MIB, heapMiB: budgetMiB + WORKER_BASE_HEAP_MIB };
}

/** The file `etcd-backup run -f` reads: the EtcdBackup with its spec as the API holds it. */
export function workerConfigYaml(backup: EtcdBackup): string {
  const doc = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: backup.metadata.name, namespace: backup.metadata.namespace },
    spec: backup.spec,
  };
  return stringify(doc, { lineWidth: 0 });
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

export function buildPodRunnerObjects(input: PodRunnerInput): PodRunnerObjects {
  const { backup, image } = input;
  const { name: backupName = '', namespace = '', uid = '' } = backup.metadata;
  const name = workerName(backupName);
  const labels = {
    [LABEL_COMPONENT]: 'backup-worker',
    [LABEL_MANAGED_BY]: 'etcd-backup-operator',
    [LABEL_INSTANCE]: uid,
  };
  const ownerReferences = [{ apiVersion: API_VERSION, kind: KIND, name: backupName, uid, controller: true, blockOwnerDeletion: true }];
  const config = workerConfigYaml(backup);
  const secretVersions = Object.entries(input.secretVersions ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const configHash = hashOf([config, secretVersions]);

  const secretNames = [...new Set(referencedSecrets(backup.spec).map((ref) => ref.name))].sort();
  const volumes: V1Volume[] = [
    { name: 'config', configMap: { name, defaultMode: 0o444 } },
    // The worker writes only temp files (verification restores); the root filesystem is read-only.
    { name: 'tmp', emptyDir: {} },
    ...secretNames.map((secretName, i) => ({ name: `secret-${i}`, secret: { secretName, defaultMode: 0o440 } })),
  ];
  const volumeMounts: V1VolumeMount[] = [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
    ...secretNames.map((secretName, i) => ({ name: `secret-${i}`, mountPath: `${SECRETS_DIR}/${secretName}`, readOnly: true })),
  ];
  const { limitMiB, heapMiB } = workerMemory(input.budgetBytes);
  const memory = `${limitMiB}Mi`;

  const configMap: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels, ownerReferences },
    data: { [CONFIG_FILE]: config },
  };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels, ownerReferences, annotations: { 'etcdbackup.io/etcd-backup': backupName } },
    spec: {
      replicas: 1,
      // Never two workers on one store: the old pod is gone before the new one starts.
      strategy: { type: 'Recreate' },
      revisionHistoryLimit: 2,
      selector: { matchLabels: { [LABEL_INSTANCE]: uid } },
      template: {
        metadata: { labels, annotations: { [ANNOTATION_CONFIG_HASH]: configHash } },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // Enough for the worker to cancel in-flight uploads on SIGTERM (nothing partial stays visible).
          terminationGracePeriodSeconds: 60,
          ...(backup.spec.pod?.nodeSelector ? { nodeSelector: { ...backup.spec.pod.nodeSelector } } : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: WORKER_UID,
            runAsGroup: WORKER_UID,
            fsGroup: WORKER_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'worker',
              image,
              // The image's entrypoint is the etcd-backup CLI.
              args: ['run', '-f', `${CONFIG_DIR}/${CONFIG_FILE}`, '--secrets-dir', SECRETS_DIR],
              env: [{ name: 'NODE_OPTIONS', value: `--max-old-space-size=${heapMiB}` }],
              resources: { requests: { cpu: '100m', memory }, limits: { memory } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  // Computed last, over everything above: equal hashes mean nothing to write.
  const applied = hashOf([configMap, deployment]);
  configMap.metadata!.annotations = { [ANNOTATION_APPLIED_HASH]: applied };
  deployment.metadata!.annotations = { ...deployment.metadata!.annotations, [ANNOTATION_APPLIED_HASH]: applied };
  return { configMap, deployment };
}

/** Whether the worker Deployment has an available pod, and a message saying why not. */
export function deploymentAvailability(deployment: V1Deployment | undefined): { available: boolean; message: string } {
  if (!deployment) return { available: false, message: 'The worker Deployment does not exist yet' };
  const name = deployment.metadata?.name ?? '';
  const available = (deployment.status?.availableReplicas ?? 0) >= 1;
  if (available) return { available, message: `Worker Deployment ${name} has an available pod` };
  // Kubernetes' own explanation, when the Deployment controller gave one (e.g. ProgressDeadlineExceeded).
  const condition =
    deployment.status?.conditions?.find((c) => c.type === 'Progressing' && c.status === 'False') ??
    deployment.status?.conditions?.find((c) => c.type === 'Available' && c.status === 'False');
  const why = condition?.message ? `: ${condition.message}` : '';
  return { available, message: `Worker Deployment ${name} has no available pod${why}` };
}

/** True when `obj` is controlled by the EtcdBackup with this uid (never take over someone else's object). */
export function controlledBy(obj: { metadata?: { ownerReferences?: Array<{ uid: string; controller?: boolean }> } }, uid: string): boolean {
  return (obj.metadata?.ownerReferences ?? []).some((ref) => ref.uid === uid && ref.controller === true);
}
