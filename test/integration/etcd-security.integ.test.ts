/**
 * etcd TLS (server verification, client-cert auth) and user/password auth, end to end against real
 * etcd servers: the library, the CLI flags (`snapshot`, `verify`) and `run -f` with Secrets from a
 * secrets dir, including deltas (watches) under auth. Every output of the CLI is scanned for the
 * password and the client keys at the end.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient, headRevision, type EtcdConnection } from '../../src/etcd/client.js';
import { ETCDCTL_BINARY, startLocalEtcd } from '../../src/etcd/local-etcd.js';
import { fetchRevisions } from '../../src/etcd/revision-fetch.js';
import { takeFullSnapshot } from '../../src/engine/full-snapshot.js';
import { MemoryBudget } from '../../src/budget/memory-budget.js';
import { silentLogger } from '../../src/observability/logger.js';
import { restoreBackup } from '../../src/restore/restore.js';
import { contiguousChainEnd } from '../../src/restore/restore-plan.js';
import { LocalStore } from '../../src/store/local-store.js';
import { classifyKeys } from '../../src/archive/naming.js';
import { generateTestCerts, type CertPair, type TestCerts } from '../harness/certs.js';
import { startTestEtcd, type TestEtcd } from '../harness/etcd.js';
import { runCli, startCli, type CliResult } from '../helpers/cli.js';
import { allKeys, writeMixedWorkload } from '../helpers/workload.js';

const execFileAsync = promisify(execFile);

const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(12).toString('hex')}`;
/** etcd's simple-token TTL on the auth server: short, so a test can outlive a token. */
const TOKEN_TTL_SECONDS = 2;

let certs: TestCerts;
let tlsEtcd: TestEtcd;
let authEtcd: TestEtcd;
let work: string;
const clients: Etcd3[] = [];
const children: ChildProcess[] = [];
/** stdout and stderr of every CLI run, for the redaction check. */
const outputs: { what: string; text: string }[] = [];

/** etcd's /health over TLS with a client certificate (plain fetch cannot present one). */
function tlsHealth(ca: Buffer, client: CertPair): (clientUrl: string) => Promise<boolean> {
  return (clientUrl) =>
    new Promise((resolve) => {
      const request = httpsGet(
        `${clientUrl}/health`,
        { ca, cert: client.cert, key: client.key, agent: false, timeout: 1000 },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve(/"health":\s*"true"/.test(body)));
          response.on('error', () => resolve(false));
        },
      );
      request.on('timeout', () => request.destroy());
      request.on('error', () => resolve(false));
    });
}

function tlsConnection(cn = 'root'): EtcdConnection {
  const pair = certs.clients[cn]!;
  return { endpoints: [tlsEtcd.clientUrl], tls: { ca: certs.ca, cert: pair.cert, key: pair.key } };
}

function client(connection: EtcdConnection): Etcd3 {
  const c = createEtcdClient(connection);
  clients.push(c);
  return c;
}

async function etcdctl(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(ETCDCTL_BINARY, args, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 15_000 });
  return stdout;
}

