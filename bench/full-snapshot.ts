/**
 * Full snapshot speed and memory against `etcdctl snapshot save`, on real ~200 MB and ~1 GB etcd dbs.
 *
 *   node --import tsx bench/full-snapshot.ts [--size-mb 200,1024] [--runs N] [--no-write] [--no-tsx]
 *
 * Starts one etcd (127.0.0.1, free ports, temp dir) and compiles the committed CLI (tsc -p tsconfig.build.json
 * into the temp dir, so the shared dist/ is untouched). For each size, smallest first, it fills the
 * same etcd up to that size and then, in rounds that alternate the methods, times each as a separate
 * process and records its peak RSS:
 *   etcdctl --endpoints URL snapshot save FILE
 *   node dist/cli/main.js snapshot --endpoints URL --store file:///TMP/store --compression none|gzip
 *   node --import tsx src/cli/main.ts snapshot ... --compression none   (smallest size only)
 * plus empty start-up baselines (smallest size only). Each size's ratio is against etcdctl's runs of the
 * same rounds. Runs: 3 rounds up to 256 MiB, 2 above (each 1 GB round takes ~40 s), unless --runs.
 * Prints a table, writes two charts (docs/benchmarks/full-snapshot-*.svg), the goal rows and its
 * section of docs/benchmarks.md. Stops etcd and removes the temp dir at the end. About 5 minutes.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { ETCD_BINARY, ETCDCTL_BINARY, startLocalEtcd, type LocalEtcd } from '../src/etcd/local-etcd.js';
import { writeDocsSection } from './lib/docs-section.js';
import { recordGoals, type GoalRow } from './lib/goals.js';
import { hasGnuTime, measureProcess, type MeasuredRun } from './lib/measure-process.js';
import { barChartSvg, writeChart } from './lib/svg-chart.js';
import { buildCli, type BuiltCli } from './lib/build-cli.js';
import { markdownTable } from './lib/table.js';
import { median, mib, MiB } from './lib/stats.js';

const run = promisify(execFile);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SECTION = 'full-snapshot';
const RATIO_GOAL = 1.1;
const RSS_GOAL_BYTES = 100 * MiB;

interface Method {
  name: string;
  /** reference: etcdctl; ours: the CLI; startup: process start-up only. */
  kind: 'reference' | 'ours' | 'startup';
  /** Builds the command for one run writing into `out` (a fresh directory). */
  command(out: string): string[];
  /** Bytes written by the run (snapshot file or stored object). */
  outputSize(out: string, result: MeasuredRun): Promise<number>;
  sha256?(out: string, result: MeasuredRun): Promise<string | undefined>;
}

interface MethodResult {
  method: Method;
  runs: MeasuredRun[];
  sizes: number[];
  sha256s: (string | undefined)[];
}

