import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { STORAGE_COMMANDS } from '../../src/store/userns.js';
import { REPO, tempDir } from '../kit/run.js';

/** What bin/skiff.js at `bin` says of its bundle: 'cache accepted', 'cache rejected' or 'no bundle'. */
const bundleState = (bin = path.join(REPO, 'bin')): string =>
  spawnSync(process.execPath, [path.join(bin, 'skiff.js')], { encoding: 'utf8', env: { ...process.env, SKIFF_CODE_CACHE_CHECK: '1' } }).stdout.trim();

describe('CLI bundle (dist/skiff.cjs) and its code cache', () => {
  it('is newer than every module it was bundled from, so the CLI tests run the current code', async () => {
    const bundle = (await fsp.stat(path.join(REPO, 'dist', 'skiff.cjs'))).mtimeMs;
    const stale: string[] = [];
    for (const dir of ['src', 'transports']) {
      for (const e of await fsp.readdir(path.join(REPO, 'dist', dir), { withFileTypes: true, recursive: true })) {
        if (!e.isFile() || !e.name.endsWith('.js')) continue;
        const f = path.join(e.parentPath ?? e.path, e.name);
        if ((await fsp.stat(f)).mtimeMs > bundle) stale.push(path.relative(REPO, f));
      }
    }
    assert.deepEqual(stale, []);
  });

  it('the npm package holds what the installed command runs (launcher, bundle, modules) and no tests', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['bin/skiff', 'bin/skiff.js', 'bin/package.json', 'dist/skiff.cjs', 'dist/src/cli/entry.js', 'dist/index.js', 'dist/index.d.ts', 'dist/transports/index.js', 'package.json', 'README.md']) assert.ok(files.includes(f), `${f} is in the package`);
    assert.deepEqual(files.filter((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('src/') || f.startsWith('.ci/')), []);
  });

  it('has no dynamic import() left: bin/skiff.js runs it as a vm.Script, where import() fails at run time', async () => {
    // (One did: `push --digestfile`, credential helpers and RUN --mount=type=ssh failed with "A dynamic import
    // callback was not specified" from the bundled CLI, and only there.)
    const text = await fsp.readFile(path.join(REPO, 'dist', 'skiff.cjs'), 'latin1');
    assert.deepEqual(text.match(/\bimport\((?!\s*\))[^)]{0,60}\)/g) ?? [], []);
  });

  it('bin/skiff.js runs the bundle, and V8 accepts its code cache (made under the same V8 flags)', () => {
    assert.equal(bundleState(), 'cache accepted');
  });

  it('a bundle older than the compiled modules (tsc run alone) is not used: the modules run instead', async () => {
    const { dir: t, cleanup } = tempDir('skiff-stale-');
    try {
      await fsp.cp(path.join(REPO, 'bin'), path.join(t, 'bin'), { recursive: true });
      await fsp.cp(path.join(REPO, 'dist'), path.join(t, 'dist'), { recursive: true });
      await fsp.copyFile(path.join(REPO, 'package.json'), path.join(t, 'package.json'));
      await fsp.symlink(path.join(REPO, 'node_modules'), path.join(t, 'node_modules'));
      assert.equal(bundleState(path.join(t, 'bin')), 'cache accepted');
      const later = new Date(Date.now() + 5000);
      await fsp.utimes(path.join(t, 'dist', 'src', 'cli', 'entry.js'), later, later);
      assert.equal(bundleState(path.join(t, 'bin')), 'no bundle');
      const r = spawnSync(process.execPath, [path.join(t, 'bin', 'skiff.js'), '--version'], { encoding: 'utf8' });
      assert.match(r.stdout, /^skiff version /);
    } finally {
      cleanup();
    }
  });

  it('the installed command (bin/skiff) runs from its own path and through a symlink, as npm links it', async () => {
    const { dir: t, cleanup } = tempDir('skiff-link-');
    try {
      await fsp.symlink(path.join(REPO, 'bin', 'skiff'), path.join(t, 'skiff'));
      for (const cmd of [path.join(REPO, 'bin', 'skiff'), path.join(t, 'skiff')]) {
        const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', cwd: t });
        assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
        assert.match(r.stdout, /^skiff version /);
      }
    } finally {
      cleanup();
    }
  });

  it('a command that stops before finishing (an operation left waiting on nothing) exits 70 with a message, never 0', async () => {
    const { dir: t, cleanup } = tempDir('skiff-hang-');
    try {
      // Every file open and stat waits forever: nothing keeps the process alive, so Node just ends it.
      const preload = path.join(t, 'hang.cjs');
      await fsp.writeFile(preload, "const f = require('node:fs').promises; f.open = f.stat = f.lstat = () => new Promise(() => {});\n");
      const r = spawnSync(process.execPath, ['-r', preload, path.join(REPO, 'bin', 'skiff.js'), 'inspect', `oci:${t}:x`], { encoding: 'utf8' });
      assert.equal(r.status, 70, r.stderr);
      assert.match(r.stderr, /internal error: the command stopped before it finished/);
      assert.equal(r.stdout, '');
    } finally {
      cleanup();
    }
  });

  it('node:child_process, node:zlib and node:readline load on first use: not for --version, and an image copy that decompresses still works', async () => {
    const { dir: t, cleanup } = tempDir('skiff-lazy-');
    try {
      const preload = path.join(t, 'loaded.cjs');
      await fsp.writeFile(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(path.join(t, 'loaded.json'))}, JSON.stringify(process.moduleLoadList)));\n`);
      const loaded = async (...args: string[]): Promise<string[]> => {
        const r = spawnSync(process.execPath, ['-r', preload, path.join(REPO, 'bin', 'skiff.js'), ...args], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(await fsp.readFile(path.join(t, 'loaded.json'), 'utf8')) as string[];
      };
      const lazy = ['NativeModule child_process', 'NativeModule zlib', 'NativeModule readline'];
      assert.deepEqual((await loaded('--version')).filter((m) => lazy.includes(m)), []);
      // (The preload itself loads none of them; the copy's gunzip needs node:zlib, which then comes.)
      const { makeBusyboxLayout } = await import('../kit/fixtures.js');
      await makeBusyboxLayout(path.join(t, 'bb'));
      const mods = await loaded('copy', '-q', '--dest-decompress', `oci:${path.join(t, 'bb')}:busybox`, `dir:${path.join(t, 'out')}`);
      assert.ok(mods.includes('NativeModule zlib'));
      assert.ok((await fsp.readdir(path.join(t, 'out'))).includes('manifest.json'));
    } finally {
      cleanup();
    }
  });

  it('the command prints its version from package.json through the bundle', async () => {
    const pkg = JSON.parse(await fsp.readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = spawnSync(process.execPath, [path.join(REPO, 'bin', 'skiff.js'), '--version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `skiff version ${pkg.version}`);
  });

  it('the launcher (bin/skiff) enters the user namespace for exactly the commands the CLI counts as storage commands', async () => {
    const launcher = await fsp.readFile(path.join(REPO, 'bin', 'skiff'), 'utf8');
    const pattern = /^\s*\*containers-storage:\*\|([a-z|]+)\)/m.exec(launcher);
    assert.ok(pattern, 'the case pattern of storage commands in bin/skiff');
    assert.deepEqual(pattern[1]!.split('|').sort(), [...STORAGE_COMMANDS].sort());
  });
});
