import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  DeltaFormatError,
  decodeDeltaEvents,
  encodeDeltaLine,
  encodeDeltaStream,
  eventCost,
  groupByRevision,
  MAX_EVENT_BYTES,
  MAX_LINE_BYTES,
  type DeltaEvent,
} from '../../src/archive/delta-format.js';
import type { Compression } from '../../src/archive/naming.js';

function put(rev: number, key: string, value: Buffer | string, extra: Partial<DeltaEvent> = {}): DeltaEvent {
  return {
    rev,
    type: 'PUT',
    key: Buffer.from(key),
    value: Buffer.isBuffer(value) ? value : Buffer.from(value),
    createRev: rev,
    modRev: rev,
    version: 1,
    lease: '0',
    ...extra,
  };
}

function del(rev: number, key: string): DeltaEvent {
  return { rev, type: 'DELETE', key: Buffer.from(key), value: Buffer.alloc(0), createRev: 0, modRev: rev, version: 0, lease: '0' };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function decodeAll(bytes: Buffer, compression: Compression, chunkSize = 7): Promise<DeltaEvent[]> {
  // Feed in small pieces so lines cross chunk boundaries.
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) pieces.push(bytes.subarray(i, i + chunkSize));
  const events: DeltaEvent[] = [];
  for await (const event of decodeDeltaEvents(Readable.from(pieces), compression, 'test')) events.push(event);
  return events;
}

const sample: DeltaEvent[] = [
  put(5, 'a', 'one'),
  put(6, 'b', Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d])), // binary, including a newline byte
  put(7, 'a', 'two', { createRev: 5, version: 2, lease: '7587868449925235201' }), // lease beyond 2^53
  // one txn: several events in one revision
  put(8, 'c', ''),
  del(8, 'b'),
  put(8, Buffer.from([0xe2, 0x82, 0xac, 0]).toString('latin1'), 'x'),
];

test('a line has every field in a fixed order', () => {
  assert.equal(
    encodeDeltaLine(put(7, 'k', 'v', { createRev: 3, version: 2, lease: '12' })),
    '{"rev":7,"type":"PUT","key":"aw==","value":"dg==","createRev":3,"modRev":7,"version":2,"lease":"12"}\n',
  );
  assert.equal(
    encodeDeltaLine(del(9, 'k')),
    '{"rev":9,"type":"DELETE","key":"aw==","value":"","createRev":0,"modRev":9,"version":0,"lease":"0"}\n',
  );
});

for (const compression of ['none', 'gzip'] as const) {
  test(`round trip (${compression})`, async () => {
    const bytes = await collect(encodeDeltaStream(sample, compression));
    assert.deepEqual(await decodeAll(bytes, compression), sample);
  });

  test(`encoding is deterministic (${compression})`, async () => {
    const big = [...sample, put(9, 'big', randomBytes(300_000)), put(10, 'z', 'end')];
    const a = await collect(encodeDeltaStream(big, compression));
    const b = await collect(encodeDeltaStream(big.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })), compression));
    assert.equal(createHash('sha256').update(a).digest('hex'), createHash('sha256').update(b).digest('hex'));
  });
}

test('the stream equals the concatenated lines, big values included', async () => {
  const events = [put(1, 'small', 'x'), put(2, 'big', randomBytes(1_000_003)), put(3, 'after', 'y')];
  const streamed = await collect(encodeDeltaStream(events, 'none'));
  assert.equal(streamed.toString('latin1'), events.map(encodeDeltaLine).join(''));
  // A 1 MB value is sliced, not turned into one giant chunk.
  let largest = 0;
  for await (const chunk of encodeDeltaStream(events, 'none')) largest = Math.max(largest, (chunk as Buffer).length);
  assert.ok(largest < 200_000, `largest chunk ${largest}`);
  assert.deepEqual(await decodeAll(streamed, 'none', 65_536), events);
});

test('an empty object encodes to nothing and decodes to no events', async () => {
  assert.equal((await collect(encodeDeltaStream([], 'none'))).length, 0);
  assert.deepEqual(await decodeAll(Buffer.alloc(0), 'none'), []);
  assert.deepEqual(await decodeAll(gzipSync(Buffer.alloc(0)), 'gzip'), []);
});

test('groupByRevision keeps a txn together', async () => {
  async function* events(): AsyncGenerator<DeltaEvent> {
    yield* sample;
  }
  const groups: Array<[number, number]> = [];
  for await (const group of groupByRevision(events())) groups.push([group.rev, group.events.length]);
  assert.deepEqual(groups, [
    [5, 1],
    [6, 1],
    [7, 1],
    [8, 3],
  ]);
});

