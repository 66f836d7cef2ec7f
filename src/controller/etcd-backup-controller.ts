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
} from '@kubernetes/client-node';
import { GROUP, PLURAL, SNAPSHOT_REQUEST_ANNOTATION, VERSION, type EtcdBackup, type EtcdBackupStatus } from '../api/v1alpha1/etcd-backup-types.js';
import { validateEtcdBackup, type ValidationResult } from '../api/validate.js';
import type { SupervisorEvent } from '../engine/supervisor-types.js';
import { errorMessage, OperatorError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OperatorMetrics } from '../observability/metrics.js';
import {
  computeStatus,
  isTransition,
  jsonEqual,
  mergePatch,
  Reason,
  reportOf,
  type StatusInputs,
  type WorkerState,
  untilStale,
} from './conditions.js';
import type { EventInfo, EventRecorder, EventSubject } from './events.js';
import { EtcdBackupFinalizer, FINALIZER, hasFinalizer } from './finalizer.js';
import { ResilientInformer } from './informer.js';
import { isNotFound, kubeErrorMessage } from './kube-errors.js';
import { PodRunnerReconciler } from './pod-runner-reconcile.js';
import { SecretWatches } from './secret-watches.js';
import { coreSecretGetter, referencedSecrets, resolveSecrets, type SecretGetter } from './secrets.js';
import { DEFAULT_POLICY, policyProblems, type OperatorPolicy } from './spec-policy.js';
import { StoreObserver } from './store-observer.js';
import { SupervisorHost, type SupervisorHostOptions } from './supervisor-host.js';
import { WorkQueue } from './workqueue.js';

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
  /** What an EtcdBackup may do with the operator's privileges; default DEFAULT_POLICY (least). */
  policy?: OperatorPolicy;
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
  private readonly getSecret: SecretGetter;
  private readonly stores = new StoreObserver();
  private readonly pods: PodRunnerReconciler;
  private readonly finalizer: EtcdBackupFinalizer;
  private readonly queue = new WorkQueue<string>();
  readonly host: SupervisorHost;
  /** Only keys matter here: reconcile reads the object itself. */
  private readonly backups: ResilientInformer<KubernetesObject>;
  /** Watches the Secrets specs reference (and only those), to route their changes to keys. */
  private readonly secrets: SecretWatches;
  private readonly now: () => Date;
  private readonly subjects = new Map<string, EventSubject>();
  private readonly lastStatusPatch = new Map<string, number>();
  private readonly secretRetries = new Map<string, number>();
  private workers: Promise<void>[] = [];
  private running = false;

  constructor(private readonly options: EtcdBackupControllerOptions) {
    this.co = options.kc.makeApiClient(CustomObjectsApi);
    const core = options.kc.makeApiClient(CoreV1Api);
    this.getSecret = coreSecretGetter(core);
    this.now = options.now ?? (() => new Date());
    const { logger, namespace } = options;
    this.pods = new PodRunnerReconciler({
      core,
      apps: options.kc.makeApiClient(AppsV1Api),
      stores: this.stores,
      workerImage: options.workerImage,
      podStatusIntervalMs: options.podStatusIntervalMs,
    });
    this.finalizer = new EtcdBackupFinalizer({
      getSecret: this.getSecret,
      validate: (obj) => this.validate(obj),
      stopProcess: (key) => this.host.stop(key),
      removePodWorker: (key, obj, log) => this.pods.remove(key, obj, log),
      replace: (obj) => this.replace(obj),
      forget: (key) => this.forget(key),
      nextRetryAttempt: (key) => this.nextRetryAttempt(key),
      recordEvent: (key, event) => void this.recordEvent(key, event),
    });

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
    this.secrets = new SecretWatches({
      kc: options.kc,
      logger,
      onChange: (keys) => keys.forEach((key) => this.queue.add(key)),
      timeoutSeconds: Math.ceil((options.relistIntervalMs ?? 300_000) / 1000),
    });
  }

  hasSynced(): boolean {
    return this.backups.hasSynced();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.backups.start();
    const count = this.options.workers ?? 4;
    this.workers = Array.from({ length: count }, () => this.runWorker());
    this.options.logger.info('Started EtcdBackup controller', { namespace: this.options.namespace ?? '(all)', workers: count });
  }

  /**
   * Stops watching, lets in-flight reconciles finish, then stops every worker process. With
   * `workerDeadlineMs` (the leader Lease was lost) the workers are stopped first and killed if they
   * are still running after it: another operator may start writing then.
   */
  async stop(options: { workerDeadlineMs?: number } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    const workersStopped = options.workerDeadlineMs !== undefined ? this.host.stopAll(options.workerDeadlineMs) : undefined;
    this.secrets.stop();
    await this.backups.stop();
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workers);
    await (workersStopped ?? this.host.stopAll());
    this.stores.clear();
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
    if (obj.metadata.deletionTimestamp) return this.finalizer.finalize(key, obj, log);

    if (!hasFinalizer(obj)) {
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
    const validation = this.validate(obj);
    if (!validation.ok) {
      // Terminal: a retry cannot fix the spec; the next edit triggers a new reconcile.
      await this.stopWorkers(key, obj);
      this.secrets.delete(key);
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
    base.freshness = { schedule: spec.fullSnapshot.schedule, deltaPeriodMs: resolved.deltaPeriodMs };
    base.verificationEnabled = spec.verification !== undefined;
    this.secrets.set(key, namespace, referencedSecrets(spec).map((ref) => ref.name));

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
      const attempt = this.nextRetryAttempt(key);
      return this.writeStatus(key, obj, status, { requeueAfterMs: Math.min(maxMs, initialMs * 2 ** attempt) });
    }
    this.secretRetries.delete(key);

    if (spec.runner === 'pod') {
      if (this.host.hashOf(key) !== undefined) log.info('Stopped backup worker process: runner is pod');
      await this.host.stop(key); // waits for the process to exit: never two workers on one store
      const { status, requeueAfterMs } = await this.pods.reconcile(key, obj, resolved, secrets, base, log);
      return this.writeStatus(key, obj, status, requeueAfterMs === undefined ? {} : { requeueAfterMs });
    }
    // From pod to operator: the pod must be gone before a local worker may write the same store.
    if (!(await this.pods.remove(key, obj, log))) {
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
    const inputs: StatusInputs = { ...base, worker: this.host.state(key) };
    const status = computeStatus(inputs);
    if (inputs.worker.phase === 'Refused' && isTransition(obj.status, status)) {
      const note = inputs.worker.message;
      void this.recordEvent(key, { type: 'Warning', reason: Reason.BudgetExceedsOperatorMemory, action: 'Admit', note });
    }
    return this.writeStatus(key, obj, status, {
      requeueAfterMs: waitingToRequest ? 1000 : untilStale(inputs, this.options.resyncIntervalMs ?? 600_000),
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
    const report = reportOf(state);
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

  /** Stops whichever worker runs: the local process and the pod. */
  private async stopWorkers(key: string, obj: EtcdBackup): Promise<void> {
    await this.host.stop(key);
    const log = this.options.logger.child({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    await this.pods.remove(key, obj, log);
  }

  /** Counts a retry of `key` (missing Secrets, store credentials); returns how many came before. */
  private nextRetryAttempt(key: string): number {
    const attempt = this.secretRetries.get(key) ?? 0;
    this.secretRetries.set(key, attempt + 1);
    return attempt;
  }

  /**
   * Patches the status subresource (JSON merge patch) when it changed. Changes that are not
   * transitions (revision counters, lag) are coalesced to one patch per statusMinIntervalMs.
   */
  private async writeStatus(key: string, obj: EtcdBackup, status: EtcdBackupStatus, result: ReconcileResult): Promise<ReconcileResult> {
    const previous = obj.status ?? {};
    this.options.metrics.observeFreshness(obj.metadata.namespace ?? '', obj.metadata.name ?? '', status);
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

  /** The schema and the operator's policy: a spec the policy refuses is treated like an invalid one. */
  private validate(obj: EtcdBackup): ValidationResult {
    const validation = validateEtcdBackup({ apiVersion: obj.apiVersion, kind: obj.kind, metadata: obj.metadata, spec: obj.spec });
    if (!validation.ok) return validation;
    const problems = policyProblems(validation.resolved.spec, this.options.policy ?? DEFAULT_POLICY, this.options.workerImage);
    return problems.length > 0 ? { ok: false, problems } : validation;
  }

  /** PUT with the resourceVersion we read: a concurrent change gives 409 and a retry. */
  private async replace(obj: EtcdBackup): Promise<EtcdBackup> {
    const { namespace = '', name = '' } = obj.metadata;
    const { status: _status, ...body } = obj;
    return (await this.co.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body })) as EtcdBackup;
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
    this.secrets.delete(key);
    this.lastStatusPatch.delete(key);
    this.secretRetries.delete(key);
    this.pods.forget(key);
    this.stores.forget(key);
  }

  private async recordEvent(key: string, event: EventInfo): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    await this.options.events.record(this.subjects.get(key) ?? { namespace, name }, event);
  }
}

export function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

function supervisorEventInfo(event: SupervisorEvent): EventInfo {
  const verifying = event.reason === 'BackupVerified' || event.reason === 'VerificationFailed';
  return { type: event.type, reason: event.reason, action: verifying ? 'Verify' : 'Backup', note: event.message };
}

export type { WorkerState };
