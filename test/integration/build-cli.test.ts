/** `skiff build` today: flags parsed, the file validated before anything else, --dry-run prints the plan. */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ok, run, skiff, SKIFF, tempDir, unmountUnder } from '../kit/run.js';

describe('skiff build (front end)', () => {
  let t: ReturnType<typeof tempDir>;
  before(async () => {
    t = tempDir();
    await fsp.writeFile(path.join(t.dir, 'Containerfile'), 'ARG BASE=busybox\nFROM $BASE AS build\nARG V=1\nENV OUT=/out/$V\nWORKDIR $OUT\nCOPY . .\nFROM scratch\nCOPY --from=build /out /out\n');
    await fsp.writeFile(path.join(t.dir, '.dockerignore'), 'ignored\n');
    await fsp.writeFile(path.join(t.dir, '.containerignore'), 'node_modules\n');
    await fsp.writeFile(path.join(t.dir, 'args.env'), '# comment\nV=from-file\n');
    await fsp.writeFile(path.join(t.dir, 'Bad'), 'FROM a\nCOPY one\nHEALTHCHECK --interval=soon CMD x\n');
  });
  after(async () => {
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('--dry-run prints the resolved plan as JSON on stdout', async () => {
    const r = await skiff(['build', '--dry-run', '--build-arg-file', path.join(t.dir, 'args.env'), '--build-arg', 'BASE=alpine', '-t', 'x:1', t.dir]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout);
    assert.equal(plan.stages[0].from.image, 'alpine');
    assert.deepEqual(plan.stages[0].steps.find((s: { kind: string }) => s.kind === 'WORKDIR').dir, '/out/from-file');
    assert.deepEqual(plan.order, [[0], [1]]);
    assert.equal(plan.ignorefile, path.join(t.dir, '.containerignore'), '.containerignore wins over .dockerignore');
    assert.deepEqual(plan.tags, ['x:1']);
  });

  it('--build-arg overrides --build-arg-file; unused build args are warned about', async () => {
    const r = await skiff(['build', '--dry-run', '--build-arg-file', path.join(t.dir, 'args.env'), '--build-arg', 'V=cli', '--build-arg', 'NOPE=1', t.dir]);
    assert.equal(JSON.parse(r.stdout).stages[0].steps.find((s: { kind: string }) => s.kind === 'WORKDIR').dir, '/out/cli');
    assert.match(r.stderr, /build argument NOPE was not consumed/);
  });

  it('a build killed mid-RUN leaves no image; the next build removes its container, mount, work dir and layer staging dir', async () => {
    const ctx = path.join(t.dir, 'killed-ctx');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM localhost/bb\nRUN echo started && sleep 60\n');
    const g = ['--root', `${t.dir}/kroot`, '--runroot', `${t.dir}/krun`];
    const { makeBusyboxLayout } = await import('../kit/fixtures.js');
    await makeBusyboxLayout(`${t.dir}/kbase`);
    assert.equal((await skiff([...g, 'copy', '-q', `oci:${t.dir}/kbase:busybox`, 'containers-storage:localhost/bb:latest'])).code, 0);
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [SKIFF, ...g, 'build', '-t', 'localhost/killed:1', ctx], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    // (The STEP line contains the word too: wait for the RUN's own output line.)
    for (let i = 0; i < 200 && !/^started$/m.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /^started$/m);
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const mountsUnder = async () => (await fsp.readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(`${t.dir}/kroot/tmp/`)).length;
    assert.ok((await mountsUnder()) > 0, 'the killed build left its overlay mounted (root keeps mounts)');
    const stages = async () => (await fsp.readdir(`${t.dir}/kroot/overlay`)).filter((n) => n.startsWith(`.skiff-stage-${child.pid}-`));
    assert.equal((await stages()).length, 1, 'the killed build left its layer staging dir');
    // A failing RUN stops the build, naming the step, its line and its exit status; its output was streamed (to
    // stderr: stdout carries only the image ID).
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM localhost/bb\nRUN echo about to fail && exit 3\nRUN echo never\n');
    const failed = await skiff([...g, 'build', '-t', 'localhost/failed:1', ctx]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /about to fail/);
    assert.equal(failed.stdout, '');
    assert.match(failed.stderr, /RUN echo about to fail && exit 3 \(line 2\): exit status 3/);
    assert.doesNotMatch(failed.stdout + failed.stderr, /never/);
    // The next build (here FROM scratch, quick) sweeps what the dead one left.
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY Containerfile /\n');
    const again = await skiff([...g, 'build', '-q', '-t', 'localhost/after:1', ctx]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await mountsUnder(), 0, 'mounts swept');
    assert.deepEqual((await fsp.readdir(`${t.dir}/kroot/tmp`)).filter((n) => n.startsWith('build-')), []);
    assert.deepEqual(await stages(), [], 'staging dir swept');
    assert.deepEqual((await fsp.readdir(`${t.dir}/kroot/overlay`)).filter((n) => n.startsWith('.skiff-stage-')), [], 'and the finished builds removed theirs');
    const runc = (await run('runc', ['list', '-q'])).stdout;
    assert.doesNotMatch(runc, new RegExp(`skiff-${child.pid}-`));
    const images = JSON.parse(await fsp.readFile(`${t.dir}/kroot/overlay-images/images.json`, 'utf8')) as { names?: string[] }[];
    assert.ok(!images.some((i) => i.names?.includes('localhost/killed:1')), 'no image under the target name');
  });

  it('the layer cache: an unchanged rebuild copies and runs nothing; a changed file misses from its COPY on; --no-cache', async () => {
    const ctx = path.join(t.dir, 'cache-ctx');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch AS base\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n');
    await fsp.writeFile(path.join(ctx, 'a.txt'), 'a\n');
    await fsp.writeFile(path.join(ctx, 'b.txt'), 'b\n');
    const g = ['--root', `${t.dir}/croot`, '--runroot', `${t.dir}/crun`];
    const first = await skiff([...g, 'build', '-t', 'localhost/c:1', ctx]);
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /Using cache/);
    await new Promise((r) => setTimeout(r, 1100)); // a later second: the rebuild must still be the same image
    const second = await skiff([...g, 'build', '-t', 'localhost/c:2', ctx]);
    assert.equal((second.stderr.match(/Using cache/g) ?? []).length, 2);
    assert.equal(second.stdout, first.stdout, 'same image');
    await fsp.writeFile(path.join(ctx, 'b.txt'), 'changed\n');
    const third = await skiff([...g, 'build', '-t', 'localhost/c:3', ctx]);
    assert.equal((third.stderr.match(/Using cache/g) ?? []).length, 1, 'a.txt cached, b.txt rebuilt');
    assert.notEqual(third.stdout, first.stdout);
    const none = await skiff([...g, 'build', '--no-cache', '-t', 'localhost/c:4', ctx]);
    assert.doesNotMatch(none.stderr, /Using cache/);
  });

  it('the context stat cache: files unchanged since the last build are not read again, any file named anything; a same-size change is still seen', async () => {
    const ctx = path.join(t.dir, 'stat-ctx');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY a.txt __proto__ constructor /d/\n');
    for (const n of ['a.txt', '__proto__', 'constructor']) await fsp.writeFile(path.join(ctx, n), `${n}\n`);
    const g = ['--root', `${t.dir}/sroot`, '--runroot', `${t.dir}/srun`];
    // Files changed in the last two seconds are never remembered (they could change again within a timestamp).
    await new Promise((r) => setTimeout(r, 2100));
    const first = await skiff([...g, 'build', '-t', 'localhost/s:1', ctx]);
    assert.equal(first.code, 0, first.stderr);
    const [cacheFile] = await fsp.readdir(`${t.dir}/sroot/skiff-cache/context`);
    const cachePath = `${t.dir}/sroot/skiff-cache/context/${cacheFile}`;
    const remembered = JSON.parse(await fsp.readFile(cachePath, 'utf8')) as { rels: string[]; digests: string[] };
    assert.deepEqual(remembered.rels, ['a.txt', '__proto__', 'constructor'], 'in the order the build visited them');
    assert.equal(remembered.digests.length, 3);
    const savedAt = (await fsp.stat(cachePath)).mtimeMs;
    const second = await skiff([...g, 'build', '-t', 'localhost/s:2', ctx]);
    assert.match(second.stderr, /Using cache/);
    assert.equal(second.stdout, first.stdout);
    assert.equal((await fsp.stat(cachePath)).mtimeMs, savedAt, 'nothing changed: the stat cache is not rewritten');
    // Visited in another order (the sources reordered): entries are still found, and the new order is saved.
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY constructor a.txt __proto__ /d/\n');
    const reordered = await skiff([...g, 'build', '-t', 'localhost/s:2b', ctx]);
    assert.equal(reordered.code, 0, reordered.stderr);
    assert.deepEqual((JSON.parse(await fsp.readFile(cachePath, 'utf8')) as { rels: string[] }).rels, ['constructor', 'a.txt', '__proto__']);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY a.txt __proto__ constructor /d/\n');
    // Same size, new content: the ctime moved, so the file is read again and the step misses.
    await fsp.writeFile(path.join(ctx, '__proto__'), 'x'.repeat('__proto__\n'.length));
    const third = await skiff([...g, 'build', '-t', 'localhost/s:3', ctx]);
    assert.doesNotMatch(third.stderr, /Using cache/);
    assert.notEqual(third.stdout, first.stdout);
  });

  it('-f - reads the Containerfile from standard input (as buildah): the same image as from a file; errors name it -', async () => {
    const ctx = path.join(t.dir, 'stdin-ctx');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'a.txt'), 'a\n');
    const cf = 'FROM scratch\nCOPY a.txt /\nCMD ["/a"]\n';
    await fsp.writeFile(path.join(t.dir, 'stdin.Containerfile'), cf);
    const g = `--root ${t.dir}/stdinroot --runroot ${t.dir}/stdinrun`;
    const fromFile = await run('sh', ['-c', `${process.execPath} ${SKIFF} ${g} build -q --timestamp 0 -f ${t.dir}/stdin.Containerfile -t localhost/f:1 ${ctx}`]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    const fromStdin = await run('sh', ['-c', `${process.execPath} ${SKIFF} ${g} build -q --timestamp 0 -f - -t localhost/s:1 ${ctx} < ${t.dir}/stdin.Containerfile`]);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, fromFile.stdout);
    const bad = await run('sh', ['-c', `printf 'FROM scratch\\nCOPY\\n' | ${process.execPath} ${SKIFF} ${g} build -q -f - ${ctx}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^skiff: -:2: COPY requires at least two arguments/);
  });

  it('every error names the file and line; nothing on stdout; exit 1', async () => {
    const bad = path.join(t.dir, 'Bad');
    const r = await skiff(['build', '--dry-run', '-f', bad, t.dir]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`${bad}:2: COPY requires at least two arguments`));
    assert.match(r.stderr, new RegExp(`${bad}:3: HEALTHCHECK --interval: invalid duration "soon"`));
  });

  it('a step that fails at build time (a COPY source missing from the context) names the file and line', async () => {
    const ctx = path.join(t.dir, 'missing-src');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nLABEL a=b\nCOPY nothere /x\n');
    const r = await skiff(['--root', path.join(t.dir, 'mroot'), '--runroot', path.join(t.dir, 'mrun'), 'build', '-q', '-t', 'localhost/m:1', ctx]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^skiff: ${path.join(ctx, 'Containerfile')}:3: COPY nothere: no such file or directory in the build context$`, 'm'));
  });

  it('--os/--arch/--variant make the target platform as --platform would (the host\'s for parts not given); not both', async () => {
    const ctx = path.join(t.dir, 'plat');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nARG TARGETPLATFORM\nARG TARGETARCH\nARG TARGETVARIANT\nLABEL p=$TARGETPLATFORM a=$TARGETARCH v=$TARGETVARIANT\n');
    const labels = async (flags: string[]): Promise<unknown> => JSON.parse(await ok(skiff(['build', '--dry-run', ...flags, ctx]))).stages[0].steps.at(-1).labels;
    assert.deepEqual(await labels(['--arch', 'arm64', '--variant', 'v8']), await labels(['--platform', 'linux/arm64/v8']));
    assert.deepEqual(await labels(['--os', 'linux', '--arch', 's390x']), [['p', 'linux/s390x'], ['a', 's390x'], ['v', '']]);
    const both = await skiff(['build', '--dry-run', '--platform', 'linux/amd64', '--arch', 'arm64', ctx]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /--platform and --os\/--arch\/--variant cannot be used together/);
  });

  it('--from replaces the image of the first FROM only, its stage name kept, as buildah does', async () => {
    const ctx = path.join(t.dir, 'from-override');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM nonexistent/thing:1 AS base\nLABEL a=b\nFROM base\nFROM other/image:2\n');
    const plan = JSON.parse(await ok(skiff(['build', '--dry-run', '--from', 'scratch', ctx])));
    assert.deepEqual(plan.stages.map((s: { from: unknown; name?: string }) => [s.from, s.name]), [[{ image: 'scratch' }, 'base'], [{ image: 'base', stage: 0 }, undefined], [{ image: 'other/image:2' }, undefined]]);
  });

  it('a missing -f file, a missing --target, a missing context are errors naming them', async () => {
    const f = await skiff(['build', '-f', path.join(t.dir, 'nope'), t.dir]);
    assert.match(f.stderr, /nope: no such Containerfile/);
    const tg = await skiff(['build', '--dry-run', '--target', 'deploy', t.dir]);
    assert.match(tg.stderr, /--target deploy: no stage of that name \(stages: build\)/);
    const c = await skiff(['build', '--dry-run', path.join(t.dir, 'no-such-dir')]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /no-such-dir/);
  });

  it('without --dry-run it builds into the store: FROM scratch + COPY, image ID on stdout, STEP lines on stderr', async () => {
    const ctx = path.join(t.dir, 'scratch-ctx');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY hello.txt /\nCMD ["/hello"]\n');
    await fsp.writeFile(path.join(ctx, 'hello.txt'), 'hi\n');
    const r = await skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'build', '--timings', '-t', 'localhost/scratchy:1', '--iidfile', `${t.dir}/iid`, ctx]);
    assert.match(r.stderr, /^\[timings\] STEP 2\/3: \d+\.\d{3}s$/m);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[0-9a-f]{64}\n$/);
    assert.match(r.stderr.replace(/^\[timings\].*\n/gm, ''), /STEP 1\/3: FROM scratch\nSTEP 2\/3: COPY hello.txt \/\nSTEP 3\/3: CMD/);
    assert.equal(await fsp.readFile(`${t.dir}/iid`, 'utf8'), `sha256:${r.stdout.trim()}`);
    // Docker applies SHELL to shell-form CMD and ENTRYPOINT (buildah 1.28 does not); an ENTRYPOINT resets an inherited CMD.
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch AS base\nCMD ["base"]\nFROM base\nSHELL ["/bin/bash", "-ec"]\nENTRYPOINT run me\n');
    const two = await skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'build', '-q', '-t', 'localhost/shell:1', ctx]);
    assert.equal(two.code, 0, two.stderr);
    const cfg = JSON.parse((await skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'inspect', '--config', '--raw', 'containers-storage:localhost/shell:1'])).stdout);
    assert.deepEqual(cfg.config.Entrypoint, ['/bin/bash', '-ec', 'run me']);
    assert.equal(cfg.config.Cmd, null);
    const missing = await skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'build', '--pull=never', t.dir]);
    assert.equal(missing.code, 2, 'FROM busybox with --pull=never and an empty store');
  });
});
