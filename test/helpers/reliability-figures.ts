/**
 * The fault tests' measured figures. Every run prints them as a `FIGURES {...}` diagnostic line;
 * with WRITE_RELIABILITY_FIGURES=1 each case also rewrites its own section of
 * docs/reliability-figures.md (as the benches write docs/benchmarks.md), naming the commit measured,
 * so docs/reliability.md's figures are not copied by hand. Without the variable (CI, everyday runs)
 * no doc is touched.
 */
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { writeDocsSection } from '../../bench/lib/docs-section.js';

export const WRITE_FIGURES_ENV = 'WRITE_RELIABILITY_FIGURES';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FIGURES_FILE = join(REPO, 'docs', 'reliability-figures.md');

const INTRO = `# Reliability figures (generated)

Written by the fault tests themselves when run with \`${WRITE_FIGURES_ENV}=1\`, one section per case
(\`test/e2e/faults.test.ts\`, \`test/e2e/operator.e2e.test.ts\`); a run rewrites only the sections of the
cases it ran. What each case does and what it proves: [reliability.md](reliability.md).
`;

export type FigureValue = string | number | boolean;

/** Prints the figures, and records them in docs/reliability-figures.md when asked to. */
export async function reportFigures(t: TestContext, section: string, figures: Record<string, FigureValue>): Promise<void> {
  t.diagnostic(`FIGURES ${JSON.stringify(figures)}`);
  if (process.env[WRITE_FIGURES_ENV] !== '1') return;
  await writeDocsSection(FIGURES_FILE, section, await figuresMarkdown(t.name, figures), { intro: INTRO });
}

async function figuresMarkdown(name: string, figures: Record<string, FigureValue>): Promise<string> {
  const rows = Object.entries(figures).map(([key, value]) => `| ${key} | ${cell(value)} |`);
  return [
    `## ${name}`,
    '',
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC at commit \`${await commit()}\`, Node ${process.version}, ` +
      `load average ${loadavg()[0]!.toFixed(1)} on ${process.platform}.`,
    '',
    '| figure | value |',
    '| --- | --- |',
    ...rows,
  ].join('\n');
}

/**
 * The commit measured, with `-dirty` when src/, test/ or bench/ have uncommitted changes (docs/ do
 * not count: this very file is rewritten case by case during a run).
 */
async function commit(): Promise<string> {
  const git = async (...args: string[]): Promise<string> => (await promisify(execFile)('git', args, { cwd: REPO })).stdout.trim();
  try {
    const head = await git('rev-parse', '--short', 'HEAD');
    const changed = await git('status', '--porcelain', '--untracked-files=no', '--', 'src', 'test', 'bench');
    return changed === '' ? head : `${head}-dirty`;
  } catch {
    return 'unknown';
  }
}

function cell(value: FigureValue): string {
  return String(value).replaceAll('|', '\\|').replaceAll('\n', ' ');
}
