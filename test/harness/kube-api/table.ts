// meta.k8s.io Table responses (what `kubectl get` asks for) built from CRD additionalPrinterColumns.
import { isObj, type Json, type Obj } from './json.js';

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

type Step =
  | { kind: 'key'; key: string }
  | { kind: 'index'; index: number | '*' }
  | { kind: 'filter'; path: string[]; op: '==' | '!='; value: Json };

function parseFilterValue(raw: string): Json {
  const t = raw.trim();
  if (/^(['"]).*\1$/.test(t)) return t.slice(1, -1);
  if (t === 'true' || t === 'false') return t === 'true';
  const n = Number(t);
  return Number.isNaN(n) ? t : n;
}

/** Parses the "simple" JSONPath subset CRD printer columns use; throws on anything else. */
export function parseJsonPath(expr: string): Step[] {
  let s = expr.trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  const steps: Step[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i];
    if (ch === '.') {
      i++;
      let key = '';
      while (i < s.length && s[i] !== '.' && s[i] !== '[') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        key += s[i++];
      }
      if (key) steps.push({ kind: 'key', key });
    } else if (ch === '[') {
      const end = s.indexOf(']', s.startsWith('[?(', i) ? s.indexOf(')]', i) : i);
      if (end < 0) throw new Error(`unterminated [ in ${expr}`);
      const inner = s.slice(i + 1, end);
      i = end + 1;
      const filter = /^\?\(@((?:\.[^=!]+?)+)\s*(==|!=)\s*(.+)\)$/.exec(inner);
      if (filter) {
        steps.push({ kind: 'filter', path: (filter[1] ?? '').slice(1).split('.'), op: filter[2] === '!=' ? '!=' : '==',
          value: parseFilterValue(filter[3] ?? '') });
      } else if (inner === '*') steps.push({ kind: 'index', index: '*' });
      else if (/^-?\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (/^(['"]).*\1$/.test(inner)) steps.push({ kind: 'key', key: inner.slice(1, -1) });
      else throw new Error(`unsupported JSONPath element [${inner}] in ${expr}`);
    } else throw new Error(`unsupported JSONPath ${expr}`);
  }
  return steps;
}

export function evalJsonPath(steps: Step[], root: Json): Json[] {
  let cur: Json[] = [root];
  for (const st of steps) {
    const next: Json[] = [];
    for (const v of cur) {
      if (st.kind === 'key') {
        if (isObj(v) && v[st.key] !== undefined) next.push(v[st.key] as Json);
      } else if (st.kind === 'index') {
        if (!Array.isArray(v)) continue;
        if (st.index === '*') next.push(...v);
        else {
          const item = v[st.index < 0 ? v.length + st.index : st.index];
          if (item !== undefined) next.push(item);
        }
      } else if (Array.isArray(v)) {
        for (const item of v) {
          let f: Json | undefined = item;
          for (const k of st.path) f = isObj(f) ? f[k] : undefined;
          const eq = f !== undefined && (f === st.value || String(f) === String(st.value));
          if (st.op === '==' ? eq : !eq) next.push(item);
        }
      }
    }
    cur = next;
  }
  return cur;
}

/** k8s.io/apimachinery/pkg/util/duration.HumanDuration, so Age cells read as on a real cluster. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

export const AGE_COLUMN: PrinterColumn = {
  name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};

const NAME_DEFINITION = {
  name: 'Name', type: 'string', format: 'name', priority: 0,
  description: 'Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
};

// Mirrors apiextensions-apiserver's tableconvertor cell rules.
function cell(col: PrinterColumn, obj: Obj, compiled: Step[] | undefined): Json {
  if (!compiled) return null;
  const value = evalJsonPath(compiled, obj)[0];
  if (value === undefined || value === null) return null;
  switch (col.type) {
    case 'integer': return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number': return typeof value === 'number' ? value : null;
    case 'boolean': return typeof value === 'boolean' ? value : null;
    case 'date': {
      if (typeof value !== 'string') return null;
      const t = Date.parse(value);
      return Number.isNaN(t) ? '<invalid>' : humanDuration(Date.now() - t);
    }
    default: return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function buildTable(tableVersion: string, columns: PrinterColumn[], objects: Obj[], listMeta: Obj,
  include: IncludeObject, withDefinitions = true): Obj {
  const compiled = columns.map((c) => {
    try {
      return parseJsonPath(c.jsonPath);
    } catch {
      return undefined;
    }
  });
  const rows = objects.map((o) => {
    const md = isObj(o.metadata) ? o.metadata : {};
    const row: Obj = { cells: [md.name ?? null, ...columns.map((c, i) => cell(c, o, compiled[i]))] };
    if (include === 'Object') row.object = o;
    else if (include === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: md };
    return row;
  });
  const table: Obj = { kind: 'Table', apiVersion: `meta.k8s.io/${tableVersion}`, metadata: listMeta };
  if (withDefinitions) {
    table.columnDefinitions = [NAME_DEFINITION, ...columns.map((c) => ({
      name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0,
    }))];
  } else table.columnDefinitions = [];
  table.rows = rows;
  return table;
}
