// Label selectors (equality- and set-based) and field selectors, parsed like apimachinery does.
import { badRequest } from './errors.js';
import { isObj, type Obj } from './json.js';

export type Matcher = (obj: Obj) => boolean;

const always: Matcher = () => true;

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function labelsOf(obj: Obj): Record<string, string> {
  const md = obj.metadata;
  const labels = isObj(md) ? md.labels : undefined;
  const out: Record<string, string> = {};
  if (isObj(labels)) for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out[k] = v;
  return out;
}

export function parseLabelSelector(raw: string | null): Matcher {
  if (!raw) return always;
  const reqs: Matcher[] = splitTopLevel(raw).map((r) => {
    let m = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(r);
    if (m) {
      const [, key = '', op, list = ''] = m;
      const values = new Set(list.split(',').map((v) => v.trim()));
      return op === 'in'
        ? (o: Obj) => { const v = labelsOf(o)[key]; return v !== undefined && values.has(v); }
        : (o: Obj) => { const v = labelsOf(o)[key]; return v === undefined || !values.has(v); };
    }
    m = /^([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(\S*)$/.exec(r);
    if (m) {
      const [, key = '', op, value = ''] = m;
      switch (op) {
        case '!=': return (o: Obj) => labelsOf(o)[key] !== value;
        case '<': return (o: Obj) => Number(labelsOf(o)[key]) < Number(value);
        case '>': return (o: Obj) => Number(labelsOf(o)[key]) > Number(value);
        default: return (o: Obj) => labelsOf(o)[key] === value;
      }
    }
    m = /^(!?)([^=!<>\s()]+)$/.exec(r);
    if (m) {
      const [, neg, key = ''] = m;
      return neg ? (o: Obj) => !(key in labelsOf(o)) : (o: Obj) => key in labelsOf(o);
    }
    throw badRequest(`unable to parse requirement: ${r}`);
  });
  return (o) => reqs.every((f) => f(o));
}

/** Splits on unescaped separators and removes the `\` escapes fields.EscapeValue adds. */
function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] ?? '';
    if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
    } else if (ch === sep) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function fieldValue(obj: Obj, path: string): string {
  let cur: unknown = obj;
  for (const seg of path.split('.')) cur = isObj(cur) ? cur[seg] : undefined;
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

/** Field selectors: any dotted path of the object as served (the real server allows a per-kind subset). */
export function parseFieldSelector(raw: string | null): Matcher {
  if (!raw) return always;
  const reqs: Matcher[] = [];
  // Split on unescaped commas first, then each term on its operator; escapes are kept until the value.
  const terms: string[] = [];
  let cur = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] ?? '';
    if (ch === '\\' && i + 1 < raw.length) cur += ch + (raw[++i] ?? '');
    else if (ch === ',') { terms.push(cur); cur = ''; } else cur += ch;
  }
  terms.push(cur);
  for (const term of terms.filter((t) => t !== '')) {
    const m = /^([^=!]+)(==|!=|=)(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${raw}'; can't understand '${term}'`);
    const [, field = '', op, escaped = ''] = m;
    const value = splitEscaped(escaped, '\u0000').join('');
    reqs.push(op === '!=' ? (o) => fieldValue(o, field) !== value : (o) => fieldValue(o, field) === value);
  }
  return (o) => reqs.every((f) => f(o));
}
