import { isIP } from 'node:net';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  type IOptions,
  type IResponseStream,
  type ISnapshotResponse,
} from 'etcd3';
import { EtcdUnavailableError, errorMessage } from '../errors.js';
import { WATCH_STREAM_WINDOW_BYTES } from '../budget/fetch-budget.js';

/** How to reach one etcd cluster. Secrets (key, password) are held here and never logged. */
export interface EtcdConnection {
  endpoints: string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  /** Deadline for unary calls (not streams), so an unreachable etcd fails in bounded time. Default 10 s. */
  callTimeoutMs?: number;
  /**
   * For a client that only streams snapshots: a 4 MiB HTTP/2 window lets etcd send ahead instead of
   * stalling on every 64 KiB (measured: snapshot time 2.3x -> ~1.0x etcdctl). Not for watch clients,
   * whose receive buffers the memory budget accounts at etcd's message size.
   */
  bulkTransfer?: boolean;
}

const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;
export const BULK_TRANSFER_WINDOW_BYTES = 4 * 1024 * 1024;

export function createEtcdClient(connection: EtcdConnection): Etcd3 {
  const callTimeoutMs = connection.callTimeoutMs ?? 10_000;
  const options: IOptions = {
    hosts: connection.endpoints,
    dialTimeout: callTimeoutMs,
    // gRPC's 4 MiB default receive limit is below what etcd may send: a page of ranged keys with
    // large values, or a watch response. etcd bounds its own messages (--max-request-bytes per value).
    grpcOptions: {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      ...(connection.bulkTransfer ? { 'grpc-node.flow_control_window': BULK_TRANSFER_WINDOW_BYTES } : {}),
    },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  };
  if (connection.tls?.ca || connection.tls?.cert) {
    options.credentials = {
      // Without a CA, trust the default roots (grpc-js: GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else Node's),
      // as etcdctl does. An empty buffer would trust no CA at all. etcd3's typing wants a Buffer;
      // grpc-js's createSsl takes null/undefined for "default roots".
      rootCertificate: connection.tls.ca as Buffer,
      privateKey: connection.tls.key,
      certChain: connection.tls.cert,
    };
  }
  if (connection.endpoints.some((endpoint) => isIP(hostOf(endpoint)) !== 0 && endpoint.startsWith('https:'))) {
    dropIpServernameWarning();
  }
  if (connection.auth) options.auth = { ...connection.auth };
  const client = new Etcd3(options);
  sendAuthTokenWithSnapshot(client);
  return client;
}

/**
 * A client with `client`'s hosts, TLS, credentials and call options on HTTP/2 connections of its own
 * (grpc-js otherwise shares one connection among all channels with equal options) that keep HTTP/2's
 * default flow-control window. A delta fetch reads its watch through one, so the socket buffers its
 * messages pin hold only its own stream's frames and etcd sends at most the window ahead of it: what
 * fetch-budget's WATCH_TRANSPORT_BYTES charges. Close it when done.
 */
export function dedicatedWatchClient(client: Etcd3): Etcd3 {
  // etcd3 keeps the options it was built with on its (private) pool; they carry the TLS material and auth.
  const options = (client as unknown as { pool: { options: IOptions } }).pool.options;
  return new Etcd3({
    ...options,
    grpcOptions: {
      ...options.grpcOptions,
      'grpc.use_local_subchannel_pool': 1,
      'grpc-node.flow_control_window': WATCH_STREAM_WINDOW_BYTES,
    },
  });
}

function hostOf(endpoint: string): string {
  try {
    return new URL(endpoint).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return '';
  }
}

interface PoolInternals {
  withConnection<T>(
    service: 'Maintenance',
    fn: (connection: { resource: unknown; client: SnapshotService; metadata: unknown }) => T,
  ): Promise<T>;
  markFailed(resource: unknown, error: Error): void;
}
interface SnapshotService {
  snapshot(request: object, metadata: unknown, options: object): IResponseStream<ISnapshotResponse>;
}

