import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { compress as zstdCompress } from '@mongodb-js/zstd';
import {
  DeltaFormatError,
  decodeDeltaEvents,
  encodeDeltaLine,
  encodeDeltaStream,
  eventCost,
  firstLeaseUses,
  groupByRevision,
  LEASE_GONE,
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
  put(7, 'a', 'two', { createRev: 5, version: 2, lease: '7587868449925235201', leaseTtl: 60 }), // lease beyond 2^53
  put(7, 'd', 'on a gone lease', { lease: '99', leaseTtl: LEASE_GONE }),
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

test('a lease TTL follows the lease; -1 marks a lease that was gone', () => {
  assert.equal(
    encodeDeltaLine(put(7, 'k', 'v', { createRev: 3, version: 2, lease: '12', leaseTtl: 60 })),
    '{"rev":7,"type":"PUT","key":"aw==","value":"dg==","createRev":3,"modRev":7,"version":2,"lease":"12","leaseTTL":60}\n',
  );
  assert.match(encodeDeltaLine(put(7, 'k', 'v', { lease: '12', leaseTtl: LEASE_GONE })), /"lease":"12","leaseTTL":-1}\n$/);
});

test('an object written before lease TTLs were recorded decodes without them', async () => {
  const old = '{"rev":7,"type":"PUT","key":"aw==","value":"dg==","createRev":3,"modRev":7,"version":2,"lease":"12"}\n';
  const [event] = await decodeAll(Buffer.from(old), 'none');
  assert.equal(event!.lease, '12');
  assert.equal(event!.leaseTtl, undefined);
  assert.ok(!('leaseTtl' in event!), 'no leaseTtl property at all');
});

test('firstLeaseUses: the first event of each lease, by index', () => {
  const events = [put(1, 'a', 'x'), put(2, 'b', 'x', { lease: '5' }), put(3, 'c', 'x', { lease: '6' }), put(4, 'd', 'x', { lease: '5' }), del(5, 'b')];
  assert.deepEqual([...firstLeaseUses(events)], [['5', 1], ['6', 2]]);
});

for (const compression of ['none', 'gzip', 'zstd'] as const) {
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
    [7, 2],
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
    { name: 'leaseTTL not a TTL', text: good.replace('"lease":"0"', '"lease":"5","leaseTTL":"60"'), message: /leaseTTL is not a TTL/ },
    { name: 'leaseTTL below -1', text: good.replace('"lease":"0"', '"lease":"5","leaseTTL":-2'), message: /leaseTTL is not a TTL/ },
    { name: 'leaseTTL without a lease', text: good.replace('"lease":"0"', '"lease":"0","leaseTTL":60'), message: /leaseTTL without a lease/ },
    // Every check of a line, each with its whole message.
    { name: 'an array', text: '[1,2]\n', message: /^test line 1: not an object$/ },
    { name: 'null', text: 'null\n', message: /^test line 1: not an object$/ },
    { name: 'a number', text: '5\n', message: /^test line 1: not an object$/ },
    { name: 'negative rev', text: good.replace('"rev":5', '"rev":-1'), message: /^test line 1: rev is not a revision$/ },
    { name: 'fractional rev', text: good.replace('"rev":5', '"rev":5.5'), message: /^test line 1: rev is not a revision$/ },
    { name: 'rev as a string', text: good.replace('"rev":5', '"rev":"5"'), message: /^test line 1: rev is not a revision$/ },
    { name: 'version beyond 2^53', text: good.replace('"version":1', '"version":9007199254740993'), message: /^test line 1: version is not a revision$/ },
    { name: 'value not a string', text: good.replace('"value":"Yg=="', '"value":null'), message: /^test line 1: value is not base64$/ },
    { name: 'lease with a prefix', text: good.replace('"lease":"0"', '"lease":"x5"'), message: /^test line 1: lease is not a decimal string$/ },
    { name: 'lease with a suffix', text: good.replace('"lease":"0"', '"lease":"5x"'), message: /^test line 1: lease is not a decimal string$/ },
    { name: 'fractional leaseTTL', text: good.replace('"lease":"0"', '"lease":"5","leaseTTL":1.5'), message: /^test line 1: leaseTTL is not a TTL$/ },
    { name: 'empty key', text: good.replace('"key":"YQ=="', '"key":""'), message: /^test line 1: empty key$/ },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      await assert.rejects(decodeAll(Buffer.from(c.text), 'none'), (err: unknown) => {
        assert.ok(err instanceof DeltaFormatError, String(err));
        assert.match(err.message, c.message);
        assert.equal(err.reason, 'InvalidDeltaObject');
        assert.equal(err.terminal, true, 'a retry cannot fix the object');
        return true;
      });
    });
  }
  await t.test('corrupt gzip', async () => {
    const zipped = gzipSync(Buffer.from(good));
    const at = zipped.length - 6; // in the CRC / length trailer
    zipped.writeUInt8(zipped.readUInt8(at) ^ 0xff, at);
    await assert.rejects(decodeAll(zipped, 'gzip'), (err: unknown) => {
      assert.ok(err instanceof DeltaFormatError, String(err));
      assert.match(err.message, /^test: cannot gunzip: \S/);
      return true;
    });
  });
  await t.test('corrupt zstd', async () => {
    const frame = await zstdCompress(Buffer.from(good), 1);
    frame.writeUInt8(frame.readUInt8(frame.length - 2) ^ 0xff, frame.length - 2);
    await assert.rejects(decodeAll(frame, 'zstd'), (err: unknown) => {
      assert.ok(err instanceof DeltaFormatError, String(err));
      assert.match(err.message, /^test: cannot decompress zstd: \S/);
      return true;
    });
  });
  await t.test('a zstd object that is fine decodes: its format errors are not reported as zstd ones', async () => {
    const text = good + encodeDeltaLine(put(4, 'a', 'b'));
    await assert.rejects(decodeAll(await zstdCompress(Buffer.from(text), 1), 'zstd'), { message: 'test line 2: revision 4 after 5' });
    await assert.rejects(decodeAll(gzipSync(Buffer.from(text)), 'gzip'), { message: 'test line 2: revision 4 after 5' });
  });
  await t.test('errors name the object as "delta object" when no name is given', async () => {
    await assert.rejects(
      (async () => {
        for await (const event of decodeDeltaEvents(Readable.from([Buffer.from('{oops\n')]), 'none')) void event;
      })(),
      { message: 'delta object line 1: not JSON' },
    );
  });
});

