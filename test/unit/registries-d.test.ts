import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { lookasideBase, lookasideURL, setRegistriesDir } from '../../src/config/registries-d.js';
import { parseDockerReference } from '../../src/core/reference.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-registries-d-'));
after(() => {
  setRegistriesDir(undefined);
  rmSync(dir, { recursive: true, force: true });
});

const ref = (s: string) => parseDockerReference(s);

describe('registries.d lookaside configuration', () => {
  it('the most precise scope configured wins; staging for writing; the old sigstore names; default-docker; comments-only files ignored', async () => {
    const d = path.join(dir, 'a');
    mkdirSync(d);
    writeFileSync(path.join(d, 'default.yaml'), '# only comments, as containers-common ships it\n#default-docker:\n#  lookaside: file:///x\n');
    writeFileSync(path.join(d, 'one.yaml'), [
      'default-docker:',
      '  lookaside: https://sigs.example/default',
      'docker:',
      '  registry.example:',
      '    lookaside: https://sigs.example/registry',
      '  registry.example/team:',
      '    sigstore: file:///srv/team',
      '    sigstore-staging: file:///srv/team-staging',
      '  registry.example/team/app:2:',
      '    lookaside: file:///srv/app2/',
      '  "*.corp.example":',
      '    lookaside: file:///srv/corp',
      '',
    ].join('\n'));
    setRegistriesDir(d);
    assert.equal(await lookasideBase(ref('registry.example/team/app:1'), false), 'file:///srv/team');
    assert.equal(await lookasideBase(ref('registry.example/team/app:1'), true), 'file:///srv/team-staging');
    assert.equal(await lookasideBase(ref('registry.example/team/app:2'), false), 'file:///srv/app2');
    assert.equal(await lookasideBase(ref('registry.example/other/app:1'), false), 'https://sigs.example/registry');
    assert.equal(await lookasideBase(ref('elsewhere.example/app:1'), true), 'https://sigs.example/default');
    assert.equal(await lookasideBase(ref('registry.corp.example/x/y:1'), false), 'file:///srv/corp');
    assert.equal(lookasideURL('file:///srv/team', ref('registry.example/team/app:1'), `sha256:${'ab'.repeat(32)}`, 2), `file:///srv/team/team/app@sha256=${'ab'.repeat(32)}/signature-2`);
  });

  it('with nothing configured, c/image\'s built-in default (root: /var/lib/containers/sigstore)', async () => {
    setRegistriesDir(path.join(dir, 'missing'));
    const base = await lookasideBase(ref('docker.io/library/busybox:latest'), false);
    if (process.geteuid?.() === 0) assert.equal(base, 'file:///var/lib/containers/sigstore');
    else assert.match(base, /\/\.local\/share\/containers\/sigstore$/);
  });

  it('a scope defined in two files, or malformed YAML, is an error naming the files', async () => {
    const d = path.join(dir, 'b');
    mkdirSync(d);
    writeFileSync(path.join(d, 'x.yaml'), 'docker:\n  registry.example:\n    lookaside: file:///a\n');
    writeFileSync(path.join(d, 'y.yaml'), 'docker:\n  registry.example:\n    lookaside: file:///b\n');
    setRegistriesDir(d);
    await assert.rejects(lookasideBase(ref('registry.example/app:1'), false), /"docker" scope registry\.example is defined both in .*x\.yaml and .*y\.yaml/);
    const e = path.join(dir, 'c');
    mkdirSync(e);
    writeFileSync(path.join(e, 'bad.yaml'), 'docker: [unclosed\n');
    setRegistriesDir(e);
    await assert.rejects(lookasideBase(ref('registry.example/app:1'), false), /registries\.d: parsing .*bad\.yaml/);
  });
});