interface SizeResult {
  targetMiB: number;
  keys: number;
  dbStatusBytes: number;
  dbFileBytes: number;
  runs: number;
  results: MethodResult[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'size-mb': { type: 'string', default: '200,1024' },
      runs: { type: 'string' },
      'value-kib': { type: 'string', default: '512' },
      writers: { type: 'string', default: '4' },
      'no-write': { type: 'boolean', default: false },
      'no-tsx': { type: 'boolean', default: false },
    },
  });
  const sizes = values['size-mb'].split(',').map(Number).sort((a, b) => a - b);
  const runsOverride = values.runs === undefined ? undefined : Number(values.runs);
  const valueBytes = Number(values['value-kib']) * 1024;
  const writers = Number(values.writers);
  if (![...sizes, runsOverride ?? 1, valueBytes, writers].every((n) => Number.isFinite(n) && n > 0)) {
    throw new Error('--size-mb (comma-separated), --runs, --value-kib and --writers must be positive numbers');
  }

  const root = await mkdtemp(join(tmpdir(), 'full-snapshot-bench-'));
  let etcd: LocalEtcd | undefined;
  const cleanup = async (): Promise<void> => {
    await etcd?.stop().catch(() => undefined);
    etcd = undefined;
    await rm(root, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`temp dir ${root}`);
    const cli = await buildCommittedCli(root);
    etcd = await startLocalEtcd({
      dataDir: join(root, 'etcd', 'data'),
      extraArgs: ['--quota-backend-bytes', String(8 * 1024 ** 3)],
    });
    log(`etcd on ${etcd.clientUrl}`);
    const loadBefore = loadavg()[0] ?? 0;
    const measured: SizeResult[] = [];
    let keys = 0;
    for (const [index, sizeMiB] of sizes.entries()) {
      const fill = await fillEtcd(etcd.clientUrl, sizeMiB * MiB, valueBytes, writers, keys);
      keys = fill.keys;
      const dbFileBytes = (await stat(join(etcd.dataDir, 'member', 'snap', 'db'))).size;
      log(`filled to ${sizeMiB} MiB: ${fill.keys} keys in total (${fill.seconds.toFixed(1)} s); db (status) ${mib(fill.dbSize)} MiB, bbolt file ${mib(dbFileBytes)} MiB`);
      const first = index === 0;
      const methods = defineMethods(etcd.clientUrl, cli, { tsx: first && !values['no-tsx'], startup: first });
      const runs = runsOverride ?? (sizeMiB <= 256 ? 3 : 2);
      const results = await measureRounds(root, methods, runs, sizeMiB);
      measured.push({ targetMiB: sizeMiB, keys: fill.keys, dbStatusBytes: fill.dbSize, dbFileBytes, runs, results });
    }
    const loadAfter = loadavg()[0] ?? 0;
    const etcdVersion = (await run(ETCD_BINARY, ['--version'])).stdout.split('\n')[0]?.replace('etcd Version: ', '') ?? '?';
    const report = await formatReport({ sizes: measured, cli, valueBytes, etcdVersion, load: [loadBefore, loadAfter], write: !values['no-write'] });
    console.log('\n' + report.markdown);
    if (!values['no-write']) {
      await writeDocsSection(join(repo, 'docs', 'benchmarks.md'), SECTION, report.markdown);
      await recordGoals(SECTION, report.goals);
      log(`wrote the ${SECTION} section of docs/benchmarks.md, its charts and goal rows`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

/** `runs` rounds, each running every method once in order, so drift in machine load hits all alike. */
async function measureRounds(root: string, methods: Method[], runs: number, sizeMiB: number): Promise<MethodResult[]> {
  const results = methods.map((method): MethodResult => ({ method, runs: [], sizes: [], sha256s: [] }));
  for (let round = 1; round <= runs; round++) {
    for (const entry of results) {
      const { method } = entry;
      const out = join(root, 'out');
      await rm(out, { recursive: true, force: true });
      await mkdir(out, { recursive: true });
      const result = await measureProcess(method.command(out), { cwd: repo, env: { ...process.env, ETCDCTL_API: '3' } });
      if (result.exitCode !== 0) {
        throw new Error(`${method.name} failed (exit ${result.exitCode ?? result.signal}): ${result.stderr.trim().slice(-800)}`);
      }
      entry.runs.push(result);
      entry.sizes.push(await method.outputSize(out, result));
      // Hashing etcdctl's file costs ~3 s per GiB: once per size is enough to compare the bytes.
      entry.sha256s.push(round === 1 ? await method.sha256?.(out, result) : undefined);
      log(
        `${sizeMiB} MiB round ${round} ${method.name}: ${result.seconds.toFixed(2)} s (CPU ${result.cpuSeconds?.toFixed(2) ?? '?'} s), ` +
          `peak RSS ${mib(result.peakRssBytes)} MiB` +
          (result.maxRssBytes !== undefined ? ` (sampled VmHWM ${mib(result.sampledHwmBytes)})` : ''),
      );
      await rm(out, { recursive: true, force: true });
    }
  }
  return results;
}

/** Compiles the committed CLI (bench/lib/build-cli.ts) so the figures belong to a commit. */
async function buildCommittedCli(root: string): Promise<BuiltCli> {
  const cli = await buildCli(repo, join(root, 'build'));
  if (cli.warnings) log(`warning: tsc reported errors, measuring what it emitted: ${cli.warnings}`);
  log(`built the CLI from commit ${cli.commit} into ${join(root, 'build', 'dist')}`);
  return cli;
}

/** Puts values until etcd's db reaches `targetBytes`; `firstKey` continues an earlier fill. */
async function fillEtcd(
  url: string,
  targetBytes: number,
  valueBytes: number,
  writers: number,
  firstKey = 0,
): Promise<{ keys: number; dbSize: number; seconds: number }> {
  const client = new Etcd3({ hosts: url });
  const started = Date.now();
  let keys = firstKey;
  let dbSize = Number((await client.maintenance.status()).dbSize);
  try {
    const value = (): Buffer => fillValue(valueBytes);
    while (dbSize < targetBytes) {
      // A batch of puts by `writers` concurrent writers, then a size check.
      const batch = Math.max(writers, Math.ceil((targetBytes - dbSize) / valueBytes / 4));
      let next = 0;
      await Promise.all(
        Array.from({ length: writers }, async () => {
          while (next < batch) {
            next++;
            const key = `/bench/fill/${String(keys++).padStart(8, '0')}`;
            await client.put(key).value(value());
          }
        }),
      );
      dbSize = Number((await client.maintenance.status()).dbSize);
    }
  } finally {
    client.close();
  }
  return { keys, dbSize, seconds: (Date.now() - started) / 1000 };
}

/**
 * A value like a batch of Kubernetes objects: JSON with names, labels and timestamps plus a random uid
 * and 96 random bytes (base64) each, so gzip shrinks it to about a third, as it does real etcd data.
 */
function fillValue(bytes: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const object = JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: `app-config-${i}`,
        namespace: `team-${i % 17}`,
        uid: randomUUID(),
        resourceVersion: String(100_000 + i),
        creationTimestamp: new Date(1.7e12 + i * 1000).toISOString(),
        labels: { app: 'web', tier: 'frontend', release: 'stable' },
      },
      data: { 'config.json': randomBytes(96).toString('base64') },
    });
    parts.push(object);
    length += object.length + 1;
  }
  return Buffer.from(parts.join('\n')).subarray(0, bytes);
}

