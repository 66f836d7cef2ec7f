import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/api/duration.js';

const parseCases: Array<{ input: string; want: number | undefined }> = [
  { input: '20s', want: 20_000 },
  { input: '15m', want: 900_000 },
  { input: '1h', want: 3_600_000 },
  { input: '1h30m', want: 5_400_000 },
  { input: '1m30s', want: 90_000 },
  { input: '500ms', want: 500 },
  { input: '1.5h', want: 5_400_000 },
  { input: '0', want: 0 },
  { input: '0s', want: 0 },
  { input: ' 20s ', want: 20_000 },
  // Go allows repeated units and adds them up.
  { input: '1h1h', want: 7_200_000 },
  { input: '', want: undefined },
  { input: '   ', want: undefined },
  { input: '5', want: undefined },
  { input: '1d', want: undefined },
  { input: '-1s', want: undefined },
  { input: 'x', want: undefined },
  { input: '20S', want: undefined },
  { input: '1h 30m', want: undefined },
  { input: '20s5', want: undefined },
  { input: '00', want: undefined },
];

for (const c of parseCases) {
  test(`parseDuration(${JSON.stringify(c.input)}) = ${String(c.want)}`, () => {
    assert.equal(parseDuration(c.input), c.want);
  });
}

test('parseDuration: a failed parse does not disturb the next one (shared sticky regex)', () => {
  assert.equal(parseDuration('1h2x'), undefined);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('2m'), 120_000);
});

const formatCases: Array<{ ms: number; want: string }> = [
  { ms: 0, want: '0s' },
  { ms: 500, want: '500ms' },
  { ms: 1500, want: '1500ms' },
  { ms: 20_000, want: '20s' },
  { ms: 90_000, want: '90s' },
  { ms: 900_000, want: '15m' },
  { ms: 5_400_000, want: '90m' },
  { ms: 7_200_000, want: '2h' },
];

for (const c of formatCases) {
  test(`formatDuration(${c.ms}) = ${c.want}, and parses back`, () => {
    assert.equal(formatDuration(c.ms), c.want);
    assert.equal(parseDuration(c.want), c.ms);
  });
}
