import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { validateEtcdBackup, type ValidationResult } from '../api/validate.js';
import { KIND } from '../api/v1alpha1/etcd-backup-types.js';
import { InvalidSpecError, UsageError } from '../errors.js';

/** Reads one EtcdBackup from a YAML (or JSON) file; every problem is reported at once. */
export async function loadEtcdBackupFile(path: string): Promise<Extract<ValidationResult, { ok: true }>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as { code?: string }).code ?? String(err)}`);
  }
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) throw new UsageError(`${path}: empty document`);
  const problems: string[] = [];
  for (const doc of documents) {
    for (const error of doc.errors) {
      const line = error.linePos?.[0];
      problems.push(`${path}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${error.message.split('\n')[0]}`);
    }
  }
  if (problems.length > 0) throw new InvalidSpecError(problems);
  const objects = documents.map((doc) => doc.toJS() as unknown).filter((value) => value !== null && value !== undefined);
  const backups = objects.filter((value) => (value as { kind?: unknown }).kind === KIND);
  if (backups.length !== 1) {
    throw new InvalidSpecError([
      `${path}: expected exactly one document of kind ${KIND}, found ${backups.length}` +
        (objects.length > backups.length ? ` (and ${objects.length - backups.length} other documents)` : ''),
    ]);
  }
  const result = validateEtcdBackup(backups[0]);
  if (!result.ok) throw new InvalidSpecError(result.problems);
  return result;
}
