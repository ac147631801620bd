import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { EMPTY_CONF, findRegistry, isShortName, mergeRegistriesToml, shortNameCandidates } from '../../src/config/registries.js';
import { SkiffError } from '../../src/core/errors.js';

const conf = mergeRegistriesToml(EMPTY_CONF, `
unqualified-search-registries = ["registry.example.com", "quay.io"]
short-name-mode = "permissive"
[aliases]
"busybox" = "docker.io/library/busybox"
[[registry]]
prefix = "example.com/team"
location = "mirror.example.net/team"
insecure = true
[[registry.mirror]]
location = "m1.example.net/team"
pull-from-mirror = "digest-only"
[[registry]]
location = "example.com"
blocked = true
`, 'test.conf');

describe('registries.conf', () => {
  it('parses registries, mirrors, aliases and search registries', () => {
    assert.deepEqual(conf.unqualifiedSearch, ['registry.example.com', 'quay.io']);
    const team = findRegistry(conf, 'example.com/team/app');
    assert.equal(team?.location, 'mirror.example.net/team');
    assert.equal(team?.insecure, true);
    assert.deepEqual(team?.mirrors, [{ location: 'm1.example.net/team', insecure: false, pullFromMirror: 'digest-only' }]);
    assert.equal(findRegistry(conf, 'example.com/other')?.blocked, true, 'the longest matching prefix wins');
    assert.equal(findRegistry(conf, 'example.community/x'), undefined, 'prefixes match whole components');
  });
  it('reports TOML errors naming the file', () => {
    assert.throws(() => mergeRegistriesToml(EMPTY_CONF, '[[registry]\n', 'bad.conf'), (e: unknown) => e instanceof SkiffError && /^bad\.conf: /.test(e.message));
  });
  it('short names: alias first, then the search registries in order; qualified names unchanged', () => {
    assert.equal(isShortName('busybox'), true);
    assert.equal(isShortName('team/app'), true);
    assert.equal(isShortName('localhost/app'), false);
    assert.equal(isShortName('quay.io/a/b'), false);
    assert.deepEqual(shortNameCandidates('busybox:1.36', conf), ['docker.io/library/busybox:1.36']);
    assert.deepEqual(shortNameCandidates('team/app@sha256:' + 'a'.repeat(64), conf), ['registry.example.com/team/app@sha256:' + 'a'.repeat(64), 'quay.io/team/app@sha256:' + 'a'.repeat(64)]);
    assert.deepEqual(shortNameCandidates('quay.io/a/b:1', conf), ['quay.io/a/b:1']);
  });
  it('enforcing mode refuses an ambiguous short name without a TTY; no search registries is an error', () => {
    const enforcing = { ...conf, shortNameMode: 'enforcing' };
    assert.throws(() => shortNameCandidates('app', enforcing), /ambiguous.*enforcing/);
    assert.deepEqual(shortNameCandidates('app', enforcing, true).length, 2);
    assert.throws(() => shortNameCandidates('app', EMPTY_CONF), /no unqualified-search-registries/);
  });
});
