import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate and its private key, as files (for etcd and CLI flags) and as bytes. */
export interface CertPair {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

/** A throwaway PKI for tests: one CA, a server cert for 127.0.0.1 and client certs by common name. */
export interface TestCerts {
  readonly dir: string;
  readonly caPath: string;
  readonly ca: Buffer;
  /** Server certificate with IP SAN 127.0.0.1 (and DNS localhost). */
  readonly server: CertPair;
  /** Client certificates (extendedKeyUsage clientAuth), keyed by CN; etcd takes the CN as the user name. */
  readonly clients: Record<string, CertPair>;
  /** Removes the temp dir. */
  cleanup(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 30_000 });
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim() || String(err);
    throw new Error(`openssl ${args[0]} failed (is openssl installed?): ${detail}`, { cause: err });
  }
}

/** EC P-256 keys: fast to generate and accepted by etcd (Go) and grpc-js (Node). */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

const LEAF = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];
const CLIENT_LEAF = [...LEAF, 'extendedKeyUsage=clientAuth'];

async function issue(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
): Promise<CertPair> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.crt`);
  const extPath = join(dir, `${name}.ext`);
  await writeFile(extPath, `${extensions.join('\n')}\n`);
  await openssl(['req', ...NEW_KEY, '-keyout', keyPath, '-out', csrPath, '-subj', subject], dir);
  await openssl(
    ['x509', '-req', '-in', csrPath, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-days', '2', '-sha256', '-extfile', extPath, '-out', certPath],
    dir,
  );
  return { certPath, keyPath, cert: await readFile(certPath), key: await readFile(keyPath) };
}

/**
 * Generates a CA, a server certificate for 127.0.0.1 and one client certificate per name in
 * `clientNames` with the `openssl` CLI, in a new temp dir. Valid for two days; nothing is trusted
 * outside the test.
 */
export async function generateTestCerts(clientNames: string[] = ['root']): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'etcd-test-certs-'));
  try {
    await openssl(
      ['req', '-x509', ...NEW_KEY, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=etcd-backup test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
    const server = await issue(dir, 'server', '/CN=127.0.0.1', [
      ...LEAF,
      // etcd also dials itself as a client (grpc-gateway), so the server cert may be used for both.
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
    const clients: Record<string, CertPair> = {};
    for (const name of clientNames) {
      clients[name] = await issue(dir, `client-${name}`, `/CN=${name}`, CLIENT_LEAF);
    }
    const caPath = join(dir, 'ca.crt');
    return {
      dir,
      caPath,
      ca: await readFile(caPath),
      server,
      clients,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * One more client certificate from the same CA, with organisations: Kubernetes takes CN as the user
 * name and each O as a group (e.g. `system:masters` for an admin).
 */
export async function issueClientCert(certs: TestCerts, name: string, organizations: string[] = []): Promise<CertPair> {
  const subject = `${organizations.map((o) => `/O=${o}`).join('')}/CN=${name}`;
  return issue(certs.dir, `client-${name}`, subject, CLIENT_LEAF);
}
