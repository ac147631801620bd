/**
 * Git build contexts (`skiff build git://…#REF:DIR`), against a real `git daemon` on 127.0.0.1 serving a repository
 * made here, and buildah 1.28 building the same URLs: the flattened filesystems must match.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../kit/registry.js';
import { ok, run, skiff, tempDir, unmountUnder } from '../kit/run.js';
import { flatRef, type Flat } from '../kit/validate.js';

describe('build from a git repository (git daemon on loopback), against buildah', () => {
  const t = tempDir('skiff-git-');
  let daemon: ChildProcess;
  let base = '';
  const git = (args: string[], cwd: string) => ok(run('git', ['-c', 'user.name=skiff', '-c', 'user.email=skiff@skiff.invalid', ...args], { cwd }));
  const g = ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`];
  const bflags = ['--root', `${t.dir}/broot`, '--runroot', `${t.dir}/brun`, '--storage-driver', 'vfs'];
  /** The image's files, without .git (whose packs and index differ from one clone to the next). */
  const files = async (ref: string): Promise<Flat> => new Map([...(await flatRef(ref))].filter(([p]) => !/(^|\/)\.git(\/|$)/.test(p)));
  const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

  before(async () => {
    const work = path.join(t.dir, 'work');
    await fsp.mkdir(path.join(work, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(work, 'Containerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nLABEL from=main\n');
    await fsp.writeFile(path.join(work, 'hello.txt'), 'hello from main\n');
    await fsp.writeFile(path.join(work, 'sub', 'Containerfile'), 'FROM scratch\nCOPY . /sub/\n');
    await fsp.writeFile(path.join(work, 'sub', 'inner.txt'), 'inner\n');
    await git(['init', '-q', '-b', 'main'], work);
    await git(['add', '.'], work);
    await git(['commit', '-q', '-m', 'main'], work);
    await git(['checkout', '-q', '-b', 'other'], work);
    await fsp.writeFile(path.join(work, 'sub', 'inner.txt'), 'inner, on other\n');
    await git(['commit', '-q', '-am', 'other'], work);
    await git(['checkout', '-q', 'main'], work);
    await fsp.mkdir(path.join(t.dir, 'srv'));
    await git(['clone', '-q', '--bare', work, path.join(t.dir, 'srv', 'repo.git')], t.dir);
    const port = await freePort();
    daemon = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${t.dir}/srv`, '--listen=127.0.0.1', `--port=${port}`, `${t.dir}/srv`], { stdio: 'ignore' });
    base = `git://127.0.0.1:${port}/repo.git`;
    for (let i = 0; i < 100; i++) {
      if ((await run('git', ['ls-remote', base])).code === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('git daemon did not start');
  });
  after(() => {
    daemon?.kill();
    unmountUnder(t.dir);
    t.cleanup();
  });

  it('the default branch, a branch with a directory in it: the same files as buildah builds from the same URLs', async () => {
    for (const [i, url] of [base, `${base}#other:sub`].entries()) {
      await ok(skiff([...g, 'build', '-q', '-t', `localhost/git${i}:1`, url]));
      await ok(run('buildah', [...bflags, 'bud', '-q', '--isolation', 'chroot', '-t', `localhost/git${i}:1`, url]));
      const mine = await files(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/git${i}:1`);
      // (skiff's store is overlay only: buildah's vfs store is read through skopeo.)
      await ok(run('skopeo', ['copy', '-q', `containers-storage:[vfs@${t.dir}/broot+${t.dir}/brun]localhost/git${i}:1`, `dir:${t.dir}/theirs${i}`]));
      const theirs = await files(`dir:${t.dir}/theirs${i}`);
      assert.deepEqual(mine, theirs, url);
    }
    const main = await files(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/git0:1`);
    assert.match(main.get('hello.txt') ?? '', new RegExp(hash('hello from main\n')), [...main.keys()].join(' '));
    const other = await files(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/git1:1`);
    assert.match(other.get('sub/inner.txt') ?? '', new RegExp(hash('inner, on other\n')), [...other.keys()].join(' '));
    assert.equal(other.get('hello.txt'), undefined);
  });

  it('refused with a clear error: a missing repository, a missing branch, a directory outside the checkout, a Containerfile given as a repository', async () => {
    for (const [url, re] of [
      [`git://127.0.0.1:1/none.git`, /git clone failed/],
      [`${base}#nope`, /git clone failed/],
      [`${base}#main:../..`, /escapes|outside|refused/],
      [`${base}#main:hello.txt`, /not a directory in the repository/],
    ] as const) {
      const r = await skiff([...g, 'build', '-q', '-t', 'localhost/bad:1', url]);
      assert.notEqual(r.code, 0, url);
      assert.match(r.stderr, re, `${url}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), r.stderr);
    }
    // A token in the URL is not repeated in the error.
    const secret = await skiff([...g, 'build', '-q', 'http://user:s3cr3t-token@127.0.0.1:1/private.git']);
    assert.notEqual(secret.code, 0);
    assert.match(secret.stderr, /http:\/\/\*\*\*@127\.0\.0\.1:1\/private\.git: git clone failed/);
    assert.doesNotMatch(secret.stderr, /s3cr3t/);
    const f = await skiff([...g, 'build', '-q', '-f', base, t.dir]);
    assert.notEqual(f.code, 0);
    assert.match(f.stderr, /a Containerfile is a file, not a git repository/);
  });
});
