import { createHash } from 'node:crypto';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V1Secret,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, SNAPSHOT_REQUEST_ANNOTATION, VERSION, type EtcdBackup, type EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';
import { validateEtcdBackup, type ResolvedSpec } from '../api/validate.js';
import type { ResolvedSecrets, SupervisorEvent } from '../engine/supervisor-types.js';
import { errorMessage, OperatorError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import { createStore } from '../store/factory.js';
import { listBackupObjects, type ObjectStore } from '../store/object-store.js';
import { parseBackupKey } from '../store/naming.js';
import { storeConfigFromSpec } from '../store/spec-config.js';
import { computeStatus, isTransition, jsonEqual, mergePatch, Reason, type StatusInputs, type WorkerState } from './conditions.js';
import type { EventInfo, EventRecorder, EventSubject } from './events.js';
import { ResilientInformer } from './informer.js';
import { isNotFound, kubeErrorMessage } from './kube-errors.js';
import { ANNOTATION_APPLIED_HASH, buildPodRunnerObjects, controlledBy, deploymentAvailability, workerName } from './pod-runner.js';
import { observeStore, type StoreObservation } from './store-status.js';
import { coreSecretGetter, referencedSecrets, resolveSecrets, type SecretGetter } from './secrets.js';
import { SupervisorHost, type SupervisorHostOptions } from './supervisor-host.js';
import { WorkQueue } from './workqueue.js';

export const FINALIZER = 'etcdbackup.io/finalizer';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface EtcdBackupControllerOptions {
  kc: KubeConfig;
  /** Watch only this namespace; undefined watches all. */
  namespace?: string;
  logger: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  /** Concurrent reconciles (different keys only). Default 4. */
  workers?: number;
  /** Non-transition status updates (revisions, lag) are patched at most this often. Default 5 s. */
  statusMinIntervalMs?: number;
  /** Every object is reconciled at least this often, whatever happens. Default 10 min. */
  resyncIntervalMs?: number;
  /** Informer replacement period (dead-watch watchdog). Default 5 min. */
  relistIntervalMs?: number;
  /** Re-check a missing or incomplete Secret after this, doubling up to max. Default 2 s .. 2 min. */
  secretRetry?: { initialMs: number; maxMs: number };
  host?: Partial<Omit<SupervisorHostOptions, 'logger' | 'listener'>>;
  /** Image of runner: pod workers when spec.pod.image is not set (the operator's --worker-image). */
  workerImage?: string;
  /** runner: pod: how often status is refreshed from the store and the Deployment. Default 30 s. */
  podStatusIntervalMs?: number;
  now?: () => Date;
}

/**
 * Reconciles EtcdBackups: level-triggered and idempotent, one key at a time per object. Each run
 * reads the object and the world (Secrets, the worker's state) and converges: finalizer, spec
 * validation, Secrets, the worker process and the status. Handlers only enqueue keys; everything
 * else happens in reconcile.
 */
export class EtcdBackupController {
  private readonly co: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly getSecret: SecretGetter;
  private readonly queue = new WorkQueue<string>();
  readonly host: SupervisorHost;
  /** Only keys matter here: reconcile reads the object itself. */
  private readonly backups: ResilientInformer<KubernetesObject>;
  private readonly secrets: ResilientInformer<V1Secret>;
  private readonly now: () => Date;
  /** key -> namespace and names of the Secrets its spec references (to route Secret events). */
  private readonly secretIndex = new Map<string, { namespace: string; names: Set<string> }>();
  private readonly subjects = new Map<string, EventSubject>();
  private readonly lastStatusPatch = new Map<string, number>();
  private readonly secretRetries = new Map<string, number>();
  /** Keys known to have no worker Deployment (saves API calls when runner is operator). */
  private readonly podsAbsent = new Set<string>();
  /** runner: pod: the store each key's status is read from, reused while its config is unchanged. */
  private readonly stores = new Map<string, { id: string; store: ObjectStore }>();
  private workers: Promise<void>[] = [];
  private running = false;

  constructor(private readonly options: EtcdBackupControllerOptions) {
    this.co = options.kc.makeApiClient(CustomObjectsApi);
    this.core = options.kc.makeApiClient(CoreV1Api);
    this.apps = options.kc.makeApiClient(AppsV1Api);
    this.getSecret = coreSecretGetter(this.core);
    this.now = options.now ?? (() => new Date());
    const { logger, namespace } = options;

    this.host = new SupervisorHost({
      ...options.host,
      logger,
      listener: {
        onChange: (key) => this.queue.add(key),
        onReport: (key, report) => {
          const [ns = '', name = ''] = key.split('/');
          options.metrics.observeReport(ns, name, report);
        },
        onEvent: (key, event) => void this.recordEvent(key, supervisorEventInfo(event)),
        onStarted: (key) => {
          const [ns = '', name = ''] = key.split('/');
          options.metrics.supervisorStarted(ns, name);
        },
        onCrash: (key, message, restarts) => {
          const [ns = '', name = ''] = key.split('/');
          options.metrics.supervisorCrashed(ns, name);
          void this.recordEvent(key, {
            type: 'Warning',
            reason: Reason.SupervisorCrashed,
            action: 'Restart',
            note: `Backup worker failed (${restarts} time${restarts === 1 ? '' : 's'}): ${message}`,
          });
        },
      },
    });

    const backupsPath = namespace
      ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`
      : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
    this.backups = new ResilientInformer<KubernetesObject>({
      name: PLURAL,
      kc: options.kc,
      path: backupsPath,
      list: async () =>
        (namespace
          ? await this.co.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
          : await this.co.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as KubernetesListObject<KubernetesObject>,
      handlers: {
        onObject: (obj) => this.queue.add(keyOf(obj.metadata?.namespace, obj.metadata?.name)),
        onRelisted: () => this.enqueueAll(),
      },
      logger,
      relistIntervalMs: options.relistIntervalMs,
    });
    this.secrets = new ResilientInformer<V1Secret>({
      name: 'secrets',
      kc: options.kc,
      path: namespace ? `/api/v1/namespaces/${namespace}/secrets` : '/api/v1/secrets',
      list: () => (namespace ? this.core.listNamespacedSecret({ namespace }) : this.core.listSecretForAllNamespaces()),
      handlers: {
        onObject: (secret) => this.secretChanged(secret.metadata?.namespace ?? '', secret.metadata?.name ?? ''),
        onRelisted: () => undefined,
      },
      logger,
      relistIntervalMs: options.relistIntervalMs,
    });
  }

  hasSynced(): boolean {
    return this.backups.hasSynced() && this.secrets.hasSynced();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.backups.start();
    this.secrets.start();
    const count = this.options.workers ?? 4;
    this.workers = Array.from({ length: count }, () => this.runWorker());
    this.options.logger.info('Started EtcdBackup controller', { namespace: this.options.namespace ?? '(all)', workers: count });
  }

  /** Stops watching, lets in-flight reconciles finish, then stops every worker process. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await Promise.all([this.backups.stop(), this.secrets.stop()]);
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    await this.host.stopAll();
    for (const key of this.subjects.keys()) {
      const [ns = '', name = ''] = key.split('/');
      this.options.metrics.forget(ns, name);
    }
    this.options.logger.info('Stopped EtcdBackup controller');
  }

  private async runWorker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [namespace, name] = key.split('/');
      const log = this.options.logger.child({ namespace, name });
      try {
        const result = await this.reconcile(key);
        // A requeue is a poll, not a retry: reset the backoff first (controller-runtime semantics).
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        this.options.metrics.reconciles.inc({ result: 'success' });
      } catch (err) {
        if (err instanceof OperatorError && err.terminal) {
          this.queue.forget(key);
          this.options.metrics.reconciles.inc({ result: 'terminal' });
          log.error('Reconcile failed; not retrying until the EtcdBackup changes', { error: errorMessage(err) });
        } else {
          this.queue.addRateLimited(key);
          this.options.metrics.reconciles.inc({ result: 'error' });
          log.warn('Reconcile failed; retrying with backoff', {
            error: kubeErrorMessage(err),
            retries: this.queue.numRequeues(key),
          });
        }
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** Reconciles one EtcdBackup. Exposed for tests; normally driven by the queue. */
  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace = '', name = ''] = key.split('/');
    const log = this.options.logger.child({ namespace, name });
    let obj: EtcdBackup;
    try {
      obj = (await this.co.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as EtcdBackup;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Gone (deleted without our finalizer, or we missed the deletion): nothing may keep running.
      if (this.host.hashOf(key) !== undefined) log.info('Stopped backup worker of a deleted EtcdBackup');
      await this.host.stop(key);
      this.forget(key);
      return {};
    }
    this.subjects.set(key, {
      namespace,
      name,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
    });
    if (obj.metadata.deletionTimestamp) return this.finalize(key, obj, log);

    if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) {
      obj = await this.replace({ ...obj, metadata: { ...obj.metadata, finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] } });
      log.info('Added finalizer to EtcdBackup', { finalizer: FINALIZER });
    }

    const generation = obj.metadata.generation ?? 0;
    const base: Omit<StatusInputs, 'worker'> = {
      generation,
      previous: obj.status,
      now: this.now(),
      specProblems: [],
      secretProblems: [],
      suspended: false,
      deltasEnabled: true,
    };
    const validation = validateEtcdBackup({ apiVersion: obj.apiVersion, kind: obj.kind, metadata: obj.metadata, spec: obj.spec });
    if (!validation.ok) {
      // Terminal: a retry cannot fix the spec; the next edit triggers a new reconcile.
      await this.stopWorkers(key, obj);
      this.secretIndex.delete(key);
      const status = computeStatus({ ...base, specProblems: validation.problems, worker: { phase: 'Stopped' } });
      if (isTransition(obj.status, status)) {
        log.warn('Rejected invalid EtcdBackup spec', { problems: validation.problems });
        void this.recordEvent(key, { type: 'Warning', reason: Reason.InvalidSpec, action: 'Validate', note: validation.problems.join('; ') });
      }
      return this.writeStatus(key, obj, status, {});
    }
    const { resolved } = validation;
    const spec = resolved.spec;
    base.deltasEnabled = resolved.deltaPeriodMs !== 0;
    base.verificationEnabled = spec.verification !== undefined;
    this.secretIndex.set(key, { namespace, names: new Set(referencedSecrets(spec).map((ref) => ref.name)) });

    if (spec.suspend) {
      if (this.host.hashOf(key) !== undefined) log.info('Suspended backups');
      await this.stopWorkers(key, obj);
      return this.writeStatus(key, obj, computeStatus({ ...base, suspended: true, worker: { phase: 'Stopped' } }), {});
    }

    const secrets = await resolveSecrets(namespace, spec, this.getSecret);
    if (secrets.problems.length > 0) {
      await this.stopWorkers(key, obj);
      const status = computeStatus({ ...base, secretProblems: secrets.problems, worker: { phase: 'Stopped' } });
      if (isTransition(obj.status, status)) {
        const problem = secrets.problems[0]!;
        // `problem` names the Secret; a field called "secret..." would be redacted by the logger.
        log.warn('Waiting for referenced Secret', { problem: problem.message, reason: problem.reason });
        void this.recordEvent(key, { type: 'Warning', reason: problem.reason, action: 'ReadSecret', note: problem.message });
      }
      // Secret events usually wake us first; this retry covers a missed watch event.
      const { initialMs, maxMs } = this.options.secretRetry ?? { initialMs: 2000, maxMs: 120_000 };
      const attempt = this.secretRetries.get(key) ?? 0;
      this.secretRetries.set(key, attempt + 1);
      return this.writeStatus(key, obj, status, { requeueAfterMs: Math.min(maxMs, initialMs * 2 ** attempt) });
    }
    this.secretRetries.delete(key);

    if (spec.runner === 'pod') return this.reconcilePod(key, obj, resolved, secrets, base, log);
    // From pod to operator: the pod must be gone before a local worker may write the same store.
    if (!(await this.removePodWorker(key, obj, log))) {
      return this.writeStatus(key, obj, computeStatus({ ...base, worker: { phase: 'Stopped' } }), { requeueAfterMs: 1000 });
    }

    // Restart the worker exactly when what it runs on changes: the spec (generation), the object
    // (recreated under the same name), or a referenced Secret.
    const hash = createHash('sha256')
      .update(JSON.stringify([obj.metadata.uid, generation, Object.entries(secrets.versions).sort()]))
      .digest('hex')
      .slice(0, 16);
    const previousHash = this.host.hashOf(key);
    await this.host.ensure(key, { resolved, secrets: secrets.secrets, name: key }, hash);
    if (previousHash !== hash) log.info(previousHash ? 'Restarted backup worker' : 'Started backup worker', { generation, configHash: hash });

    const waitingToRequest = !this.requestSnapshotIfAsked(key, obj, log);
    const status = computeStatus({ ...base, worker: this.host.state(key) });
    return this.writeStatus(key, obj, status, {
      requeueAfterMs: waitingToRequest ? 1000 : (this.options.resyncIntervalMs ?? 600_000),
    });
  }

  /**
   * The snapshot-requested-at annotation: a value not answered yet (in status or by the worker) goes to
   * the worker once. False while it must wait for the worker to run.
   */
  private requestSnapshotIfAsked(key: string, obj: EtcdBackup, log: Logger): boolean {
    const requestedAt = obj.metadata.annotations?.[SNAPSHOT_REQUEST_ANNOTATION];
    if (requestedAt === undefined) return true;
    const state = this.host.state(key);
    const report = state.phase === 'Stopped' || state.phase === 'Pod' ? undefined : state.report;
    const answered = [obj.status?.lastRequestedSnapshot?.requestedAt, report?.lastRequestedSnapshot?.requestedAt];
    if (answered.includes(requestedAt)) return true;
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(requestedAt) || Number.isNaN(Date.parse(requestedAt))) {
      log.warn('Ignored a snapshot request that is not an RFC 3339 time', { annotation: SNAPSHOT_REQUEST_ANNOTATION, value: requestedAt });
      return true;
    }
    const outcome = this.host.requestSnapshot(key, requestedAt);
    if (outcome === 'sent') log.info('Requested a full snapshot', { requestedAt });
    return outcome !== 'notRunning';
  }

  /**
   * runner: pod. The worker runs in a Deployment the operator owns; status comes from the store
   * and the Deployment's availability, refreshed every podStatusIntervalMs.
   */
  private async reconcilePod(
    key: string,
    obj: EtcdBackup,
    resolved: ResolvedSpec,
    secrets: { secrets: ResolvedSecrets; versions: Record<string, string> },
    base: Omit<StatusInputs, 'worker'>,
    log: Logger,
  ): Promise<ReconcileResult> {
    if (this.host.hashOf(key) !== undefined) log.info('Stopped backup worker process: runner is pod');
    await this.host.stop(key); // waits for the process to exit: never two workers on one store
    // An empty spec.pod.image means "the default", like an absent one.
    const image = resolved.spec.pod?.image ? resolved.spec.pod.image : this.options.workerImage;
    if (!image) {
      const problem = 'spec.pod.image: required, since the operator has no default worker image (--worker-image)';
      return this.writeStatus(key, obj, computeStatus({ ...base, specProblems: [problem], worker: { phase: 'Stopped' } }), {});
    }
    this.podsAbsent.delete(key);
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
      store = await this.observeStoreOf(key, resolved, secrets.secrets.s3Credentials);
    } catch (err) {
      storeError = errorMessage(err);
    }
    const status = computeStatus({ ...base, worker: { phase: 'Pod', available, message, store, storeError } });
    return this.writeStatus(key, obj, status, { requeueAfterMs: this.options.podStatusIntervalMs ?? 30_000 });
  }

  private async observeStoreOf(
    key: string,
    resolved: ResolvedSpec,
    credentials: ResolvedSecrets['s3Credentials'],
  ): Promise<StoreObservation> {
    const config = storeConfigFromSpec(resolved.spec.store, credentials);
    const id = createHash('sha256').update(JSON.stringify(config)).digest('hex');
    let cached = this.stores.get(key);
    if (cached?.id !== id) {
      cached = { id, store: await createStore(config) };
      this.stores.set(key, cached);
    }
    return observeStore(await listBackupObjects(cached.store));
  }

  private async ensureConfigMap(desired: V1ConfigMap, uid: string, log: Logger): Promise<void> {
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const current = await orUndefined(this.core.readNamespacedConfigMap({ namespace, name }));
    if (!current) {
      await this.core.createNamespacedConfigMap({ namespace, body: desired });
      log.info('Created worker ConfigMap', { configMap: name });
      return;
    }
    assertControlled(current, uid, 'ConfigMap', namespace, name);
    if (appliedHash(current) === appliedHash(desired)) return;
    const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } };
    await this.core.replaceNamespacedConfigMap({ namespace, name, body });
    log.info('Updated worker ConfigMap', { configMap: name });
  }

  /** Creates or updates the worker Deployment; returns it as the API has it (with status). */
  private async ensureDeployment(desired: V1Deployment, uid: string, log: Logger): Promise<V1Deployment> {
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const current = await orUndefined(this.apps.readNamespacedDeployment({ namespace, name }));
    if (!current) {
      const created = await this.apps.createNamespacedDeployment({ namespace, body: desired });
      log.info('Created worker Deployment', { deployment: name });
      return created;
    }
    assertControlled(current, uid, 'Deployment', namespace, name);
    if (appliedHash(current) === appliedHash(desired)) return current;
    // PUT with the resourceVersion read: the whole object is ours, and a concurrent change gives 409.
    const body = { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } };
    const updated = await this.apps.replaceNamespacedDeployment({ namespace, name, body });
    log.info('Updated worker Deployment', { deployment: name });
    return updated;
  }

  /**
   * Deletes the worker Deployment and ConfigMap of runner: pod, if this EtcdBackup owns them.
   * Foreground deletion keeps the Deployment until its pods are gone, so "absent" means no pod
   * can still be writing. Returns true once both are gone.
   */
  private async removePodWorker(key: string, obj: EtcdBackup, log: Logger): Promise<boolean> {
    if (this.podsAbsent.has(key)) return true;
    const namespace = obj.metadata.namespace ?? '';
    const name = workerName(obj.metadata.name ?? '');
    const uid = obj.metadata.uid ?? '';
    const deployment = await orUndefined(this.apps.readNamespacedDeployment({ namespace, name }));
    if (deployment && controlledBy(deployment, uid)) {
      if (!deployment.metadata?.deletionTimestamp) {
        await orUndefined(this.apps.deleteNamespacedDeployment({ namespace, name, propagationPolicy: 'Foreground' }));
        log.info('Deleted worker Deployment', { deployment: name });
      }
      if (await orUndefined(this.apps.readNamespacedDeployment({ namespace, name }))) return false;
    }
    const configMap = await orUndefined(this.core.readNamespacedConfigMap({ namespace, name }));
    if (configMap && controlledBy(configMap, uid)) await orUndefined(this.core.deleteNamespacedConfigMap({ namespace, name }));
    this.podsAbsent.add(key);
    this.stores.delete(key);
    return true;
  }

  /** Stops whichever worker runs: the local process and the pod. */
  private async stopWorkers(key: string, obj: EtcdBackup): Promise<void> {
    await this.host.stop(key);
    const log = this.options.logger.child({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    await this.removePodWorker(key, obj, log);
  }

  /** Stops the worker, applies deletionPolicy, then lets the object go. */
  private async finalize(key: string, obj: EtcdBackup, log: Logger): Promise<ReconcileResult> {
    await this.host.stop(key);
    // Without relying on garbage collection: with deletionPolicy Delete no pod may still write.
    if ((obj.metadata.finalizers ?? []).includes(FINALIZER) && !(await this.removePodWorker(key, obj, log))) {
      return { requeueAfterMs: 1000 };
    }
    if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) {
      this.forget(key);
      return {};
    }
    if (obj.spec?.deletionPolicy === 'Delete') {
      const outcome = await this.deleteBackups(key, obj, log);
      if (outcome === 'retry') {
        const attempt = this.secretRetries.get(key) ?? 0;
        this.secretRetries.set(key, attempt + 1);
        return { requeueAfterMs: Math.min(120_000, 2000 * 2 ** attempt) };
      }
    }
    await this.replace({ ...obj, metadata: { ...obj.metadata, finalizers: (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER) } });
    log.info('Removed finalizer from EtcdBackup', { deletionPolicy: obj.spec?.deletionPolicy ?? 'Retain' });
    this.forget(key);
    return {};
  }

  /** deletionPolicy Delete: removes every backup object (full/ and delta/) of the EtcdBackup's store. */
  private async deleteBackups(key: string, obj: EtcdBackup, log: Logger): Promise<'done' | 'retry'> {
    const validation = validateEtcdBackup({ apiVersion: obj.apiVersion, kind: obj.kind, metadata: obj.metadata, spec: obj.spec });
    if (!validation.ok) {
      // Without a valid spec we cannot know which store to empty; do not hold the object hostage.
      void this.recordEvent(key, {
        type: 'Warning',
        reason: 'BackupsNotDeleted',
        action: 'Delete',
        note: `deletionPolicy is Delete but the spec is invalid, so stored backups were left in place: ${validation.problems.join('; ')}`,
      });
      return 'done';
    }
    const spec = validation.resolved.spec;
    const namespace = obj.metadata.namespace ?? '';
    let credentials: ResolvedSecrets['s3Credentials'];
    if (spec.store.s3?.credentialsSecretRef) {
      const s3Only = { ...spec, etcd: { endpoints: spec.etcd.endpoints }, encryption: undefined };
      const secrets = await resolveSecrets(namespace, s3Only, this.getSecret);
      if (secrets.problems.length > 0) {
        const note =
          `Cannot delete stored backups: ${secrets.problems.map((p) => p.message).join('; ')}. ` +
          `Restore the Secret, or remove the finalizer ${FINALIZER} to keep the backups.`;
        log.warn('Waiting for store credentials to delete backups', { problems: secrets.problems.map((p) => p.message) });
        void this.recordEvent(key, { type: 'Warning', reason: 'BackupsNotDeleted', action: 'Delete', note });
        return 'retry';
      }
      credentials = secrets.secrets.s3Credentials;
    }
    const store = await createStore(storeConfigFromSpec(spec.store, credentials));
    const keys = (await listBackupObjects(store)).map((info) => info.key).filter((key) => parseBackupKey(key) !== undefined);
    // Bounded parallelism: a store with years of deltas has many objects, but hammering it helps nobody.
    const pending = [...keys];
    await Promise.all(
      Array.from({ length: Math.min(8, pending.length) }, async () => {
        for (let next = pending.shift(); next !== undefined; next = pending.shift()) await store.delete(next);
      }),
    );
    log.info('Deleted stored backups', { objects: keys.length, store: store.describe() });
    void this.recordEvent(key, {
      type: 'Normal',
      reason: 'BackupsDeleted',
      action: 'Delete',
      note: `Deleted ${keys.length} backup objects from ${store.describe()} (deletionPolicy Delete)`,
    });
    return 'done';
  }

  /**
   * Patches the status subresource (JSON merge patch) when it changed. Changes that are not
   * transitions (revision counters, lag) are coalesced to one patch per statusMinIntervalMs.
   */
  private async writeStatus(key: string, obj: EtcdBackup, status: EtcdBackupStatus, result: ReconcileResult): Promise<ReconcileResult> {
    const previous = obj.status ?? {};
    if (jsonEqual(previous, status)) return result;
    const minInterval = this.options.statusMinIntervalMs ?? 5000;
    const sinceLast = Date.now() - (this.lastStatusPatch.get(key) ?? 0);
    if (!isTransition(obj.status, status) && sinceLast < minInterval) {
      const wait = minInterval - sinceLast;
      return { requeueAfterMs: Math.min(wait, result.requeueAfterMs ?? wait) };
    }
    const [namespace = '', name = ''] = key.split('/');
    await this.co.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status: mergePatch(previous, status) } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    this.lastStatusPatch.set(key, Date.now());
    return result;
  }

  /** PUT with the resourceVersion we read: a concurrent change gives 409 and a retry. */
  private async replace(obj: EtcdBackup): Promise<EtcdBackup> {
    const { namespace = '', name = '' } = obj.metadata;
    const { status: _status, ...body } = obj;
    return (await this.co.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body })) as EtcdBackup;
  }

  private secretChanged(namespace: string, name: string): void {
    for (const [key, refs] of this.secretIndex) {
      if (refs.namespace === namespace && refs.names.has(name)) this.queue.add(key);
    }
  }

  /** Everything listed plus everything we run: a relist cannot tell us what was deleted meanwhile. */
  private enqueueAll(): void {
    const keys = new Set<string>(this.host.keys());
    for (const key of this.subjects.keys()) keys.add(key);
    for (const obj of this.backups.list()) keys.add(keyOf(obj.metadata?.namespace, obj.metadata?.name));
    for (const key of keys) this.queue.add(key);
  }

  private forget(key: string): void {
    const [ns = '', name = ''] = key.split('/');
    this.options.metrics.forget(ns, name);
    this.subjects.delete(key);
    this.secretIndex.delete(key);
    this.lastStatusPatch.delete(key);
    this.secretRetries.delete(key);
    this.podsAbsent.delete(key);
    this.stores.delete(key);
  }

  private async recordEvent(key: string, event: EventInfo): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    await this.options.events.record(this.subjects.get(key) ?? { namespace, name }, event);
  }
}

export function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
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

function supervisorEventInfo(event: SupervisorEvent): EventInfo {
  const verifying = event.reason === 'BackupVerified' || event.reason === 'VerificationFailed';
  return { type: event.type, reason: event.reason, action: verifying ? 'Verify' : 'Backup', note: event.message };
}

export type { WorkerState };