function defineMethods(url: string, cli: BuiltCli, options: { tsx: boolean; startup: boolean }): Method[] {
  const storeArgs = (out: string, compression: string): string[] => [
    'snapshot',
    '--endpoints',
    url,
    '--store',
    `file://${join(out, 'store')}`,
    '--compression',
    compression,
    '--log-level',
    'warn',
  ];
  const stored = async (out: string): Promise<string> => {
    const files = await listFiles(join(out, 'store'));
    const object = files.find((f) => !f.endsWith('.meta.json'));
    if (!object) throw new Error(`no object in ${join(out, 'store')}`);
    return object;
  };
  const node = process.execPath;
  // The node flags bin/etcd-backup.js (and the image) run the CLI with: measure what ships.
  const binFlags = ['--max-semi-space-size=1'];
  const ours = (name: string, nodeArgs: string[], compression: 'none' | 'gzip'): Method => ({
    name,
    kind: 'ours',
    command: (out) => [node, ...nodeArgs, ...storeArgs(out, compression)],
    outputSize: async (out) => (await stat(await stored(out))).size,
    sha256: async (_out, result) => /sha256=([0-9a-f]{64})/.exec(result.stdout)?.[1],
  });
  const startup = (name: string, command: string[]): Method => ({ name, kind: 'startup', command: () => command, outputSize: async () => 0 });

  const methods: Method[] = [
    {
      name: ETCDCTL,
      kind: 'reference',
      command: (out) => [ETCDCTL_BINARY, '--endpoints', url, 'snapshot', 'save', join(out, 'snapshot.db')],
      outputSize: async (out) => (await stat(join(out, 'snapshot.db'))).size,
      sha256: async (out) => sha256File(join(out, 'snapshot.db')),
    },
    ours(NONE_DIST, [...binFlags, cli.mainJs], 'none'),
    ours(GZIP_DIST, [...binFlags, cli.mainJs], 'gzip'),
  ];
  if (options.tsx) {
    methods.push(ours('etcd-backup, none (node --import tsx src)', [...binFlags, '--import', 'tsx', 'src/cli/main.ts'], 'none'));
  }
  if (options.startup) {
    methods.push(
      startup('start-up: node -e ""', [node, '-e', '']),
      startup('start-up: node dist/cli/main.js --help', [node, ...binFlags, cli.mainJs, '--help']),
    );
    if (options.tsx) methods.push(startup('start-up: node --import tsx -e ""', [node, '--import', 'tsx', '-e', '']));
  }
  return methods;
}

