import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { decodeEncryptionKey, keyProblem } from '../crypto/encryption.js';
import { UsageError } from '../errors.js';

/**
 * `--encryption-key-file FILE`, repeatable: restore and verify take every key a store's objects may
 * have been sealed with (old and new after a rotation; each object names its key by id).
 */
export function encryptionKeyFileOption(description: string): Option {
  return new Option('--encryption-key-file <file>', description)
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .default([] as string[], 'none');
}

/** Reads and parses key files; a bad file is a UsageError naming the file and never its content. */
export async function readEncryptionKeyFiles(files: readonly string[]): Promise<Buffer[]> {
  return Promise.all(
    files.map(async (file) => {
      let raw: Buffer;
      try {
        raw = await readFile(file);
      } catch (err) {
        throw new UsageError(`cannot read --encryption-key-file ${file}: ${(err as { code?: string }).code ?? 'error'}`);
      }
      const key = decodeEncryptionKey(raw);
      if (!key) throw new UsageError(`--encryption-key-file ${file} ${keyProblem(raw)}`);
      return key;
    }),
  );
}
