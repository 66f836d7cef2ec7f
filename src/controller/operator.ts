import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { startHttpServer } from '../observability/http-server.js';
import type { Logger } from '../observability/logger.js';
import { OperatorMetrics } from '../observability/metrics.js';
import { EtcdBackupController, type EtcdBackupControllerOptions } from './etcd-backup-controller.js';
import { KubeEventRecorder } from './events.js';
import { LeaderElector, type LeaderElectionOptions } from './leader-election.js';
import { DEFAULT_OPERATOR_BASE_BYTES, readCgroupMemoryLimit, type OperatorMemory } from './memory-admission.js';
import { DEFAULT_RUNNER_MODEL, type RunnerModel } from './worker-protocol.js';
import { DEFAULT_POLICY, type OperatorPolicy } from './spec-policy.js';

export interface OperatorOptions {
  /** Kubeconfig file; default: $KUBECONFIG, ~/.kube/config, then the in-cluster service account. */
  kubeconfig?: string;
  /** Watch EtcdBackups (and Secrets) in this namespace only; default all namespaces. */
  namespace?: string;
  /** Port of /healthz, /readyz, /metrics (0 picks a free one). */
  metricsPort: number;
  /** Default 0.0.0.0. */
  metricsHost?: string;
  logger: Logger;
  /** Default image of runner: pod workers (spec.pod.image overrides it). */
  workerImage?: string;
  /** What EtcdBackups may do with the operator's privileges (flags); default: the least. */
  policy?: Partial<OperatorPolicy>;
  /** Log settings for the per-EtcdBackup workers. */
  workerLog?: { level: string; format: 'json' | 'text' };
  /** How each EtcdBackup's supervisor runs (runner-models.ts); default DEFAULT_RUNNER_MODEL. */
  runnerModel?: RunnerModel;
  /**
   * The memory the operator may use (workers included): a worker whose budget does not fit is not
   * started. Default limit: the cgroup's, if any; default base DEFAULT_OPERATOR_BASE_BYTES.
   */
  memory?: Partial<OperatorMemory>;
  /** Default true. Off only for single-replica setups that accept the risk of two operators. */
  leaderElection?: boolean;
  /** Lease name; default etcd-backup-operator-leader. */
  leaseName?: string;
  /** Lease namespace; default $POD_NAMESPACE, the service account's namespace, --namespace, "default". */
  leaseNamespace?: string;
  /** Default $POD_NAME or hostname, plus a random suffix (two processes on one host must differ). */
  identity?: string;
  leaseTimings?: Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>;
  /** Controller tuning (tests shorten the intervals). */
  controller?: Partial<Omit<EtcdBackupControllerOptions, 'kc' | 'namespace' | 'logger' | 'metrics' | 'events'>>;
  /** Stop when aborted; by default SIGTERM and SIGINT stop the operator. */
  signal?: AbortSignal;
  /** Called once serving (tests read the port). */
  onListening?: (info: { port: number; identity: string }) => void;
  /** Called with the controller of each leadership term (tests reach its worker host through it). */
  onLeading?: (controller: EtcdBackupController) => void;
}

/** Loads a kubeconfig; plain-http servers need skipTLSVerify in client-node, which kubectl does not require. */
export function loadKubeConfig(file?: string): KubeConfig {
  const loaded = new KubeConfig();
  if (file) loaded.loadFromFile(file);
  else loaded.loadFromDefault();
  // client-node refuses http:// unless skipTLSVerify is set; there is no TLS to verify anyway.
  if (!loaded.clusters.some((c) => c.server.startsWith('http:') && !c.skipTLSVerify)) return loaded;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: loaded.clusters.map((c) => (c.server.startsWith('http:') ? { ...c, skipTLSVerify: true } : c)),
    users: loaded.users,
    contexts: loaded.contexts,
    currentContext: loaded.currentContext,
  });
  return kc;
}

/** Workers must be gone this long before another operator could acquire the Lease (exit, clock slack). */
const LEASE_STOP_MARGIN_MS = 1000;
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function defaultLeaseNamespace(options: OperatorOptions): string {
  if (options.leaseNamespace) return options.leaseNamespace;
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
  } catch {
    return options.namespace ?? 'default';
  }
}

/**
 * Runs the operator until SIGTERM/SIGINT (or `signal`): serves probes and metrics, campaigns for the
 * Lease, and while leading runs the EtcdBackup controller. On shutdown it stops every backup
 * worker first (in-flight uploads are cancelled, nothing partial stays visible), then releases the
 * Lease so a successor takes over at once.
 */
