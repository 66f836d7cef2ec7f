import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { freePort } from '../../src/etcd/local-etcd.js';
import { logTail, spawnGuarded, type GuardedChild } from '../../src/process/guarded-child.js';
import { generateTestCerts, issueClientCert, type TestCerts } from './certs.js';
import { startTestEtcd, type TestEtcd } from './etcd.js';
import { kubeApiServerBinary, KUBERNETES_VERSION } from './test-tools.js';
import { runKubectl } from '../helpers/kubectl.js';

export { KubectlError } from '../helpers/kubectl.js';

/**
 * A REAL kube-apiserver (built by scripts/install-test-tools.sh) on a free 127.0.0.1 port, over its
 * own etcd (Debian's 3.4 via startTestEtcd), with what a cluster's API server has and our in-repo
 * test server (kube-api-server.ts) only imitates: TLS, x509 and service-account token authentication,
 * `--authorization-mode=Node,RBAC`, admission (with OwnerReferencesPermissionEnforcement on), CRD
 * schema enforcement, and an audit log recording every request at Metadata level.
 *
 * Only the API server runs: no kube-controller-manager (so no garbage collection of
 * ownerReferences, no Deployment or ReplicaSet controller, no namespace deletion, no
 * ServiceAccount token controller) and no kubelet (so no pod ever runs).
 *
 * The server and its etcd stop by themselves when the test process dies (a watchdog).
 */
export interface RealKubeApiServer {
  readonly version: string;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  readonly workDir: string;
  readonly caPath: string;
  /** Kubeconfig of `kube-admin` (client certificate in group system:masters). */
  readonly adminKubeconfig: string;
  /** JSON lines, one audit event per request stage (policy: Metadata for everything; stages ResponseStarted, ResponseComplete). */
  readonly auditLogPath: string;
  readonly logPath: string;
  readonly etcd: TestEtcd;
  /** Runs the real kubectl (admin unless `kubeconfig` is given); rejects with its stderr on a non-zero exit. */
  kubectl(args: string[], options?: { input?: string; kubeconfig?: string }): Promise<string>;
  /**
   * Writes a kubeconfig holding a token of the ServiceAccount, minted by the real
   * `kubectl create token` (TokenRequest API), and returns its path.
   */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  /** Every audit event written so far. */
  auditEvents(): Promise<AuditEvent[]>;
  /**
   * Stops the server and starts it again on the same port over the same etcd: every connection drops.
   * `crash` kills it (SIGKILL) instead of a graceful SIGTERM shutdown, which waits for requests to drain.
   */
  restart(options?: { crash?: boolean }): Promise<void>;
  /**
   * When each start (the first and every restart) spawned the process and when /readyz first said ok.
   * In between the server already answers, but its RBAC authorizer may not have loaded the roles yet
   * and refuses service accounts with 403 (a real start-up transient, not a missing permission).
   */
  readonly startUps: ReadonlyArray<{ spawnedAt: Date; readyAt: Date }>;
  stop(): Promise<void>;
}

/** The fields of an audit.k8s.io/v1 Event that tests read. */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: { apiGroup?: string; resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number; reason?: string; message?: string };
  requestReceivedTimestamp: string;
}

const ADMIN = 'kube-admin';
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/**
 * Metadata for every request, written once its response is complete; a watch (long-running) also when
 * its response starts, so it is in the log while still open.
 */
const AUDIT_POLICY = {
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived'],
  rules: [{ level: 'Metadata' }],
};

