// CRD openAPIV3Schema handling like apiextensions-apiserver: prune unknown fields, apply `default`s,
// then validate. Validation uses ajv on a copy of the schema with the Kubernetes-only keywords removed.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { type FieldError, renderValue } from './errors.js';
import { clone, isObj, type Json, type Obj } from './json.js';

export interface CompiledSchema {
  /** Removes fields the schema does not declare; returns their paths (for fieldValidation). */
  prune(obj: Obj): string[];
  /** Sets missing (or null, when not nullable) properties that declare a `default`. */
  applyDefaults(obj: Obj): void;
  validate(obj: Obj): FieldError[];
}

// strict:false tolerates unknown keywords; formats (int32, date-time, ...) are not checked, as the
// apiserver checks only a few of them.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });

function toJsonSchema(s: Json): Json {
  if (!isObj(s)) return s;
  const out: Obj = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'default' || k === 'example' || k === 'format') continue;
    if ((k === 'properties' || k === 'patternProperties' || k === 'definitions') && isObj(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([pk, pv]) => [pk, toJsonSchema(pv)]));
    } else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map(toJsonSchema);
    } else if (k === 'items' || k === 'not' || k === 'additionalProperties') {
      out[k] = toJsonSchema(v);
    } else out[k] = v;
  }
  if (s.nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
  }
  if (s['x-kubernetes-int-or-string'] === true && out.type === undefined && out.anyOf === undefined) {
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
  }
  return out;
}

function fieldPath(instancePath: string): string {
  let out = '';
  for (const seg of instancePath.split('/').slice(1)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : (out ? `.${key}` : key);
  }
  return out;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function valueAt(root: Obj, instancePath: string): unknown {
  let cur: unknown = root;
  for (const seg of instancePath.split('/').slice(1)) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = Array.isArray(cur) ? cur[Number(key)] : isObj(cur) ? cur[key] : undefined;
  }
  return cur;
}

// Message shapes follow k8s.io/kube-openapi/pkg/validation/errors, which the apiserver returns.
function toFieldError(e: ErrorObject, root: Obj): FieldError | undefined {
  const field = fieldPath(e.instancePath);
  const value = valueAt(root, e.instancePath);
  const p = e.params as Record<string, unknown>;
  const inBody = `${field} in body`;
  const invalid = (detail: string): FieldError =>
    ({ field, type: 'FieldValueInvalid', detail: `Invalid value: ${renderValue(value)}: ${detail}` });
  switch (e.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      return { field: field ? `${field}.${missing}` : missing, type: 'FieldValueRequired', detail: 'Required value' };
    }
    case 'type':
      return { field, type: 'FieldValueTypeInvalid',
        detail: `Invalid value: "${typeName(value)}": ${inBody} must be of type ${String(p.type)}: "${typeName(value)}"` };
    case 'enum':
      return { field, type: 'FieldValueNotSupported',
        detail: `Unsupported value: ${renderValue(value)}: supported values: ${(p.allowedValues as unknown[]).map(renderValue).join(', ')}` };
    case 'minimum': return invalid(`${inBody} should be greater than or equal to ${String(p.limit)}`);
    case 'exclusiveMinimum': return invalid(`${inBody} should be greater than ${String(p.limit)}`);
    case 'maximum': return invalid(`${inBody} should be less than or equal to ${String(p.limit)}`);
    case 'exclusiveMaximum': return invalid(`${inBody} should be less than ${String(p.limit)}`);
    case 'multipleOf': return invalid(`${inBody} should be a multiple of ${String(p.multipleOf)}`);
    case 'minLength': return invalid(`${inBody} should be at least ${String(p.limit)} chars long`);
    case 'maxLength':
      return { field, type: 'FieldValueTooLong', detail: `Too long: may not be more than ${String(p.limit)} bytes` };
    case 'pattern': return invalid(`${inBody} should match '${String(p.pattern)}'`);
    case 'minItems': return invalid(`${inBody} should have at least ${String(p.limit)} items`);
    case 'maxItems':
      return { field, type: 'FieldValueTooMany',
        detail: `Too many: ${Array.isArray(value) ? value.length : 0}: must have at most ${String(p.limit)} items` };
    case 'minProperties': return invalid(`${inBody} should have at least ${String(p.limit)} properties`);
    case 'maxProperties': return invalid(`${inBody} should have at most ${String(p.limit)} properties`);
    case 'uniqueItems':
      return { field: `${field}[${String(p.i)}]`, type: 'FieldValueDuplicate', detail: `Duplicate value: ${renderValue(Array.isArray(value) ? value[Number(p.i)] : value)}` };
    case 'if': return undefined;
    default: return invalid(e.message ?? e.keyword);
  }
}

function prune(v: Json | undefined, s: Json | undefined, path: string, root: boolean, unknown: string[]): void {
  if (!isObj(s)) return;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if (isObj(v)) {
    const props = isObj(s.properties) ? s.properties : undefined;
    const addl = s.additionalProperties;
    for (const k of Object.keys(v)) {
      // apiVersion/kind/metadata of the root (and of embedded resources) are never pruned here.
      if ((root || s['x-kubernetes-embedded-resource'] === true) && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
      const p = path ? `${path}.${k}` : k;
      if (props && k in props) prune(v[k], props[k], p, false, unknown);
      else if (isObj(addl)) prune(v[k], addl, p, false, unknown);
      else if (addl === true || preserve) continue;
      else {
        delete v[k];
        unknown.push(p);
      }
    }
  } else if (Array.isArray(v) && s.items !== undefined) {
    v.forEach((item, i) => prune(item, s.items, `${path}[${i}]`, false, unknown));
  }
}

function applyDefaults(v: Json | undefined, s: Json | undefined): void {
  if (!isObj(s)) return;
  if (isObj(v)) {
    const props = isObj(s.properties) ? s.properties : {};
    for (const [k, ps] of Object.entries(props)) {
      if (!isObj(ps)) continue;
      const missing = v[k] === undefined || (v[k] === null && ps.nullable !== true);
      if (missing && ps.default !== undefined) v[k] = clone(ps.default);
      if (v[k] !== undefined) applyDefaults(v[k], ps);
    }
    if (isObj(s.additionalProperties)) {
      for (const k of Object.keys(v)) if (!(k in props)) applyDefaults(v[k], s.additionalProperties);
    }
  } else if (Array.isArray(v)) {
    for (const item of v) applyDefaults(item, s.items);
  }
}

/** Throws (ajv's error) when the schema itself cannot be compiled. */
export function compileSchema(k8sSchema: Obj): CompiledSchema {
  const validateFn: ValidateFunction = ajv.compile(toJsonSchema(k8sSchema) as Obj);
  return {
    prune: (obj) => {
      const unknown: string[] = [];
      prune(obj, k8sSchema, '', true, unknown);
      return unknown;
    },
    applyDefaults: (obj) => applyDefaults(obj, k8sSchema),
    validate: (obj) => {
      if (validateFn(obj)) return [];
      const seen = new Set<string>();
      const out: FieldError[] = [];
      for (const e of validateFn.errors ?? []) {
        const fe = toFieldError(e, obj);
        if (!fe) continue;
        const key = `${fe.field}\u0000${fe.detail}`;
        if (!seen.has(key)) {
          seen.add(key);
          out.push(fe);
        }
      }
      return out;
    },
  };
}
