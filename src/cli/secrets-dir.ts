import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { EtcdBackupSpec, SecretRef } from '../api/v1alpha1/etcd-backup-types.js';
import { decodeEncryptionKey, keyProblem } from '../crypto/encryption.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import { UsageError } from '../errors.js';

/**
 * Outside Kubernetes, a Secret named in the spec is read from `<dir>/<secret name>/<key>`: the
 * layout Kubernetes uses when it mounts a Secret as a volume, so the same spec works in a pod.
 */
export async function readSecretsFromDir(spec: EtcdBackupSpec, dir: string): Promise<ResolvedSecrets> {
  const secrets: ResolvedSecrets = {};
  const read = async (ref: SecretRef, key: string, required: boolean): Promise<Buffer | undefined> => {
    const path = join(dir, ref.name, key);
    try {
      return await readFile(path);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT' && !required) return undefined;
      throw new UsageError(`secret ${ref.name}: cannot read ${path} (${(err as { code?: string }).code ?? 'error'}); pass --secrets-dir`);
    }
  };
  const text = (data: Buffer | undefined): string => (data ?? Buffer.alloc(0)).toString('utf8').trim();

  if (spec.etcd.tlsSecretRef) {
    const ref = spec.etcd.tlsSecretRef;
    // Each key is optional, the Secret is not: without this check a misnamed Secret silently meant
    // "TLS with the system roots" and `run` retried forever against the endpoint.
    const secretDir = join(dir, ref.name);
    if (!(await stat(secretDir).then((info) => info.isDirectory(), () => false))) {
      throw new UsageError(`secret ${ref.name}: ${secretDir} does not exist; pass --secrets-dir`);
    }
    secrets.etcdTls = {
      ca: await read(ref, 'ca.crt', false),
      cert: await read(ref, 'tls.crt', false),
      key: await read(ref, 'tls.key', false),
    };
  }
  if (spec.etcd.credentialsSecretRef) {
    const ref = spec.etcd.credentialsSecretRef;
    secrets.etcdAuth = {
      username: text(await read(ref, 'username', true)),
      password: text(await read(ref, 'password', true)),
    };
  }
  if (spec.store.s3?.credentialsSecretRef) {
    const ref = spec.store.s3.credentialsSecretRef;
    // sessionToken is optional, as in the operator (secrets.ts): STS credentials fail without it.
    const sessionToken = text(await read(ref, 'sessionToken', false));
    secrets.s3Credentials = {
      accessKeyId: text(await read(ref, 'accessKeyId', true)),
      secretAccessKey: text(await read(ref, 'secretAccessKey', true)),
      ...(sessionToken ? { sessionToken } : {}),
    };
  }
  if (spec.encryption) {
    const ref = spec.encryption.keySecretRef;
    const raw = (await read(ref, 'key', true))!;
    const key = decodeEncryptionKey(raw);
    // Never the content: a key file says only where it is in a message.
    if (!key) throw new UsageError(`secret ${ref.name}: ${join(dir, ref.name, 'key')} ${keyProblem(raw)}`);
    secrets.encryptionKey = key;
  }
  return secrets;
}