export async function startRealKubeApiServer(): Promise<RealKubeApiServer> {
  const binary = kubeApiServerBinary();
  if (!binary) throw new Error('kube-apiserver is not built: run scripts/install-test-tools.sh');
  const workDir = await mkdtemp(join(tmpdir(), 'kube-apiserver-test-'));
  let etcd: TestEtcd | undefined;
  let certs: TestCerts | undefined;
  try {
    certs = await generateTestCerts([]);
    const admin = await issueClientCert(certs, ADMIN, ['system:masters']);
    const serviceAccountKey = await writeServiceAccountKeys(workDir);
    const auditPolicyPath = join(workDir, 'audit-policy.yaml');
    await writeFile(auditPolicyPath, stringify(AUDIT_POLICY));
    etcd = await startTestEtcd();
    const auditLogPath = join(workDir, 'audit.log');
    const logPath = join(workDir, 'kube-apiserver.log');
    const spawnOptions: SpawnOptions = {
      workDir,
      logPath,
      etcdUrl: etcd.clientUrl,
      flags: [
        `--tls-cert-file=${certs.server.certPath}`,
        `--tls-private-key-file=${certs.server.keyPath}`,
        `--client-ca-file=${certs.caPath}`,
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${serviceAccountKey.publicPath}`,
        `--service-account-signing-key-file=${serviceAccountKey.privatePath}`,
        '--authorization-mode=Node,RBAC',
        // Off by default upstream, on in many distributions: setting blockOwnerDeletion then needs
        // `update` on the owner's finalizers subresource (config/rbac grants it for runner: pod).
        '--enable-admission-plugins=OwnerReferencesPermissionEnforcement',
        `--audit-policy-file=${auditPolicyPath}`,
        `--audit-log-path=${auditLogPath}`,
        '--audit-log-format=json',
        // Write audit events as they happen, not in batches: tests read the file during the run.
        '--audit-log-mode=blocking',
        '--service-cluster-ip-range=10.96.0.0/24',
        '--profiling=false',
      ],
      tls: { ca: certs.ca, cert: admin.cert, key: admin.key },
    };
    const startUps: Array<{ spawnedAt: Date; readyAt: Date }> = [];
    let server = await spawnApiServer(binary, spawnOptions);
    startUps.push(server.startUp);
    const { url, port } = server;
    const stopServer = () => server.process.stop(10_000);
    const adminKubeconfig = join(workDir, 'admin.kubeconfig');
    await writeTlsKubeconfig(adminKubeconfig, url, certs.caPath, { 'client-certificate': admin.certPath, 'client-key': admin.keyPath });
    const kubectl = (args: string[], options: { input?: string; kubeconfig?: string } = {}) =>
      runKubectl(options.kubeconfig ?? adminKubeconfig, args, options.input);
    const serverCerts = certs;
    const serverEtcd = etcd;
    let tokens = 0;
    return {
      version: KUBERNETES_VERSION,
      url,
      workDir,
      caPath: certs.caPath,
      adminKubeconfig,
      auditLogPath,
      logPath,
      etcd,
      kubectl,
      async serviceAccountKubeconfig(namespace, name) {
        const token = (await kubectl(['create', 'token', name, '--namespace', namespace, '--duration', '2h'])).trim();
        const path = join(workDir, `sa-${namespace}-${name}-${++tokens}.kubeconfig`);
        await writeTlsKubeconfig(path, url, serverCerts.caPath, { token }, namespace);
        return path;
      },
      async auditEvents() {
        const text = await readFile(auditLogPath, 'utf8').catch(() => '');
        return text
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as AuditEvent);
      },
      async restart({ crash = false } = {}) {
        if (crash) {
          server.process.child.kill('SIGKILL');
          await server.process.exited;
        }
        await stopServer();
        server = await spawnApiServer(binary, spawnOptions, port);
        startUps.push(server.startUp);
      },
      startUps,
      async stop() {
        await stopServer();
        await serverEtcd.stop();
        await serverCerts.cleanup();
        if (process.env.KEEP_KUBE_APISERVER_DIR) console.log(`kube-apiserver work dir kept: ${workDir}`);
        else await rm(workDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await etcd?.stop();
    await certs?.cleanup();
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

/** An RSA key pair for signing (private) and verifying (public) service-account tokens. */
async function writeServiceAccountKeys(dir: string): Promise<{ privatePath: string; publicPath: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePath = join(dir, 'sa.key');
  const publicPath = join(dir, 'sa.pub');
  await writeFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(publicPath, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privatePath, publicPath };
}

interface SpawnOptions {
  workDir: string;
  logPath: string;
  etcdUrl: string;
  flags: string[];
  /** How the readiness probe authenticates. */
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
}

interface RunningServer {
  process: GuardedChild;
  url: string;
  port: number;
  startUp: { spawnedAt: Date; readyAt: Date };
}

/**
 * Starts kube-apiserver on `fixedPort` or a free port and waits for /readyz; on a free port taken
 * meanwhile it retries on another.
 */
async function spawnApiServer(binary: string, options: SpawnOptions, fixedPort?: number): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    const url = `https://127.0.0.1:${port}`;
    const args = [
      `--etcd-servers=${options.etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      // The `kubernetes` Service's endpoint reconciler refuses a loopback address; nothing in-cluster needs it.
      '--endpoint-reconciler-type=none',
      `--secure-port=${port}`,
      `--cert-dir=${join(options.workDir, 'cert-dir')}`,
      ...options.flags,
    ];
    const spawnedAt = new Date();
    const guarded = spawnGuarded(binary, args, options.logPath);
    // A cold start (CRD, RBAC and priority-and-fairness bootstrap) takes seconds on a busy machine.
    const deadline = Date.now() + 180_000;
    let failure: string | undefined;
    while (Date.now() < deadline) {
      const spawnError = guarded.spawnError();
      if (spawnError) {
        failure = `cannot start ${binary}: ${spawnError.message}`;
        break;
      }
      if (guarded.hasExited()) {
        failure = `kube-apiserver exited during start-up: ${lastLines(options.logPath)}`;
        break;
      }
      if (await readyz(port, options.tls).catch(() => false)) {
        return { process: guarded, url, port, startUp: { spawnedAt, readyAt: new Date() } };
      }
      await sleep(250);
    }
    await guarded.stop(5000);
    failure ??= `kube-apiserver on ${url} was not ready in time: ${lastLines(options.logPath)}`;
    if (!/address already in use/.test(failure) || fixedPort !== undefined || attempt >= 3) throw new Error(failure);
  }
}

function readyz(port: number, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', ...tls, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'ok'));
    });
    req.on('timeout', () => req.destroy(new Error('readyz timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** A kubeconfig for an https server verified with `caPath`, as one user (certificate files or a token). */
async function writeTlsKubeconfig(
  path: string,
  server: string,
  caPath: string,
  user: Record<string, string>,
  namespace = 'default',
): Promise<void> {
  const name = 'real-kube-apiserver';
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority': caPath } }],
    users: [{ name, user }],
    contexts: [{ name, context: { cluster: name, user: name, namespace } }],
    'current-context': name,
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
}

function lastLines(file: string): string {
  return logTail(file, 5, 2000);
}
