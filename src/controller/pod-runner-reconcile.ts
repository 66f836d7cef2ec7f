import type { AppsV1Api, CoreV1Api, V1ConfigMap, V1Deployment } from '@kubernetes/client-node';
import type { EtcdBackup, EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';
import type { ResolvedSpec } from '../api/validate.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import { errorMessage, OperatorError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { computeStatus, type StatusInputs, untilStale } from './conditions.js';
import { isNotFound } from './kube-errors.js';
import { ANNOTATION_APPLIED_HASH, buildPodRunnerObjects, controlledBy, deploymentAvailability, workerName } from './pod-runner.js';
import type { StoreObserver } from './store-observer.js';
import type { StoreObservation } from './store-status.js';

export interface PodRunnerReconcilerOptions {
  core: CoreV1Api;
  apps: AppsV1Api;
  stores: StoreObserver;
  /** Image of runner: pod workers when spec.pod.image is not set (the operator's --worker-image). */
  workerImage?: string;
  /** How often status is refreshed from the store and the Deployment. Default 30 s. */
  podStatusIntervalMs?: number;
}

/**
 * runner: pod. The worker runs in a Deployment (and ConfigMap) the operator owns; this converges them
 * to the spec, removes them when the EtcdBackup leaves runner: pod, and computes the status from the
 * store and the Deployment's availability.
 */
export class PodRunnerReconciler {
  /** Keys known to have no worker Deployment (saves API calls when runner is operator). */
  private readonly absent = new Set<string>();

  constructor(private readonly options: PodRunnerReconcilerOptions) {}

  /**
   * Creates or updates the worker objects and returns the status to write and when to look again.
   * The caller has stopped any local worker process first: never two workers on one store.
   */
  async reconcile(
    key: string,
    obj: EtcdBackup,
    resolved: ResolvedSpec,
    secrets: { secrets: ResolvedSecrets; versions: Record<string, string> },
    base: Omit<StatusInputs, 'worker'>,
    log: Logger,
  ): Promise<{ status: EtcdBackupStatus; requeueAfterMs?: number }> {
    // An empty spec.pod.image means "the default", like an absent one.
    const image = resolved.spec.pod?.image ? resolved.spec.pod.image : this.options.workerImage;
    if (!image) {
      const problem = 'spec.pod.image: required, since the operator has no default worker image (--worker-image)';
      return { status: computeStatus({ ...base, specProblems: [problem], worker: { phase: 'Stopped' } }) };
    }
    this.absent.delete(key);
    const uid = obj.metadata.uid ?? '';
    const desired = buildPodRunnerObjects({
      backup: { ...obj, spec: resolved.spec },
      budgetBytes: resolved.budgetBytes,
      image,
      secretVersions: secrets.versions,
    });
    await this.ensureConfigMap(desired.configMap, uid, log);
    const deployment = await this.ensureDeployment(desired.deployment, uid, log);
    const { available, message } = deploymentAvailability(deployment);

    let store: StoreObservation | undefined;
    let storeError: string | undefined;
    try {
      store = await this.options.stores.observe(key, resolved.spec.store, secrets.secrets.s3Credentials);
    } catch (err) {
      storeError = errorMessage(err);
    }
    const inputs: StatusInputs = { ...base, worker: { phase: 'Pod', available, message, store, storeError } };
    return { status: computeStatus(inputs), requeueAfterMs: untilStale(inputs, this.options.podStatusIntervalMs ?? 30_000) };
  }

  /**
   * Deletes the worker Deployment and ConfigMap of runner: pod, if this EtcdBackup owns them.
   * Foreground deletion keeps the Deployment until its pods are gone, so "absent" means no pod
   * can still be writing. Returns true once both are gone.
   */
  async remove(key: string, obj: EtcdBackup, log: Logger): Promise<boolean> {
    if (this.absent.has(key)) return true;
    const { core, apps } = this.options;
    const namespace = obj.metadata.namespace ?? '';
    const name = workerName(obj.metadata.name ?? '');
    const uid = obj.metadata.uid ?? '';
    const deployment = await orUndefined(apps.readNamespacedDeployment({ namespace, name }));
    if (deployment && controlledBy(deployment, uid)) {
      if (!deployment.metadata?.deletionTimestamp) {
        await orUndefined(apps.deleteNamespacedDeployment({ namespace, name, propagationPolicy: 'Foreground' }));
        log.info('Deleted worker Deployment', { deployment: name });
      }
      if (await orUndefined(apps.readNamespacedDeployment({ namespace, name }))) return false;
    }
    const configMap = await orUndefined(core.readNamespacedConfigMap({ namespace, name }));
    if (configMap && controlledBy(configMap, uid)) await orUndefined(core.deleteNamespacedConfigMap({ namespace, name }));
    this.absent.add(key);
    this.options.stores.forget(key);
    return true;
  }

  forget(key: string): void {
    this.absent.delete(key);
  }

  private async ensureConfigMap(desired: V1ConfigMap, uid: string, log: Logger): Promise<void> {
    const { core } = this.options;
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const current = await orUndefined(core.readNamespacedConfigMap({ namespace, name }));
    if (!current) {
      await core.createNamespacedConfigMap({ namespace, body: desired });
      log.info('Created worker ConfigMap', { configMap: name });
      return;
    }
    assertControlled(current, uid, 'ConfigMap', namespace, name);
    if (appliedHash(current) === appliedHash(desired)) return;
    const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } };
    await core.replaceNamespacedConfigMap({ namespace, name, body });
    log.info('Updated worker ConfigMap', { configMap: name });
  }

  /** Creates or updates the worker Deployment; returns it as the API has it (with status). */
  private async ensureDeployment(desired: V1Deployment, uid: string, log: Logger): Promise<V1Deployment> {
    const { apps } = this.options;
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const current = await orUndefined(apps.readNamespacedDeployment({ namespace, name }));
    if (!current) {
      const created = await apps.createNamespacedDeployment({ namespace, body: desired });
      log.info('Created worker Deployment', { deployment: name });
      return created;
    }
    assertControlled(current, uid, 'Deployment', namespace, name);
    if (appliedHash(current) === appliedHash(desired)) return current;
    // PUT with the resourceVersion read: the whole object is ours, and a concurrent change gives 409.
    const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } };
    const updated = await apps.replaceNamespacedDeployment({ namespace, name, body });
    log.info('Updated worker Deployment', { deployment: name });
    return updated;
  }
}

/** The value of a read or delete; undefined on 404. */
async function orUndefined<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function appliedHash(obj: { metadata?: { annotations?: Record<string, string> } }): string | undefined {
  return obj.metadata?.annotations?.[ANNOTATION_APPLIED_HASH];
}

function assertControlled(obj: V1ConfigMap | V1Deployment, uid: string, kind: string, namespace: string, name: string): void {
  if (controlledBy(obj, uid)) return;
  // Never take over an object someone else made; retried with backoff until it is renamed or removed.
  throw new OperatorError('WorkerNameConflict', `${kind} ${namespace}/${name} exists and is not controlled by this EtcdBackup`);
}
