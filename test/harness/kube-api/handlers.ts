// Object semantics of the generic apiserver registry: metadata, optimistic concurrency, generation,
// status subresource, finalizers, schema pruning/defaulting/validation.
import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import {
  alreadyExists, badRequest, conflict, failure, type FieldError, fieldErrors, invalid, notFound,
  unsupportedMediaType,
} from './errors.js';
import { child, clone, deepEqual, isObj, jsonPatch, mergePatch, strategicMergePatch, str, type Json, type Obj } from './json.js';
import type { Registry } from './registry.js';
import { apiVersionOf, BUILTINS, CRD_DEF, finalizeCrd, type ResourceDef, validateCrd } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { Store } from './store.js';

export interface WriteOptions {
  dryRun: boolean;
  /** Strict | Warn | Ignore; the apiserver defaults to Warn. */
  fieldValidation: string;
  fieldManager?: string;
  /** Collected `Warning` headers for the response. */
  warnings: string[];
}

export const NAMESPACE_DEF = BUILTINS[0] as ResourceDef;

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function meta(o: Obj): Obj {
  if (!isObj(o.metadata)) o.metadata = {};
  return o.metadata as Obj;
}

const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

function validateMeta(def: ResourceDef, md: Obj): FieldError[] {
  const errs: FieldError[] = [];
  const name = str(md, 'name') ?? '';
  // As kube-apiserver: generateName must itself be a valid name once a trailing '-' is allowed for.
  const generateName = str(md, 'generateName');
  if (generateName && !SUBDOMAIN.test(generateName.replace(/-$/, 'a'))) {
    errs.push(fieldErrors.invalid('metadata.generateName', generateName, SUBDOMAIN_MESSAGE));
  }
  if (def === NAMESPACE_DEF) {
    if (!LABEL.test(name) || name.length > 63) {
      errs.push(fieldErrors.invalid('metadata.name', name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"));
    }
  } else if (!SUBDOMAIN.test(name) || name.length > 253) {
    errs.push(fieldErrors.invalid('metadata.name', name, SUBDOMAIN_MESSAGE));
  }
  const labels = md.labels;
  if (labels !== undefined && labels !== null) {
    if (!isObj(labels)) errs.push(fieldErrors.invalid('metadata.labels', labels, 'must be a map of strings'));
    else {
      for (const [k, v] of Object.entries(labels)) {
        const slash = k.lastIndexOf('/');
        const [prefix, nm] = slash >= 0 ? [k.slice(0, slash), k.slice(slash + 1)] : ['', k];
        if ((slash >= 0 && (!SUBDOMAIN.test(prefix) || prefix.length > 253)) || !QUALIFIED_NAME.test(nm) || nm.length > 63) {
          errs.push(fieldErrors.invalid('metadata.labels', k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        if (typeof v !== 'string' || !LABEL_VALUE.test(v) || v.length > 63) {
          errs.push(fieldErrors.invalid('metadata.labels', v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, and must be no more than 63 characters"));
        }
      }
    }
  }
  for (const f of ['annotations']) {
    const m = md[f];
    if (m !== undefined && m !== null && (!isObj(m) || Object.values(m).some((v) => typeof v !== 'string'))) {
      errs.push(fieldErrors.invalid(`metadata.${f}`, m, 'must be a map of strings'));
    }
  }
  if (md.finalizers !== undefined && md.finalizers !== null &&
      (!Array.isArray(md.finalizers) || md.finalizers.some((f) => typeof f !== 'string'))) {
    errs.push(fieldErrors.invalid('metadata.finalizers', md.finalizers, 'must be a list of strings'));
  }
  return errs;
}

function finalizersOf(o: Obj): string[] {
  const f = child(o, 'metadata')?.finalizers;
  return Array.isArray(f) ? f.filter((x): x is string => typeof x === 'string') : [];
}

function withoutKeys(o: Obj, keys: string[]): Obj {
  const c = { ...o };
  for (const k of keys) delete c[k];
  return c;
}

function generationChanged(def: ResourceDef, oldObj: Obj, newObj: Obj): boolean {
  switch (def.generation) {
    case 'spec': return !deepEqual(oldObj.spec, newObj.spec);
    case 'all-but-metadata-status':
      return !deepEqual(withoutKeys(oldObj, ['metadata', 'status', 'apiVersion', 'kind']), withoutKeys(newObj, ['metadata', 'status', 'apiVersion', 'kind']));
    case 'all-but-metadata':
      return !deepEqual(withoutKeys(oldObj, ['metadata', 'apiVersion', 'kind']), withoutKeys(newObj, ['metadata', 'apiVersion', 'kind']));
    default: return false;
  }
}

// Fields only the server sets; client values are ignored on create and carried over on update.
const SERVER_META = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink'];

export class Handlers {
  constructor(private readonly store: Store, private readonly registry: Registry) {}

  /** Storage form -> the form served at `def`'s group/version. */
  present(def: ResourceDef, stored: Obj): Obj {
    const o = def.fromStorage ? def.fromStorage(clone(stored)) : clone(stored);
    const { apiVersion: _a, kind: _k, ...rest } = o;
    return { apiVersion: apiVersionOf(def), kind: def.kind, ...rest };
  }

  private load(def: ResourceDef, ns: string, name: string): Obj {
    const o = this.store.get(def.storageKey, def.namespaced ? ns : '', name);
    if (!o) throw notFound(def, name);
    return o;
  }

  get(def: ResourceDef, ns: string, name: string): Obj {
    return this.present(def, this.load(def, ns, name));
  }

  list(def: ResourceDef, ns: string | undefined, q: URLSearchParams): { items: Obj[]; listMeta: Obj } {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'));
    let items = this.store.list(def.storageKey, def.namespaced ? ns : undefined)
      .map((o) => this.present(def, o)).filter((o) => labels(o) && fields(o));
    const listMeta: Obj = { resourceVersion: String(this.store.rv) };
    // Pagination: the continue token is the last returned key (the real one also pins a snapshot).
    const cont = q.get('continue');
    if (cont) {
      let after: string;
      try {
        after = String(JSON.parse(Buffer.from(cont, 'base64').toString()).after);
      } catch {
        throw badRequest('continue key is not valid: illegal base64 data');
      }
      items = items.filter((o) => keyOf(o) > after);
    }
    const limit = Number(q.get('limit') ?? 0);
    if (limit > 0 && items.length > limit) {
      const remaining = items.length - limit;
      items = items.slice(0, limit);
      listMeta.continue = Buffer.from(JSON.stringify({ after: keyOf(items[items.length - 1] as Obj) })).toString('base64');
      listMeta.remainingItemCount = remaining;
    }
    return { items, listMeta };
  }

  private requireNamespace(def: ResourceDef, ns: string): void {
    if (def.namespaced && !this.store.get(NAMESPACE_DEF.storageKey, '', ns)) throw notFound(NAMESPACE_DEF, ns);
  }

  /** Shared by create and update: version conversion, CR schema handling, type hooks. */
  private admit(def: ResourceDef, obj: Obj, opts: WriteOptions, errs: FieldError[]): Obj {
    const schema = def.crd?.schema;
    if (schema) {
      const unknown = schema.prune(obj);
      if (unknown.length > 0) {
        if (opts.fieldValidation === 'Strict') {
          throw badRequest(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
        }
        if (opts.fieldValidation !== 'Ignore') opts.warnings.push(...unknown.map((u) => `unknown field "${u}"`));
      }
      schema.applyDefaults(obj);
      errs.push(...schema.validate(obj));
    }
    if (def.prepare) errs.push(...def.prepare(obj));
    if (def === CRD_DEF) errs.push(...validateCrd(obj));
    const name = str(meta(obj), 'name') ?? '';
    if (errs.length > 0) throw invalid(def, name, errs);
    return def.toStorage ? def.toStorage(obj) : obj;
  }

  private checkBody(def: ResourceDef, body: Json): Obj {
    if (!isObj(body)) throw badRequest('the body of the request must be a JSON object');
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw badRequest(`${String(body.kind)} in version "${def.version}" cannot be handled as a ${def.kind}: the object provided is unrecognized (wrong kind)`);
    }
    const o = clone(body);
    o.apiVersion = apiVersionOf(def);
    o.kind = def.kind;
    return o;
  }

  create(def: ResourceDef, ns: string, body: Json, opts: WriteOptions): Obj {
    const obj = this.checkBody(def, body);
    const md = meta(obj);
    const nsKey = def.namespaced ? ns : '';
    if (def.namespaced) {
      if (md.namespace && md.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      md.namespace = ns;
    } else delete md.namespace;
    for (const k of [...SERVER_META, 'resourceVersion', 'managedFields']) delete md[k];
    const errs: FieldError[] = [];
    if (!md.name) {
      if (typeof md.generateName === 'string' && md.generateName) {
        do {
          md.name = md.generateName + Array.from({ length: 5 }, () => GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)]).join('');
        } while (this.store.get(def.storageKey, nsKey, String(md.name)));
      } else {
        throw invalid(def, '', [fieldErrors.required('metadata.name', 'name or generateName is required')]);
      }
    }
    errs.push(...validateMeta(def, md));
    // Create cannot set status where status is a subresource.
    if (def.statusSubresource) delete obj.status;
    const name = String(md.name);
    this.requireNamespace(def, ns);
    const stored = this.admit(def, obj, opts, errs);
    if (this.store.get(def.storageKey, nsKey, name)) throw alreadyExists(def, name);
    const smd = meta(stored);
    smd.uid = randomUUID();
    smd.creationTimestamp = nowTimestamp();
    if (def.generation !== 'none') smd.generation = 1;
    if (def === CRD_DEF) finalizeCrd(stored, String(smd.creationTimestamp));
    if (opts.dryRun) return this.present(def, stored);
    const rv = this.store.nextRv();
    smd.resourceVersion = String(rv);
    this.store.put(def.storageKey, nsKey, name, stored, rv);
    return this.present(def, stored);
  }

  /** PUT on the object or its status subresource. */
  update(def: ResourceDef, ns: string, name: string, body: Json, subresource: string | undefined, opts: WriteOptions): Obj {
    const nsKey = def.namespaced ? ns : '';
    const current = this.load(def, ns, name);
    const incoming = this.checkBody(def, body);
    const imd = meta(incoming);
    if (imd.name !== undefined && imd.name !== name) throw badRequest(`the name of the object (${String(imd.name)}) does not match the name on the URL (${name})`);
    if (def.namespaced && imd.namespace && imd.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const currentRv = str(child(current, 'metadata'), 'resourceVersion');
    const rv = imd.resourceVersion;
    if (rv === undefined || rv === null || rv === '') {
      // Custom resources do not allow unconditional updates; most builtins do.
      if (def.crd) throw invalid(def, name, [fieldErrors.invalid('metadata.resourceVersion', 0, 'must be specified for an update')]);
    } else if (rv !== currentRv) throw conflict(def, name);

    const currentServed = this.present(def, current);
    let next: Obj;
    if (subresource === 'status') {
      // Only .status may change through the status subresource.
      next = clone(currentServed);
      if (incoming.status === undefined) delete next.status;
      else next.status = incoming.status;
    } else {
      next = incoming;
      const nmd = meta(next);
      const cmd = meta(currentServed);
      for (const k of SERVER_META) {
        if (cmd[k] === undefined) delete nmd[k];
        else nmd[k] = cmd[k] as Json;
      }
      nmd.name = name;
      if (def.namespaced) nmd.namespace = ns;
      else delete nmd.namespace;
      if (def.statusSubresource) {
        if (currentServed.status === undefined) delete next.status;
        else next.status = currentServed.status;
      }
    }
    const nmd = meta(next);
    nmd.resourceVersion = currentRv ?? '';
    const errs = validateMeta(def, nmd);
    const oldFinalizers = finalizersOf(current);
    if (child(current, 'metadata')?.deletionTimestamp) {
      const added = finalizersOf(next).filter((f) => !oldFinalizers.includes(f));
      if (added.length > 0) errs.push(fieldErrors.forbidden('metadata.finalizers', `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((a) => JSON.stringify(a)).join(', ')}}`));
    }
    const stored = this.admit(def, next, opts, errs);
    const smd = meta(stored);
    if (def.generation !== 'none' && generationChanged(def, current, stored)) {
      smd.generation = Number(child(current, 'metadata')?.generation ?? 0) + 1;
    }
    if (def === CRD_DEF) finalizeCrd(stored, nowTimestamp(), current);
    // A write that changes nothing is not persisted and keeps the resourceVersion (no watch event).
    if (deepEqual(stored, current)) return currentServed;
    if (opts.dryRun) return this.present(def, stored);
    const newRv = this.store.nextRv();
    smd.resourceVersion = String(newRv);
    if (smd.deletionTimestamp && finalizersOf(stored).length === 0) {
      this.store.remove(def.storageKey, nsKey, name, stored, newRv);
      this.afterDelete(def, stored);
    } else {
      this.store.put(def.storageKey, nsKey, name, stored, newRv, current);
    }
    return this.present(def, stored);
  }

  patch(def: ResourceDef, ns: string, name: string, contentType: string, raw: string, subresource: string | undefined,
    opts: WriteOptions): { obj: Obj; created: boolean } {
    const type = contentType.split(';')[0]?.trim() ?? '';
    const accepted = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
    if (!def.crd) accepted.splice(2, 0, 'application/strategic-merge-patch+json');
    if (!accepted.includes(type)) throw unsupportedMediaType(type, accepted);
    let patch: Json;
    try {
      patch = (type === 'application/apply-patch+yaml' ? parseYaml(raw) : JSON.parse(raw)) as Json;
    } catch (e) {
      throw badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    if (type === 'application/apply-patch+yaml') {
      if (!opts.fieldManager) throw invalid({ group: 'meta.k8s.io', plural: 'patchoptions', kind: 'PatchOptions' }, '', [fieldErrors.required('fieldManager', 'is required for apply patch')]);
      // Server-side apply without managed fields: create, or merge the applied configuration.
      const nsKey = def.namespaced ? ns : '';
      if (!this.store.get(def.storageKey, nsKey, name) && subresource === undefined) {
        const body = isObj(patch) ? patch : {};
        meta(body).name = name;
        return { obj: this.create(def, ns, body, opts), created: true };
      }
    }
    const current = this.get(def, ns, name);
    let patched: Json;
    switch (type) {
      case 'application/json-patch+json': patched = jsonPatch(current, patch); break;
      case 'application/strategic-merge-patch+json': patched = strategicMergePatch(current, patch); break;
      default: patched = mergePatch(current, patch);
    }
    if (!isObj(patched)) throw badRequest('patch did not produce an object');
    // A resourceVersion the patch sets acts as a precondition; otherwise the current one is used.
    const pmd = meta(patched);
    if (pmd.resourceVersion === undefined || pmd.resourceVersion === null) pmd.resourceVersion = str(meta(current), 'resourceVersion') ?? '';
    return { obj: this.update(def, ns, name, patched, subresource, opts), created: false };
  }

  delete(def: ResourceDef, ns: string, name: string, options: Obj, opts: WriteOptions): { body: Obj; code: number } {
    const nsKey = def.namespaced ? ns : '';
    const current = this.load(def, ns, name);
    const cmd = meta(current);
    const pre = child(options, 'preconditions');
    if (pre?.uid && pre.uid !== cmd.uid) {
      throw conflict(def, name, `Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${String(cmd.uid)}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== cmd.resourceVersion) {
      throw conflict(def, name, `Precondition failed: ResourceVersion in precondition: ${String(pre.resourceVersion)}, ResourceVersion in object meta: ${String(cmd.resourceVersion)}`);
    }
    if (def === NAMESPACE_DEF && ['default', 'kube-system', 'kube-public'].includes(name)) {
      throw failure(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: 'namespaces' });
    }
    if (finalizersOf(current).length > 0) {
      if (cmd.deletionTimestamp) return { body: this.present(def, current), code: 200 };
      const next = clone(current);
      const nmd = meta(next);
      nmd.deletionTimestamp = nowTimestamp();
      nmd.deletionGracePeriodSeconds = 0;
      // As the generic registry does when marking an object for deletion.
      if (typeof nmd.generation === 'number' && nmd.generation > 0) nmd.generation += 1;
      if (opts.dryRun) return { body: this.present(def, next), code: 200 };
      const rv = this.store.nextRv();
      nmd.resourceVersion = String(rv);
      this.store.put(def.storageKey, nsKey, name, next, rv, current);
      return { body: this.present(def, next), code: 200 };
    }
    if (!opts.dryRun) {
      const rv = this.store.nextRv();
      cmd.resourceVersion = String(rv);
      this.store.remove(def.storageKey, nsKey, name, current, rv);
      this.afterDelete(def, current);
    }
    const details: Obj = { name, kind: def.plural, uid: cmd.uid as Json };
    if (def.group) details.group = def.group;
    return { body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details }, code: 200 };
  }

  deleteCollection(def: ResourceDef, ns: string | undefined, q: URLSearchParams, options: Obj, opts: WriteOptions): Obj {
    const { items } = this.list(def, ns, q);
    const deleted: Obj[] = [];
    for (const o of items) {
      const md = meta(o);
      try {
        const r = this.delete(def, String(md.namespace ?? ''), String(md.name), options, opts);
        deleted.push(r.body.kind === 'Status' ? o : r.body);
      } catch {
        // Objects deleted concurrently are skipped, as the apiserver does.
      }
    }
    return { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(this.store.rv) }, items: deleted };
  }

  /** Cascades the apiserver performs through controllers: namespace contents, a CRD's objects. */
  private afterDelete(def: ResourceDef, obj: Obj): void {
    const name = String(meta(obj).name);
    if (def === NAMESPACE_DEF) {
      for (const d of uniqueStorage(this.registry.all().filter((x) => x.namespaced))) {
        for (const o of this.store.list(d.storageKey, name)) this.purge(d.storageKey, name, o);
      }
    } else if (def === CRD_DEF) {
      const spec = child(obj, 'spec');
      const key = `${str(spec, 'group') ?? ''}/${str(child(spec ?? {}, 'names'), 'plural') ?? ''}`;
      for (const o of this.store.list(key)) {
        this.purge(key, String(child(o, 'metadata')?.namespace ?? ''), o);
      }
    }
  }

  private purge(storageKey: string, nsKey: string, o: Obj): void {
    const rv = this.store.nextRv();
    meta(o).resourceVersion = String(rv);
    this.store.remove(storageKey, nsKey, String(meta(o).name), o, rv);
  }

  /** Creates the namespaces a fresh cluster has. */
  bootstrap(): void {
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      if (!this.store.get(NAMESPACE_DEF.storageKey, '', ns)) {
        this.create(NAMESPACE_DEF, '', { metadata: { name: ns } }, { dryRun: false, fieldValidation: 'Ignore', warnings: [] });
      }
    }
  }
}

function keyOf(o: Obj): string {
  const md = isObj(o.metadata) ? o.metadata : {};
  return `${String(md.namespace ?? '')}/${String(md.name ?? '')}`;
}

function uniqueStorage(defs: ResourceDef[]): ResourceDef[] {
  const seen = new Set<string>();
  return defs.filter((d) => !seen.has(d.storageKey) && seen.add(d.storageKey));
}
