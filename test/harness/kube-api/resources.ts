// The resource catalogue: builtin kinds plus the ones registered by CRDs, and the discovery and
// OpenAPI documents derived from it.
import { createHash } from 'node:crypto';
import { type FieldError, fieldErrors } from './errors.js';
import { child, isObj, str, type Json, type Obj } from './json.js';
import { compileSchema, type CompiledSchema } from './schema.js';
import { AGE_COLUMN, type PrinterColumn } from './table.js';

export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export interface ResourceDef {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  statusSubresource: boolean;
  /** Identity in storage, shared by all versions of a resource (and by core/v1 and events.k8s.io events). */
  storageKey: string;
  /** Which part of the object bumps metadata.generation when it changes ('none': no generation). */
  generation: 'spec' | 'all-but-metadata-status' | 'all-but-metadata' | 'none';
  columns: PrinterColumn[];
  /** Builtin list items carry no kind/apiVersion in JSON; custom resource items do. */
  listItemsTyped: boolean;
  crd?: { name: string; schema: CompiledSchema | undefined };
  /** Converts a request body of this version to the storage form and back. */
  toStorage?: (o: Obj) => Obj;
  fromStorage?: (o: Obj) => Obj;
  /** Type-specific defaulting/validation on create and update. */
  prepare?: (o: Obj) => FieldError[];
}

export function apiVersionOf(def: { group: string; version: string }): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

function builtin(p: Partial<ResourceDef> & Pick<ResourceDef, 'group' | 'version' | 'plural' | 'kind'>): ResourceDef {
  return {
    singular: p.kind.toLowerCase(), namespaced: true, shortNames: [], categories: [], statusSubresource: false,
    storageKey: `${p.group}/${p.plural}`, generation: 'none', columns: [AGE_COLUMN], listItemsTyped: false, ...p,
  };
}

function prepareSecret(o: Obj): FieldError[] {
  // The apiserver folds stringData into data on write and never stores stringData.
  const data: Obj = isObj(o.data) ? o.data : {};
  if (isObj(o.stringData)) {
    for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
  }
  delete o.stringData;
  o.data = data;
  if (o.type === undefined) o.type = 'Opaque';
  const errs: FieldError[] = [];
  for (const [k, v] of Object.entries(data)) {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) errs.push(fieldErrors.invalid(`data[${k}]`, v, 'must be base64 encoded'));
  }
  return errs;
}

const EVENTS_V1_TO_CORE: Record<string, string> = {
  regarding: 'involvedObject', note: 'message', reportingController: 'reportingComponent',
  deprecatedSource: 'source', deprecatedFirstTimestamp: 'firstTimestamp', deprecatedLastTimestamp: 'lastTimestamp',
  deprecatedCount: 'count',
};

function renameKeys(o: Obj, map: Record<string, string>): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) out[map[k] ?? k] = v;
  return out;
}

const EVENTS_CORE_TO_V1 = Object.fromEntries(Object.entries(EVENTS_V1_TO_CORE).map(([a, b]) => [b, a]));

function prepareEventV1(o: Obj): FieldError[] {
  const errs: FieldError[] = [];
  for (const f of ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason']) {
    if (o[f] === undefined || o[f] === null || o[f] === '') errs.push(fieldErrors.required(f));
  }
  if (o.type !== 'Normal' && o.type !== 'Warning') errs.push(fieldErrors.notSupported('type', o.type ?? '', ['Normal', 'Warning']));
  if (typeof o.note === 'string' && Buffer.byteLength(o.note) > 1024) errs.push(fieldErrors.invalid('note', '', 'can have at most 1024 characters'));
  return errs;
}