test('eventCost charges key, value and a fixed overhead', () => {
  assert.equal(eventCost(put(1, 'ab', 'cde')), 5 + 256);
});

test('malformed objects fail with DeltaFormatError naming the line', async (t) => {
  const good = encodeDeltaLine(put(5, 'a', 'b'));
  const cases: Array<{ name: string; text: string; message: RegExp }> = [
    { name: 'not JSON', text: good + '{oops\n', message: /test line 2: not JSON/ },
    { name: 'missing field', text: '{"rev":1,"type":"PUT","key":"YQ==","value":""}\n', message: /missing field createRev/ },
    { name: 'unknown type', text: good.replace('"PUT"', '"PATCH"'), message: /unknown event type/ },
    { name: 'bad base64', text: good.replace('"YQ=="', '"@@"'), message: /key is not base64/ },
    { name: 'revision goes backwards', text: encodeDeltaLine(put(9, 'a', 'b')) + good, message: /revision 5 after 9/ },
    { name: 'modRev differs from rev', text: good.replace('"modRev":5', '"modRev":6'), message: /modRev 6 differs/ },
    { name: 'truncated last line', text: good + good.slice(0, 20), message: /not terminated/ },
    { name: 'lease not a string', text: good.replace('"lease":"0"', '"lease":0'), message: /lease/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      await assert.rejects(decodeAll(Buffer.from(c.text), 'none'), (err: unknown) => {
        assert.ok(err instanceof DeltaFormatError, String(err));
        assert.match(err.message, c.message);
        return true;
      });
    });
  }
  await t.test('corrupt gzip', async () => {
    const zipped = gzipSync(Buffer.from(good));
    const at = zipped.length - 6; // in the CRC / length trailer
    zipped.writeUInt8(zipped.readUInt8(at) ^ 0xff, at);
    await assert.rejects(decodeAll(zipped, 'gzip'), DeltaFormatError);
  });
});

test('a line is limited: up to maxLineBytes decodes, one byte more fails as soon as it is read', async () => {
  const line = encodeDeltaLine(put(5, 'a', randomBytes(3000)));
  const limit = line.length - 1; // the line without its newline
  const decode = (text: string, max: number): Promise<DeltaEvent[]> =>
    (async () => {
      const events: DeltaEvent[] = [];
      for await (const event of decodeDeltaEvents(Readable.from([Buffer.from(text)]), 'none', 'test', max)) events.push(event);
      return events;
    })();
  assert.equal((await decode(line + line, limit)).length, 2);
  await assert.rejects(decode(line, limit - 1), /test line 1: longer than \d+ bytes without a newline/);
  // Unterminated and endless: fails once the limit is passed, not at the end of the stream.
  const endless = Readable.from((function* () {
    for (;;) yield Buffer.alloc(64 * 1024, 'A');
  })());
  await assert.rejects(
    (async () => {
      for await (const event of decodeDeltaEvents(endless, 'none', 'test', 1024 * 1024)) void event;
    })(),
    /test line 1: longer than 1048576 bytes/,
  );
  // The default holds the largest event restore can replay, in base64.
  assert.ok(MAX_LINE_BYTES >= (MAX_EVENT_BYTES / 3) * 4);
});

test('groupByRevision refuses a revision whose events cost more than the limit, naming it', async () => {
  const events = async function* (): AsyncGenerator<DeltaEvent> {
    yield put(5, 'a', 'x');
    for (let i = 0; ; i++) yield put(6, `k${i}`, Buffer.alloc(100)); // endless: one revision never ends
  };
  const limit = 10 * eventCost(put(6, 'k0', Buffer.alloc(100)));
  const groups: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const group of groupByRevision(events(), limit, 'delta/x')) groups.push(group.rev);
    })(),
    (err: unknown) => err instanceof DeltaFormatError && /^delta\/x: revision 6 holds more than \d+ bytes of events \(11 events so far\)/.test(err.message),
  );
  assert.deepEqual(groups, [5], 'the revisions before it are handed out');
});

test('an encoded object is at most 4/3 of its events budget charge (maxObjectBytes relies on it)', async () => {
  for (const size of [0, 1, 2, 3, 100, 4096, 1_000_000]) {
    const events = [put(99_999_999_999, 'k'.repeat(1 + (size % 200)), randomBytes(size), { lease: '7587868449925235201', version: 123456 }), del(99_999_999_999, 'x')];
    const encoded = await collect(encodeDeltaStream(events, 'none'));
    const charged = events.reduce((sum, e) => sum + eventCost(e), 0);
    assert.ok(encoded.length <= (charged * 4) / 3, `value ${size}: ${encoded.length} > 4/3 x ${charged}`);
  }
});
