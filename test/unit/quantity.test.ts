import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, parseQuantity } from '../../src/api/quantity.js';

const Ki = 2 ** 10;
const Mi = 2 ** 20;
const Gi = 2 ** 30;

const parseCases: Array<{ name: string; input: string | number; want: number | undefined }> = [
  { name: 'binary Mi', input: '128Mi', want: 128 * Mi },
  { name: 'binary Gi', input: '1Gi', want: Gi },
  { name: 'binary Ki', input: '4Ki', want: 4 * Ki },
  { name: 'binary Ti', input: '3Ti', want: 3 * 2 ** 40 },
  { name: 'fractional binary', input: '1.5Gi', want: 1_610_612_736 },
  { name: 'fraction without integer part', input: '.5Ki', want: 512 },
  { name: 'decimal G', input: '1G', want: 1_000_000_000 },
  { name: 'decimal k', input: '500k', want: 500_000 },
  { name: 'decimal M', input: '2M', want: 2_000_000 },
  // 1.1 * 1000 is 1100.0000000000002 in floating point; a naive ceil would give 1101.
  { name: 'fractional decimal k', input: '1.1k', want: 1100 },
  { name: 'fractional decimal M', input: '1.1M', want: 1_100_000 },
  { name: 'exponent', input: '1e3', want: 1000 },
  { name: 'upper-case exponent', input: '1E3', want: 1000 },
  { name: 'negative exponent rounds up', input: '1e-3', want: 1 },
  { name: 'plain integer', input: '1024', want: 1024 },
  { name: 'explicit plus sign', input: '+1Ki', want: Ki },
  { name: 'surrounding whitespace is ignored', input: ' 1Gi ', want: Gi },
  // The apiserver rounds quantities up: 0.1 byte is 1 byte.
  { name: 'milli rounds up', input: '100m', want: 1 },
  { name: 'milli with a fraction rounds up', input: '1500m', want: 2 },
  { name: 'milli whole', input: '3000m', want: 3 },
  { name: 'zero', input: '0', want: 0 },
  { name: 'negative parses (validation rejects it)', input: '-1', want: -1 },
  { name: 'empty', input: '', want: undefined },
  { name: 'letters', input: 'abc', want: undefined },
  { name: 'lower-case binary suffix', input: '1gi', want: undefined },
  { name: 'space before suffix', input: '1 Gi', want: undefined },
  { name: 'unknown suffix', input: '5X', want: undefined },
  { name: 'suffix only', input: 'Mi', want: undefined },
  { name: 'two suffixes', input: '1KiB', want: undefined },
  { name: 'overflow to Infinity', input: '1e400', want: undefined },
  { name: 'number', input: 1024, want: 1024 },
  { name: 'number zero', input: 0, want: 0 },
  { name: 'fractional number rounds up', input: 1.2, want: 2 },
  { name: 'NaN', input: Number.NaN, want: undefined },
  { name: 'Infinity', input: Number.POSITIVE_INFINITY, want: undefined },
];

for (const c of parseCases) {
  test(`parseQuantity: ${c.name} (${JSON.stringify(c.input)})`, () => {
    assert.equal(parseQuantity(c.input), c.want);
  });
}

const formatCases: Array<{ bytes: number; want: string }> = [
  { bytes: 0, want: '0' },
  { bytes: 1000, want: '1000' },
  { bytes: Ki, want: '1Ki' },
  // Not a whole Ki and below 1Mi: plain bytes.
  { bytes: 1536, want: '1536' },
  { bytes: 16 * Mi, want: '16Mi' },
  // The largest unit that divides exactly wins, so 1.5Mi is 1536Ki rather than a rounded 1.5Mi.
  { bytes: 1.5 * Mi, want: '1536Ki' },
  { bytes: 1.5 * Gi, want: '1536Mi' },
  { bytes: Gi, want: '1Gi' },
  { bytes: 3 * 2 ** 40, want: '3Ti' },
  { bytes: Mi + 1, want: '1.0Mi' },
  { bytes: 100 * Mi + 1, want: '100.0Mi' },
];

for (const c of formatCases) {
  test(`formatBytes(${c.bytes}) = ${c.want}`, () => {
    assert.equal(formatBytes(c.bytes), c.want);
  });
}

test('formatBytes output of whole units parses back to the same bytes', () => {
  for (const bytes of [Ki, 3 * Ki, 128 * Mi, 1536 * Ki, 2 * Gi]) {
    assert.equal(parseQuantity(formatBytes(bytes)), bytes, String(bytes));
  }
});