export const BUILTINS: ResourceDef[] = [
  builtin({ group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'],
    statusSubresource: true,
    prepare: (o) => {
      if (!isObj(o.status)) o.status = { phase: 'Active' };
      // The apiserver labels every namespace with its own name.
      const md = isObj(o.metadata) ? o.metadata : {};
      md.labels = { ...(isObj(md.labels) ? md.labels : {}), 'kubernetes.io/metadata.name': md.name ?? '' };
      const spec = isObj(o.spec) ? o.spec : (o.spec = {});
      if (!Array.isArray(spec.finalizers)) spec.finalizers = ['kubernetes'];
      return [];
    } }),
  builtin({ group: '', version: 'v1', plural: 'secrets', kind: 'Secret', prepare: prepareSecret }),
  builtin({ group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', shortNames: ['cm'] }),
  builtin({ group: '', version: 'v1', plural: 'events', kind: 'Event', shortNames: ['ev'], storageKey: 'events' }),
  builtin({ group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', shortNames: ['ev'], storageKey: 'events',
    toStorage: (o) => renameKeys(o, EVENTS_V1_TO_CORE), fromStorage: (o) => renameKeys(o, EVENTS_CORE_TO_V1),
    prepare: prepareEventV1 }),
  builtin({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease' }),
  builtin({ group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', shortNames: ['deploy'],
    categories: ['all'], statusSubresource: true, generation: 'spec' }),
  builtin({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], statusSubresource: true,
    generation: 'spec' }),
];

export const CRD_DEF = BUILTINS[BUILTINS.length - 1] as ResourceDef;

/** Kubernetes version ordering: GA > beta > alpha, higher numbers first. */
export function versionPriority(a: string, b: string): number {
  const parse = (v: string): [number, number, number] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    return [m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1, Number(m[1]), Number(m[3] ?? 0)];
  };
  const [pa, pb] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pb[i] ?? 0) - (pa[i] ?? 0);
  return a.localeCompare(b);
}

const schemaCache = new Map<string, CompiledSchema | undefined>();

function compiledFor(crdName: string, uidRv: string, version: string, schema: Obj | undefined): CompiledSchema | undefined {
  const key = `${crdName}/${uidRv}/${version}`;
  if (!schemaCache.has(key)) schemaCache.set(key, schema ? compileSchema(schema) : undefined);
  return schemaCache.get(key);
}

/** Checks a CRD the way the apiserver would before accepting it (only the parts we rely on). */
export function validateCrd(crd: Obj): FieldError[] {
  const errs: FieldError[] = [];
  const spec = child(crd, 'spec');
  const names = spec && child(spec, 'names');
  const group = str(spec, 'group');
  const plural = str(names, 'plural');
  if (!group) errs.push(fieldErrors.required('spec.group'));
  if (!plural) errs.push(fieldErrors.required('spec.names.plural'));
  if (!str(names, 'kind')) errs.push(fieldErrors.required('spec.names.kind'));
  const scope = str(spec, 'scope');
  if (scope !== 'Namespaced' && scope !== 'Cluster') errs.push(fieldErrors.notSupported('spec.scope', scope ?? '', ['Cluster', 'Namespaced']));
  const name = str(child(crd, 'metadata'), 'name');
  if (group && plural && name !== `${plural}.${group}`) {
    errs.push(fieldErrors.invalid('metadata.name', name ?? '', 'must be spec.names.plural+"."+spec.group'));
  }
  const versions = Array.isArray(spec?.versions) ? spec.versions.filter(isObj) : [];
  if (versions.length === 0) errs.push(fieldErrors.required('spec.versions', 'must have exactly one version marked as storage version'));
  else if (versions.filter((v) => v.storage === true).length !== 1) {
    errs.push(fieldErrors.invalid('spec.versions', versions.length, 'must have exactly one version marked as storage version'));
  }
  versions.forEach((v, i) => {
    const schema = child(child(v, 'schema') ?? {}, 'openAPIV3Schema');
    if (!schema) return;
    try {
      compileSchema(schema);
    } catch (e) {
      errs.push(fieldErrors.invalid(`spec.versions[${i}].schema.openAPIV3Schema`, '', (e as Error).message));
    }
  });
  return errs;
}

/** Server-owned CRD defaults and status: names accepted and Established at once. */
export function finalizeCrd(crd: Obj, now: string, previous?: Obj): void {
  const spec = child(crd, 'spec') ?? {};
  const names = child(spec, 'names') ?? {};
  const kind = str(names, 'kind') ?? '';
  if (!names.singular) names.singular = kind.toLowerCase();
  if (!names.listKind) names.listKind = `${kind}List`;
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObj) : [];
  const storage = versions.find((v) => v.storage === true);
  const prevStatus = previous ? child(previous, 'status') : undefined;
  const prevConds = Array.isArray(prevStatus?.conditions) ? prevStatus.conditions.filter(isObj) : [];
  const since = (type: string): string => str(prevConds.find((c) => c.type === type), 'lastTransitionTime') ?? now;
  const stored = new Set<string>(Array.isArray(prevStatus?.storedVersions) ? prevStatus.storedVersions.map(String) : []);
  if (storage && typeof storage.name === 'string') stored.add(storage.name);
  crd.status = {
    conditions: [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: since('NamesAccepted') },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: since('Established') },
    ],
    acceptedNames: names,
    storedVersions: [...stored],
  };
}

