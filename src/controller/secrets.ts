import type { CoreV1Api } from '@kubernetes/client-node';
import type { EtcdBackupSpec } from '../api/v1alpha1/etcd-backup-types.js';
import { decodeEncryptionKey, keyProblem } from '../crypto/encryption.js';
import type { ResolvedSecrets } from '../engine/supervisor-types.js';
import { Reason, type SecretProblem } from './conditions.js';
import { isNotFound } from './kube-errors.js';

/**
 * Turns the Secrets an EtcdBackup references into ResolvedSecrets for its supervisor. Values never
 * leave this module except inside ResolvedSecrets (which goes over IPC to the worker): problems
 * name the Secret, the spec field and the missing key, never a value.
 */

/** What the controller needs of a Secret: its data (base64 values, as the API returns them). */
export interface SecretData {
  resourceVersion?: string;
  data?: Record<string, string>;
}

/** Reads one Secret; resolves undefined when it does not exist, throws on other API errors. */
export type SecretGetter = (namespace: string, name: string) => Promise<SecretData | undefined>;

export interface SecretReference {
  name: string;
  field: string;
}

export interface SecretResolution {
  secrets: ResolvedSecrets;
  /** `name -> resourceVersion` of every referenced Secret that exists: part of the config hash. */
  versions: Record<string, string>;
  problems: SecretProblem[];
}

/** Every Secret the spec references, with the field that names it. */
export function referencedSecrets(spec: EtcdBackupSpec): SecretReference[] {
  const refs: SecretReference[] = [];
  if (spec.etcd?.tlsSecretRef) refs.push({ name: spec.etcd.tlsSecretRef.name, field: 'spec.etcd.tlsSecretRef' });
  if (spec.etcd?.credentialsSecretRef) {
    refs.push({ name: spec.etcd.credentialsSecretRef.name, field: 'spec.etcd.credentialsSecretRef' });
  }
  if (spec.store?.s3?.credentialsSecretRef) {
    refs.push({ name: spec.store.s3.credentialsSecretRef.name, field: 'spec.store.s3.credentialsSecretRef' });
  }
  if (spec.encryption?.keySecretRef) refs.push({ name: spec.encryption.keySecretRef.name, field: 'spec.encryption.keySecretRef' });
  return refs;
}

export function coreSecretGetter(core: CoreV1Api): SecretGetter {
  return async (namespace, name) => {
    try {
      const secret = await core.readNamespacedSecret({ namespace, name });
      return { resourceVersion: secret.metadata?.resourceVersion, data: secret.data };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };
}

/** The key parser shared with the CLI (32 bytes raw, 64 hex digits or base64). */
export { decodeEncryptionKey };

export async function resolveSecrets(namespace: string, spec: EtcdBackupSpec, get: SecretGetter): Promise<SecretResolution> {
  const secrets: ResolvedSecrets = {};
  const versions: Record<string, string> = {};
  const problems: SecretProblem[] = [];
  const cache = new Map<string, SecretData | undefined>();

  const load = async (ref: SecretReference): Promise<Map<string, Buffer> | undefined> => {
    if (!cache.has(ref.name)) cache.set(ref.name, await get(namespace, ref.name));
    const secret = cache.get(ref.name);
    if (!secret) {
      problems.push({
        secretName: ref.name,
        field: ref.field,
        reason: Reason.SecretNotFound,
        message: `Secret ${namespace}/${ref.name} (${ref.field}) not found`,
      });
      return undefined;
    }
    versions[ref.name] = secret.resourceVersion ?? '';
    return new Map(Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]));
  };
  const invalid = (ref: SecretReference, what: string) =>
    problems.push({
      secretName: ref.name,
      field: ref.field,
      reason: Reason.SecretInvalid,
      message: `Secret ${namespace}/${ref.name} (${ref.field}) ${what}`,
    });
  const requireKeys = (ref: SecretReference, data: Map<string, Buffer>, keys: string[]): boolean => {
    const missing = keys.filter((key) => !data.get(key)?.length);
    if (missing.length > 0) invalid(ref, `has no ${missing.join(', ')}`);
    return missing.length === 0;
  };
  const text = (data: Map<string, Buffer>, key: string) => data.get(key)?.toString('utf8').trim() ?? '';

  const tlsRef = spec.etcd?.tlsSecretRef && { name: spec.etcd.tlsSecretRef.name, field: 'spec.etcd.tlsSecretRef' };
  if (tlsRef) {
    const data = await load(tlsRef);
    if (data) {
      const tls = { ca: data.get('ca.crt'), cert: data.get('tls.crt'), key: data.get('tls.key') };
      if (!tls.ca && !tls.cert) invalid(tlsRef, 'has neither ca.crt nor tls.crt');
      else if (Boolean(tls.cert) !== Boolean(tls.key)) invalid(tlsRef, 'must hold tls.crt and tls.key together');
      else secrets.etcdTls = tls;
    }
  }
  const authRef = spec.etcd?.credentialsSecretRef && {
    name: spec.etcd.credentialsSecretRef.name,
    field: 'spec.etcd.credentialsSecretRef',
  };
  if (authRef) {
    const data = await load(authRef);
    if (data && requireKeys(authRef, data, ['username', 'password'])) {
      secrets.etcdAuth = { username: text(data, 'username'), password: text(data, 'password') };
    }
  }
  const s3Ref = spec.store?.s3?.credentialsSecretRef && {
    name: spec.store.s3.credentialsSecretRef.name,
    field: 'spec.store.s3.credentialsSecretRef',
  };
  if (s3Ref) {
    const data = await load(s3Ref);
    if (data && requireKeys(s3Ref, data, ['accessKeyId', 'secretAccessKey'])) {
      secrets.s3Credentials = {
        accessKeyId: text(data, 'accessKeyId'),
        secretAccessKey: text(data, 'secretAccessKey'),
        ...(data.get('sessionToken')?.length ? { sessionToken: text(data, 'sessionToken') } : {}),
      };
    }
  }
  const keyRef = spec.encryption?.keySecretRef && { name: spec.encryption.keySecretRef.name, field: 'spec.encryption.keySecretRef' };
  if (keyRef) {
    const data = await load(keyRef);
    if (data && requireKeys(keyRef, data, ['key'])) {
      const raw = data.get('key')!;
      const key = decodeEncryptionKey(raw);
      if (key) secrets.encryptionKey = key;
      else invalid(keyRef, `key ${keyProblem(raw)}`);
    }
  }
  return { secrets, versions, problems };
}
