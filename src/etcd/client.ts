import { Etcd3, type IOptions } from 'etcd3';
import { EtcdUnavailableError, errorMessage } from '../errors.js';

/** How to reach one etcd cluster. Secrets (key, password) are held here and never logged. */
export interface EtcdConnection {
  endpoints: string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  /** Deadline for unary calls (not streams), so an unreachable etcd fails in bounded time. Default 10 s. */
  callTimeoutMs?: number;
}

const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

export function createEtcdClient(connection: EtcdConnection): Etcd3 {
  const callTimeoutMs = connection.callTimeoutMs ?? 10_000;
  const options: IOptions = {
    hosts: connection.endpoints,
    dialTimeout: callTimeoutMs,
    // gRPC's 4 MiB default receive limit is below what etcd may send: a page of ranged keys with
    // large values, or a watch response. etcd bounds its own messages (--max-request-bytes per value).
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  };
  if (connection.tls?.ca || connection.tls?.cert) {
    options.credentials = {
      rootCertificate: connection.tls.ca ?? Buffer.alloc(0),
      privateKey: connection.tls.key,
      certChain: connection.tls.cert,
    };
  }
  if (connection.auth) options.auth = { ...connection.auth };
  return new Etcd3(options);
}

/** etcd's current head revision, from a cheap count-only range. */
export async function headRevision(client: Etcd3): Promise<number> {
  const response = await client.kv.range({ key: Buffer.from('\0'), count_only: true });
  return Number(response.header.revision);
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
    throw new EtcdUnavailableError(`cannot reach etcd at ${where}: ${errorMessage(err)}`, err);
  } finally {
    clearTimeout(timer);
  }
}
