/**
 * Rewrites one benchmark's section of docs/benchmarks.md (between `<!-- NAME:start -->` and
 * `<!-- NAME:end -->`), leaving every other section as it is. The file is read right before it is
 * written, so sections other benchmarks wrote meanwhile are kept. A new section is appended, or with
 * `top` put before the first section (the goals summary).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

const INTRO = `# Benchmarks

Measurements of etcd-backup-operator on the development machine. Each section is written by the script
named in it (\`bench/*.ts\`); re-running a script rewrites only its own section.
`;

export async function writeDocsSection(
  file: string,
  name: string,
  body: string,
  options: { top?: boolean; /** The new file's opening text (default: benchmarks.md's). */ intro?: string } = {},
): Promise<void> {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const section = `${start}\n${body.trim()}\n${end}`;
  await mkdir(dirname(file), { recursive: true });
  const current = existsSync(file) ? await readFile(file, 'utf8') : (options.intro ?? INTRO);
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  // A new section goes at the end, or with `top` before the first section (after the intro).
  const first = current.indexOf('<!-- ');
  const next =
    from >= 0 && to > from
      ? current.slice(0, from) + section + current.slice(to + end.length)
      : options.top && first >= 0
        ? current.slice(0, first) + section + '\n\n' + current.slice(first)
        : current.trimEnd() + '\n\n' + section + '\n';
  await writeFile(file, next);
}
