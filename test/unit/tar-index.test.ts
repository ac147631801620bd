import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TarTree } from '../../src/archive/tar-index.js';
import { safeRelativePath } from '../../src/archive/file-tree.js';
import { readAll } from '../../src/core/fs.js';
import { SkiffError } from '../../src/core/errors.js';
import { tarOf } from '../kit/image.js';
import { tempDir } from '../kit/run.js';

const codeOf = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => (e instanceof SkiffError ? e.code : String(e)));

describe('tar archives read in place', () => {
  let t: ReturnType<typeof tempDir>;
  before(() => (t = tempDir()));
  after(() => t.cleanup());

  it('indexes members and reads them by offset, following in-archive links', async () => {
    const long = `${'d'.repeat(120)}/file`;
    const f = path.join(t.dir, 'ok.tar');
    await fsp.writeFile(f, await tarOf([
      { path: 'a.txt', content: 'alpha' },
      { path: long, content: 'long name via PAX' },
      { path: 'sub/', type: 'dir' },
      { path: 'sub/link', type: 'symlink', target: '../a.txt' },
    ]));
    const tree = await TarTree.open(f);
    assert.equal((await readAll(await tree.open('a.txt'))).toString(), 'alpha');
    assert.equal((await readAll(await tree.open(long))).toString(), 'long name via PAX');
    assert.equal((await readAll(await tree.open('sub/link'))).toString(), 'alpha');
    assert.equal(await tree.size('missing'), undefined);
  });

  it('refuses members with .. or absolute paths', async () => {
    for (const name of ['../evil', 'a/../../evil', '/etc/passwd']) {
      const f = path.join(t.dir, 'hostile.tar');
      const buf = await tarOf([{ path: 'placeholder-name-xx', content: 'x' }]);
      // tar-stream normalises names, so patch the header by hand: name field, then checksum.
      buf.fill(0, 0, 100);
      buf.write(name, 0, 'utf8');
      buf.fill(0x20, 148, 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += buf[i]!;
      buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      await fsp.writeFile(f, buf);
      assert.equal(await codeOf(TarTree.open(f)), 'ERR_UNSAFE_PATH', name);
    }
  });

  it('refuses links that escape the archive', async () => {
    const f = path.join(t.dir, 'escape.tar');
    await fsp.writeFile(f, await tarOf([{ path: 'x', type: 'symlink', target: '../../etc/passwd' }]));
    const tree = await TarTree.open(f);
    assert.equal(await codeOf(tree.open('x')), 'ERR_UNSAFE_PATH');
  });

  it('reports truncation and garbage clearly', async () => {
    const whole = await tarOf([{ path: 'big', content: Buffer.alloc(5000, 7) }]);
    const f = path.join(t.dir, 'trunc.tar');
    await fsp.writeFile(f, whole.subarray(0, 3000));
    assert.equal(await codeOf(TarTree.open(f)), 'ERR_TRUNCATED');
    await fsp.writeFile(f, Buffer.alloc(1024, 0x41));
    assert.equal(await codeOf(TarTree.open(f)), 'ERR_INVALID_ARCHIVE');
  });

  it('safeRelativePath normalises and refuses escapes', () => {
    assert.equal(safeRelativePath('./a//b/./c', 'x'), 'a/b/c');
    assert.throws(() => safeRelativePath('a/../../b', 'x'), /escapes/);
    assert.throws(() => safeRelativePath('/abs', 'x'), /absolute/);
  });
});
