/**
 * The delta object format: JSON lines, one line per etcd event, in revision order:
 *
 *   {"rev":12,"type":"PUT","key":"<b64>","value":"<b64>","createRev":7,"modRev":12,"version":3,"lease":"0"}
 *
 * Every field is always written, in this order, so the bytes of an object depend only on the events
 * of its revision range: a retry after a crash rewrites the same object. `lease` is a decimal string
 * because lease IDs are int64 values beyond Number's exact range. DELETE lines carry an empty value
 * and zero createRev/version/lease (that is what etcd's tombstone events hold).
 * Optionally gzip-compressed (`.jsonl.gz`).
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { OperatorError } from '../errors.js';
import type { Compression } from './naming.js';

export type DeltaEventType = 'PUT' | 'DELETE';

export interface DeltaEvent {
  /** The revision the event belongs to (equals modRev). */
  rev: number;
  type: DeltaEventType;
  key: Buffer;
  value: Buffer;
  createRev: number;
  modRev: number;
  version: number;
  /** Decimal int64 lease ID, "0" for none. */
  lease: string;
}

/** All events of one revision, in the order etcd applied them. */
export interface RevisionEvents {
  rev: number;
  events: DeltaEvent[];
}

/** A delta object's content cannot be read back; retrying does not help. */
export class DeltaFormatError extends OperatorError {
  constructor(message: string) {
    super('InvalidDeltaObject', message, { terminal: true });
  }
}

/**
 * Bytes an event is charged against the memory budget while held: its key and value plus the
 * JS object and number/string fields around them (measured ~150-250 bytes per decoded event).
 */
export const EVENT_OVERHEAD_BYTES = 256;

export function eventCost(event: Pick<DeltaEvent, 'key' | 'value'>): number {
  return event.key.length + event.value.length + EVENT_OVERHEAD_BYTES;
}

/** Source bytes per base64 piece: a multiple of 3, so pieces concatenate to the whole value's base64. */
const BASE64_PIECE_BYTES = 48 * 1024;
/** The encoder hands out chunks of about this size (small lines are batched, big values sliced). */
const ENCODE_CHUNK_BYTES = 64 * 1024;

function lineHead(event: DeltaEvent): string {
  return `{"rev":${event.rev},"type":"${event.type}","key":"${event.key.toString('base64')}","value":"`;
}

function lineTail(event: DeltaEvent): string {
  return `","createRev":${event.createRev},"modRev":${event.modRev},"version":${event.version},"lease":"${event.lease}"}\n`;
}

/** One event as one line (with its newline). For small events and tests; streams use encodeDeltaStream. */
export function encodeDeltaLine(event: DeltaEvent): string {
  return lineHead(event) + event.value.toString('base64') + lineTail(event);
}

/** The uncompressed content as chunks of about ENCODE_CHUNK_BYTES; a large value is sliced, never copied whole. */
function* encodeChunks(events: readonly DeltaEvent[]): Generator<Buffer> {
  let parts: string[] = [];
  let length = 0;
  const add = (text: string): Buffer | undefined => {
    parts.push(text);
    length += text.length;
    if (length < ENCODE_CHUNK_BYTES) return undefined;
    const chunk = Buffer.from(parts.join(''), 'latin1'); // base64, digits and ASCII names only
    parts = [];
    length = 0;
    return chunk;
  };
  for (const event of events) {
    let out = add(lineHead(event));
    if (out) yield out;
    for (let offset = 0; offset < event.value.length; offset += BASE64_PIECE_BYTES) {
      out = add(event.value.subarray(offset, offset + BASE64_PIECE_BYTES).toString('base64'));
      if (out) yield out;
    }
    out = add(lineTail(event));
    if (out) yield out;
  }
  if (length > 0) yield Buffer.from(parts.join(''), 'latin1');
}

/**
 * A stream of the object's bytes for `events` (which must be in revision order). Memory beyond the
 * events themselves stays at a few encoder chunks plus gzip's state, whatever the values' sizes.
 * Output is deterministic for the same events and compression.
 */
export function encodeDeltaStream(events: readonly DeltaEvent[], compression: Compression): Readable {
  const plain = Readable.from(encodeChunks(events), { objectMode: false, highWaterMark: ENCODE_CHUNK_BYTES });
  if (compression === 'none') return plain;
  const gzip = createGzip();
  pipeline(plain, gzip).catch(() => undefined); // errors reach the consumer through `gzip`
  return gzip;
}

/**
 * The largest event a delta can hold and restore replay: the temporary member restore starts accepts
 * requests up to this size (a revision is replayed as one txn), far above etcd's default
 * --max-request-bytes of 1.5 MiB and the 10 MiB above which etcd warns. A larger event could not
 * have been written by any source restore can replay.
 */
export const MAX_EVENT_BYTES = 64 * 1024 * 1024;

/**
 * The longest line a decoder accepts: key and value of the largest event in base64 (4 bytes per 3)
 * plus the field names and numbers (under 200 bytes; 1 KiB of slack). A longer line is not an event,
 * e.g. a gzip bomb: a few hundred KB that decompress to gigabytes without a newline.
 */
export const MAX_LINE_BYTES = Math.ceil(MAX_EVENT_BYTES / 3) * 4 + 1024;

const NEWLINE = 0x0a;
const FIELD_ORDER = ['rev', 'type', 'key', 'value', 'createRev', 'modRev', 'version', 'lease'] as const;

