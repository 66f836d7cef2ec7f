import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { EtcdUnavailableError } from '../errors.js';
import { logTail, spawnGuarded } from '../process/guarded-child.js';

/**
 * Starts and stops an etcd server on 127.0.0.1 (free ports, given data dir). Restore and verify use it
 * to bring up a temporary member on a restored data dir; the test harness uses it for real clusters.
 * Every server started here stops by itself when its parent process dies (a watchdog process), so a
 * crashed test or CLI never leaves an etcd behind.
 */
export interface LocalEtcd {
  readonly name: string;
  readonly dataDir: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly metricsUrl: string;
  /** The ports it listens on (to restart it on the same address: LocalEtcdOptions.ports). */
  readonly ports: { client: number; peer: number; metrics: number };
  readonly process: ChildProcess;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
  stop(): Promise<void>;
}

export interface LocalEtcdOptions {
  dataDir: string;
  /** The etcd program to run (a path or a name on PATH); default ETCD_BINARY. */
  binary?: string;
  name?: string;
  /** Extra flags (TLS, auth, quotas...). */
  extraArgs?: string[];
  /** Where etcd's own log goes; default `<dataDir>.log`. */
  logFile?: string;
  readyTimeoutMs?: number;
  /** Client URL scheme; https needs the TLS flags in extraArgs. */
  scheme?: 'http' | 'https';
  /** Health check override (e.g. when TLS client auth is on); resolves true when ready. */
  isReady?: (clientUrl: string) => Promise<boolean>;
  /** Reuse these ports (restart on the same address); free ports otherwise. */
  ports?: { client: number; peer: number; metrics: number };
}

export const ETCD_BINARY = process.env.ETCD_BIN ?? 'etcd';
export const ETCDCTL_BINARY = process.env.ETCDCTL_BIN ?? 'etcdctl';

/** A process's peak resident memory (VmHWM in /proc, Linux); undefined where it cannot be read. */
export async function peakRssBytes(pid: number | undefined): Promise<number | undefined> {
  return procStatusBytes(pid, 'VmHWM');
}

/**
 * A process's anonymous resident memory now (RssAnon, Linux): its heap and stacks, without the pages
 * of files it maps (etcd maps its whole bbolt db and reads every page of it when it starts).
 */
export async function anonRssBytes(pid: number | undefined): Promise<number | undefined> {
  return procStatusBytes(pid, 'RssAnon');
}

async function procStatusBytes(pid: number | undefined, field: string): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Three distinct ports, all held open together so none is handed out twice. */
async function freePorts(): Promise<{ client: number; peer: number; metrics: number }> {
  const servers = [createServer(), createServer(), createServer()];
  try {
    const ports = await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.unref();
            server.on('error', reject);
            server.listen(0, '127.0.0.1', () => {
              const address = server.address();
              if (typeof address === 'object' && address) resolve(address.port);
              else reject(new Error('no port'));
            });
          }),
      ),
    );
    return { client: ports[0]!, peer: ports[1]!, metrics: ports[2]! };
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** etcd could not bind a port that was free a moment before (another process took it). */
class PortTakenError extends EtcdUnavailableError {}

export async function startLocalEtcd(options: LocalEtcdOptions): Promise<LocalEtcd> {
  // A free port can be taken by another process between freePorts() and etcd's bind (parallel
  // tests, verify runs): then retry on fresh ports. Given ports are used as they are.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, options.ports ?? (await freePorts()));
    } catch (err) {
      if (!(err instanceof PortTakenError) || options.ports || attempt >= 3) throw err;
    }
  }
}

async function startOnce(
  options: LocalEtcdOptions,
  ports: { client: number; peer: number; metrics: number },
): Promise<LocalEtcd> {
  const name = options.name ?? 'default';
  const scheme = options.scheme ?? 'http';
  const clientUrl = `${scheme}://127.0.0.1:${ports.client}`;
  const peerUrl = `http://127.0.0.1:${ports.peer}`;
  const metricsUrl = `http://127.0.0.1:${ports.metrics}`;
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const logFile = options.logFile ?? `${options.dataDir}.log`;
  const binary = options.binary ?? ETCD_BINARY;
  const args = [
    '--name', name,
    '--data-dir', options.dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--listen-metrics-urls', metricsUrl,
    ...(options.extraArgs ?? []),
  ];
  const guarded = spawnGuarded(binary, args, logFile);
  const { child, watchdog } = guarded;
  const stop = (): Promise<void> => guarded.stop(5000);

  const isReady = options.isReady ?? defaultIsReady;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  while (Date.now() < deadline) {
    const spawnError = guarded.spawnError();
    if (spawnError) {
      await stop();
      throw new EtcdUnavailableError(`cannot start ${binary}: ${spawnError.message} (is etcd-server installed?)`);
    }
    if (guarded.hasExited()) {
      watchdog?.kill('SIGKILL');
      const tail = lastLines(logFile);
      const ErrorClass = /bind: address already in use/.test(tail) ? PortTakenError : EtcdUnavailableError;
      throw new ErrorClass(`etcd exited during start-up: ${tail}`);
    }
    if (await isReady(clientUrl).catch(() => false)) {
      return { name, dataDir: options.dataDir, clientUrl, peerUrl, metricsUrl, ports, process: child, stop };
    }
    await sleep(100);
  }
  await stop();
  throw new EtcdUnavailableError(`etcd on ${clientUrl} was not ready in time: ${lastLines(logFile)}`);
}

async function defaultIsReady(clientUrl: string): Promise<boolean> {
  const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
  const body = (await response.json()) as { health?: string };
  return body.health === 'true';
}

function lastLines(file: string): string {
  return logTail(file, 3, 800);
}