/** Runs the CLI, records its output for the redaction check, and measures how long it took. */
async function cli(what: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult & { elapsedMs: number }> {
  const started = Date.now();
  const result = await runCli(args, { timeoutMs: 40_000, env });
  outputs.push({ what, text: result.stdout + result.stderr });
  return { ...result, elapsedMs: Date.now() - started };
}

function tlsFlags(cn = 'root'): string[] {
  const pair = certs.clients[cn]!;
  return ['--cacert', certs.caPath, '--cert', pair.certPath, '--key', pair.keyPath];
}

/** A failure is exactly one line on stderr, naming the endpoint, without a stack trace. */
function assertOneLineFailure(result: CliResult, endpoint: string, pattern?: RegExp): void {
  assert.equal(result.code, 1, `exit code 1 expected, got ${result.code}: ${result.stderr}`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr expected, got:\n${result.stderr}`);
  assert.match(lines[0]!, /^etcd-backup: error: /);
  assert.ok(lines[0]!.includes(endpoint), `the error names ${endpoint}: ${lines[0]}`);
  assert.ok(!/\n\s+at /.test(result.stderr), `no stack trace: ${result.stderr}`);
  if (pattern) assert.match(lines[0]!, pattern);
}

async function archivedEnd(store: LocalStore): Promise<{ fulls: number; deltas: number; end: number }> {
  const listing = classifyKeys((await store.list('')).map((o) => o.key));
  const full = listing.fulls.at(-1);
  return {
    fulls: listing.fulls.length,
    deltas: listing.deltas.length,
    end: full ? contiguousChainEnd(listing.deltas, full.revision) : 0,
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await sleep(200);
  }
}

/**
 * `run -f` with the given etcd section until a full snapshot and deltas up to the head are in the
 * store, writing while it runs; then SIGTERM. Returns the store and the run's stderr.
 */
async function runAndArchive(
  what: string,
  etcdSpec: string,
  secretsDir: string,
  writer: Etcd3,
  prefix: string,
): Promise<{ store: LocalStore; stderr: string }> {
  const dir = join(work, what);
  const storeDir = join(dir, 'store');
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'backup.yaml');
  await writeFile(
    file,
    [
      'apiVersion: etcdbackup.io/v1alpha1',
      'kind: EtcdBackup',
      `metadata: { name: ${what} }`,
      'spec:',
      `  etcd: ${etcdSpec}`,
      `  store: { local: { path: ${storeDir} } }`,
      '  fullSnapshot: { schedule: "0 0 1 1 *" }',
      '  deltaSnapshot: { period: 1s, chunkRevisions: 100, chunkParallelism: 2 }',
      '  memory: { budget: 32Mi }',
    ].join('\n'),
  );
  const store = new LocalStore(storeDir);
  const child = startCli(['run', '-f', file, '--secrets-dir', secretsDir]);
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  try {
    // The store is empty, so run takes a full snapshot at start; deltas follow it.
    await Promise.race([
      waitFor(`${what}: a full snapshot`, () => archivedEnd(store), (s) => s.fulls >= 1),
      exited.then(([code]) => {
        throw new Error(`run exited early (${code}): ${stderr}`);
      }),
    ]);
    await writeMixedWorkload(writer, prefix, 300, 7);
    const head = await headRevision(writer);
    const archived = await waitFor(`${what}: deltas up to ${head}`, () => archivedEnd(store), (s) => s.end >= head);
    assert.ok(archived.deltas >= 1, `deltas were archived: ${JSON.stringify(archived)}`);
  } finally {
    child.kill('SIGTERM');
  }
  const [code] = await exited;
  outputs.push({ what: `run ${what}`, text: stdout + stderr });
  assert.equal(code, 0, `run stops cleanly on SIGTERM: ${stderr}`);
  assert.ok(!/"level":"error"/.test(stderr), `no error logged by run ${what}:\n${stderr}`);
  return { store, stderr };
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'etcd-security-test-'));
  certs = await generateTestCerts(['root', 'reader']);
  [tlsEtcd, authEtcd] = await Promise.all([
    startTestEtcd({
      scheme: 'https',
      extraArgs: [
        '--cert-file', certs.server.certPath,
        '--key-file', certs.server.keyPath,
        '--trusted-ca-file', certs.caPath,
        '--client-cert-auth',
      ],
      isReady: tlsHealth(certs.ca, certs.clients.root!),
    }),
    startTestEtcd({ extraArgs: ['--auth-token-ttl', String(TOKEN_TTL_SECONDS)] }),
  ]);
  await writeMixedWorkload(client(tlsConnection()), 'tls/', 800, 3);
  // Auth as an operator sets it up: a root user, then auth on. Data written as root.
  await etcdctl(['--endpoints', authEtcd.clientUrl, 'user', 'add', 'root', '--new-user-password', PASSWORD]);
  await etcdctl(['--endpoints', authEtcd.clientUrl, 'auth', 'enable']);
  await writeMixedWorkload(client({ endpoints: [authEtcd.clientUrl], auth: { username: 'root', password: PASSWORD } }), 'auth/', 800, 4);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const c of clients) c.close();
  await Promise.all([tlsEtcd?.stop(), authEtcd?.stop()]);
  await certs?.cleanup();
  await rm(work, { recursive: true, force: true });
});

test('TLS with client-cert auth: full snapshot through createEtcdClient restores to the same keyspace', async () => {
  const source = client(tlsConnection());
  const store = new LocalStore(join(work, 'lib-tls-store'));
  const revision = await headRevision(source);
  const snapshot = await takeFullSnapshot({ client: source, endpoints: [tlsEtcd.clientUrl], store, compression: 'gzip' });
  assert.equal(snapshot.revision, revision);

  const dataDir = join(work, 'lib-tls-restored');
  const restored = await restoreBackup({ store, dataDir, logger: silentLogger() });
  assert.equal(restored.revision, revision);
  const member = await startLocalEtcd({ dataDir, name: 'default', logFile: join(work, 'lib-tls-member.log') });
  const restoredClient = createEtcdClient({ endpoints: [member.clientUrl] });
  try {
    const expected = await allKeys(source, revision);
    assert.ok(expected.length > 200, `workload wrote ${expected.length} keys`);
    assert.deepEqual(await allKeys(restoredClient), expected);
  } finally {
    restoredClient.close();
    await member.stop();
  }
});

test('CLI snapshot and verify over TLS with --cacert/--cert/--key', async () => {
  const storeUrl = `file://${join(work, 'cli-tls-store')}`;
  const snap = await cli('snapshot tls', ['snapshot', '--endpoints', tlsEtcd.clientUrl, ...tlsFlags(), '--store', storeUrl]);
  assert.equal(snap.code, 0, snap.stderr);
  assert.match(snap.stdout, /^snapshot .* revision=\d+ /m);

  const verify = await cli('verify tls', ['verify', '--store', storeUrl, '--endpoints', tlsEtcd.clientUrl, ...tlsFlags()]);
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /live-comparison MATCH/);
});

