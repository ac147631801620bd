import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { constants, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { lstatFast, lstatFastUsesBinding, viaStats } from '../../src/core/lstat-fast.js';

const { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } = constants;

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-lstat-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('lstatFast', () => {
  it('takes the fast path on this Node (the build cache walk relies on it for speed)', () => {
    assert.equal(lstatFastUsesBinding(), true);
  });

  it('prints no deprecation warning where Node would print one for process.binding (--pending-deprecation)', () => {
    const mod = new URL('../../src/core/lstat-fast.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--pending-deprecation', '--input-type=module', '-e', `import { lstatFast, lstatFastUsesBinding } from ${JSON.stringify(mod)}; console.log(lstatFastUsesBinding(), typeof lstatFast('/').mode);`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'true number');
    assert.equal(r.stderr, '');
    // (Without the silencing, Node does warn there: the test above would see it.)
    assert.match(spawnSync(process.execPath, ['--pending-deprecation', '-e', "process.binding('fs')"], { encoding: 'utf8' }).stderr, /DEP0111/);
  });

  it('gives what lstatSync gives for files, directories, symlinks (not followed) and missing paths', () => {
    writeFileSync(path.join(dir, 'f'), 'hello');
    mkdirSync(path.join(dir, 'd'));
    symlinkSync('f', path.join(dir, 'l'));
    symlinkSync('/nonexistent', path.join(dir, 'dangling'));
    const paths = ['f', 'd', 'l', 'dangling', 'missing', ''].map((p) => path.join(dir, p));
    for (const p of paths) assert.deepEqual(lstatFast(p), viaStats(p), p);
    assert.equal(lstatFast(path.join(dir, 'f'))!.mode & S_IFMT, S_IFREG);
    assert.equal(lstatFast(path.join(dir, 'f'))!.size, 5);
    assert.equal(lstatFast(path.join(dir, 'd'))!.mode & S_IFMT, S_IFDIR);
    assert.equal(lstatFast(path.join(dir, 'l'))!.mode & S_IFMT, S_IFLNK);
    assert.equal(lstatFast(path.join(dir, 'missing')), undefined);
  });

  it('returns separate results (the binding reuses one array: nothing read later may change an earlier answer)', () => {
    writeFileSync(path.join(dir, 'small'), 'x');
    writeFileSync(path.join(dir, 'big'), Buffer.alloc(10000));
    const a = lstatFast(path.join(dir, 'small'))!;
    const b = lstatFast(path.join(dir, 'big'))!;
    assert.equal(a.size, 1);
    assert.equal(b.size, 10000);
  });

  it('throws what lstatSync throws for errors other than a missing path (ENOTDIR)', () => {
    const p = path.join(dir, 'f', 'below');
    assert.throws(() => lstatFast(p), (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR');
  });
});