test('ending the decode early destroys the body', async () => {
  const body = Readable.from([Buffer.from(encodeDeltaLine(put(5, 'a', 'b')) + encodeDeltaLine(put(6, 'a', 'c')))]);
  for await (const event of decodeDeltaEvents(body, 'none', 'test')) {
    assert.equal(event.rev, 5);
    break;
  }
  assert.equal(body.destroyed, true);
});

test('gzip deltas are one zlib stream at level 6, byte-identical to gzipSync (a retried delta is the same object)', async () => {
  const plain = Buffer.from(sample.map(encodeDeltaLine).join(''));
  assert.deepEqual(await collect(encodeDeltaStream(sample, 'gzip')), gzipSync(plain, { level: 6 }));
});

function longer(line: number, limit: number, belowCeiling: boolean): string {
  return (
    `test line ${line}: longer than ${limit} bytes without a newline; no etcd event is that large ` +
    '(a corrupt or malicious object, e.g. a gzip bomb)' +
    (belowCeiling ? "; the limit is the restore's memory for deltas (--memory), raise it for events this large" : '')
  );
}

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
  // The same in 7-byte pieces: the line's bytes are counted across chunks, exactly.
  const inPieces = (text: string, max: number) =>
    (async () => {
      const bytes = Buffer.from(text);
      const pieces: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += 7) pieces.push(bytes.subarray(i, i + 7));
      let count = 0;
      for await (const event of decodeDeltaEvents(Readable.from(pieces), 'none', 'test', max)) count += event.rev > 0 ? 1 : 0;
      return count;
    })();
  assert.equal(await inPieces(line + line, limit), 2);
  await assert.rejects(inPieces(line, limit - 1), { message: longer(1, limit - 1, true) });
  await assert.rejects(decode(line, limit - 1), { message: longer(1, limit - 1, true) });
  // Unterminated and endless: fails once the limit is passed, not at the end of the stream.
  const endless = Readable.from((function* () {
    for (;;) yield Buffer.alloc(64 * 1024, 'A');
  })());
  await assert.rejects(
    (async () => {
      for await (const event of decodeDeltaEvents(endless, 'none', 'test', 1024 * 1024)) void event;
    })(),
    { message: longer(1, 1024 * 1024, true) },
  );
  // At the default limit (the ceiling) raising --memory would not help, so the message does not say so.
  const endlessToo = Readable.from((function* () {
    for (;;) yield Buffer.alloc(1024 * 1024, 'A');
  })());
  await assert.rejects(
    (async () => {
      for await (const event of decodeDeltaEvents(endlessToo, 'none', 'test')) void event;
    })(),
    { message: longer(1, MAX_LINE_BYTES, false) },
  );
  // The default holds the largest event restore can replay, in base64, and not much more.
  assert.ok(MAX_LINE_BYTES >= (MAX_EVENT_BYTES / 3) * 4);
  assert.ok(MAX_LINE_BYTES <= (MAX_EVENT_BYTES / 3) * 4 + 4096);
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
    {
      name: 'DeltaFormatError',
      message:
        `delta/x: revision 6 holds more than ${limit} bytes of events (11 events so far); ` +
        'it cannot be held whole for its txn (a corrupt or malicious object, or raise --memory)',
    },
  );
  assert.deepEqual(groups, [5], 'the revisions before it are handed out');
});

test('groupByRevision: no events, no revisions; the default name is "delta object"', async () => {
  const none = async function* (): AsyncGenerator<DeltaEvent> {};
  const groups: unknown[] = [];
  for await (const group of groupByRevision(none())) groups.push(group);
  assert.deepEqual(groups, []);
  const twice = async function* (): AsyncGenerator<DeltaEvent> {
    yield put(6, 'a', 'x');
    yield put(6, 'b', 'y');
  };
  await assert.rejects(
    (async () => {
      for await (const group of groupByRevision(twice(), eventCost(put(6, 'a', 'x')))) void group;
    })(),
    { message: /^delta object: revision 6 holds more than/ },
  );
});

test('an encoded object is at most 4/3 of its events budget charge (maxObjectBytes relies on it)', async () => {
  for (const size of [0, 1, 2, 3, 100, 4096, 1_000_000]) {
    const events = [put(99_999_999_999, 'k'.repeat(1 + (size % 200)), randomBytes(size), { lease: '7587868449925235201', version: 123456 }), del(99_999_999_999, 'x')];
    const encoded = await collect(encodeDeltaStream(events, 'none'));
    const charged = events.reduce((sum, e) => sum + eventCost(e), 0);
    assert.ok(encoded.length <= (charged * 4) / 3, `value ${size}: ${encoded.length} > 4/3 x ${charged}`);
  }
});
