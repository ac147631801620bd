import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { familiarName, formatDockerReference, parseDockerReference, withDefaultTag } from '../../src/core/reference.js';
import { SkiffError } from '../../src/core/errors.js';

const D = 'sha256:' + 'a'.repeat(64);

describe('docker reference normalisation (distribution/reference)', () => {
  const table: [string, string][] = [
    ['busybox', 'docker.io/library/busybox'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox'],
    ['user/repo:tag', 'docker.io/user/repo:tag'],
    ['docker.io/busybox', 'docker.io/library/busybox'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox'],
    ['localhost/foo', 'localhost/foo'],
    ['localhost:5000/foo/bar:1', 'localhost:5000/foo/bar:1'],
    ['127.0.0.1:5000/a/b/c:x-1.2_3', '127.0.0.1:5000/a/b/c:x-1.2_3'],
    ['quay.io/a/b@' + D, 'quay.io/a/b@' + D],
    ['quay.io/a/b:t@' + D, 'quay.io/a/b:t@' + D],
    ['a__b/c.d-e', 'docker.io/a__b/c.d-e'],
    ['[::1]:5000/x', '[::1]:5000/x'],
  ];
  for (const [input, want] of table) {
    it(`${input} -> ${want}`, () => assert.equal(formatDockerReference(parseDockerReference(input)), want));
  }

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Upper/Case', /lowercase/],
    ['docker.io/Foo', /lowercase/],
    ['repo:', /empty tag/],
    ['repo:bad tag', /invalid tag/],
    ['repo@sha256:123', /invalid digest/],
    ['-leading/x', /path component/],
    ['a//b', /path component/],
    ['x:' + 'a'.repeat(129), /invalid tag/],
    ['host.com/' + 'a'.repeat(260), /longer than 255/],
  ];
  for (const [input, re] of bad) {
    it(`rejects ${JSON.stringify(input.slice(0, 30))}`, () => {
      assert.throws(() => parseDockerReference(input), (e: unknown) => e instanceof SkiffError && e.code === 'ERR_INVALID_REFERENCE' && re.test(e.message));
    });
  }

  it('adds :latest only when neither tag nor digest is present', () => {
    assert.equal(withDefaultTag(parseDockerReference('busybox')).tag, 'latest');
    assert.equal(withDefaultTag(parseDockerReference('busybox@' + D)).tag, undefined);
  });

  it('familiar names drop docker.io/library', () => {
    assert.equal(familiarName(parseDockerReference('busybox:1')), 'busybox:1');
    assert.equal(familiarName(parseDockerReference('docker.io/user/x')), 'user/x');
    assert.equal(familiarName(parseDockerReference('quay.io/a/b')), 'quay.io/a/b');
  });
});