const ETCDCTL = 'etcdctl snapshot save';
const NONE_DIST = 'etcd-backup, none (node dist)';
const GZIP_DIST = 'etcd-backup, gzip (node dist)';

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface ReportInput {
  sizes: SizeResult[];
  cli: BuiltCli;
  valueBytes: number;
  etcdVersion: string;
  /** 1-minute load average before and after the measurements. */
  load: [number, number];
  /** Write the charts (off with --no-write). */
  write: boolean;
}

interface Summary {
  seconds: number;
  cpu: number;
  /** Highest peak RSS over the runs. */
  rss: number;
  size: number;
}

function summarize({ runs, sizes }: MethodResult): Summary {
  return {
    seconds: median(runs.map((r) => r.seconds)),
    cpu: median(runs.map((r) => r.cpuSeconds ?? Number.NaN)),
    rss: Math.max(...runs.map((r) => r.peakRssBytes)),
    size: median(sizes),
  };
}

function sizeLabel(size: SizeResult): string {
  return size.targetMiB >= 1024 ? `${(size.targetMiB / 1024).toFixed(size.targetMiB % 1024 ? 1 : 0)} GiB` : `${size.targetMiB} MiB`;
}

async function formatReport(input: ReportInput): Promise<{ markdown: string; goals: GoalRow[] }> {
  const { cli } = input;
  const columns = [
    { title: 'db' },
    { title: 'method' },
    { title: 'median s', align: 'right' as const },
    { title: 'ratio vs etcdctl', align: 'right' as const },
    { title: 'CPU s', align: 'right' as const },
    { title: 'peak RSS MiB', align: 'right' as const },
    { title: 'MiB/s', align: 'right' as const },
    { title: 'output MiB', align: 'right' as const },
    { title: 'runs s', align: 'right' as const },
  ];
  const rows: string[][] = [];
  const goals: GoalRow[] = [];
  const notes: string[] = [];
  const chart = { ratio: new Map<string, number[]>(), rss: new Map<string, number[]>() };
  for (const size of input.sizes) {
    const reference = size.results.find((r) => r.method.kind === 'reference');
    const ref = reference ? summarize(reference) : undefined;
    const refSeconds = ref?.seconds ?? Number.NaN;
    for (const result of size.results) {
      const sum = summarize(result);
      const startup = result.method.kind === 'startup';
      rows.push([
        sizeLabel(size),
        result.method.name,
        sum.seconds.toFixed(2),
        startup ? '' : (sum.seconds / refSeconds).toFixed(2),
        Number.isNaN(sum.cpu) ? '?' : sum.cpu.toFixed(2),
        mib(sum.rss),
        startup ? '' : (sum.size / MiB / sum.seconds).toFixed(0),
        startup ? '' : mib(sum.size),
        result.runs.map((r) => r.seconds.toFixed(2)).join(' / '),
      ]);
      if (result.method.kind !== 'startup' && !result.method.name.includes('tsx')) {
        const short = result.method.name.replace(' (node dist)', '');
        chart.ratio.set(short, [...(chart.ratio.get(short) ?? []), sum.seconds / refSeconds]);
        chart.rss.set(short, [...(chart.rss.get(short) ?? []), sum.rss / MiB]);
      }
    }
    const none = size.results.find((r) => r.method.name === NONE_DIST);
    const noneSum = none ? summarize(none) : undefined;
    const ratio = noneSum ? noneSum.seconds / refSeconds : Number.NaN;
    const ourPeak = Math.max(...size.results.filter((r) => r.method.kind === 'ours' && r.method.name.includes('(node dist)')).map((r) => summarize(r).rss));
    const refSha = reference?.sha256s[0];
    const identical = Boolean(none && refSha && none.sha256s[0] === refSha);
    const db = `${sizeLabel(size)} db`;
    goals.push(
      { goal: `full snapshot time ratio <= ${RATIO_GOAL} vs etcdctl (${db}, no compression)`, measured: `${ratio.toFixed(2)}x`, met: ratio <= RATIO_GOAL },
      { goal: `full snapshot peak RSS < ${mib(RSS_GOAL_BYTES)} MiB (${db}; etcdctl: ${ref ? mib(ref.rss) : '?'} MiB)`, measured: `${mib(ourPeak)} MiB`, met: ourPeak < RSS_GOAL_BYTES },
    );
    notes.push(
      `- ${db}: ${size.keys} keys of ${input.valueBytes / 1024} KiB, db ${mib(size.dbStatusBytes)} MiB (status), bbolt file ` +
        `${mib(size.dbFileBytes)} MiB; ${size.runs} round${size.runs === 1 ? '' : 's'}. Uncompressed object ${identical ? 'byte-identical to' : 'NOT byte-identical to'} etcdctl's file (sha256, first round).`,
    );
  }
  const sizeLabels = input.sizes.map(sizeLabel);
  let charts = '';
  if (input.write) {
    const ratioTitle = 'Full snapshot: wall time relative to etcdctl (lower is better)';
    const rssTitle = 'Full snapshot: peak RSS of the snapshot process';
    charts = [
      await writeChart(
        'full-snapshot-time-ratio',
        ratioTitle,
        barChartSvg({
          title: ratioTitle,
          yLabel: 'median wall time / etcdctl',
          categories: sizeLabels,
          series: [...chart.ratio].map(([name, values]) => ({ name, values })),
          goal: { value: RATIO_GOAL, label: `goal ${RATIO_GOAL}x` },
        }),
      ),
      await writeChart(
        'full-snapshot-rss',
        rssTitle,
        barChartSvg({
          title: rssTitle,
          yLabel: 'peak RSS MiB',
          categories: sizeLabels,
          series: [...chart.rss].map(([name, values]) => ({ name, values })),
          goal: { value: RSS_GOAL_BYTES / MiB, label: `goal < ${RSS_GOAL_BYTES / MiB} MiB` },
        }),
      ),
    ].join('\n');
  }
  const spread = Math.max(
    ...input.sizes.flatMap((s) => s.results.filter((r) => r.method.kind !== 'startup').map((r) => Math.max(...r.runs.map((x) => x.seconds)) - Math.min(...r.runs.map((x) => x.seconds)))),
  );
  const cpu = cpus();
  const goalLines = goals.map((g) => `- ${g.goal}: **${g.measured}** (${g.met ? 'met' : 'NOT met'})`).join('\n');
  const markdown = `## Full snapshot vs \`etcdctl snapshot save\` (\`bench/full-snapshot.ts\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM,
Linux ${release()}, Node ${process.version}, etcd ${input.etcdVersion}; CLI built from \`${cli.commit}\`.
The machine was shared with other work: 1-minute load average ${input.load[0].toFixed(1)} before and
${input.load[1].toFixed(1)} after the measurements, so wall times are noisy (runs of one method spread by up to
${spread.toFixed(2)} s); CPU seconds are the steadier figure.

One etcd on 127.0.0.1 (temp dir, \`--quota-backend-bytes 8GiB\`), filled with values like Kubernetes objects
(JSON with random uids and payloads; gzip keeps about a third) up to each size in turn, smallest first.
For each size every method runs as its own process, in rounds alternating the methods, so each size's
ratio is against etcdctl's runs of the same rounds. The table gives the median wall time (spawn to exit,
start-up included), median CPU (user + sys) and the highest peak RSS of the runs
(${hasGnuTime() ? "GNU time's maxrss, cross-checked with /proc/PID/status VmHWM sampled every 10 ms" : '/proc/PID/status VmHWM sampled every 10 ms'}).
Our CLI is measured compiled (\`tsc -p tsconfig.build.json\` into a temp dir, \`node --max-semi-space-size=1
dist/cli/main.js\`, as the \`etcd-backup\` bin runs it): the fair comparison with a Go binary. gzip is level 1.
The tsx and start-up rows (smallest size only) show what tsx and Node's start-up cost. Both write to local
disk and fsync; ours into a \`file://\` store (temp file, sha256, fsync, rename, sidecar).

${notes.join('\n')}

${markdownTable(columns, rows)}

${charts}

Goals (\`etcd-backup, none (node dist)\` for the ratio; the higher of its none and gzip runs for RSS):

${goalLines}

Re-run: \`node --import tsx bench/full-snapshot.ts [--size-mb 200,1024] [--runs N]\` (about 5 minutes; rewrites
only this section, its charts and goal rows); \`npm run bench\` re-measures every bench.`;
  return { markdown, goals };
}

function log(message: string): void {
  console.error(`[full-snapshot] ${message}`);
}

await main();
