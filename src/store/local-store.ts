import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ObjectNotFoundError, StoreUnreachableError } from '../errors.js';
import { HashingStream, verifyingStream } from './checksum.js';
import {
  SHA256_METADATA_KEY,
  type GetResult,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type PutResult,
} from './object-store.js';

const META_SUFFIX = '.meta.json';
const PART_MARKER = '.part-';

interface Sidecar {
  size: number;
  metadata: Record<string, string>;
}

/** Backups hold every secret of a cluster: only the backup's own user may read them. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * A directory as an object store. An object is the file `<root>/<key>`; its size and metadata
 * (sha256 included) live in a sidecar `<key>.meta.json`. Writes go to `<key>.part-<random>`, are
 * fsynced and renamed, sidecar first, so a visible object always has its sidecar and a crash leaves
 * at most an ignored `.part-` file. Files are 0600 and the directories the store creates 0700 (the
 * umask may narrow them further); a directory it creates is made durable in its parent before use.
 * Reading an object without a recorded sha256 is refused (ChecksumMissingError): every put records one.
 */
export class LocalStore implements ObjectStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  describe(): string {
    return `file://${this.root}`;
  }

  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    if (key === '' || key.startsWith('/') || !path.startsWith(this.root + sep)) {
      throw new RangeError(`invalid object key ${JSON.stringify(key)}`);
    }
    return path;
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<PutResult> {
    const path = this.pathOf(key);
    const suffix = PART_MARKER + randomBytes(6).toString('hex');
    const dataPart = path + suffix;
    const metaPart = path + META_SUFFIX + suffix;
    try {
      await ensureDir(dirname(path));
      const hashing = new HashingStream();
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      const file = await open(dataPart, 'w', FILE_MODE);
      // 256 KiB lets queued chunks go out in one write() instead of one per 32 KiB snapshot message.
      const out = file.createWriteStream({ autoClose: false, highWaterMark: 256 * 1024 });
      try {
        await pipeline(source, hashing, out, { signal: options.signal });
        await file.sync();
      } finally {
        // The stream holds a reference on the handle; close() waits for it forever unless it is destroyed.
        out.destroy();
        await file.close();
      }
      const sidecar: Sidecar = {
        size: hashing.size,
        metadata: { ...options.metadata, [SHA256_METADATA_KEY]: hashing.sha256 },
      };
      await writeFileSynced(metaPart, JSON.stringify(sidecar));
      await rename(metaPart, path + META_SUFFIX);
      await rename(dataPart, path);
      await syncDir(dirname(path));
      return { size: hashing.size, sha256: hashing.sha256 };
    } catch (err) {
      // Best effort: the original error is what the caller needs to see.
      await Promise.all([unlinkIfExists(dataPart), unlinkIfExists(metaPart)]).catch(() => undefined);
      throw this.mapError(err, `cannot write ${key}`);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<GetResult> {
    const path = this.pathOf(key);
    let sidecar: Sidecar;
    try {
      await stat(path);
      sidecar = JSON.parse(await readFile(path + META_SUFFIX, 'utf8')) as Sidecar;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new ObjectNotFoundError(key, this.describe());
      throw this.mapError(err, `cannot read ${key}`);
    }
    const metadata = sidecar.metadata ?? {};
    // Unchecked content could be anything someone wrote into the directory: verifyingStream refuses it.
    const verify = verifyingStream(key, metadata[SHA256_METADATA_KEY], this.describe());
    const file = createReadStream(path, { signal: options.signal });
    file.on('error', (err) => verify.destroy(err));
    return { body: file.pipe(verify), size: sidecar.size, metadata };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    // Walk only the deepest directory the prefix names, not the whole root.
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    const result: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        throw this.mapError(err, `cannot list ${prefix}`);
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) {
          await walk(full);
        } else if (entry.isFile() && !entry.name.endsWith(META_SUFFIX) && !entry.name.includes(PART_MARKER)) {
          const key = relative(this.root, full).split(sep).join('/');
          if (!key.startsWith(prefix)) continue;
          const info = await stat(full).catch(() => undefined); // deleted meanwhile
          if (info) result.push({ key, size: info.size, lastModified: info.mtime });
        }
      }
    };
    await walk(join(this.root, base));
    return result.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      // Data first: an object without its sidecar is never visible to get().
      await unlinkIfExists(path);
      await unlinkIfExists(path + META_SUFFIX);
    } catch (err) {
      throw this.mapError(err, `cannot delete ${key}`);
    }
  }

  private mapError(err: unknown, what: string): Error {
    if (err instanceof ObjectNotFoundError || err instanceof RangeError) return err;
    if (err instanceof Error && err.name === 'AbortError') return err;
    if (err instanceof Error && 'code' in err && typeof err.code === 'string') {
      const reason = ERRNO_TEXT[err.code] ?? err.code;
      return new StoreUnreachableError(`${what} in store ${this.describe()}: ${reason}`, err);
    }
    return err instanceof Error ? err : new Error(String(err));
  }
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOENT: 'the directory cannot be created',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  ENOTDIR: 'a path component is not a directory',
  EEXIST: 'a path component exists and is not a directory',
};

/**
 * mkdir -p without `recursive: true`: on some pseudo file systems (/proc) Node's recursive mkdir
 * spins forever on ENOENT; one level at a time fails cleanly instead.
 */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, DIR_MODE);
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return;
    if (!isErrno(err, 'ENOENT') || dirname(dir) === dir) throw err;
    await ensureDir(dirname(dir));
    try {
      await mkdir(dir, DIR_MODE);
    } catch (again) {
      if (!isErrno(again, 'EEXIST')) throw again;
      return;
    }
  }
  // The new directory's entry must reach the disk too, or a crash can lose it with the objects in it.
  await syncDir(dirname(dir));
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && 'code' in err && err.code === code;
}

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
}

async function writeFileSynced(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: FILE_MODE });
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
