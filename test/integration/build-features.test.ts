/**
 * Builder features beyond the basics, on a local busybox base: config-only instructions (HEALTHCHECK, ONBUILD
 * with triggers run by a child build, MAINTAINER), --format docker, --label, --annotation, RUN heredocs,
 * RUN --mount (bind, cache, tmpfs, secret), ADD of archives and URLs, COPY wildcards, --exclude, --parents, heredocs.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { tarHeader } from '../../src/archive/tar-append.js';
import { makeMultiPlatformLayout, sampleSpec } from '../kit/image.js';
import { ok, run, skiff, SKIFF, tempDir, unmountUnder } from '../kit/run.js';
import { flatRef, type Flat } from '../kit/validate.js';
import { startRegistry } from '../kit/registry.js';

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');
const content = (flat: Flat, p: string): string | undefined => flat.get(p);
const hasContent = (flat: Flat, p: string, text: string): void => {
  const d = content(flat, p);
  assert.ok(d, `${p} is missing`);
  assert.ok(d.includes(sha(text).slice(0, 16)), `${p}: ${d} is not ${JSON.stringify(text)}`);
};

describe('skiff build features', () => {
  let t: ReturnType<typeof tempDir>;
  let server: Server;
  /** Files the test server serves under /served/NAME. */
  const served = new Map<string, Buffer>();
  let base: string;
  const S = (): string[] => ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`];
  const build = async (name: string, file: string, files: Record<string, string | Buffer> = {}, flags: string[] = []): Promise<{ flat: Flat; config: Record<string, unknown>; manifest: Record<string, unknown>; stderr: string }> => {
    const ctx = path.join(t.dir, `ctx-${name}`);
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), file);
    for (const [f, v] of Object.entries(files)) {
      await fsp.mkdir(path.dirname(path.join(ctx, f)), { recursive: true });
      await fsp.writeFile(path.join(ctx, f), v);
    }
    const r = await skiff([...S(), 'build', ...flags, '-t', `localhost/${name}:1`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^[0-9a-f]{64}\n$/, 'only the image ID on stdout (RUN output goes to stderr)');
    const ref = `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/${name}:1`;
    const config = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', ref]))) as Record<string, unknown>;
    const manifest = JSON.parse(await ok(skiff(['inspect', '--raw', ref]))) as Record<string, unknown>;
    return { flat: await flatRef(ref), config, manifest, stderr: r.stderr };
  };

  before(async () => {
    t = tempDir();
    await makeBusyboxLayout(`${t.dir}/bb`);
    await ok(skiff([...S(), 'copy', '-q', `oci:${t.dir}/bb:busybox`, 'containers-storage:localhost/busybox:latest']));
    base = 'localhost/busybox:latest';
    server = createServer((req, res) => {
      if (req.url === '/dir/..%2F..%2Fescape.txt') {
        res.writeHead(200);
        res.end('named by a hostile URL\n');
      } else if (req.url === '/file.txt') {
        res.writeHead(200, { 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' });
        res.end('remote\n');
      } else if (req.url === '/moved') {
        res.writeHead(302, { location: '/file.txt' });
        res.end();
      } else if (req.url?.startsWith('/served/') && served.has(req.url.slice(8))) {
        res.writeHead(200);
        res.end(served.get(req.url.slice(8)));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    server.close();
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  });

  it('HEALTHCHECK, MAINTAINER, ONBUILD are recorded; a child build runs the triggers and drops them; --format docker, --label', async () => {
    const parent = await build('parent', `FROM ${base}\nMAINTAINER someone\nHEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q localhost\nONBUILD RUN echo triggered > /trig\nONBUILD LABEL from.trigger=yes\n`, {}, ['--format', 'docker', '--label', 'team=infra']);
    const pc = parent.config as { author: string; config: Record<string, unknown> };
    assert.equal(pc.author, 'someone');
    assert.deepEqual(pc.config.Healthcheck, { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 30e9, Timeout: 5e9, Retries: 2 });
    assert.deepEqual(pc.config.OnBuild, ['RUN echo triggered > /trig', 'LABEL from.trigger=yes']);
    assert.equal((pc.config.Labels as Record<string, string>).team, 'infra');
    assert.equal(parent.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal((parent.manifest.config as { mediaType: string }).mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.equal(parent.flat.has('trig'), false, 'triggers do not run in the image that declares them');
    const child = await build('child', 'FROM localhost/parent:1\nHEALTHCHECK NONE\n', {}, ['--annotation', 'org.example.note=hi']);
    hasContent(child.flat, 'trig', 'triggered\n');
    const cc = child.config as { config: Record<string, unknown> };
    assert.equal(cc.config.OnBuild, undefined);
    assert.equal((cc.config.Labels as Record<string, string>)['from.trigger'], 'yes');
    assert.deepEqual(cc.config.Healthcheck, { Test: ['NONE'] });
    assert.equal(child.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(child.manifest.annotations, { 'org.example.note': 'hi' });
  });

  it('RUN heredocs: a #! script runs as a file, a plain body through the shell, heredocs inside a command line', async () => {
    const r = await build('heredoc', `FROM ${base}\nENV NAME=world\nRUN <<EOF\n#!/bin/sh\necho "script $0" > /script.txt\nEOF\nRUN <<EOF\necho one > /plain.txt\necho two >> /plain.txt\nEOF\nRUN cat <<A > /a.txt && cat <<-'B' > /b.txt\nhello $NAME\nA\n\tliteral $NAME\n\tB\nCOPY <<EOF /etc/app.conf\nname=$NAME\nEOF\n`);
    hasContent(r.flat, 'script.txt', 'script /dev/pipes/EOF\n');
    hasContent(r.flat, 'plain.txt', 'one\ntwo\n');
    hasContent(r.flat, 'a.txt', 'hello world\n');
    hasContent(r.flat, 'b.txt', 'literal $NAME\n');
    hasContent(r.flat, 'etc/app.conf', 'name=world\n');
    assert.ok(!r.flat.has('dev/pipes'), 'the script mount leaves nothing behind');
  });

  it('RUN --mount: bind from the context, a cache kept between builds, tmpfs, a secret that never lands in the image', async () => {
    await fsp.writeFile(`${t.dir}/token`, 's3cr3t\n');
    const file = `FROM ${base}\nRUN --mount=type=bind,source=sub,target=/mnt/ctx cat /mnt/ctx/f > /bound.txt\nRUN --mount=type=cache,target=/var/cache/x,id=c1 sh -c 'echo run >> /var/cache/x/log; wc -l < /var/cache/x/log | tr -d " " > /count'\nRUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/x && cat /scratch/x > /tmpfs.txt'\nRUN --mount=type=secret,id=tok,mode=0440 sh -c 'cat /run/secrets/tok > /copied; stat -c %a /run/secrets/tok > /mode'\nRUN --mount=type=secret,id=tok,env=TOK sh -c 'printf %s "$TOK" > /fromenv'\n`;
    const r = await build('mounts', file, { 'sub/f': 'from context\n' }, ['--secret', `id=tok,src=${t.dir}/token`]);
    hasContent(r.flat, 'bound.txt', 'from context\n');
    hasContent(r.flat, 'count', '1\n');
    hasContent(r.flat, 'tmpfs.txt', 't\n');
    hasContent(r.flat, 'copied', 's3cr3t\n');
    hasContent(r.flat, 'mode', '440\n');
    hasContent(r.flat, 'fromenv', 's3cr3t\n');
    for (const p of ['mnt', 'mnt/ctx', 'var/cache', 'var/cache/x', 'scratch', 'run/secrets', 'run/secrets/tok']) assert.ok(!r.flat.has(p), `mount point ${p} left in the image`);
    // The cache mount persists: a --no-cache rebuild sees the first run's file.
    const again = await build('mounts2', file, { 'sub/f': 'from context\n' }, ['--no-cache', '--secret', `id=tok,src=${t.dir}/token`]);
    hasContent(again.flat, 'count', '2\n');
    // Bind sources resolve symlinks inside the context: a link within it works, one to the host's /etc does not
    // reach the host.
    const linkCtx = path.join(t.dir, 'ctx-mountlinks');
    await fsp.mkdir(path.join(linkCtx, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(linkCtx, 'sub/f'), 'via link\n');
    await fsp.symlink('sub', path.join(linkCtx, 'inner'));
    await fsp.symlink('/etc', path.join(linkCtx, 'evil'));
    await fsp.writeFile(path.join(linkCtx, 'Containerfile'), `FROM ${base}\nRUN --mount=type=bind,source=inner,target=/in cat /in/f > /through-link\n`);
    await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/links:1', linkCtx]));
    hasContent(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/links:1`), 'through-link', 'via link\n');
    await fsp.writeFile(path.join(linkCtx, 'Containerfile'), `FROM ${base}\nRUN --mount=type=bind,source=evil,target=/x ls /x/passwd\n`);
    const evil = await skiff([...S(), 'build', linkCtx]);
    assert.equal(evil.code, 1, 'the host /etc was mounted');
    assert.match(evil.stderr, /source evil does not exist in the build context/);
    // A required secret that was not given is an error naming it.
    const ctx = path.join(t.dir, 'ctx-nosecret');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN --mount=type=secret,id=missing,required cat /run/secrets/missing\n`);
    const bad = await skiff([...S(), 'build', ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /secret,id=missing: no such secret/);
  });

  it('ADD unpacks local tar archives (plain, gzip, bzip2, xz) but copies other files; fetches URLs with --checksum, mode 600', async () => {
    const src = path.join(t.dir, 'arch');
    await fsp.mkdir(`${src}/d`, { recursive: true });
    await fsp.writeFile(`${src}/d/one`, '1\n');
    await fsp.writeFile(`${src}/two`, '2\n');
    await fsp.symlink('../two', `${src}/d/lnk`);
    const ctx = path.join(t.dir, 'ctx-add');
    await fsp.mkdir(ctx);
    await ok(run('tar', ['-C', src, '-czf', `${ctx}/a.tar.gz`, '.']));
    await ok(run('tar', ['-C', src, '-cjf', `${ctx}/a.tar.bz2`, 'two']));
    await ok(run('tar', ['-C', src, '-cJf', `${ctx}/a.tar.xz`, 'd']));
    await ok(run('tar', ['-C', src, '-cf', `${ctx}/plain.tar`, 'd']));
    await ok(run('sh', ['-c', `echo not a tar | gzip > ${ctx}/note.gz`]));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const r = await build('add', `FROM ${base}\nADD a.tar.gz /gz/\nADD a.tar.bz2 a.tar.xz /bx/\nADD plain.tar /plain\nADD note.gz /n/\nADD --checksum=sha256:${sha('remote\n')} ${url}/file.txt /url/\nADD ${url}/moved /url/renamed\nADD ${url}/dir/..%2F..%2Fescape.txt /url/\n`, {});
    hasContent(r.flat, 'gz/d/one', '1\n');
    assert.match(r.flat.get('gz/d/lnk') ?? '', /symlink .* -> \.\.\/two/);
    hasContent(r.flat, 'bx/two', '2\n');
    hasContent(r.flat, 'bx/d/one', '1\n');
    hasContent(r.flat, 'plain/d/one', '1\n');
    assert.match(r.flat.get('n/note.gz') ?? '', /^file /);
    assert.match(r.flat.get('url/file.txt') ?? '', /^file mode=600 /);
    hasContent(r.flat, 'url/file.txt', 'remote\n');
    hasContent(r.flat, 'url/renamed', 'remote\n');
    hasContent(r.flat, 'url/escape.txt', 'named by a hostile URL\n');
    // A wrong checksum fails the build and names both digests.
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nADD --checksum=sha256:${sha('other')} ${url}/file.txt /x\n`);
    const bad = await skiff([...S(), 'build', ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /checksum mismatch: expected sha256:[0-9a-f]{64}, got sha256:/);
  });

  it('COPY wildcards, --exclude, --parents; a wildcard matching nothing is an error', async () => {
    const files = { 'w1.txt': 'w1\n', 'w2.txt': 'w2\n', 'x.md': 'x\n', 'src/a/keep.txt': 'k\n', 'src/a/drop.md': 'd\n', 'src/b/z.txt': 'z\n' };
    const r = await build('wild', `FROM ${base}\nCOPY w*.txt /wild/\nCOPY --exclude=**/*.md src /excl/\nCOPY --parents src/*/z.txt /par/\n`, files);
    hasContent(r.flat, 'wild/w1.txt', 'w1\n');
    hasContent(r.flat, 'wild/w2.txt', 'w2\n');
    assert.ok(!r.flat.has('wild/x.md'));
    hasContent(r.flat, 'excl/a/keep.txt', 'k\n');
    assert.ok(!r.flat.has('excl/a/drop.md'), '--exclude');
    hasContent(r.flat, 'par/src/b/z.txt', 'z\n');
    const ctx = path.join(t.dir, 'ctx-nomatch');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nCOPY *.none /x/\n`);
    const bad = await skiff([...S(), 'build', ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no source files were specified/);
  });

  it('--squash makes the new layers one, --squash-all every layer; the filesystem is the same; history matches the layers', async () => {
    const file = `FROM ${base}\nRUN mkdir -p /x/y && echo a > /x/y/a && echo b > /b\nRUN rm -rf /home/user && mkdir -p /home/user && echo n > /home/user/new && rm /bin/env\nRUN rm /b && echo c > /x/c && rm -rf /x/y\nCOPY Containerfile /cf\n`;
    const plain = await build('sq-plain', file);
    const sq = await build('sq-new', file, {}, ['--squash']);
    const all = await build('sq-all', file, {}, ['--squash-all']);
    const layers = (m: Record<string, unknown>): number => (m.layers as unknown[]).length;
    assert.equal(layers(plain.manifest), 6);
    assert.equal(layers(sq.manifest), 3, 'two base layers and one squashed');
    assert.equal(layers(all.manifest), 1);
    // (A symlink's mode means nothing on Linux: the fixture's tar says 644, the disk always 777.)
    const sorted = (f: Flat): string[] => [...f].map(([k, v]) => `${k} ${v.replace(/^symlink mode=\d+/, 'symlink')}`).sort();
    assert.deepEqual(sorted(sq.flat), sorted(plain.flat));
    assert.deepEqual(sorted(all.flat), sorted(plain.flat));
    for (const r of [sq, all]) {
      const h = (r.config.history as { empty_layer?: boolean }[]).filter((x) => !x.empty_layer).length;
      assert.equal(h, layers(r.manifest), 'non-empty history entries = layers');
    }
    assert.ok(!plain.flat.has('b') && !plain.flat.has('x/y') && !plain.flat.has('bin/env'));
  });

  it('--output: type=local to a directory, type=tar to a file and to stdout, type=oci and type=docker archives', async () => {
    const ctx = path.join(t.dir, 'ctx-out');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN echo made > /made.txt\n`);
    const out = path.join(t.dir, 'out');
    await ok(skiff([...S(), 'build', '-q', '-o', `${out}/dir`, ctx]));
    assert.equal(await fsp.readFile(`${out}/dir/made.txt`, 'utf8'), 'made\n');
    assert.ok((await fsp.lstat(`${out}/dir/bin/busybox`)).isFile());
    assert.equal((await fsp.stat(`${out}/dir`)).mode & 0o777, 0o755, 'the output directory stays writable');
    // A second export into the same directory works (it used to be left read-only).
    await ok(skiff([...S(), 'build', '-q', '-o', `${out}/dir`, ctx]));
    await ok(skiff([...S(), 'build', '-q', '-o', `type=tar,dest=${out}/fs.tar`, ctx]));
    assert.match(await ok(run('tar', ['-tf', `${out}/fs.tar`])), /^\.\/made\.txt$/m);
    const toStdout = await run('sh', ['-c', `${process.execPath} ${path.resolve('bin/skiff.js')} ${S().join(' ')} build -q -o - ${ctx} | tar -t`]);
    assert.match(toStdout.stdout, /^\.\/made\.txt$/m);
    assert.doesNotMatch(toStdout.stdout, /^[0-9a-f]{64}$/m, 'with the tar on stdout the image ID is not printed there');
    await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/outs:1', '-o', `type=oci,dest=${out}/img.oci`, ctx]));
    assert.match(await ok(run('skopeo', ['inspect', `oci-archive:${out}/img.oci`])), /"Layers"/);
    await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/outs:1', '-o', `type=docker,dest=${out}/img.tar`, ctx]));
    const flat = await flatRef(`docker-archive:${out}/img.tar`);
    hasContent(flat, 'made.txt', 'made\n');
    const bad = await skiff([...S(), 'build', '-o', 'type=registry', ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown type "registry"/);
  });

  it('RUN container flags: --add-host, --dns, --dns-search, --dns-option, --cap-add/--cap-drop, --shm-size, --no-hosts; bad values refused before building', async () => {
    const file = `FROM ${base}\nRUN cat /etc/hosts > /hosts.txt; cat /etc/resolv.conf > /resolv.txt || true; grep CapEff /proc/self/status > /caps.txt; df -k /dev/shm | tail -1 > /shm.txt\n`;
    const ctx = path.join(t.dir, 'ctx-cflags');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), file);
    const out = path.join(t.dir, 'cflags-out');
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '--add-host', 'myhost:10.1.2.3', '--dns', '9.9.9.9', '--dns-search', 'example.org', '--dns-option', 'ndots:2', '--cap-drop', 'ALL', '--cap-add', 'chown', '--shm-size', '16m', '--rm', '--force-rm', '--output', `type=local,dest=${out}`, ctx]));
    const read = (f: string) => fsp.readFile(path.join(out, f), 'utf8');
    assert.match(await read('hosts.txt'), /^10\.1\.2\.3\tmyhost$/m);
    assert.equal(await read('resolv.txt'), 'nameserver 9.9.9.9\nsearch example.org\noptions ndots:2\n');
    assert.equal((await read('caps.txt')).trim(), 'CapEff:\t0000000000000001', 'only CAP_CHOWN');
    assert.match(await read('shm.txt'), /^\S+\s+16384\s/);
    // The same with --isolation chroot (no runtime), capabilities aside.
    const chroot = path.join(t.dir, 'cflags-chroot');
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '--isolation', 'chroot', '--add-host', 'myhost:10.1.2.3', '--dns', '9.9.9.9', '--shm-size', '16m', '--output', `type=local,dest=${chroot}`, ctx]));
    assert.match(await fsp.readFile(path.join(chroot, 'hosts.txt'), 'utf8'), /^10\.1\.2\.3\tmyhost$/m);
    assert.equal(await fsp.readFile(path.join(chroot, 'resolv.txt'), 'utf8'), 'nameserver 9.9.9.9\n');
    assert.match(await fsp.readFile(path.join(chroot, 'shm.txt'), 'utf8'), /^\S+\s+16384\s/);
    // Without them: the host's files, the default capabilities (buildah's set), 64 MiB of /dev/shm.
    const plain = path.join(t.dir, 'cflags-plain');
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '--output', `type=local,dest=${plain}`, ctx]));
    assert.equal(await fsp.readFile(path.join(plain, 'resolv.txt'), 'utf8'), await fsp.readFile('/etc/resolv.conf', 'utf8'));
    assert.equal((await fsp.readFile(path.join(plain, 'caps.txt'), 'utf8')).trim(), 'CapEff:\t00000000800405fb');
    assert.match(await fsp.readFile(path.join(plain, 'shm.txt'), 'utf8'), /^\S+\s+65536\s/);
    for (const [flags, msg] of [
      [['--no-hosts', '--add-host', 'a:1.2.3.4'], /--no-hosts and --add-host cannot be used together/],
      [['--add-host', 'nocolon'], /--add-host "nocolon": expected HOST:IP/],
      [['--cap-add', 'nonsense'], /unknown capability "nonsense"/],
      [['--shm-size', 'lots'], /--shm-size "lots"/],
    ] as const) {
      const r = await skiff([...S(), 'build', '-q', ...flags, ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('a Containerfile named *.in goes through cpp as buildah\'s does (#include from the context, #define, --cpp-flag): the same config as buildah\'s; errors name the included file\'s lines', async () => {
    const ctx = path.join(t.dir, 'ctx-cpp');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'common.h'), 'FROM scratch\nLABEL common=yes\nENV FROM_INCLUDE=1\n');
    await fsp.writeFile(path.join(ctx, 'Containerfile.in'), '#include "common.h"\n#define GREETING hello\nLABEL greeting=GREETING\n#ifdef EXTRA\nLABEL extra=on\n#endif\nCOPY common.h /c.h\n');
    const file = path.join(ctx, 'Containerfile.in');
    await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/cpp:1', '-f', file, '--cpp-flag=-DEXTRA', ctx]));
    await ok(run('buildah', [...S(), '--storage-driver', 'overlay', 'bud', '-q', '--isolation', 'chroot', '-t', 'localhost/cppb:1', '-f', file, '--cpp-flag=-DEXTRA', ctx]));
    const config = async (name: string): Promise<{ Env?: string[]; Labels?: Record<string, string> }> => JSON.parse((await ok(skiff([...S(), 'inspect', '--config', '--raw', `containers-storage:${name}`])))).config;
    const mine = await config('localhost/cpp:1');
    const theirs = await config('localhost/cppb:1');
    delete theirs.Labels?.['io.buildah.version'];
    assert.deepEqual(mine.Labels, { common: 'yes', extra: 'on', greeting: 'hello' });
    assert.deepEqual([mine.Env, mine.Labels], [theirs.Env, theirs.Labels]);
    // Without the flag, no extra label.
    const plain = await ok(skiff([...S(), 'build', '-q', '-f', file, ctx]));
    assert.equal((await config(plain.trim())).Labels?.extra, undefined);
    // Errors: a bad line in the included file and in the .in file, each named where it is; cpp's own errors.
    await fsp.writeFile(path.join(ctx, 'bad.h'), 'FROM scratch\nLABEL a=b\nBOGUS x\n');
    await fsp.writeFile(path.join(ctx, 'Bad.in'), '#include "bad.h"\nLABEL c=d\nFROBNICATE\n');
    const bad = await skiff([...S(), 'build', '-q', '-f', path.join(ctx, 'Bad.in'), ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad\.h:3: unknown instruction: BOGUS/);
    assert.match(bad.stderr, /Bad\.in:3: unknown instruction: FROBNICATE/);
    await fsp.writeFile(path.join(ctx, 'Worse.in'), '#if\nFROM scratch\n');
    const worse = await skiff([...S(), 'build', '-q', '-f', path.join(ctx, 'Worse.in'), ctx]);
    assert.equal(worse.code, 1);
    assert.match(worse.stderr, /preprocessing .*Worse\.in: .*Worse\.in:1: error: #if with no expression/);
  });

  it('--hooks-dir: oci-hooks(5) files run at their stages when their conditions hold (always, commands), a later directory masking a file of the same name; bad hook files refused before building', async () => {
    const dir = path.join(t.dir, 'hooks');
    await fsp.mkdir(path.join(dir, 'd1'), { recursive: true });
    await fsp.mkdir(path.join(dir, 'd2'), { recursive: true });
    const script = path.join(dir, 'hook.sh');
    await fsp.writeFile(script, `#!/bin/sh\ncat > ${dir}/state-$1.json\n`, { mode: 0o755 });
    const hook = (name: string, when: object, stages: string[]) => JSON.stringify({ version: '1.0.0', hook: { path: script, args: ['hook.sh', name] }, when, stages });
    await fsp.writeFile(path.join(dir, 'd1', '01-always.json'), hook('always', { always: true }, ['prestart']));
    await fsp.writeFile(path.join(dir, 'd1', '02-never.json'), hook('never', { commands: ['^/nomatch$'] }, ['prestart']));
    await fsp.writeFile(path.join(dir, 'd1', '03-masked.json'), hook('masked', { always: true }, ['poststop']));
    await fsp.writeFile(path.join(dir, 'd2', '03-masked.json'), hook('override', { always: true, commands: ['^/bin/sh$'] }, ['poststop']));
    const ctx = path.join(t.dir, 'ctx-hooks');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN true\n`);
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '--hooks-dir', path.join(dir, 'd1'), '--hooks-dir', path.join(dir, 'd2'), ctx]));
    const ran = (await fsp.readdir(dir)).filter((n) => n.startsWith('state-')).sort();
    assert.deepEqual(ran, ['state-always.json', 'state-override.json']);
    // The runtime hands each hook the container's state.
    assert.match(await fsp.readFile(path.join(dir, 'state-always.json'), 'utf8'), /"status":"creating"/);
    // Under chroot there is no runtime to run them: said.
    const chroot = await skiff([...S(), 'build', '-q', '--no-cache', '--isolation', 'chroot', '--hooks-dir', path.join(dir, 'd1'), ctx]);
    assert.equal(chroot.code, 0, chroot.stderr);
    assert.match(chroot.stderr, /--hooks-dir need an OCI runtime/);
    await fsp.mkdir(path.join(dir, 'bad'));
    for (const [text, msg] of [
      ['{', /hook .*bad\/x\.json: /],
      [JSON.stringify({ version: '0.1.0', hook: { path: script }, when: { always: true }, stages: ['prestart'] }), /only 1\.0\.0 is read/],
      [JSON.stringify({ version: '1.0.0', hook: { path: 'relative' }, when: { always: true }, stages: ['prestart'] }), /hook\.path must be an absolute path/],
      [JSON.stringify({ version: '1.0.0', hook: { path: script }, when: {}, stages: ['prestart'] }), /when needs one of/],
      [JSON.stringify({ version: '1.0.0', hook: { path: script }, when: { always: true }, stages: ['sometime'] }), /stages must be some of/],
    ] as const) {
      await fsp.writeFile(path.join(dir, 'bad', 'x.json'), text);
      const r = await skiff([...S(), 'build', '-q', '--hooks-dir', path.join(dir, 'bad'), ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('cgroup limits for RUN (--memory, --memory-swap, --cpu-shares, --cpu-period, --cpu-quota, --cpuset-cpus, --cgroup-parent): set on RUN\'s cgroup under runc, a warning under chroot; bad values refused', async () => {
    const script = [
      'if [ -f /sys/fs/cgroup/cgroup.controllers ]; then P=$(sed -n "s/^0:://p" /proc/self/cgroup); echo $P > /path.txt; cat /sys/fs/cgroup$P/memory.max > /mem.txt; cat /sys/fs/cgroup$P/cpuset.cpus > /cpus.txt; cat /sys/fs/cgroup$P/cpu.max > /quota.txt;',
      'else M=$(sed -n "s/^[0-9]*:memory://p" /proc/self/cgroup); echo $M > /path.txt; cat /sys/fs/cgroup/memory$M/memory.limit_in_bytes > /mem.txt; S=$(sed -n "s/^[0-9]*:cpuset://p" /proc/self/cgroup); cat /sys/fs/cgroup/cpuset$S/cpuset.cpus > /cpus.txt;',
      'C=$(sed -n "s/^[0-9]*:\\(cpu,cpuacct\\|cpu\\)://p" /proc/self/cgroup); cat /sys/fs/cgroup/cpu$C/cpu.shares > /shares.txt; cat /sys/fs/cgroup/cpu$C/cpu.cfs_quota_us /sys/fs/cgroup/cpu$C/cpu.cfs_period_us > /quota.txt; fi',
    ].join(' ');
    const ctx = path.join(t.dir, 'ctx-limits');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN ${script}\n`);
    const out = path.join(t.dir, 'limits-out');
    const limits = ['--memory', '64m', '--memory-swap', '128m', '--cpu-shares', '512', '--cpu-period', '100000', '--cpu-quota', '50000', '--cpuset-cpus', '0', '--cgroup-parent', 'skiff-test-parent'];
    await ok(skiff([...S(), 'build', '-q', '--no-cache', ...limits, '--output', `type=local,dest=${out}`, ctx]));
    const read = async (f: string): Promise<string> => (await fsp.readFile(path.join(out, f), 'utf8')).trim();
    assert.match(await read('path.txt'), /\/skiff-test-parent\/skiff-/);
    assert.equal(await read('mem.txt'), '67108864');
    assert.equal(await read('cpus.txt'), '0');
    if ((await read('quota.txt')).includes(' ')) assert.equal(await read('quota.txt'), '50000 100000');
    else {
      assert.equal(await read('quota.txt'), '50000\n100000');
      assert.equal(await read('shares.txt'), '512');
    }
    // chroot isolation has no runtime to set them: said, not silently dropped.
    const chroot = await skiff([...S(), 'build', '-q', '--no-cache', '--isolation', 'chroot', '--memory', '64m', '--output', `type=local,dest=${out}-chroot`, ctx]);
    assert.equal(chroot.code, 0, chroot.stderr);
    assert.match(chroot.stderr, /cgroup limits .* need an OCI runtime: not applied with chroot isolation/);
    for (const [flags, msg] of [
      [['--memory', 'lots'], /--memory "lots": expected a size/],
      [['--memory-swap', '1g'], /--memory-swap needs --memory/],
      [['--memory', '1g', '--memory-swap', '512m'], /cannot be less than --memory/],
      [['--cpu-shares', '1'], /--cpu-shares "1": expected a whole number of at least 2/],
      [['--cpuset-cpus', 'all'], /--cpuset-cpus "all": expected a list/],
      [['--cgroup-parent', '../x'], /--cgroup-parent "..\/x"/],
    ] as const) {
      const r = await skiff([...S(), 'build', '-q', ...flags, ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('--pid, --ipc, --uts, --cgroupns: private by default, the host\'s with host, a namespace joined by path (runc); the host keeps its hostname; bad values refused', async () => {
    const file = `FROM ${base}\nRUN hostname > /h.txt; readlink /proc/self/ns/ipc > /ipc.txt; readlink /proc/self/ns/pid > /pid.txt; readlink /proc/self/ns/uts > /uts.txt; readlink /proc/self/ns/cgroup > /cg.txt\n`;
    const ctx = path.join(t.dir, 'ctx-ns');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), file);
    const mine = async (type: string): Promise<string> => fsp.readlink(`/proc/self/ns/${type}`);
    const hostname = (await run('hostname', [])).stdout.trim();
    const seen = async (flags: string[], isolation: string): Promise<Record<string, string>> => {
      const out = path.join(t.dir, `ns-${isolation}-${flags.length}`);
      await fsp.rm(out, { recursive: true, force: true });
      await ok(skiff([...S(), 'build', '-q', '--no-cache', '--isolation', isolation, ...flags, '--output', `type=local,dest=${out}`, ctx]));
      const r = async (f: string): Promise<string> => (await fsp.readFile(path.join(out, f), 'utf8')).trim();
      return { h: await r('h.txt'), ipc: await r('ipc.txt'), pid: await r('pid.txt'), cg: await r('cg.txt') };
    };
    for (const isolation of ['oci', 'chroot']) {
      const own = await seen([], isolation);
      assert.equal(own.h, 'skiff-build', isolation);
      assert.notEqual(own.ipc, await mine('ipc'));
      assert.notEqual(own.pid, await mine('pid'));
      assert.equal(own.cg, await mine('cgroup'), 'the cgroup namespace is shared by default');
      const host = await seen(['--pid', 'host', '--ipc', 'host', '--uts', 'host', '--cgroupns', 'private'], isolation);
      assert.deepEqual([host.h, host.ipc, host.pid], [hostname, await mine('ipc'), await mine('pid')], isolation);
      assert.notEqual(host.cg, await mine('cgroup'));
      assert.equal((await run('hostname', [])).stdout.trim(), hostname, 'the host\'s hostname is left alone');
    }
    // Joining a namespace by path: another process's IPC namespace.
    const holder = spawn('unshare', ['--ipc', 'sleep', '60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const target = await fsp.readlink(`/proc/${holder.pid}/ns/ipc`);
      assert.notEqual(target, await mine('ipc'));
      const joined = await seen(['--ipc', `/proc/${holder.pid}/ns/ipc`], 'oci');
      assert.equal(joined.ipc, target);
      const refused = await skiff([...S(), 'build', '-q', '--isolation', 'chroot', '--ipc', `/proc/${holder.pid}/ns/ipc`, ctx]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /joining a namespace needs the OCI runtime/);
    } finally {
      holder.kill();
    }
    for (const [flags, msg] of [
      [['--pid', 'sideways'], /--pid "sideways": expected private, host or the path/],
      [['--cgroupns', '/proc/self/ns/cgroup'], /--cgroupns "\/proc\/self\/ns\/cgroup": expected private, host/],
      [['--uts', '/nonexistent/ns'], /no such namespace file/],
    ] as const) {
      const r = await skiff([...S(), 'build', '-q', ...flags, ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('--device: host device nodes in RUN\'s /dev, at their own path or another, under runc and chroot; bad values refused before building', async () => {
    const file = `FROM ${base}\nRUN ls -l /dev/mynull /dev/full > /devs.txt; echo hi > /dev/mynull && echo wrote >> /devs.txt; head -c 4 /dev/mine | wc -c >> /devs.txt\n`;
    const ctx = path.join(t.dir, 'ctx-device');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), file);
    for (const isolation of ['oci', 'chroot']) {
      const out = path.join(t.dir, `device-${isolation}`);
      await ok(skiff([...S(), 'build', '-q', '--no-cache', '--isolation', isolation, '--device', '/dev/null:/dev/mynull', '--device', '/dev/zero:/dev/mine:r', '--device', '/dev/full', '--output', `type=local,dest=${out}`, ctx]));
      const seen = await fsp.readFile(path.join(out, 'devs.txt'), 'utf8');
      assert.match(seen, /^c\S+\s.*\s1,\s+7 .*\/dev\/full$/m, isolation);
      assert.match(seen, /^c\S+\s.*\s1,\s+3 .*\/dev\/mynull$/m, isolation);
      assert.match(seen, /^wrote\n4\n$/m, isolation);
    }
    for (const [flags, msg] of [
      [['--device', '/nonexistent/dev'], /--device "\/nonexistent\/dev": ENOENT/],
      [['--device', '/etc/passwd'], /not a device node/],
      [['--device', '/dev/null:relative'], /paths must be absolute/],
      [['--device', '/dev/null:/dev/x:rwx'], /permissions "rwx"/],
    ] as const) {
      const r = await skiff([...S(), 'build', '-q', ...flags, ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('--ulimit and --security-opt (no-new-privileges, mask, unmask, label=disable, seccomp=unconfined) under runc and chroot; bad values refused before building', async () => {
    const file = [
      `FROM ${base}`,
      'RUN echo hidden > /secret.txt',
      'RUN ulimit -Sn > /nofile-soft; ulimit -Hn > /nofile-hard; ulimit -Hu > /nproc-hard; grep NoNewPrivs /proc/self/status > /nnp.txt; cat /secret.txt > /seen.txt; wc -c < /proc/timer_list > /timer.txt 2>/dev/null || echo masked > /timer.txt',
      '',
    ].join('\n');
    const ctx = path.join(t.dir, 'ctx-secopt');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), file);
    const read = async (dir: string, f: string): Promise<string> => (await fsp.readFile(path.join(dir, f), 'utf8')).trim();
    // (Limits only go down here: these machines' root lacks CAP_SYS_RESOURCE. -1 is unit-tested: test/unit/oci-config.)
    const flags = ['--ulimit', 'nofile=512:1024', '--ulimit', 'nproc=3000', '--security-opt', 'no-new-privileges', '--security-opt', 'label=disable', '--security-opt', 'seccomp=unconfined'];
    const out = path.join(t.dir, 'secopt-out');
    await ok(skiff([...S(), 'build', '-q', '--no-cache', ...flags, '--security-opt', 'mask=/secret.txt', '--security-opt', 'unmask=/proc/timer_list', '--output', `type=local,dest=${out}`, ctx]));
    assert.equal(await read(out, 'nofile-soft'), '512');
    assert.equal(await read(out, 'nofile-hard'), '1024');
    assert.equal(await read(out, 'nproc-hard'), '3000');
    assert.equal(await read(out, 'nnp.txt'), 'NoNewPrivs:\t1');
    assert.equal(await read(out, 'seen.txt'), '', 'a masked file reads empty');
    assert.notEqual(await read(out, 'timer.txt'), '0', 'an unmasked /proc file has its content');
    // Without them: runc's masked /proc/timer_list (empty), no no_new_privs, the inherited limits.
    const plain = path.join(t.dir, 'secopt-plain');
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '--output', `type=local,dest=${plain}`, ctx]));
    assert.equal(await read(plain, 'nnp.txt'), 'NoNewPrivs:\t0');
    assert.equal(await read(plain, 'seen.txt'), 'hidden');
    assert.equal(await read(plain, 'timer.txt'), '0');
    // chroot isolation: limits through prlimit, no_new_privs through setpriv; masks need the runtime, and say so.
    const chroot = path.join(t.dir, 'secopt-chroot');
    const r = await skiff([...S(), 'build', '-q', '--no-cache', '--isolation', 'chroot', ...flags, '--security-opt', 'mask=/secret.txt', '--output', `type=local,dest=${chroot}`, ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: mask=\/unmask= need an OCI runtime: not applied with chroot isolation/);
    assert.equal(await read(chroot, 'nofile-soft'), '512');
    assert.equal(await read(chroot, 'nofile-hard'), '1024');
    assert.equal(await read(chroot, 'nnp.txt'), 'NoNewPrivs:\t1');
    for (const [bad, msg] of [
      [['--ulimit', 'nofile'], /--ulimit "nofile": expected TYPE=SOFT\[:HARD\]/],
      [['--ulimit', 'files=1'], /unknown type "files"/],
      [['--ulimit', 'nofile=2048:1024'], /the soft limit is above the hard one/],
      [['--security-opt', 'seccomp=/nonexistent/profile.json'], /--security-opt seccomp=\/nonexistent\/profile\.json: ENOENT/],
      [['--security-opt', 'label=type:spc_t'], /SELinux labels are not supported/],
      [['--security-opt', 'mask=relative'], /expected mask=\/PATH/],
      [['--security-opt', 'bogus'], /unknown option/],
    ] as const) {
      const b = await skiff([...S(), 'build', '-q', ...bad, ctx]);
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, msg);
    }
  });

  it('-v/--volume: a host directory in every RUN, read and written there, never in the image; :ro is read-only; bad specs refused', async () => {
    const vol = path.join(t.dir, 'vol');
    await fsp.mkdir(vol, { recursive: true });
    await fsp.writeFile(path.join(vol, 'in.txt'), 'from the host\n');
    const ctx = path.join(t.dir, 'ctx-vol');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN cat /cache/in.txt > /copied.txt && echo written > /cache/out.txt\nRUN ls /cache > /listed.txt\n`);
    const out = path.join(t.dir, 'vol-out');
    // (-v after the command word is --volume, as in podman build; skiff -v alone stays --version.)
    await ok(skiff([...S(), 'build', '-q', '--no-cache', '-v', `${vol}:/cache`, '--output', `type=local,dest=${out}`, ctx]));
    assert.equal(await fsp.readFile(path.join(out, 'copied.txt'), 'utf8'), 'from the host\n');
    assert.equal(await fsp.readFile(path.join(out, 'listed.txt'), 'utf8'), 'in.txt\nout.txt\n');
    assert.equal(await fsp.readFile(path.join(vol, 'out.txt'), 'utf8'), 'written\n');
    await assert.rejects(fsp.lstat(path.join(out, 'cache')), 'the mount point is not in the image');
    const ro = await skiff([...S(), 'build', '-q', '--no-cache', '--volume', `${vol}:/cache:ro`, ctx]);
    assert.equal(ro.code, 1);
    assert.match(ro.stderr, /Read-only file system/);
    for (const [spec, msg] of [['relative:/x', /host path must be absolute/], [`${t.dir}/nowhere:/x`, /no such file or directory/], [`${vol}:/x:bogus`, /unknown option "bogus"/], [vol, /expected HOST-PATH:CONTAINER-PATH/]] as const) {
      const r = await skiff([...S(), 'build', '-q', '-v', spec, ctx]);
      assert.equal(r.code, 1, spec);
      assert.match(r.stderr, msg);
    }
    assert.match(await ok(skiff(['-v'])), /^skiff version /);
  });

  it('--omit-history writes no history key at all, as buildah does; the layers are the same', async () => {
    const file = `FROM ${base}\nLABEL a=b\nRUN echo x > /x\n`;
    const withHistory = await build('hist', file);
    const without = await build('nohist', file, {}, ['--omit-history']);
    assert.ok(Array.isArray(withHistory.config.history));
    assert.equal('history' in without.config, false);
    assert.deepEqual(without.flat, withHistory.flat);
  });

  it('--env KEY takes this environment\'s value, or an empty one (as buildah 1.28); a bad name is refused', async () => {
    const ctx = path.join(t.dir, 'ctx-envkey');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nENV A=1\n');
    const r = await run(process.execPath, [SKIFF, ...S(), 'build', '-q', '--env', 'FROMENV', '--env', 'SKIFF_TEST_NOT_SET', '-t', 'localhost/envkey:1', ctx], { env: { ...process.env, FROMENV: 'hello' } });
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/envkey:1`])));
    assert.deepEqual(cfg.config.Env.slice(-3), ['A=1', 'FROMENV=hello', 'SKIFF_TEST_NOT_SET=']);
    const bad = await skiff([...S(), 'build', '-q', '--env', '1BAD=x', ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--env "1BAD=x": expected KEY=VALUE or KEY/);
  });

  it('an image skiff built reads in skopeo inspect as in skiff inspect: config byte for byte (Go\'s times and escaping), Name, Created', async () => {
    await build('insp', `FROM ${base}\nLABEL a=b<c>&d\nRUN echo x > /x && echo y >> /x\n`);
    const ref = `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/insp:1`;
    assert.equal(await ok(skiff(['inspect', '--config', ref])), await ok(run('skopeo', ['inspect', '--config', ref])));
    const mine = JSON.parse(await ok(skiff(['inspect', ref])));
    delete mine.LayersData; // (newer skopeo prints it; 1.9 does not)
    assert.equal(JSON.stringify(mine, null, 4), JSON.stringify(JSON.parse(await ok(run('skopeo', ['inspect', ref]))), null, 4));
    assert.equal(mine.Name, 'localhost/insp');
    assert.match(mine.Created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'whole seconds, as Go writes them');
  });

  it('--jobs runs independent stages in parallel: same image as a serial build', async () => {
    const file = `FROM ${base} AS a\nRUN sleep 1 && echo a > /a\nFROM ${base} AS b\nRUN sleep 1 && echo b > /b\nFROM ${base} AS c\nRUN sleep 1 && echo c > /c\nFROM ${base}\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n`;
    const started = Date.now();
    const par = await build('jobs-par', file, {}, ['--jobs', '3', '--no-cache']);
    const parMs = Date.now() - started;
    for (const x of ['a', 'b', 'c']) hasContent(par.flat, x, `${x}\n`);
    const t0 = Date.now();
    const ser = await build('jobs-ser', file, {}, ['--no-cache']);
    const serMs = Date.now() - t0;
    assert.deepEqual([...ser.flat.keys()].sort(), [...par.flat.keys()].sort());
    assert.ok(parMs < serMs, `parallel ${parMs} ms vs serial ${serMs} ms`);
    assert.match(par.stderr, /STEP 10\/10: COPY --from=c/);
  });

  it('--cache-to pushes each step as a cache image; another store builds with --cache-from without running anything', async () => {
    const reg = await startRegistry();
    try {
      const ctx = path.join(t.dir, 'ctx-remote');
      await fsp.mkdir(ctx);
      await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN cat /proc/sys/kernel/random/uuid > /made-once\nCOPY f /f\nWORKDIR /new/dir\nRUN echo done > done\n`);
      await fsp.writeFile(path.join(ctx, 'f'), 'f\n');
      const tls = '--tls-verify=false';
      const first = await skiff([...S(), 'build', tls, '--cache-to', `${reg.host}/cache`, '-t', 'localhost/remote:1', ctx]);
      assert.equal(first.code, 0, first.stderr);
      const tags = JSON.parse(await ok(skiff(['list-tags', tls, `docker://${reg.host}/cache`]))) as { Tags: string[] };
      assert.equal(tags.Tags.length, 4, 'one cache image per layer step');
      // A second machine: a fresh store with the same base.
      const other = ['--root', `${t.dir}/root2`, '--runroot', `${t.dir}/run2`];
      await ok(skiff([...other, 'copy', '-q', `oci:${t.dir}/bb:busybox`, 'containers-storage:localhost/busybox:latest']));
      const second = await skiff([...other, 'build', tls, '--cache-from', `${reg.host}/cache`, '-t', 'localhost/remote:1', ctx]);
      assert.equal(second.code, 0, second.stderr);
      assert.equal((second.stderr.match(/--> Using cache/g) ?? []).length, 4, second.stderr);
      assert.equal(second.stdout, first.stdout, 'the same image, nothing rebuilt');
      // A changed file misses from its COPY on.
      await fsp.writeFile(path.join(ctx, 'f'), 'changed\n');
      const third = await skiff([...other, 'build', tls, '--cache-from', `${reg.host}/cache`, ctx]);
      assert.equal(third.code, 0, third.stderr);
      assert.equal((third.stderr.match(/--> Using cache/g) ?? []).length, 1, third.stderr);
    } finally {
      await reg.stop();
    }
  });

  it('--isolation chroot (no OCI runtime) builds the same filesystem as runc: user, workdir, mounts, heredocs, network none', async () => {
    await fsp.writeFile(`${t.dir}/token2`, 'tok\n');
    const file = `FROM ${base}\nUSER 1000:1000\nWORKDIR /tmp/w\nRUN id -u > uid && pwd > pwd && cat /proc/self/status | grep -c NSpid > ns\nUSER root\nRUN --mount=type=bind,source=sub,target=/mnt/in --mount=type=tmpfs,target=/t --mount=type=secret,id=s cat /mnt/in/f /run/secrets/s > /both && echo x > /t/x\nRUN <<EOF\n#!/bin/sh\necho "$0" > /script\nEOF\nRUN --network=none cat /sys/class/net/*/operstate 2>/dev/null | sort | tr -d "\\n" > /net\n`;
    const files = { 'sub/f': 'from context\n' };
    const flags = ['--no-cache', '--secret', `id=s,src=${t.dir}/token2`];
    const viaRunc = await build('iso-runc', file, files, flags);
    const viaChroot = await build('iso-chroot', file, files, [...flags, '--isolation', 'chroot']);
    hasContent(viaChroot.flat, 'tmp/w/uid', '1000\n');
    hasContent(viaChroot.flat, 'tmp/w/pwd', '/tmp/w\n');
    hasContent(viaChroot.flat, 'both', 'from context\ntok\n');
    hasContent(viaChroot.flat, 'script', '/dev/pipes/EOF\n');
    assert.deepEqual([...viaChroot.flat].sort(), [...viaRunc.flat].sort());
    // No runtime where --runtime points: a warning, and RUN goes through chroot isolation.
    const fallback = await skiff([...S(), 'build', '--no-cache', '--runtime', '/nonexistent/runc', '--secret', `id=s,src=${t.dir}/token2`, path.join(t.dir, 'ctx-iso-runc')]);
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.match(fallback.stderr, /no OCI runtime \(\/nonexistent\/runc\) found: RUN steps use --isolation chroot/);
    // A runtime that cannot run containers here (crun 1.8 refuses hybrid cgroups, as on these machines) is replaced
    // by runc, with a warning naming why: a stand-in that fails like that crun, then the real crun, which must build
    // either way (it runs, or it is replaced).
    const fake = path.join(t.dir, 'fake-crun');
    await fsp.writeFile(fake, '#!/bin/sh\n[ "$1" = run ] && { echo "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" >&2; exit 1; }\nexit 0\n', { mode: 0o755 });
    const replaced = await skiff([...S(), 'build', '--no-cache', '--runtime', fake, '--secret', `id=s,src=${t.dir}/token2`, path.join(t.dir, 'ctx-iso-runc')]);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.match(replaced.stderr, /the OCI runtime .*fake-crun cannot run containers here \(cgroups in hybrid mode not supported.*\): using runc/);
    const crun = await skiff([...S(), 'build', '--no-cache', '--runtime', 'crun', '--secret', `id=s,src=${t.dir}/token2`, path.join(t.dir, 'ctx-iso-runc')]);
    assert.equal(crun.code, 0, crun.stderr);
    const bad = await skiff([...S(), 'build', '--isolation', 'rootless', path.join(t.dir, 'ctx-iso-runc')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected oci or chroot/);
  });

  it('--pull: missing uses the local base, newer takes the registry\'s new one (and keeps the local one when the registry is down), never refuses to pull', async () => {
    const reg = await startRegistry();
    const tls = '--tls-verify=false';
    const other = ['--root', `${t.dir}/root3`, '--runroot', `${t.dir}/run3`];
    const ctx = path.join(t.dir, 'ctx-pull');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${reg.host}/base:1\nRUN echo built > /built\n`);
    const envOf = async (): Promise<string[]> => {
      const out = await ok(skiff([...other, 'build', '-q', tls, '--pull=missing', '-t', 'localhost/pulled:1', ctx]));
      assert.match(out, /^[0-9a-f]{64}\n$/);
      const cfg = JSON.parse(await ok(skiff([...other, 'inspect', '--config', '--raw', 'containers-storage:localhost/pulled:1']))) as { config: { Env: string[] } };
      return cfg.config.Env;
    };
    try {
      await ok(skiff(['copy', '-q', `--dest-tls-verify=false`, `oci:${t.dir}/bb:busybox`, `docker://${reg.host}/base:1`]));
      assert.ok((await envOf()).includes('GREETING=hello'), 'first build pulls the missing base');
      // The registry's base changes (another image under the same tag).
      const cf = path.join(t.dir, 'ctx-newbase');
      await fsp.mkdir(cf);
      await fsp.writeFile(path.join(cf, 'Containerfile'), `FROM ${base}\nENV GREETING=changed\n`);
      await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/newbase:1', cf]));
      await ok(skiff([...S(), 'push', '-q', tls, 'localhost/newbase:1', `docker://${reg.host}/base:1`]));
      assert.ok((await envOf()).includes('GREETING=hello'), '--pull=missing keeps the local base');
      await ok(skiff([...other, 'build', '-q', tls, '--pull=newer', '-t', 'localhost/pulled:1', ctx]));
      const cfg = JSON.parse(await ok(skiff([...other, 'inspect', '--config', '--raw', 'containers-storage:localhost/pulled:1']))) as { config: { Env: string[] } };
      assert.ok(cfg.config.Env.includes('GREETING=changed'), '--pull=newer takes the new base');
    } finally {
      await reg.stop();
    }
    const down = await skiff([...other, 'build', '-q', tls, '--pull=newer', ctx]);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stderr, /--pull=newer: .*using the local/);
    const never = await skiff([...S(), 'build', '--pull=never', ctx]);
    assert.equal(never.code, 2, never.stderr);
    assert.match(never.stderr, /--pull=never/);
  });

  it('the context stat cache: an unchanged file is not read again; a rewrite with the same size and mtime still misses', async () => {
    const ctx = path.join(t.dir, 'ctx-stat');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nCOPY data.txt /data.txt\n`);
    await fsp.writeFile(path.join(ctx, 'data.txt'), 'version-1\n');
    // Files changed in the last 2 s are never trusted by their stat (they could change again unseen).
    await new Promise((r) => setTimeout(r, 2100));
    const first = await ok(skiff([...S(), 'build', '-q', ctx]));
    const again = await skiff([...S(), 'build', ctx]);
    assert.match(again.stderr, /--> Using cache/);
    assert.equal(again.stdout, first);
    const statFiles = await fsp.readdir(`${t.dir}/root/skiff-cache/context`);
    assert.ok(statFiles.length > 0, 'the stat cache was saved');
    // Same size, same mtime, different bytes: only ctime tells, and it does.
    const st = await fsp.stat(path.join(ctx, 'data.txt'));
    await fsp.writeFile(path.join(ctx, 'data.txt'), 'version-2\n');
    await fsp.utimes(path.join(ctx, 'data.txt'), st.atime, st.mtime);
    const changed = await skiff([...S(), 'build', ctx]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.doesNotMatch(changed.stderr, /--> Using cache/);
    assert.notEqual(changed.stdout, first);
  });

  it('--build-context: a directory for COPY --from and RUN --mount from= (taken whole, before a stage of that name), an image for FROM and COPY --from; cached by content', async () => {
    const other = path.join(t.dir, 'named-dir');
    await fsp.mkdir(path.join(other, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(other, 'a.txt'), 'hello\n');
    await fsp.writeFile(path.join(other, 'sub', 'b.txt'), 'deep\n');
    // Not the main context's ignore file: buildah copies a named directory whole, its .dockerignore too.
    await fsp.writeFile(path.join(other, '.dockerignore'), 'a.txt\n');
    const file = [
      'FROM base AS other',
      'RUN echo stage > /stage.txt',
      'FROM base',
      'COPY --from=other / /o/',
      'COPY --from=files /bin/busybox /bb',
      'RUN --mount=from=other,target=/m cat /m/sub/b.txt > /from-mount',
      '',
    ].join('\n');
    const flags = ['--build-context', `base=container-image://${base}`, '--build-context', `OTHER=${other}`, '--build-context', `files=docker-image://${base}`];
    const b = await build('named', file, {}, flags);
    hasContent(b.flat, 'o/a.txt', 'hello\n');
    hasContent(b.flat, 'o/sub/b.txt', 'deep\n');
    assert.ok(content(b.flat, 'o/.dockerignore'), 'the named directory is taken whole');
    assert.equal(content(b.flat, 'o/stage.txt'), undefined, 'the named context comes before the stage of that name');
    hasContent(b.flat, 'from-mount', 'deep\n');
    assert.ok(content(b.flat, 'bb'), 'COPY --from an image context');
    // Unchanged: every step from the cache. A changed file in the named directory: its COPY runs again.
    const ctx = path.join(t.dir, 'ctx-named');
    const again = await skiff([...S(), 'build', ...flags, '-t', 'localhost/named:2', ctx]);
    assert.equal(again.code, 0, again.stderr);
    // (The stage named like the context is not needed, so not built: four steps.)
    assert.equal((again.stderr.match(/--> Using cache/g) ?? []).length, 3, again.stderr);
    await fsp.writeFile(path.join(other, 'a.txt'), 'changed\n');
    const changed = await skiff([...S(), 'build', ...flags, '-t', 'localhost/named:3', ctx]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /STEP 2\/4: COPY --from=other[^\n]*\n(?!--> Using cache)/, changed.stderr);
    hasContent((await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/named:3`)), 'o/a.txt', 'changed\n');
    // Refused before anything runs: FROM a directory context, a spec without '=', a directory that is not there, URLs.
    await fsp.writeFile(path.join(ctx, 'Containerfile.bad'), `FROM ${base}\nFROM other\n`);
    const fromDir = await skiff([...S(), 'build', '-f', path.join(ctx, 'Containerfile.bad'), '--build-context', `other=${other}`, ctx]);
    assert.equal(fromDir.code, 1);
    assert.match(fromDir.stderr, /Containerfile\.bad:2: FROM other: the build context "other" is a directory; FROM takes an image/);
    for (const [spec, why] of [['other', /expected NAME=VALUE/], [`x=${t.dir}/nothere`, /no such directory/], ['x=git@example.invalid:a/b.git', /--build-context x=git@example\.invalid:a\/b\.git: git over ssh is not supported/]] as const) {
      const r = await skiff([...S(), 'build', '--build-context', spec, ctx]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, why);
    }
  });

  it('COPY --from an image is cached by the image, not its name: the tag moved to another image, the step runs again', async () => {
    await build('src-one', `FROM ${base}\nRUN echo one > /which\n`);
    await build('src-two', `FROM ${base}\nRUN echo two > /which\n`);
    await ok(skiff([...S(), 'tag', 'localhost/src-one:1', 'localhost/src:1']));
    const file = `FROM ${base}\nCOPY --from=localhost/src:1 /which /which\nRUN --mount=from=localhost/src:1,target=/m cp /m/which /mounted\n`;
    const first = await build('tagmove', file);
    hasContent(first.flat, 'which', 'one\n');
    hasContent(first.flat, 'mounted', 'one\n');
    await ok(skiff([...S(), 'tag', 'localhost/src-two:1', 'localhost/src:1']));
    const second = await build('tagmove', file);
    hasContent(second.flat, 'which', 'two\n');
    hasContent(second.flat, 'mounted', 'two\n');
  });

  it('URL contexts, as buildah takes them: a tarball is the context (build URL, --build-context NAME=URL), another file the Containerfile (also -f URL); hostile archives refused', async () => {
    const url = (name: string): string => `http://127.0.0.1:${(server.address() as AddressInfo).port}/served/${name}`;
    const src = path.join(t.dir, 'url-src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'Containerfile'), `FROM ${base}\nCOPY hello.txt /hello.txt\nCOPY sub /sub\nCOPY --from=extra / /extra/\nRUN cat /hello.txt > /ran.txt\n`);
    await fsp.writeFile(path.join(src, 'hello.txt'), 'from a URL\n');
    await fsp.writeFile(path.join(src, 'sub', 'ro.txt'), 'read-only\n');
    await fsp.chmod(path.join(src, 'sub', 'ro.txt'), 0o444);
    await fsp.symlink('hello.txt', path.join(src, 'link'));
    await ok(run('tar', ['-C', src, '-czf', path.join(t.dir, 'ctx.tar.gz'), '.']));
    served.set('ctx.tar.gz', await fsp.readFile(path.join(t.dir, 'ctx.tar.gz')));
    const extra = path.join(t.dir, 'url-extra');
    await fsp.mkdir(extra);
    await fsp.writeFile(path.join(extra, 'more.txt'), 'more\n');
    await ok(run('tar', ['-C', extra, '-cf', path.join(t.dir, 'extra.tar'), '.']));
    served.set('extra.tar', await fsp.readFile(path.join(t.dir, 'extra.tar')));
    const ref = (n: string): string => `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/${n}:1`;
    const r = await skiff([...S(), 'build', '--build-context', `extra=${url('extra.tar')}`, '-t', 'localhost/fromurl:1', url('ctx.tar.gz')]);
    assert.equal(r.code, 0, r.stderr);
    const flat = await flatRef(ref('fromurl'));
    hasContent(flat, 'hello.txt', 'from a URL\n');
    hasContent(flat, 'ran.txt', 'from a URL\n');
    hasContent(flat, 'extra/more.txt', 'more\n');
    assert.match(content(flat, 'sub/ro.txt') ?? '', /mode=444 /, 'the archive\'s modes kept');
    // A plain file at the URL is the Containerfile (with an empty context), as is -f URL with a local context.
    served.set('Containerfile', Buffer.from(`FROM ${base}\nRUN echo remote file > /r.txt\n`));
    await ok(skiff([...S(), 'build', '-q', '-t', 'localhost/fromfile:1', url('Containerfile')]));
    hasContent(await flatRef(ref('fromfile')), 'r.txt', 'remote file\n');
    await ok(skiff([...S(), 'build', '-q', '-f', url('Containerfile'), '-t', 'localhost/fromf:1', src]));
    hasContent(await flatRef(ref('fromf')), 'r.txt', 'remote file\n');
    assert.deepEqual((await fsp.readdir(tmpdir())).filter((n) => /^skiff-(context|containerfile)-/.test(n)), [], 'downloads removed');
    // Hostile: a file written through a symlink the archive made, a hard link to a file outside it.
    const through = Buffer.concat([tarHeader('Containerfile', 0), tarHeader('esc', 0, 'symlink', 0o777, '/tmp'), tarHeader('esc/planted', 5), Buffer.from('evil\n'), Buffer.alloc(507), Buffer.alloc(1024)]);
    served.set('through.tar', through);
    const bad = await skiff([...S(), 'build', url('through.tar')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /build context http:[^ ]*through\.tar: .*esc\/planted: its parent esc is a symbolic link in the archive/);
    await assert.rejects(fsp.access('/tmp/planted'));
    for (const [spec, msg] of [[['http://127.0.0.1:1/repo.git'], /build context http:\/\/127\.0\.0\.1:1\/repo\.git: git clone failed/], [['ftp://example.invalid/x.tar'], /only http and https URLs are supported/], [['--build-context', `x=${url('Containerfile')}`, src], /--build-context x=http[^ ]*: not an archive/]] as const) {
      const b = await skiff([...S(), 'build', ...spec]);
      assert.equal(b.code, 1, b.stderr);
      assert.match(b.stderr, msg);
    }
  });

  it('--stdin: RUN reads skiff\'s standard input (without it, none); --identity-label accepted', async () => {
    const ctx = path.join(t.dir, 'ctx-stdin');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN cat > /in\n`);
    const q = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`;
    const cmd = (flags: string, tag: string): string => `printf 'piped-in\\n' | ${q(process.execPath)} ${q(SKIFF)} ${S().map(q).join(' ')} build -q --no-cache ${flags} -t localhost/${tag}:1 ${q(ctx)}`;
    await ok(run('sh', ['-c', cmd('--stdin --identity-label=false', 'stdin')]));
    hasContent(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/stdin:1`), 'in', 'piped-in\n');
    await ok(run('sh', ['-c', cmd('', 'nostdin')]));
    hasContent(await flatRef(`containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/nostdin:1`), 'in', '');
  });

  it('--runtime-flag: global flags for runc (here its debug log, as JSON, to a file)', async () => {
    const log = path.join(t.dir, 'runc.log');
    await build('runtime-flag', `FROM ${base}\nRUN echo ran > /ran\n`, {}, ['--runtime-flag', `log=${log}`, '--runtime-flag', 'log-format=json', '--runtime-flag=--debug']);
    const lines = (await fsp.readFile(log, 'utf8')).trim().split('\n');
    assert.ok(lines.length > 0 && lines.every((l) => JSON.parse(l) !== null), lines.slice(0, 3).join('\n'));
    assert.ok(lines.some((l) => (JSON.parse(l) as { level?: string }).level === 'debug'), 'runc ran with --debug');
  });

  it('--logfile FILE: every line the build prints, RUN\'s output and the image ID too, goes to the file; a failure\'s status and message as well; --logsplit one file per platform', async () => {
    const ctx = path.join(t.dir, 'ctx-logfile');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN echo from-run-step\n`);
    const log = path.join(t.dir, 'build.log');
    const r = await skiff([...S(), 'build', '--logfile', log, '-t', 'localhost/logged:1', ctx]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.stdout, r.stderr], ['', '']);
    const text = await fsp.readFile(log, 'utf8');
    assert.match(text, /STEP 1\/2: FROM /);
    assert.match(text, /^from-run-step$/m);
    assert.match(text, /\n[0-9a-f]{64}\n$/);
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN exit 7\n`);
    const bad = await skiff([...S(), 'build', `--logfile=${log}`, ctx]);
    assert.notEqual(bad.code, 0);
    assert.equal(bad.stderr, '');
    assert.match(await fsp.readFile(log, 'utf8'), /skiff: .*RUN exit 7/);
    // --logsplit: one log per platform, FILE_OS_ARCH, each image in the --manifest list.
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'FROM scratch\nCOPY Containerfile /c\n');
    const split = await skiff([...S(), 'build', '--platform', 'linux/amd64,linux/arm64/v8', '--manifest', 'localhost/logsplit:1', '--logfile', log, '--logsplit', ctx]);
    assert.equal(split.code, 0, split.stderr);
    assert.deepEqual([split.stdout, split.stderr], ['', '']);
    for (const arch of ['amd64', 'arm64']) assert.match(await fsp.readFile(`${log}_linux_${arch}`, 'utf8'), /STEP 2\/2: COPY Containerfile \/c\n(.*\n)*[0-9a-f]{64}\n$/);
    const listed = JSON.parse(await ok(skiff([...S(), 'manifest', 'inspect', 'localhost/logsplit:1']))) as { manifests: { platform: { architecture: string } }[] };
    assert.deepEqual(listed.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    for (const [flags, msg] of [[['--logsplit', '--logfile', log], /give --platform/], [['--logsplit', '--platform', 'linux/amd64'], /give --logfile FILE/]] as const) {
      const r = await skiff([...S(), 'build', ...flags, ctx]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, msg);
    }
  });

  it('--os-version and --os-feature (FEATURE- removes one) in the image config, where buildah puts them', async () => {
    const flags = ['--os-version', '10.0.17763.1', '--os-feature', 'win32k', '--os-feature', 'extra', '--os-feature', 'extra-', '--os-feature', 'gpu'];
    const mine = await build('osfields', 'FROM scratch\nCOPY a.txt /a.txt\n', { 'a.txt': 'a\n' }, flags);
    await ok(run('buildah', [...S(), '--storage-driver', 'overlay', 'bud', '-q', ...flags, '-t', 'localhost/osfields-buildah:1', path.join(t.dir, 'ctx-osfields')]));
    const theirs = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/osfields-buildah:1`]))) as Record<string, unknown>;
    assert.equal(mine.config['os.version'], '10.0.17763.1');
    assert.deepEqual(mine.config['os.features'], ['win32k', 'gpu']);
    for (const k of ['os.version', 'os.features']) assert.deepEqual(mine.config[k], theirs[k], k);
    // (Right after os, as Go writes the struct.)
    const keys = Object.keys(mine.config);
    assert.equal(keys[keys.indexOf('os') + 1], 'os.version');
  });

  it('--skip-unused-stages: an unused stage is not built (as buildah); with =false it is, and its failure fails the build', async () => {
    const file = `FROM ${base} AS unused\nRUN exit 3\nFROM ${base}\nCOPY a.txt /a.txt\n`;
    await build('skip-unused', file, { 'a.txt': 'a\n' });
    await build('skip-unused', file, { 'a.txt': 'a\n' }, ['--skip-unused-stages=true']);
    const all = await skiff([...S(), 'build', '--skip-unused-stages=false', path.join(t.dir, 'ctx-skip-unused')]);
    assert.notEqual(all.code, 0);
    assert.match(all.stderr, /RUN exit 3/);
  });

  it('--cache-ttl: cached layers made longer ago than the duration are not used; 0 is --no-cache', async () => {
    const file = `FROM ${base}\nCOPY a.txt /a.txt\n`;
    const files = { 'a.txt': 'ttl\n' };
    const first = await build('ttl', file, files);
    assert.doesNotMatch(first.stderr, /Using cache/);
    assert.match((await build('ttl', file, files, ['--cache-ttl', '1h'])).stderr, /Using cache/);
    assert.doesNotMatch((await build('ttl', file, files, ['--cache-ttl', '0'])).stderr, /Using cache/);
    // The entries made two hours ago: outside 1h30m, inside 3h.
    const dir = `${t.dir}/root/skiff-cache`;
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const f of await fsp.readdir(dir)) await fsp.utimes(path.join(dir, f), old, old);
    assert.doesNotMatch((await build('ttl', file, files, ['--cache-ttl', '1h30m'])).stderr, /Using cache/);
    assert.match((await build('ttl', file, files, ['--cache-ttl', '3h'])).stderr, /Using cache/);
    const bad = await skiff([...S(), 'build', '--cache-ttl', '1d', path.join(t.dir, 'ctx-ttl')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--cache-ttl: invalid duration "1d"/);
  });

  it('--http-proxy (default on, as buildah): RUN sees the proxy variables skiff was given, under the image\'s ENV and a build argument, never in the image; --http-proxy=false none; buildah the same', async () => {
    const ctx = path.join(t.dir, 'ctx-proxy');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nARG FTP_PROXY\nRUN echo "[$http_proxy][$HTTPS_PROXY][$no_proxy][$FTP_PROXY]" > /before\nENV no_proxy=image.example\nRUN echo "[$http_proxy][$HTTPS_PROXY][$no_proxy][$FTP_PROXY]" > /after\n`);
    const env = { ...process.env, http_proxy: 'http://127.0.0.1:3128', HTTPS_PROXY: 'http://127.0.0.1:3129', no_proxy: 'localhost', FTP_PROXY: 'ftp://127.0.0.1:21' };
    const ref = (n: string): string => `containers-storage:[overlay@${t.dir}/root+${t.dir}/run]localhost/${n}:1`;
    const files = async (n: string): Promise<Flat> => flatRef(ref(n));
    await ok(run(process.execPath, [SKIFF, ...S(), 'build', '-q', '--build-arg', 'FTP_PROXY=ftp://arg.example', '-t', 'localhost/proxy:1', ctx], { env }));
    const mine = await files('proxy');
    hasContent(mine, 'before', '[http://127.0.0.1:3128][http://127.0.0.1:3129][localhost][ftp://arg.example]\n');
    hasContent(mine, 'after', '[http://127.0.0.1:3128][http://127.0.0.1:3129][image.example][ftp://arg.example]\n');
    const cfg = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', ref('proxy')]))) as { config: { Env: string[] } };
    assert.deepEqual(cfg.config.Env.filter((e) => /proxy/i.test(e)), ['no_proxy=image.example'], 'only the ENV instruction\'s in the image');
    await ok(run(process.execPath, [SKIFF, ...S(), 'build', '-q', '--no-cache', '--http-proxy=false', '--build-arg', 'FTP_PROXY=ftp://arg.example', '-t', 'localhost/noproxy:1', ctx], { env }));
    hasContent(await files('noproxy'), 'before', '[][][][ftp://arg.example]\n');
    // A proxy build argument needs no ARG (Docker's predefined arguments), and is not in the history either.
    await ok(run(process.execPath, [SKIFF, ...S(), 'build', '-q', '--no-cache', '--http-proxy=false', '--compress', '--disable-content-trust', '--build-arg', 'http_proxy=http://arg.example:8080', '-t', 'localhost/argproxy:1', ctx], { env }));
    hasContent(await files('argproxy'), 'before', '[http://arg.example:8080][][][]\n');
    const hist = JSON.stringify((JSON.parse(await ok(skiff(['inspect', '--config', '--raw', ref('argproxy')]))) as { history: unknown[] }).history);
    assert.ok(!hist.includes('arg.example') && !hist.includes('127.0.0.1'), hist);
    // buildah, given the same environment and the same base, writes the same files.
    await ok(run('buildah', [...S(), '--storage-driver', 'overlay', 'bud', '-q', '--isolation', 'chroot', '--build-arg', 'FTP_PROXY=ftp://arg.example', '-t', 'localhost/proxy-buildah:1', ctx], { env }));
    const theirs = await files('proxy-buildah');
    for (const f of ['before', 'after']) assert.equal(mine.get(f), theirs.get(f), f);
  });

  it('seccomp: RUN has the system\'s profile (containers-common), as buildah\'s RUN does; seccomp=unconfined none; seccomp=FILE that profile', async () => {
    const ctx = path.join(t.dir, 'ctx-seccomp');
    await fsp.mkdir(ctx, { recursive: true });
    await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN grep Seccomp: /proc/self/status > /mode.txt; if mkdir /made 2>/dev/null; then echo made; else echo refused; fi > /mkdir.txt\n`);
    const read = async (dir: string, f: string): Promise<string> => (await fsp.readFile(path.join(dir, f), 'utf8')).trim();
    const build = async (name: string, flags: string[]): Promise<string> => {
      const out = path.join(t.dir, `seccomp-${name}`);
      await ok(skiff([...S(), 'build', '-q', '--no-cache', ...flags, '--output', `type=local,dest=${out}`, ctx]));
      return out;
    };
    const def = await build('default', []);
    assert.equal(await read(def, 'mode.txt'), 'Seccomp:\t2', 'a filter is in place');
    assert.equal(await read(def, 'mkdir.txt'), 'made');
    assert.equal(await read(await build('unconfined', ['--security-opt', 'seccomp=unconfined']), 'mode.txt'), 'Seccomp:\t0');
    // A profile of one's own, in Docker's format: mkdir refused with EPERM, everything else allowed.
    const profile = path.join(t.dir, 'no-mkdir.json');
    await fsp.writeFile(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }], syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }));
    const own = await build('own', ['--security-opt', `seccomp=${profile}`]);
    assert.equal(await read(own, 'mode.txt'), 'Seccomp:\t2');
    assert.equal(await read(own, 'mkdir.txt'), 'refused');
    await fsp.writeFile(path.join(t.dir, 'bad.json'), '{"syscalls": 3}');
    const bad = await skiff([...S(), 'build', '-q', '--security-opt', `seccomp=${t.dir}/bad.json`, ctx]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /seccomp profile .*bad\.json: expected defaultAction and a syscalls list/);
  });

  it('RUN --mount=type=ssh with --ssh: a socket of the step\'s own at the target, SSH_AUTH_SOCK set, nothing in the image; required without --ssh refused', async () => {
    const agentPath = path.join(t.dir, 'agent.sock');
    const agent = (await import('node:net')).createServer((c) => c.end());
    await new Promise<void>((r) => agent.listen(agentPath, r));
    try {
      const file = `FROM ${base}\nRUN --mount=type=ssh --mount=type=ssh,id=other,target=/ssh/other.sock,mode=0660,uid=1000 ` +
        'sh -c \'[ -S "$SSH_AUTH_SOCK" ] && echo "$SSH_AUTH_SOCK" > /sock.txt; stat -c "%a %u" /ssh/other.sock > /other.txt\'\n';
      const b = await build('ssh', file, {}, ['--ssh', `default=${agentPath}`, '--ssh', `other=${agentPath}`]);
      hasContent(b.flat, 'sock.txt', '/run/buildkit/ssh_agent.0\n');
      hasContent(b.flat, 'other.txt', '660 1000\n');
      assert.equal([...b.flat.keys()].filter((p) => p.startsWith('run/buildkit') || p.startsWith('ssh/')).filter((p) => !p.endsWith('/')).length, 0, 'no socket left in the image');
      // Not required and not given: the mount is left out; required: refused, naming the flag.
      const optional = await build('ssh-optional', `FROM ${base}\nRUN --mount=type=ssh echo "[$SSH_AUTH_SOCK]" > /env.txt\n`);
      hasContent(optional.flat, 'env.txt', '[]\n');
      const ctx = path.join(t.dir, 'ctx-ssh-req');
      await fsp.mkdir(ctx, { recursive: true });
      await fsp.writeFile(path.join(ctx, 'Containerfile'), `FROM ${base}\nRUN --mount=type=ssh,required true\n`);
      const req = await skiff([...S(), 'build', ctx]);
      assert.equal(req.code, 1);
      assert.match(req.stderr, /RUN --mount=type=ssh,id=default: no SSH agent for it \(give one with --ssh default\)/);
      const notSocket = await skiff([...S(), 'build', '--ssh', `default=${path.join(ctx, 'Containerfile')}`, ctx]);
      assert.equal(notSocket.code, 1);
      assert.match(notSocket.stderr, /is not an agent's socket \(key files are not supported/);
    } finally {
      agent.close();
    }
  });

  it('--platform builds for that platform: its base from a multi-platform index (a local image for another platform is not used), FROM scratch\'s config; several platforms gather in --manifest; --all-platforms takes the base\'s', async () => {
    const reg = await startRegistry();
    try {
      const mp = path.join(t.dir, 'mp-layout');
      await makeMultiPlatformLayout(mp, 'mp', [{ ...sampleSpec(1), architecture: 'amd64' }, { ...sampleSpec(2), architecture: 'arm64', variant: 'v8' }]);
      await ok(skiff(['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${mp}:mp`, `docker://${reg.host}/mp/base:1`]));
      const file = `FROM ${reg.host}/mp/base:1\nCOPY a.txt /a.txt\n`;
      const tls = ['--tls-verify=false'];
      const arm = await build('plat-arm', file, { 'a.txt': 'a\n' }, [...tls, '--platform', 'linux/arm64']);
      assert.equal((arm.config as { architecture: string }).architecture, 'arm64');
      hasContent(arm.flat, 'etc/new', 'seed 2\n');
      // The base's name now points at the arm64 image: a host build does not take it, it pulls the host's.
      const host = await build('plat-host', file, { 'a.txt': 'a\n' }, tls);
      assert.equal((host.config as { architecture: string }).architecture, 'amd64');
      hasContent(host.flat, 'etc/new', 'seed 1\n');
      const scratch = await build('plat-scratch', 'FROM scratch\nCOPY a.txt /a.txt\n', { 'a.txt': 'a\n' }, ['--platform', 'linux/arm64/v8']);
      assert.deepEqual([(scratch.config as { architecture: string }).architecture, (scratch.config as { variant?: string }).variant], ['arm64', 'v8']);
      // Several platforms: one image each, in the --manifest list, whose ID is printed.
      const ctx = path.join(t.dir, 'ctx-plat-arm');
      const multi = await skiff([...S(), 'build', '-q', ...tls, '--platform', 'linux/amd64,linux/arm64', '--manifest', 'localhost/plat-list:1', ctx]);
      assert.equal(multi.code, 0, multi.stderr);
      const listed = JSON.parse(await ok(skiff([...S(), 'manifest', 'inspect', 'localhost/plat-list:1']))) as { manifests: { platform: { architecture: string } }[] };
      assert.deepEqual(listed.manifests.map((m) => m.platform.architecture), ['amd64', 'arm64']);
      const listId = JSON.parse(await fsp.readFile(`${t.dir}/root/overlay-images/images.json`, 'utf8')).find((i: { names?: string[] }) => i.names?.includes('localhost/plat-list:1')).id as string;
      assert.equal(multi.stdout, `${listId}\n`);
      // --all-platforms: the platforms the base is available for, found in its index (podman's), into the list.
      const all = await skiff([...S(), 'build', '-q', ...tls, '--all-platforms', '--manifest', 'localhost/plat-all:1', ctx]);
      assert.equal(all.code, 0, all.stderr);
      const allListed = JSON.parse(await ok(skiff([...S(), 'manifest', 'inspect', 'localhost/plat-all:1']))) as { manifests: { platform: { architecture: string; variant?: string } }[] };
      assert.deepEqual(allListed.manifests.map((m) => `${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}`), ['amd64', 'arm64/v8']);
      const scratchCtx = path.join(t.dir, 'ctx-plat-scratch');
      for (const [flags, dir, msg] of [
        [['--all-platforms'], ctx, /give --manifest LIST/],
        [['--all-platforms', '--platform', 'linux/amd64', '--manifest', 'localhost/x:1'], ctx, /--all-platforms and --platform/],
        [['--all-platforms', '--manifest', 'localhost/x:1'], scratchCtx, /no base image to take platforms from/],
      ] as const) {
        const r = await skiff([...S(), 'build', '-q', ...tls, ...flags, dir]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, msg);
      }
      for (const [flags, msg] of [[['--platform', 'linux/amd64,linux/arm64'], /several platforms need --manifest/], [['--platform', 'linux/amd64,linux/arm64', '--manifest', 'localhost/x:1', '-t', 'localhost/y:1'], /name the list with --manifest, not -t/], [['--platform', 'linux'], /--platform "linux": expected OS\/ARCH/]] as const) {
        const r = await skiff([...S(), 'build', ...flags, ctx]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, msg);
      }
    } finally {
      await reg.stop();
    }
  });
});
