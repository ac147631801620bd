import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/cli/common.js';

describe('durations (--retry-delay, --cache-ttl)', () => {
  it('Go durations, compound ones too, and plain seconds, in milliseconds; anything else refused', () => {
    for (const [v, ms] of [['500ms', 500], ['2s', 2000], ['1m', 60_000], ['1h30m', 5_400_000], ['1.5h', 5_400_000], ['2m30s', 150_000], ['250us', 0.25], ['3', 3000], ['0', 0], ['0s', 0]] as const) assert.equal(parseDuration(v), ms, v);
    for (const bad of ['', 'h', '1d', '1h 30m', '-1s', '1hh', 'ms5']) assert.throws(() => parseDuration(bad), /invalid duration/, bad);
  });
});