export async function runOperator(options: OperatorOptions): Promise<void> {
  const { logger } = options;
  const kc = loadKubeConfig(options.kubeconfig);
  const identity = options.identity ?? `${process.env.POD_NAME ?? hostname()}_${randomUUID().slice(0, 8)}`;
  const metrics = new OperatorMetrics();
  const events = new KubeEventRecorder(kc, identity, logger);
  const leaseNamespace = defaultLeaseNamespace(options);
  const leaseName = options.leaseName ?? 'etcd-backup-operator-leader';

  const memory: OperatorMemory = {
    limitBytes: options.memory?.limitBytes ?? readCgroupMemoryLimit(),
    baseBytes: options.memory?.baseBytes ?? DEFAULT_OPERATOR_BASE_BYTES,
  };
  let controller: EtcdBackupController | undefined;
  // A new term waits until the previous term's workers are gone: never two workers per EtcdBackup.
  let previousTermStopped: Promise<void> = Promise.resolve();
  let leading = false;

  const startLeading = () => {
    leading = true;
    metrics.leader.set(1);
    const term = new EtcdBackupController({
      workerImage: options.workerImage,
      policy: { ...DEFAULT_POLICY, ...options.policy },
      ...options.controller,
      host: { log: options.workerLog, model: options.runnerModel, memory, ...options.controller?.host },
      kc,
      namespace: options.namespace,
      logger,
      metrics,
      events,
    });
    controller = term;
    options.onLeading?.(term);
    void previousTermStopped.then(() => {
      if (controller === term) term.start();
    });
  };
  const stopLeading = ({ takeoverInMs }: { takeoverInMs: number }) => {
    leading = false;
    metrics.leader.set(0);
    const term = controller;
    controller = undefined;
    // Workers killed if need be, a margin before another operator may acquire the Lease and start its own.
    const workerDeadlineMs = Math.max(0, takeoverInMs - LEASE_STOP_MARGIN_MS);
    previousTermStopped = (term?.stop({ workerDeadlineMs }) ?? Promise.resolve()).catch((err: unknown) => {
      logger.error('Failed to stop the controller cleanly', { error: errorMessage(err) });
    });
  };

  const http = await startHttpServer({
    port: options.metricsPort,
    host: options.metricsHost,
    registry: metrics.registry,
    logger,
    healthz: () => ({ ok: true }),
    readyz: () => {
      if (!leading) return { ok: true }; // a standby replica is healthy and ready to take over
      return controller?.hasSynced() ? { ok: true } : { ok: false, reason: 'informers have not listed yet' };
    },
  });
  options.onListening?.({ port: http.port, identity });

  const elector =
    options.leaderElection === false
      ? undefined
      : new LeaderElector(kc, { namespace: leaseNamespace, name: leaseName, identity, logger, ...options.leaseTimings });
  logger.info('Started etcd-backup operator', {
    identity,
    namespace: options.namespace ?? '(all)',
    lease: elector ? `${leaseNamespace}/${leaseName}` : '(leader election off)',
    runnerModel: options.runnerModel ?? DEFAULT_RUNNER_MODEL,
    memoryLimitBytes: memory.limitBytes ?? '(none)',
    port: http.port,
  });
  const campaign = elector?.run({ onStartedLeading: startLeading, onStoppedLeading: stopLeading });
  if (!elector) startLeading();

  await new Promise<void>((resolve) => {
    if (options.signal?.aborted) return resolve();
    options.signal?.addEventListener('abort', () => resolve(), { once: true });
    if (!options.signal) {
      const onSignal = (name: string) => {
        logger.info('Received signal; shutting down', { signal: name });
        process.off('SIGTERM', onSigterm);
        process.off('SIGINT', onSigint);
        resolve();
      };
      const onSigterm = () => onSignal('SIGTERM');
      const onSigint = () => onSignal('SIGINT');
      process.on('SIGTERM', onSigterm);
      process.on('SIGINT', onSigint);
    }
  });

  // Workers first (they may be mid-upload), then the Lease, then the probes.
  const term = controller;
  controller = undefined;
  await term?.stop();
  await previousTermStopped;
  await elector?.stop();
  await campaign;
  await http.close();
  logger.info('Stopped etcd-backup operator');
}