test('CLI over TLS fails in one line, within --dial-timeout, without a client cert or a trusted CA', async () => {
  const storeUrl = `file://${join(work, 'cli-tls-fail-store')}`;
  const dialTimeout = 3;
  const noCert = await cli('snapshot tls without client cert', [
    'snapshot', '--endpoints', tlsEtcd.clientUrl, '--cacert', certs.caPath, '--dial-timeout', String(dialTimeout), '--store', storeUrl,
  ]);
  assertOneLineFailure(noCert, tlsEtcd.clientUrl, /refused the TLS client certificate/);
  // Node and tsx start-up come on top of the dial timeout.
  assert.ok(noCert.elapsedMs < dialTimeout * 1000 + 6000, `failed after ${noCert.elapsedMs} ms`);

  const untrusted = await cli('snapshot tls untrusted server', [
    'snapshot', '--endpoints', tlsEtcd.clientUrl, '--cert', certs.clients.root!.certPath, '--key', certs.clients.root!.keyPath,
    '--dial-timeout', String(dialTimeout), '--store', storeUrl,
  ]);
  assertOneLineFailure(untrusted, tlsEtcd.clientUrl, /cannot verify the TLS certificate/);
  assert.ok(untrusted.elapsedMs < dialTimeout * 1000 + 6000, `failed after ${untrusted.elapsedMs} ms`);
});

test('CLI over TLS with --cert/--key but no --cacert trusts the default roots (here: GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)', async () => {
  const storeUrl = `file://${join(work, 'cli-tls-roots-store')}`;
  const result = await cli(
    'snapshot tls default roots',
    ['snapshot', '--endpoints', tlsEtcd.clientUrl, '--cert', certs.clients.root!.certPath, '--key', certs.clients.root!.keyPath, '--store', storeUrl],
    { GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: certs.caPath },
  );
  assert.equal(result.code, 0, result.stderr);
});

test('run -f with tlsSecretRef from --secrets-dir takes a full snapshot and deltas', async () => {
  const secretsDir = join(work, 'secrets-tls');
  const secret = join(secretsDir, 'etcd-client-tls');
  await mkdir(secret, { recursive: true });
  const root = certs.clients.root!;
  await Promise.all([
    writeFile(join(secret, 'ca.crt'), certs.ca),
    writeFile(join(secret, 'tls.crt'), root.cert),
    writeFile(join(secret, 'tls.key'), root.key, { mode: 0o600 }),
  ]);
  await runAndArchive(
    'run-tls',
    `{ endpoints: ["${tlsEtcd.clientUrl}"], tlsSecretRef: { name: etcd-client-tls } }`,
    secretsDir,
    client(tlsConnection()),
    'tls-run/',
  );
});

test('auth: CLI snapshot with --user/--password-file works; a wrong password fails in one line', async () => {
  const storeUrl = `file://${join(work, 'cli-auth-store')}`;
  const good = join(work, 'password');
  const bad = join(work, 'wrong-password');
  await writeFile(good, `${PASSWORD}\n`, { mode: 0o600 });
  await writeFile(bad, `${WRONG_PASSWORD}\n`, { mode: 0o600 });

  const ok = await cli('snapshot auth', ['snapshot', '--endpoints', authEtcd.clientUrl, '--user', 'root', '--password-file', good, '--store', storeUrl]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^snapshot .* revision=\d+ /m);

  const wrong = await cli('snapshot auth wrong password', [
    'snapshot', '--endpoints', authEtcd.clientUrl, '--user', 'root', '--password-file', bad, '--dial-timeout', '3', '--store', storeUrl,
  ]);
  assertOneLineFailure(wrong, authEtcd.clientUrl, /rejected the user name or password \(user "root"\)/);

  const anonymous = await cli('snapshot auth no credentials', [
    'snapshot', '--endpoints', authEtcd.clientUrl, '--dial-timeout', '3', '--store', storeUrl,
  ]);
  assertOneLineFailure(anonymous, authEtcd.clientUrl, /authentication enabled and no user was given/);
});

