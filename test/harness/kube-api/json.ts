// JSON helpers and the three patch formats the apiserver accepts.
import { badRequest, failure } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = { [k: string]: Json };

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && deepEqual(a[k], b[k]));
  }
  return false;
}

export function child(o: Obj, key: string): Obj | undefined {
  const v = o[key];
  return isObj(v) ? v : undefined;
}

export function str(o: Obj | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' ? v : undefined;
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(p: unknown): string[] {
  if (typeof p !== 'string' || (p !== '' && !p.startsWith('/'))) throw badRequest(`invalid JSON pointer ${String(p)}`);
  return p === '' ? [] : p.slice(1).split('/').map(unescapePointer);
}

function walk(doc: Json, tokens: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur)) cur = cur[t];
    else return undefined;
  }
  return cur;
}

function jsonPatchError(msg: string): Error {
  // The apiserver reports failed JSON patch operations as 422 Invalid without causes.
  return failure(422, 'Invalid', msg);
}

/** RFC 6902 JSON patch. */
export function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let out = clone(doc);
  for (const op of ops) {
    if (!isObj(op)) throw badRequest('json patch operation must be an object');
    const path = parsePointer(op.path);
    const kind = op.op;
    if (kind === 'test') {
      if (!deepEqual(walk(out, path), op.value)) throw jsonPatchError(`the server rejected our request due to an error in our request: testing value ${String(op.path)} failed`);
      continue;
    }
    let value: Json | undefined = op.value;
    if (kind === 'move' || kind === 'copy') {
      const from = parsePointer(op.from);
      value = walk(out, from);
      if (value === undefined) throw jsonPatchError(`doc is missing from path: ${String(op.from)}`);
      value = clone(value);
      if (kind === 'move') out = removeAt(out, from, String(op.from));
    }
    if (kind === 'remove') out = removeAt(out, path, String(op.path));
    else if (kind === 'add' || kind === 'move' || kind === 'copy') out = addAt(out, path, value ?? null, false);
    else if (kind === 'replace') {
      if (walk(out, path) === undefined) throw jsonPatchError(`replace operation does not apply: doc is missing key: ${String(op.path)}`);
      out = addAt(out, path, value ?? null, true);
    } else throw badRequest(`unexpected json patch operation ${String(kind)}`);
  }
  return out;
}

function parentOf(doc: Json, path: string[], raw: string): { parent: Obj | Json[]; key: string } {
  const key = path[path.length - 1];
  const parent = walk(doc, path.slice(0, -1));
  if (key === undefined || (!isObj(parent) && !Array.isArray(parent))) {
    throw jsonPatchError(`doc is missing path: "${raw}"`);
  }
  return { parent, key };
}

function addAt(doc: Json, path: string[], value: Json, replace: boolean): Json {
  if (path.length === 0) return value;
  const { parent, key } = parentOf(doc, path, '/' + path.join('/'));
  if (Array.isArray(parent)) {
    const idx = key === '-' ? parent.length : Number(key);
    if (!Number.isInteger(idx) || idx < 0 || idx > parent.length) throw jsonPatchError(`array index out of bounds: ${key}`);
    if (replace) parent[idx] = value;
    else parent.splice(idx, 0, value);
  } else parent[key] = value;
  return doc;
}

function removeAt(doc: Json, path: string[], raw: string): Json {
  const { parent, key } = parentOf(doc, path, raw);
  if (Array.isArray(parent)) {
    const idx = Number(key);
    if (!Number.isInteger(idx) || idx < 0 || idx >= parent.length) throw jsonPatchError(`array index out of bounds: ${key}`);
    parent.splice(idx, 1);
  } else {
    if (!(key in parent)) throw jsonPatchError(`remove operation does not apply: doc is missing path: "${raw}"`);
    delete parent[key];
  }
  return doc;
}

// Merge keys of the builtin list fields that kubectl's strategic merge patches touch; lists not named
// here are replaced, like atomic lists.
const MERGE_KEYS: Record<string, string> = {
  containers: 'name', initContainers: 'name', ephemeralContainers: 'name', env: 'name', ports: 'containerPort',
  volumes: 'name', volumeMounts: 'mountPath', volumeDevices: 'devicePath', imagePullSecrets: 'name',
  ownerReferences: 'uid', conditions: 'type', hostAliases: 'ip', topologySpreadConstraints: 'topologyKey',
};
const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

/**
 * Strategic merge patch for builtin kinds: merge patch plus the directives kubectl emits ($patch,
 * $setElementOrder, $retainKeys, $deleteFromPrimitiveList) and merge-by-key for well-known lists.
 */
export function strategicMergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const rest = clone(patch);
    delete rest.$patch;
    return rest;
  }
  if (patch.$patch === 'delete') return null;
  const out: Obj = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const cur = out[k];
    const mergeKey = MERGE_KEYS[k];
    if (Array.isArray(v) && Array.isArray(cur) && mergeKey !== undefined && v.every(isObj)) {
      out[k] = mergeList(cur, v as Obj[], mergeKey);
    } else if (Array.isArray(v) && Array.isArray(cur) && MERGED_PRIMITIVE_LISTS.has(k)) {
      out[k] = [...cur, ...v.filter((x) => !cur.some((c) => deepEqual(c, x)))];
    } else if (isObj(v)) {
      const merged = strategicMergePatch(cur ?? null, v);
      if (merged === null) delete out[k];
      else out[k] = merged;
    } else out[k] = clone(v);
  }
  return out;
}

function mergeList(cur: Json[], patch: Obj[], key: string): Json[] {
  if (patch.some((p) => p.$patch === 'replace')) return patch.filter((p) => p.$patch !== 'replace').map(clone);
  const out = clone(cur);
  for (const p of patch) {
    const idx = out.findIndex((c) => isObj(c) && deepEqual(c[key], p[key]));
    if (p.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx] ?? null, p);
    else out.push(strategicMergePatch(null, p));
  }
  return out;
}
