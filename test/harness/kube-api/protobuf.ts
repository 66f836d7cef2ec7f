// Decoder for the protobuf request bodies kubectl's typed clients send (`kubectl create secret|
// configmap|namespace`). Only the kinds and fields those commands produce are mapped; anything else
// is answered 415 by the caller.
import { badRequest } from './errors.js';
import type { Json, Obj } from './json.js';

type Scalar = 'string' | 'bytes' | 'int' | 'bool' | 'time';
type Field =
  | { name: string; type: Scalar; repeated?: boolean }
  | { name: string; type: 'message'; message: Message; repeated?: boolean }
  | { name: string; type: 'map'; value: 'string' | 'bytes' };
type Message = Record<number, Field>;

const TIME: Message = { 1: { name: 'seconds', type: 'int' }, 2: { name: 'nanos', type: 'int' } };
const OWNER_REF: Message = {
  1: { name: 'kind', type: 'string' }, 3: { name: 'name', type: 'string' }, 4: { name: 'uid', type: 'string' },
  5: { name: 'apiVersion', type: 'string' }, 6: { name: 'controller', type: 'bool' }, 7: { name: 'blockOwnerDeletion', type: 'bool' },
};
// Field numbers from k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto and k8s.io/api/core/v1/generated.proto.
const OBJECT_META: Message = {
  1: { name: 'name', type: 'string' }, 2: { name: 'generateName', type: 'string' }, 3: { name: 'namespace', type: 'string' },
  5: { name: 'uid', type: 'string' }, 6: { name: 'resourceVersion', type: 'string' }, 7: { name: 'generation', type: 'int' },
  8: { name: 'creationTimestamp', type: 'time' }, 9: { name: 'deletionTimestamp', type: 'time' },
  10: { name: 'deletionGracePeriodSeconds', type: 'int' },
  11: { name: 'labels', type: 'map', value: 'string' }, 12: { name: 'annotations', type: 'map', value: 'string' },
  13: { name: 'ownerReferences', type: 'message', message: OWNER_REF, repeated: true },
  14: { name: 'finalizers', type: 'string', repeated: true },
};
const KINDS: Record<string, Message> = {
  'v1/Secret': {
    1: { name: 'metadata', type: 'message', message: OBJECT_META }, 2: { name: 'data', type: 'map', value: 'bytes' },
    3: { name: 'type', type: 'string' }, 4: { name: 'stringData', type: 'map', value: 'string' }, 5: { name: 'immutable', type: 'bool' },
  },
  'v1/ConfigMap': {
    1: { name: 'metadata', type: 'message', message: OBJECT_META }, 2: { name: 'data', type: 'map', value: 'string' },
    3: { name: 'binaryData', type: 'map', value: 'bytes' }, 4: { name: 'immutable', type: 'bool' },
  },
  'v1/Namespace': {
    1: { name: 'metadata', type: 'message', message: OBJECT_META },
    2: { name: 'spec', type: 'message', message: { 1: { name: 'finalizers', type: 'string', repeated: true } } },
    3: { name: 'status', type: 'message', message: { 1: { name: 'phase', type: 'string' } } },
  },
};

interface Raw {
  field: number;
  wire: number;
  varint?: bigint;
  bytes?: Buffer;
}

function readFields(buf: Buffer): Raw[] {
  const out: Raw[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw badRequest('truncated protobuf varint');
      const b = buf[pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, varint: varint() });
    else if (wire === 2) {
      const len = Number(varint());
      out.push({ field, wire, bytes: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw badRequest(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

function decodeMessage(buf: Buffer, msg: Message): Obj {
  const out: Obj = {};
  for (const r of readFields(buf)) {
    const f = msg[r.field];
    if (!f) continue;
    let value: Json;
    if (f.type === 'map') {
      const entry = readFields(r.bytes ?? Buffer.alloc(0));
      const k = entry.find((e) => e.field === 1)?.bytes?.toString('utf8') ?? '';
      const v = entry.find((e) => e.field === 2)?.bytes ?? Buffer.alloc(0);
      const m = (out[f.name] ??= {}) as Obj;
      m[k] = f.value === 'bytes' ? v.toString('base64') : v.toString('utf8');
      continue;
    }
    switch (f.type) {
      case 'string': value = r.bytes?.toString('utf8') ?? ''; break;
      case 'bytes': value = r.bytes?.toString('base64') ?? ''; break;
      case 'int': value = Number(BigInt.asIntN(64, r.varint ?? 0n)); break;
      case 'bool': value = (r.varint ?? 0n) !== 0n; break;
      case 'time': {
        const seconds = Number(decodeMessage(r.bytes ?? Buffer.alloc(0), TIME).seconds ?? 0);
        // Go's zero time.Time is year 1; treat anything before 1970 as unset.
        value = seconds <= 0 ? null : new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        break;
      }
      default: value = decodeMessage(r.bytes ?? Buffer.alloc(0), f.message);
    }
    // Go marshals non-pointer fields even when empty; JSON would have omitted them.
    if (!f.repeated && (value === '' || value === 0 || value === null)) continue;
    if (f.repeated) ((out[f.name] ??= []) as Json[]).push(value);
    else out[f.name] = value;
  }
  return out;
}

const MAGIC = Buffer.from('k8s\u0000', 'latin1');

/** Decodes a `k8s\0` + runtime.Unknown envelope; undefined when the kind is not one we map. */
export function decodeProtobufObject(body: Buffer): Obj | undefined {
  if (!body.subarray(0, 4).equals(MAGIC)) throw badRequest('protobuf body lacks the k8s magic prefix');
  const env = readFields(body.subarray(4));
  const typeMeta = readFields(env.find((e) => e.field === 1)?.bytes ?? Buffer.alloc(0));
  const apiVersion = typeMeta.find((e) => e.field === 1)?.bytes?.toString('utf8') ?? '';
  const kind = typeMeta.find((e) => e.field === 2)?.bytes?.toString('utf8') ?? '';
  const msg = KINDS[`${apiVersion}/${kind}`];
  if (!msg) return undefined;
  const raw = env.find((e) => e.field === 2)?.bytes ?? Buffer.alloc(0);
  return { apiVersion, kind, ...decodeMessage(raw, msg) };
}
