import { readFile } from 'node:fs/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { formatBytes, parseQuantity } from '../api/quantity.js';
import { createEtcdClient, connectCheck, type EtcdConnection } from '../etcd/client.js';
import { takeFullSnapshot } from '../engine/full-snapshot.js';
import { COMPRESSIONS, DEFAULT_COMPRESSION, type Compression } from '../archive/compression.js';
import { errorMessage, InvalidSpecError, OperatorError, UsageError } from '../errors.js';
import { createLogger, type LogFormat, type Logger } from '../observability/logger.js';
import { openStoreUrl } from '../store/factory.js';
import { DEFAULT_RUNNER_MODEL, RUNNER_MODELS, type RunnerModel } from '../controller/worker-protocol.js';
import type { RestoreOptions } from '../restore/restore.js';
import { encryptionKeyFileOption, readEncryptionKeyFiles } from './encryption-keys.js';

// Each command imports what only it needs inside its action: start-up time and memory of a
// one-shot command (snapshot in a CronJob, list in a script) should not pay for the others.

const ENCRYPTION_KEYS_HELP =
  'key for encrypted (.enc) objects: 64 hex digits, base64, or 32 raw bytes not all printable; repeat for every key in use (rotation)';
const ALLOW_UNENCRYPTED_HELP =
  'with --encryption-key-file, also accept objects that are not encrypted (refused by default: anyone who can write to the store could plant one)';

/** The flags of a command that replays a chain (restore, compact): keys, prefetch, txns in flight. */
interface ReplayFlags {
  memory?: number;
  txnsInFlight?: number;
  encryptionKeyFile: string[];
  allowUnencrypted?: boolean;
}

/** Restore flags commander parses straight into RestoreOptions' fields of the same name. */
type RestoreTargetFlags = Pick<
  RestoreOptions,
  'dataDir' | 'snapshotOut' | 'initialCluster' | 'initialClusterToken' | 'bumpRevision' | 'markCompacted' | 'toRevision' | 'toTime'
>;

function addReplayFlags(command: Command, keysHelp = ENCRYPTION_KEYS_HELP): Command {
  return command
    .option('--memory <quantity>', 'bytes of delta objects downloaded ahead of the replay (default 64Mi)', byteQuantity)
    .option('--txns-in-flight <n>', 'delta revisions sent before the previous ones are confirmed (each stays exact; see docs/architecture.md)', positiveInteger)
    .addOption(encryptionKeyFileOption(keysHelp))
    .option('--allow-unencrypted', ALLOW_UNENCRYPTED_HELP);
}

/** Exit codes scripts can rely on. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

interface GlobalOptions {
  logFormat: LogFormat;
  logLevel: string;
}

interface EtcdFlags {
  endpoints: string;
  cacert?: string;
  cert?: string;
  key?: string;
  user?: string;
  passwordFile?: string;
  dialTimeout: number;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function byteQuantity(value: string): number {
  const bytes = parseQuantity(value);
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new InvalidArgumentError('must be a positive quantity of bytes such as 64Mi or 1Gi');
  }
  return bytes;
}

function rfc3339(value: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError('must be an RFC 3339 time such as 2026-11-25T15:04:05Z');
  }
  return date;
}

function addEtcdFlags(command: Command, required: boolean): Command {
  const endpoints = new Option('--endpoints <urls>', 'comma-separated etcd client URLs');
  if (required) endpoints.makeOptionMandatory();
  return command
    .addOption(endpoints)
    .option('--cacert <file>', 'CA bundle to verify etcd (TLS)')
    .option('--cert <file>', 'client certificate (TLS client auth)')
    .option('--key <file>', 'client key (TLS client auth)')
    .option('--user <name>', 'etcd username (password from --password-file)')
    .option('--password-file <file>', 'file holding the etcd password')
    .option('--dial-timeout <seconds>', 'give up on an unreachable etcd after this long', positiveInteger, 10);
}

async function etcdConnection(flags: EtcdFlags): Promise<EtcdConnection> {
  const endpoints = flags.endpoints.split(',').map((e) => e.trim()).filter(Boolean);
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/]+/.test(endpoint)) throw new UsageError(`--endpoints: ${JSON.stringify(endpoint)} is not an http(s):// URL`);
  }
  if (endpoints.length === 0) throw new UsageError('--endpoints: no endpoint given');
  const readOptional = async (file: string | undefined, what: string): Promise<Buffer | undefined> => {
    if (!file) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new UsageError(`cannot read ${what} ${file}: ${(err as { code?: string }).code ?? errorMessage(err)}`);
    }
  };
  const connection: EtcdConnection = { endpoints, callTimeoutMs: flags.dialTimeout * 1000 };
  const [ca, cert, key] = await Promise.all([
    readOptional(flags.cacert, '--cacert'),
    readOptional(flags.cert, '--cert'),
    readOptional(flags.key, '--key'),
  ]);
  if (ca || cert || key) connection.tls = { ca, cert, key };
  if (flags.user) {
    const password = await readOptional(flags.passwordFile, '--password-file');
    if (!password) throw new UsageError('--user needs --password-file');
    connection.auth = { username: flags.user, password: password.toString('utf8').trim() };
  }
  return connection;
}

function loggerFor(command: Command): Logger {
  const options = command.optsWithGlobals<GlobalOptions>();
  return createLogger({ format: options.logFormat, level: options.logLevel });
}

/** Resolves when SIGTERM or SIGINT arrives. */
function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (signal: string): void => {
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
      resolve(signal);
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  });
}