/** The resources a stored CRD serves (one per served version). */
export function defsFromCrd(crd: Obj): ResourceDef[] {
  const md = child(crd, 'metadata') ?? {};
  const spec = child(crd, 'spec') ?? {};
  const names = child(spec, 'names') ?? {};
  const group = str(spec, 'group') ?? '';
  const plural = str(names, 'plural') ?? '';
  const kind = str(names, 'kind') ?? '';
  const crdName = str(md, 'name') ?? '';
  const uidRv = `${str(md, 'uid') ?? ''}/${str(md, 'resourceVersion') ?? ''}`;
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObj) : [];
  return versions.filter((v) => v.served !== false).map((v) => {
    const version = str(v, 'name') ?? '';
    const subresources = child(v, 'subresources');
    const statusSub = subresources !== undefined && subresources.status !== undefined;
    const cols = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.filter(isObj) : [];
    const columns: PrinterColumn[] = cols.length === 0 ? [AGE_COLUMN] : cols.map((c) => ({
      name: str(c, 'name') ?? '', type: str(c, 'type') ?? 'string', format: str(c, 'format'),
      description: str(c, 'description'), priority: typeof c.priority === 'number' ? c.priority : 0,
      jsonPath: str(c, 'jsonPath') ?? '',
    }));
    const schema = child(child(v, 'schema') ?? {}, 'openAPIV3Schema');
    return {
      group, version, plural, kind, singular: str(names, 'singular') ?? kind.toLowerCase(),
      namespaced: spec.scope !== 'Cluster',
      shortNames: Array.isArray(names.shortNames) ? names.shortNames.map(String) : [],
      categories: Array.isArray(names.categories) ? names.categories.map(String) : [],
      statusSubresource: statusSub, storageKey: `${group}/${plural}`,
      generation: statusSub ? 'all-but-metadata-status' : 'all-but-metadata', columns, listItemsTyped: true,
      crd: { name: crdName, schema: compiledFor(crdName, uidRv, version, schema) },
    } satisfies ResourceDef;
  });
}

// ---- discovery ----

export function apiResourceList(groupVersion: string, defs: ResourceDef[]): Obj {
  const resources: Obj[] = [];
  for (const d of defs) {
    const r: Obj = { name: d.plural, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: VERBS };
    if (d.shortNames.length) r.shortNames = d.shortNames;
    if (d.categories.length) r.categories = d.categories;
    r.storageVersionHash = createHash('sha256').update(`${d.storageKey}`).digest('base64').slice(0, 11);
    resources.push(r);
    if (d.statusSubresource) {
      resources.push({ name: `${d.plural}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

export function apiGroup(name: string, versions: string[]): Obj {
  const sorted = [...versions].sort(versionPriority);
  const gv = (v: string): Obj => ({ groupVersion: `${name}/${v}`, version: v });
  return { name, versions: sorted.map(gv), preferredVersion: gv(sorted[0] ?? '') };
}

/** Minimal OpenAPI v3 document for one group/version: only what kubectl reads from it, namely
 * that PATCH takes `fieldValidation` (so kubectl relies on server-side validation). PATCH bodies
 * deliberately list no strategic-merge type, so kubectl computes its patches without needing schemas. */
export function openApiV3Doc(defs: ResourceDef[]): Obj {
  const paths: Obj = {};
  for (const d of defs) {
    const base = d.group ? `/apis/${d.group}/${d.version}` : `/api/${d.version}`;
    const item = d.namespaced ? `${base}/namespaces/{namespace}/${d.plural}/{name}` : `${base}/${d.plural}/{name}`;
    const gvk: Json = { group: d.group, version: d.version, kind: d.kind };
    paths[item] = {
      patch: {
        'x-kubernetes-action': 'patch', 'x-kubernetes-group-version-kind': gvk,
        parameters: [
          { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
          { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
          { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
        ],
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas: {} } };
}
