import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ago } from '../../src/cli/images.js';

describe('images CREATED: go-units HumanDuration, as podman prints it', () => {
  it('each threshold and rounding', () => {
    const before = (ms: number): string => ago(new Date(Date.now() - ms).toISOString());
    const s = 1000;
    const h = 3600 * s;
    const cases: [number, string][] = [
      [200, 'Less than a second ago'],
      [1.5 * s, '1 second ago'],
      [3 * s, '3 seconds ago'],
      [59 * s, '59 seconds ago'],
      [61 * s, 'About a minute ago'],
      [5 * 60 * s, '5 minutes ago'],
      [59 * 60 * s, '59 minutes ago'],
      [61 * 60 * s, 'About an hour ago'],
      [1.6 * h, '2 hours ago'],
      [47 * h, '47 hours ago'],
      [50 * h, '2 days ago'],
      [15 * 24 * h, '2 weeks ago'],
      [70 * 24 * h, '2 months ago'],
      [3 * 365 * 24 * h, '3 years ago'],
    ];
    for (const [ms, want] of cases) assert.equal(before(ms), want, `${ms} ms`);
  });
});