function parseLine(text: string, lineNumber: number, where: string): DeltaEvent {
  const bad = (why: string): DeltaFormatError => new DeltaFormatError(`${where} line ${lineNumber}: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not an object');
  const record = raw as Record<string, unknown>;
  for (const field of FIELD_ORDER) if (!(field in record)) throw bad(`missing field ${field}`);
  const int = (field: 'rev' | 'createRev' | 'modRev' | 'version'): number => {
    const value = record[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(`${field} is not a revision`);
    return value;
  };
  const b64 = (field: 'key' | 'value'): Buffer => {
    const value = record[field];
    if (typeof value !== 'string') throw bad(`${field} is not base64`);
    const bytes = Buffer.from(value, 'base64');
    // Node skips invalid characters silently; re-encoding is strict and ~20x faster than a regex on MB strings.
    if (bytes.toString('base64') !== value) throw bad(`${field} is not base64`);
    return bytes;
  };
  const type = record.type;
  if (type !== 'PUT' && type !== 'DELETE') throw bad(`unknown event type ${JSON.stringify(type)}`);
  const lease = record.lease;
  if (typeof lease !== 'string' || !/^-?\d+$/.test(lease)) throw bad('lease is not a decimal string');
  const event: DeltaEvent = {
    rev: int('rev'),
    type,
    key: b64('key'),
    value: b64('value'),
    createRev: int('createRev'),
    modRev: int('modRev'),
    version: int('version'),
    lease,
  };
  if (event.key.length === 0) throw bad('empty key');
  if (event.modRev !== event.rev) throw bad(`modRev ${event.modRev} differs from rev ${event.rev}`);
  return event;
}

/**
 * Decodes a delta object's bytes as they stream in, one event at a time, checking the line format
 * and that revisions never go backwards. Memory is one line at a time, at most `maxLineBytes`
 * (default and ceiling MAX_LINE_BYTES): a longer line fails with a DeltaFormatError as soon as its
 * bytes pass the limit, whatever the object decompresses to. Ending early (break) destroys `body`.
 * `where` names the object in errors.
 */
export async function* decodeDeltaEvents(
  body: Readable,
  compression: Compression,
  where = 'delta object',
  maxLineBytes = MAX_LINE_BYTES,
): AsyncGenerator<DeltaEvent> {
  const lineLimit = Math.min(maxLineBytes, MAX_LINE_BYTES);
  let source: Readable = body;
  let decompress: Promise<void> | undefined;
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    decompress = pipeline(body, gunzip);
    decompress.catch(() => undefined); // surfaced through `gunzip` below
    source = gunzip;
  }
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNumber = 0;
  let lastRev = 0;
  const emit = (bytes: Buffer): DeltaEvent => {
    lineNumber += 1;
    // Lines are ASCII by construction (base64, digits, names); latin1 decodes them fastest.
    const event = parseLine(bytes.toString('latin1'), lineNumber, where);
    if (event.rev < lastRev) throw new DeltaFormatError(`${where} line ${lineNumber}: revision ${event.rev} after ${lastRev}`);
    lastRev = event.rev;
    return event;
  };
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      let start = 0;
      for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, newline);
        if (pendingBytes + piece.length > lineLimit) throw lineTooLong(where, lineNumber + 1, lineLimit);
        const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
        pending = [];
        pendingBytes = 0;
        start = newline + 1;
        yield emit(line);
      }
      if (start < chunk.length) {
        pendingBytes += chunk.length - start;
        if (pendingBytes > lineLimit) throw lineTooLong(where, lineNumber + 1, lineLimit);
        pending.push(chunk.subarray(start));
      }
    }
    await decompress;
    if (pending.length > 0) throw new DeltaFormatError(`${where}: the last line is not terminated (truncated object?)`);
  } catch (err) {
    if (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new DeltaFormatError(`${where}: cannot gunzip: ${err.message}`);
    }
    throw err;
  } finally {
    if (!body.destroyed) body.destroy();
    if (!source.destroyed) source.destroy();
  }
}

function lineTooLong(where: string, lineNumber: number, limit: number): DeltaFormatError {
  return new DeltaFormatError(
    `${where} line ${lineNumber}: longer than ${limit} bytes without a newline; no etcd event is that large ` +
      '(a corrupt or malicious object, e.g. a gzip bomb)' +
      (limit < MAX_LINE_BYTES ? `; the limit is the restore's memory for deltas (--memory), raise it for events this large` : ''),
  );
}

/**
 * Groups a revision-ordered event stream into whole revisions. A revision is held whole, so its
 * events' cost (eventCost) may be at most `maxRevisionBytes`: past it a DeltaFormatError names the
 * revision (`where` names the object), before more of it is read. Without a limit, a compressed
 * object of endless events of one revision would be held whole.
 */
export async function* groupByRevision(
  events: AsyncIterable<DeltaEvent>,
  maxRevisionBytes = Number.POSITIVE_INFINITY,
  where = 'delta object',
): AsyncGenerator<RevisionEvents> {
  let current: RevisionEvents | undefined;
  let currentBytes = 0;
  for await (const event of events) {
    if (current && event.rev === current.rev) {
      currentBytes += eventCost(event);
      if (currentBytes > maxRevisionBytes) {
        throw new DeltaFormatError(
          `${where}: revision ${event.rev} holds more than ${maxRevisionBytes} bytes of events (${current.events.length + 1} events so far); ` +
            'it cannot be held whole for its txn (a corrupt or malicious object, or raise --memory)',
        );
      }
      current.events.push(event);
      continue;
    }
    if (current) yield current;
    current = { rev: event.rev, events: [event] };
    currentBytes = eventCost(event);
  }
  if (current) yield current;
}