/**
 * etcd3 1.1.2's `maintenance.snapshot()` calls the server-streaming gRPC method as
 * `snapshot(metadata, options)`, so grpc-js takes the metadata for the request message and the auth
 * token is never sent: with auth enabled etcd answers "auth: user name is empty". This is the same
 * call with grpc-js's signature `(request, metadata, options)`, on the same pool (hosts, TLS, token).
 */
function sendAuthTokenWithSnapshot(client: Etcd3): void {
  const pool = (client as unknown as { pool: PoolInternals }).pool;
  client.maintenance.snapshot = (callOptions) =>
    pool.withConnection('Maintenance', ({ resource, client: service, metadata }) => {
      // Streams get no default deadline (see defaultCallOptions), so only the caller's options apply.
      const stream = service.snapshot({}, metadata, callOptions ?? {});
      stream.on('error', (err: Error) => pool.markFailed(resource, err));
      return stream;
    });
}

let ipServernameWarningDropped = false;

/**
 * grpc-js sends the endpoint's host as TLS SNI even when it is an IP address (the certificate is
 * still checked against the IP), and Node then prints DeprecationWarning DEP0123 once on stderr,
 * which breaks JSON log lines and one-line errors. Drop exactly that warning; others pass through.
 */
function dropIpServernameWarning(): void {
  if (ipServernameWarningDropped) return;
  ipServernameWarningDropped = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const [typeOrOptions, code] = rest;
    const warningCode = typeof typeOrOptions === 'object' && typeOrOptions !== null
      ? (typeOrOptions as { code?: unknown }).code
      : code;
    if (warningCode === 'DEP0123') return;
    (emitWarning as (this: unknown, ...args: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
}

/**
 * etcd's head revision, from a cheap count-only range. Linearizable (not `serializable`): a lagging member answers only once it has
 * caught up, so the result is never behind a revision already seen (the delta poller relies on it).
 */
export async function headRevision(client: Etcd3): Promise<number> {
  return (await clusterIdentity(client)).headRevision;
}

/** etcd's cluster ID and head revision, from one response header. */
export async function clusterIdentity(client: Etcd3): Promise<{ clusterId: string; headRevision: number }> {
  const response = await client.kv.range({ key: Buffer.from('\0'), count_only: true });
  return { clusterId: String(response.header.cluster_id), headRevision: Number(response.header.revision) };
}

/**
 * Reads the head revision within `timeoutMs`, turning any failure into a one-line
 * EtcdUnavailableError that names the endpoints.
 */
export async function connectCheck(client: Etcd3, connection: EtcdConnection, timeoutMs = 10_000): Promise<number> {
  const where = connection.endpoints.join(',');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new EtcdUnavailableError(`etcd at ${where} did not answer within ${Math.round(timeoutMs / 1000)}s`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([headRevision(client), timeout]);
  } catch (err) {
    if (err instanceof EtcdUnavailableError) throw err;
    throw new EtcdUnavailableError(`${describeConnectFailure(err, where, connection)}: ${errorMessage(err)}`, err);
  } finally {
    clearTimeout(timer);
  }
}

/** What went wrong, in words, for the errors etcd and TLS give when security is misconfigured. */
function describeConnectFailure(err: unknown, where: string, connection: EtcdConnection): string {
  const message = errorMessage(err);
  const user = connection.auth ? ` (user ${JSON.stringify(connection.auth.username)})` : '';
  if (err instanceof EtcdAuthenticationFailedError || /authentication failed|invalid user ID or password/.test(message)) {
    return `etcd at ${where} rejected the user name or password${user}`;
  }
  if (/user name is empty/.test(message)) return `etcd at ${where} has authentication enabled and no user was given`;
  if (err instanceof EtcdPermissionDeniedError || /permission denied/i.test(message)) {
    return `etcd at ${where} denied access${user}; backups need a user with the root role`;
  }
  if (/alert bad certificate|certificate required/i.test(message)) {
    return `etcd at ${where} refused the TLS client certificate (none given, or not signed by a CA it trusts)`;
  }
  if (/unable to verify|self[- ]signed|certificate has expired|Hostname\/IP does not match|ERR_TLS_CERT/i.test(message)) {
    return `cannot verify the TLS certificate of etcd at ${where} (wrong or missing CA?)`;
  }
  return `cannot reach etcd at ${where}`;
}