test('auth: a revision fetch (watch) still works after the auth token expired while idle', async () => {
  const c = client({ endpoints: [authEtcd.clientUrl], auth: { username: 'root', password: PASSWORD } });
  const from = await headRevision(c);
  await c.put('auth/after-idle').value('1');
  await c.put('auth/after-idle').value('2');
  // Idle past the token's TTL: etcd forgets the token; the next call must get a new one.
  await sleep((TOKEN_TTL_SECONDS + 2) * 1000);
  const revisions: number[] = [];
  await fetchRevisions({
    client: c,
    fromRevision: from + 1,
    toRevision: from + 2,
    budget: new MemoryBudget(16 * 1024 * 1024),
    windowBytes: 4 * 1024 * 1024,
    maxSegmentBytes: 1024 * 1024,
    // Bounded, so a watch refused for a stale token fails the test instead of retrying for long.
    idleTimeoutMs: 5000,
    maxReconnects: 1,
    onSegment: async (segment) => {
      for (const event of segment.events) revisions.push(event.rev);
    },
    logger: silentLogger(),
  });
  assert.deepEqual(revisions, [from + 1, from + 2]);
});

test('auth: run -f with credentialsSecretRef takes a full snapshot and deltas (watches under auth)', async () => {
  const secretsDir = join(work, 'secrets-auth');
  const secret = join(secretsDir, 'etcd-auth');
  await mkdir(secret, { recursive: true });
  await writeFile(join(secret, 'username'), 'root\n');
  await writeFile(join(secret, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
  await runAndArchive(
    'run-auth',
    `{ endpoints: ["${authEtcd.clientUrl}"], credentialsSecretRef: { name: etcd-auth } }`,
    secretsDir,
    client({ endpoints: [authEtcd.clientUrl], auth: { username: 'root', password: PASSWORD } }),
    'auth-run/',
  );
});

test('TLS + auth: the client cert CN is the etcd user; a cert for a user without permission is refused in one line', async () => {
  const flags = ['--endpoints', tlsEtcd.clientUrl, ...tlsFlags('root')];
  await etcdctl([...flags, 'user', 'add', 'root', '--new-user-password', PASSWORD]);
  await etcdctl([...flags, 'user', 'add', 'reader', '--new-user-password', `${PASSWORD}-reader`]);
  await etcdctl([...flags, 'auth', 'enable']);
  const storeUrl = `file://${join(work, 'cli-cn-store')}`;
  const asRoot = await cli('snapshot cn root', ['snapshot', ...flags, '--store', storeUrl]);
  assert.equal(asRoot.code, 0, asRoot.stderr);
  const asReader = await cli('snapshot cn reader', [
    'snapshot', '--endpoints', tlsEtcd.clientUrl, ...tlsFlags('reader'), '--dial-timeout', '3', '--store', storeUrl,
  ]);
  assertOneLineFailure(asReader, tlsEtcd.clientUrl, /denied access.*root role/);
});

test(
  'TLS + auth: a user who may read every key but not take snapshots fails in one line',
  async () => {
    const flags = ['--endpoints', tlsEtcd.clientUrl, ...tlsFlags('root')];
    await etcdctl([...flags, 'role', 'add', 'read-all']);
    await etcdctl([...flags, 'role', 'grant-permission', 'read-all', 'read', '--prefix=true', '']);
    await etcdctl([...flags, 'user', 'grant-role', 'reader', 'read-all']);
    const result = await cli('snapshot cn reader read-all', [
      'snapshot', '--endpoints', tlsEtcd.clientUrl, ...tlsFlags('reader'), '--dial-timeout', '3',
      '--store', `file://${join(work, 'cli-cn-read-all-store')}`,
    ]);
    assertOneLineFailure(result, tlsEtcd.clientUrl, /permission denied/);
  },
);

test('redaction: no password and no client key in any output of the CLI runs', () => {
  assert.ok(outputs.length >= 10, `outputs of ${outputs.length} runs recorded`);
  const secrets: { name: string; value: string }[] = [
    { name: 'password', value: PASSWORD },
    { name: 'wrong password', value: WRONG_PASSWORD },
  ];
  for (const [cn, pair] of Object.entries(certs.clients)) {
    // Every base64 line of the PEM body, so that a JSON-escaped or partial key is caught too.
    const body = pair.key.toString('utf8').split('\n').filter((line) => line.length >= 16 && !line.startsWith('-----'));
    assert.ok(body.length > 0, `key of ${cn} has a PEM body`);
    for (const line of body) secrets.push({ name: `client key ${cn}`, value: line });
  }
  for (const { what, text } of outputs) {
    for (const secret of secrets) {
      assert.ok(!text.includes(secret.value), `the ${secret.name} appears in the output of ${what}`);
    }
  }
});