export function buildProgram(): Command {
  const program = new Command('etcd-backup')
    .description('Back up etcd to object storage under a hard memory budget; restore and verify backups.')
    .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'text']).default('json'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  addEtcdFlags(program.command('snapshot').description('take one full snapshot now'), true)
    .requiredOption('--store <url>', 'store URL: file:///abs/path or s3://bucket/prefix?...')
    .addOption(new Option('--compression <kind>', 'compression').choices(COMPRESSIONS).default(DEFAULT_COMPRESSION))
    .addOption(new Option('--compression-level <n>', 'gzip 1-9 (default 1), zstd 1-19 (default 1)').argParser(positiveInteger))
    // For bench/full-snapshot.ts: blocks compressed at once (1 = single-stream gzip).
    .addOption(new Option('--compression-parallelism <n>').argParser(positiveInteger).hideHelp())
    .addOption(encryptionKeyFileOption('encrypt the snapshot (AES-256-GCM) with the 32-byte key in this file (hex, base64, or raw bytes not all printable)'))
    .action(async (flags: EtcdFlags & { store: string; compression: Compression; compressionLevel?: number; compressionParallelism?: number; encryptionKeyFile: string[] }, command: Command) => {
      const logger = loggerFor(command);
      if (flags.encryptionKeyFile.length > 1) throw new UsageError('snapshot encrypts with one key: give --encryption-key-file once');
      const [encryptionKey] = await readEncryptionKeyFiles(flags.encryptionKeyFile);
      const store = await openStoreUrl(flags.store);
      const connection = await etcdConnection(flags);
      const client = createEtcdClient({ ...connection, bulkTransfer: true });
      try {
        await connectCheck(client, connection, flags.dialTimeout * 1000);
        const result = await takeFullSnapshot({
          client,
          endpoints: connection.endpoints,
          store,
          compression: flags.compression,
          compressOptions: { level: flags.compressionLevel, parallelism: flags.compressionParallelism },
          encryptionKey,
        });
        logger.info('Took full snapshot', { object: result.key, revision: result.revision, sizeBytes: result.sizeBytes });
        const lock = result.retention
          ? ` retention=${result.retention.mode ?? 'locked'} retainUntil=${result.retention.retainUntil.toISOString()}`
          : '';
        console.log(
          `snapshot ${store.describe()}/${result.key} revision=${result.revision} size=${result.sizeBytes} sha256=${result.sha256}${lock}`,
        );
      } finally {
        client.close();
      }
    });

  program
    .command('run')
    .description('back up continuously as an EtcdBackup file says (full snapshots on schedule, deltas, retention)')
    .requiredOption('-f, --file <file>', 'EtcdBackup YAML (same kind and schema as the CRD)')
    .option('--secrets-dir <dir>', 'where Secrets named in the spec are mounted (<dir>/<name>/<key>)', '/etc/etcd-backup/secrets')
    .action(async (flags: { file: string; secretsDir: string }, command: Command) => {
      const logger = loggerFor(command);
      const { loadEtcdBackupFile } = await import('./load-spec.js');
      const { readSecretsFromDir } = await import('./secrets-dir.js');
      const { Supervisor } = await import('../engine/supervisor.js');
      (await import('../engine/heap-mode.js')).favourSmallHeap();
      const { backup, resolved } = await loadEtcdBackupFile(flags.file);
      const secrets = await readSecretsFromDir(resolved.spec, flags.secretsDir);
      const name = backup.metadata?.name ?? flags.file;
      const supervisor = new Supervisor({ resolved, secrets, name }, logger.child({ etcdBackup: name }));
      const stopped = shutdownSignal();
      await supervisor.start();
      const signal = await stopped;
      logger.info('Stopping on signal', { signal });
      await supervisor.stop();
    });

  program
    .command('list')
    .description('list the backups in a store')
    .requiredOption('--store <url>', 'store URL')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (flags: { store: string; output: 'table' | 'json' }) => {
      const store = await openStoreUrl(flags.store);
      const { formatListing, listBackups } = await import('./list.js');
      const entries = await listBackups(store);
      console.log(flags.output === 'json' ? JSON.stringify(entries, null, 2) : formatListing(entries));
    });

  const restore = program
    .command('restore')
    .description('rebuild an etcd data dir from the store (newest full snapshot at or before the target)')
    .requiredOption('--store <url>', 'store URL')
    .option('--data-dir <dir>', 'data dir to create; must not exist or be empty')
    .option('--snapshot-out <file>', 'also (or only) write the restored state as one snapshot db that etcdutl/etcdctl snapshot restore takes')
    .option('--to-revision <n>', 'restore this revision', positiveInteger)
    .option('--to-time <rfc3339>', 'restore what was archived at this time', rfc3339)
    .option('--name <name>', 'member name for the restored data dir (etcd --name)', 'default')
    .option('--initial-advertise-peer-urls <url>', 'peer URL of the restored member', 'http://localhost:2380')
    .option('--initial-cluster <members>', 'NAME=URL,... of the new cluster: build this member\'s data dir (run once per member)')
    .option('--initial-cluster-token <token>', 'token of the new cluster (default etcd-backup-restore)')
    .option('--bump-revision <n>', 'raise the restored revision by N (etcdutl 3.5.10+); the setting for Kubernetes, with --mark-compacted', positiveInteger)
    .option('--mark-compacted', 'mark the bumped revision compacted, so watches from before it fail and clients relist')
    .option('--no-tmpfs', 'replay on disk even when the data fits in /dev/shm (by default the replay runs there and is then copied to --data-dir)');
  addReplayFlags(restore)
    .action(
      async (
        flags: {
          store: string;
          name: string;
          initialAdvertisePeerUrls: string;
          tmpfs: boolean;
        } & RestoreTargetFlags &
          ReplayFlags,
        command: Command,
      ) => {
        if (flags.toRevision !== undefined && flags.toTime !== undefined) {
          throw new UsageError('give at most one of --to-revision and --to-time');
        }
        const logger = loggerFor(command);
        const encryptionKeys = await readEncryptionKeyFiles(flags.encryptionKeyFile);
        const { restoreBackup } = await import('../restore/restore.js');
        const { describeLeaseSummary } = await import('../restore/lease-restorer.js');
        const result = await restoreBackup({
          encryptionKeys,
          allowUnencrypted: flags.allowUnencrypted,
          store: await openStoreUrl(flags.store),
          dataDir: flags.dataDir,
          toRevision: flags.toRevision,
          toTime: flags.toTime,
          snapshotOut: flags.snapshotOut,
          initialCluster: flags.initialCluster,
          initialClusterToken: flags.initialClusterToken,
          bumpRevision: flags.bumpRevision,
          markCompacted: flags.markCompacted,
          name: flags.name,
          peerUrl: flags.initialAdvertisePeerUrls,
          prefetchBytes: flags.memory,
          pipelineDepth: flags.txnsInFlight,
          tmpfs: flags.tmpfs,
          logger,
        });
        const into = [flags.dataDir, flags.snapshotOut].filter(Boolean).join(' and ');
        const chain = result.clusterId ? ` (the chain of etcd cluster ${result.clusterId})` : ' (store without a marker: cluster not checked)';
        console.log(`restored ${result.snapshot.key} into ${into}: revision ${result.revision}${chain}`);
        if (flags.bumpRevision) {
          console.log(`revision bumped by ${flags.bumpRevision} and marked compacted: the member starts at revision ${result.revision + flags.bumpRevision}`);
        }
        const leases = describeLeaseSummary(result.leases);
        if (leases) console.log(`leases: ${leases}`);
        const { quotaBytes, peakRssBytes, peakAnonRssBytes, restarts, dataDirOnTmpfs } = result.temporaryMember;
        const bytes = (n: number | undefined): string => (n === undefined ? 'unknown' : formatBytes(n));
        console.log(
          `temporary etcd: quota ${formatBytes(quotaBytes)}, peak RSS ${bytes(peakRssBytes)} (anonymous ${bytes(peakAnonRssBytes)}), ` +
            `restarted ${restarts} time(s) to drop its in-memory raft log, data dir on ${dataDirOnTmpfs ? 'tmpfs' : 'disk'}; ` +
            `restore itself: peak RSS ${formatBytes(process.resourceUsage().maxRSS * 1024)}`,
        );
        const quota = Math.max(2 * 1024 ** 3, Math.ceil(result.dbSizeBytes * 1.25));
        console.log(`the restored db is ${formatBytes(result.dbSizeBytes)}: give etcd a --quota-backend-bytes of at least the source's and above that size`);
        if (flags.dataDir) {
          const peers = flags.initialCluster ? ` --initial-advertise-peer-urls ${flags.initialAdvertisePeerUrls} --listen-peer-urls ${flags.initialAdvertisePeerUrls}` : '';
          console.log(`start it with: etcd --name ${flags.name} --data-dir ${flags.dataDir}${peers} --quota-backend-bytes ${quota}`);
        }
      },
    );

  const compact = program
    .command('compact')
    .description('fold the deltas after the newest full snapshot into a new full snapshot (restored here, not on the live etcd)')
    .requiredOption('--store <url>', 'store URL')
    .addOption(new Option('--compression <kind>', "compression of the new snapshot (default: the newest full snapshot's)").choices(COMPRESSIONS));
  addReplayFlags(compact, `${ENCRYPTION_KEYS_HELP}; the first one seals the new snapshot`)
    .action(
      async (
        flags: {
          store: string;
          compression?: Compression;
        } & ReplayFlags,
        command: Command,
      ) => {
        const logger = loggerFor(command);
        const encryptionKeys = await readEncryptionKeyFiles(flags.encryptionKeyFile);
        const store = await openStoreUrl(flags.store);
        const { compactNewestChain } = await import('../engine/compaction.js');
        const result = await compactNewestChain({
          store,
          logger,
          compression: flags.compression,
          encryptionKeys,
          allowUnencrypted: flags.allowUnencrypted,
          prefetchBytes: flags.memory,
          pipelineDepth: flags.txnsInFlight,
        });
        if (!result.compacted) {
          console.log(`nothing to compact: ${result.why}`);
          return;
        }
        const { snapshot } = result;
        console.log(
          `compacted ${result.from} + ${result.revisionsFolded} delta revisions into ${store.describe()}/${snapshot.key} ` +
            `revision=${snapshot.revision} size=${snapshot.sizeBytes} sha256=${snapshot.sha256}`,
        );
      },
    );

  addEtcdFlags(
    program.command('verify').description('trial-restore into a temp dir and report keys, revision and content hash'),
    false,
  )
    .requiredOption('--store <url>', 'store URL')
    .option('--to-revision <n>', 'verify this revision', positiveInteger)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(encryptionKeyFileOption(ENCRYPTION_KEYS_HELP))
    .option('--allow-unencrypted', ALLOW_UNENCRYPTED_HELP)
    .action(
      async (
        flags: Partial<EtcdFlags> & {
          store: string;
          toRevision?: number;
          output: 'text' | 'json';
          encryptionKeyFile: string[];
          allowUnencrypted?: boolean;
        },
        command: Command,
      ) => {
        const logger = loggerFor(command);
        const encryptionKeys = await readEncryptionKeyFiles(flags.encryptionKeyFile);
        const live = flags.endpoints ? await etcdConnection(flags as EtcdFlags) : undefined;
        const { verifyBackup } = await import('../restore/verify.js');
        const result = await verifyBackup({
          store: await openStoreUrl(flags.store),
          toRevision: flags.toRevision,
          live,
          logger,
          encryptionKeys,
          allowUnencrypted: flags.allowUnencrypted,
        });
        if (flags.output === 'json') {
          console.log(JSON.stringify(result, null, 2));
        } else {
          console.log(`snapshot ${result.snapshot}`);
          console.log(`revision ${result.revision}`);
          console.log(`keys ${result.keyCount}`);
          console.log(`content-sha256 ${result.contentHash}`);
          if (result.comparison) {
            console.log(`live-keys ${result.comparison.liveKeyCount}`);
            console.log(result.comparison.matches ? 'live-comparison MATCH' : 'live-comparison MISMATCH');
            for (const difference of result.comparison.differences) console.log(`  ${difference}`);
          }
        }
        if (result.comparison && !result.comparison.matches) {
          throw new OperatorError('VerifyMismatch', `backup at revision ${result.revision} differs from the live cluster`);
        }
      },
    );

  program
    .command('crd')
    .description('print the EtcdBackup CustomResourceDefinition (YAML)')
    .action(async () => {
      const { crdYaml } = await import('../api/v1alpha1/crd.js');
      process.stdout.write(crdYaml());
    });

  program
    .command('operator')
    .description('run the Kubernetes operator (in-cluster config by default)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)')
    .option('--namespace <ns>', 'watch EtcdBackups in this namespace only (default: all namespaces)')
    .option('--metrics-port <port>', 'port of /healthz, /readyz and /metrics', (v) => Number(v), 8080)
    .option('--no-leader-election', 'do not take the leader Lease (only for a single replica)')
    .addOption(
      new Option('--worker-image <image>', 'image of runner: pod workers when spec.pod.image is not set').env('ETCD_BACKUP_WORKER_IMAGE'),
    )
    .option(
      '--allowed-worker-images <images>',
      "comma-separated images spec.pod.image may name besides --worker-image; an entry ending in * is a prefix (default: none)",
    )
    .option('--allow-ambient-credentials', "let S3 stores without credentialsSecretRef use the operator's own cloud identity")
    .option('--allow-local-store', "let EtcdBackups use spec.store.local (writes into the operator's filesystem)")
    .addOption(
      new Option('--runner-model <model>', 'how each EtcdBackup runs in the operator: a forked process, a worker thread, or inline in the event loop')
        .choices(RUNNER_MODELS)
        .default(DEFAULT_RUNNER_MODEL),
    )
    .option(
      '--memory-limit <quantity>',
      "memory the operator may use, workers included (e.g. 2Gi); a worker whose budget does not fit is not started (default: the container's cgroup limit, if any)",
    )
    .option('--memory-base <quantity>', "the operator's own share of --memory-limit before any worker (default 192Mi)")
    .action(
      async (
        flags: {
          kubeconfig?: string;
          namespace?: string;
          metricsPort: number;
          leaderElection: boolean;
          workerImage?: string;
          allowedWorkerImages?: string;
          allowAmbientCredentials?: boolean;
          allowLocalStore?: boolean;
          runnerModel: RunnerModel;
          memoryLimit?: string;
          memoryBase?: string;
        },
        command: Command,
      ) => {
        if (!Number.isInteger(flags.metricsPort) || flags.metricsPort < 0 || flags.metricsPort > 65535) {
          throw new UsageError('--metrics-port must be a port number');
        }
        const quantity = (flag: string, value: string | undefined) => {
          if (value === undefined) return undefined;
          const bytes = parseQuantity(value);
          if (bytes === undefined || bytes <= 0) throw new UsageError(`${flag} must be a memory quantity such as 2Gi or 512Mi`);
          return bytes;
        };
        const memory = { limitBytes: quantity('--memory-limit', flags.memoryLimit), baseBytes: quantity('--memory-base', flags.memoryBase) };
        const globals = command.optsWithGlobals<GlobalOptions>();
        // Loaded lazily: the Kubernetes client is heavy and only the operator needs it.
        const { runOperator } = await import('../controller/operator.js');
        await runOperator({
          kubeconfig: flags.kubeconfig,
          namespace: flags.namespace,
          metricsPort: flags.metricsPort,
          leaderElection: flags.leaderElection,
          workerImage: flags.workerImage,
          policy: {
            allowedWorkerImages: (flags.allowedWorkerImages ?? '').split(',').map((image) => image.trim()).filter(Boolean),
            allowAmbientCredentials: flags.allowAmbientCredentials === true,
            allowLocalStore: flags.allowLocalStore === true,
          },
          logger: loggerFor(command),
          workerLog: { level: globals.logLevel, format: globals.logFormat },
          runnerModel: flags.runnerModel,
          memory,
        });
      },
    );

  return program;
}

/** Runs the CLI; every failure is one line on stderr and a non-zero exit code, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or the help text).
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof InvalidSpecError) {
      console.error(`etcd-backup: invalid EtcdBackup (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}):`);
      for (const problem of err.problems) console.error(`  - ${problem}`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      console.error(`etcd-backup: ${err.message}`);
      return EXIT_USAGE;
    }
    console.error(`etcd-backup: error: ${errorMessage(err).split('\n')[0]}`);
    if (process.env.ETCD_BACKUP_DEBUG && err instanceof Error) console.error(err.stack);
    return EXIT_FAILURE;
  }
}
