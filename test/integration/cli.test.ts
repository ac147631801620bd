/** The CLI as users meet it: exit statuses, one-line errors on stderr, data on stdout, and interrupted copies. */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeLayout, pseudoRandom, sampleSpec } from '../kit/image.js';
import { SKIFF, skiff, tempDir } from '../kit/run.js';
import { validateImage, withRef } from '../kit/validate.js';

const validateRef = (ref: string) => withRef(ref, (s) => validateImage(s));


describe('skiff CLI', () => {
  let t: ReturnType<typeof tempDir>;
  let lay: string;
  let digest: string;
  before(async () => {
    t = tempDir();
    lay = path.join(t.dir, 'lay');
    digest = await makeLayout(lay, 'img', sampleSpec(7));
  });
  after(() => t.cleanup());

  it('memory does not grow with the image: a 384 MiB layer copied (gzip -> docker-archive, and re-compressed to zstd) peaks well under 100 MiB', async () => {
    const { makeImage } = await import('../bench/bench.js');
    const big = path.join(t.dir, 'big');
    await makeImage(big, [[['huge', 384 << 20]]]);
    for (const [args, dest] of [[[], `docker-archive:${t.dir}/big.tar`], [['--dest-compress-format', 'zstd'], `oci:${t.dir}/big-zstd:x`]] as const) {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, SKIFF, 'copy', '-q', ...args, `oci:${big}:bench`, dest], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const kib = Number(r.stderr.trim().split('\n').pop());
      // (The bench measures 61-64 MiB and 83-85 MiB with a 1 GiB layer: the limit leaves room, not a trend.)
      assert.ok(kib > 0 && kib < 100 * 1024, `${dest}: peak RSS ${Math.round(kib / 1024)} MiB`);
    }
  });

  it('every command answers --help (catches option clashes at start-up)', async () => {
    for (const c of ['copy', 'inspect', 'list-tags', 'delete', 'login', 'logout', 'sync', 'build', 'images', 'manifest-digest']) {
      const r = await skiff([c, '--help']);
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: skiff ${c}`));
    }
  });

  it('--version and --help', async () => {
    assert.match((await skiff(['--version'])).stdout, /^skiff version \d+\.\d+\.\d+/);
    const h = await skiff(['--help']);
    assert.equal(h.code, 0);
    for (const c of ['copy', 'inspect', 'manifest-digest']) assert.match(h.stdout, new RegExp(`\\b${c}\\b`));
  });

  it('a usage error is one skiff: line and a pointer to the command\'s help, not the whole help; nothing on stdout', async () => {
    for (const [args, line, help] of [
      [['copy'], "skiff: missing required argument 'source'", "(run 'skiff copy --help' for usage)"],
      [['inspect', '--nosuch', 'x'], "skiff: unknown option '--nosuch'", "(run 'skiff inspect --help' for usage)"],
      [['nosuch'], "skiff: unknown command 'nosuch'", "(run 'skiff --help' for usage)"],
    ] as const) {
      const r = await skiff([...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `${line}\n${help}\n`);
    }
  });

  it('--username, --password and --creds combine as skopeo allows, with skopeo\'s words when they do not', async () => {
    for (const [args, msg] of [
      [['inspect', '--username', 'u', 'docker://127.0.0.1:9/x/y'], '--password must be specified when --username is specified'],
      [['inspect', '--password', 'p', 'docker://127.0.0.1:9/x/y'], '--username must be specified when --password is specified'],
      [['inspect', '--username', 'u', '--password', 'p', '--creds', 'u:p', 'docker://127.0.0.1:9/x/y'], '--creds and --username cannot be specified at the same time'],
      [['copy', '--src-username', 'u', '--src-password', 'p', '--src-no-creds', 'docker://127.0.0.1:9/x/y', 'oci:/tmp/never:x'], '--src-creds and --src-no-creds cannot be specified at the same time'],
    ] as const) {
      const r = await skiff([...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr, `skiff: ${msg}\n`);
    }
  });

  const failures: [string, string[], number, RegExp][] = [
    ['a tag that does not exist', ['inspect', 'oci:LAY:nope'], 2, /no image named "nope"/],
    ['a path that does not exist', ['inspect', 'oci:/nonexistent/x:y'], 2, /no OCI layout/],
    ['a missing archive', ['copy', 'docker-archive:/nonexistent.tar', 'dir:OUT/x'], 2, /no such file/],
    ['an unknown transport', ['inspect', 'ftp://x/y'], 1, /unknown transport "ftp"/],
    ['a reference without a transport', ['inspect', 'busybox'], 1, /expected TRANSPORT:SPEC/],
    ['an invalid docker reference', ['copy', 'oci:LAY:img', 'docker-archive:OUT/a.tar:Upper/Case'], 1, /lowercase/],
    ['a missing manifest file', ['manifest-digest', '/nonexistent.json'], 2, /nonexistent/],
  ];
  for (const [what, args, code, re] of failures) {
    it(`${what}: exit ${code}, one clear line on stderr, nothing on stdout`, async () => {
      const r = await skiff(args.map((a) => a.replace('LAY', lay).replace('OUT', t.dir)));
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, /^skiff: /);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '');
    });
  }

  it('a corrupted blob: the error names both ends and the blob; --debug adds the cause chain', async () => {
    const bad = path.join(t.dir, 'bad');
    await makeLayout(bad, 'img', sampleSpec(8));
    const idx = JSON.parse(await fsp.readFile(path.join(bad, 'index.json'), 'utf8'));
    const m = JSON.parse(await fsp.readFile(path.join(bad, 'blobs/sha256', idx.manifests[0].digest.slice(7)), 'utf8'));
    const blob = path.join(bad, 'blobs/sha256', m.layers[0].digest.slice(7));
    const b = await fsp.readFile(blob);
    b[100] = (b[100] ?? 0) ^ 1;
    await fsp.writeFile(blob, b);
    const r = await skiff(['copy', '-q', `oci:${bad}:img`, `dir:${t.dir}/corrupt-out`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^skiff: copying oci:${bad}:img to dir:${t.dir}/corrupt-out: .*blob sha256:${m.layers[0].digest.slice(7)}.*digest mismatch`));
    await assert.rejects(fsp.stat(`${t.dir}/corrupt-out`));
    const dbg = await skiff(['--debug', 'copy', '-q', `oci:${bad}:img`, `dir:${t.dir}/corrupt-out`]);
    assert.match(dbg.stderr, /SkiffError \[ERR_DIGEST_MISMATCH\]/);
  });

  it('malformed manifest JSON is a clear error', async () => {
    const mal = path.join(t.dir, 'mal');
    await fsp.mkdir(mal);
    await fsp.writeFile(path.join(mal, 'manifest.json'), '{"schemaVersion": 2, "config": ');
    await fsp.writeFile(path.join(mal, 'version'), 'Directory Transport Version: 1.1\n');
    const r = await skiff(['copy', `dir:${mal}`, `oci:${t.dir}/mal-out:x`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /malformed manifest JSON/);
  });

  it('inspect --raw prints the stored bytes; manifest-digest agrees with the copy digest', async () => {
    const raw = (await skiff(['inspect', '--raw', `oci:${lay}:img`])).stdout;
    await fsp.writeFile(path.join(t.dir, 'm.json'), raw);
    assert.equal((await skiff(['manifest-digest', path.join(t.dir, 'm.json')])).stdout, `${digest}\n`);
  });

  it('progress goes to stderr as plain lines when not a TTY; stdout stays clean', async () => {
    const r = await skiff(['copy', `oci:${lay}:img`, `oci:${t.dir}/progress:x`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /Copying blob [0-9a-f]{12} .*\n/);
    // The config's lines say config, its last one too (it said "Copying blob … done").
    const config = /Copying config ([0-9a-f]{12}) \(/.exec(r.stderr)?.[1];
    assert.ok(config, r.stderr);
    assert.match(r.stderr, new RegExp(`Copying config ${config} done\n`));
    assert.doesNotMatch(r.stderr, new RegExp(`Copying blob ${config}`));
    assert.match(r.stderr, /Writing manifest sha256:/);
    assert.doesNotMatch(r.stderr, /\x1b\[/);
  });

  it('Ctrl-C (SIGINT) mid-copy: exit 130, "interrupted", and nothing at all left behind', async () => {
    const big = path.join(t.dir, 'big-int');
    await makeLayout(big, 'img', { layers: [{ files: [{ path: 'f', content: pseudoRandom(32 << 20, 42) }] }] });
    const child = spawn(process.execPath, [SKIFF, 'copy', '-q', '--dest-compress-format', 'zstd', '--dest-compress-level', '19', `oci:${big}:img`, `dir:${t.dir}/interrupted`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    for (let i = 0; i < 400 && !(await fsp.readdir(t.dir)).some((n) => n.startsWith('.interrupted.skiff-')); i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 200));
    const code = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    child.kill('SIGINT');
    assert.equal(await code, 130, stderr);
    assert.match(stderr, /interrupted/);
    assert.deepEqual((await fsp.readdir(t.dir)).filter((n) => n.includes('interrupted')), []);
  });

  it('a copy killed mid-way leaves the destination unchanged; a rerun completes and sweeps the debris', async () => {
    const big = path.join(t.dir, 'big');
    await makeLayout(big, 'img', { layers: [0, 1, 2].map((i) => ({ files: [{ path: `f${i}`, content: pseudoRandom(24 << 20, i) }] })) });
    for (const dest of [`dir:${t.dir}/killed-dir`, `docker-archive:${t.dir}/killed.tar`, `oci-archive:${t.dir}/killed-oa.tar`, `oci:${t.dir}/killed-oci:x`]) {
      const target = dest.slice(dest.indexOf(':') + 1).replace(/:x$/, '');
      const child = spawn(process.execPath, [SKIFF, 'copy', '-q', '--image-parallel-copies', '1', '--dest-compress-format', 'zstd', '--dest-compress-level', '19', `oci:${big}:img`, dest], { stdio: 'ignore' });
      // Wait until the copy has started writing (a temp sibling appears), then kill it hard at once. (It once waited
      // 150 ms more, for more to be written: the docker-archive copy, which decompresses rather than compresses,
      // then finished first once copies got faster.)
      // (oci-archive stages a layout, which writes beside itself: `..name.skiff-…`, matched too.)
      const ours = (n: string): boolean => n.startsWith(`.${path.basename(target)}.skiff-`) || n.startsWith(`..${path.basename(target)}.skiff-`);
      let started = false;
      for (let i = 0; i < 2000 && !started; i++) {
        started = (await fsp.readdir(t.dir)).some(ours);
        if (!started) await new Promise((r) => setTimeout(r, 5));
      }
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGKILL');
      await exited;
      assert.ok(started, `${dest}: the copy started writing before it was killed`);
      assert.ok((await fsp.readdir(t.dir)).some(ours), `${dest}: killed mid-way, its temp sibling left behind`);
      await assert.rejects(fsp.stat(target), `${dest} must not exist after the kill`);
      const r = await skiff(['copy', '-q', `oci:${big}:img`, dest]);
      assert.equal(r.code, 0, r.stderr);
      await validateRef(dest);
      assert.deepEqual((await fsp.readdir(t.dir)).filter(ours), [], 'stale temporaries swept');
    }
  });
});
