/** The RUN-step differ on real overlay-style upper dirs (char-device whiteouts, opaque xattrs): needs root for mknod. */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as tar from 'tar-stream';
import { diffUpperDir } from '../../src/build/diff.js';
import { ok, run, tempDir } from '../kit/run.js';

async function entries(buf: Buffer): Promise<string[]> {
  const out: string[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, s, next) => {
    out.push(`${h.type} ${h.name}${h.linkname ? ` -> ${h.linkname}` : ''} ${h.uid}:${h.gid} ${(h.mode ?? 0).toString(8)} ${h.mtime?.getTime() === 0 ? 'epoch' : ''}`.trim());
    s.resume();
    s.on('end', next);
  });
  const done = new Promise<void>((r) => ex.on('finish', () => r()));
  Readable.from([buf]).pipe(ex);
  await done;
  return out;
}

describe('RUN-step differ (overlay upper dir -> layer tar)', () => {
  let t: ReturnType<typeof tempDir>;
  let lower: string;
  let upper: string;
  before(async () => {
    t = tempDir();
    lower = path.join(t.dir, 'lower');
    upper = path.join(t.dir, 'upper');
    for (const d of ['etc', 'var/cache', 'keep']) await fsp.mkdir(path.join(lower, d), { recursive: true });
    for (const f of ['etc/passwd', 'etc/gone', 'etc/resolv.conf', 'var/cache/old']) await fsp.writeFile(path.join(lower, f), 'x');
    for (const d of ['etc', 'var/cache', 'newdir', 'a', 'run']) await fsp.mkdir(path.join(upper, d), { recursive: true });
    await fsp.writeFile(path.join(upper, 'etc/new'), 'new\n');
    await fsp.chown(path.join(upper, 'etc/new'), 1000, 1000);
    await fsp.writeFile(path.join(upper, 'etc/hosts'), 'stub');
    await fsp.writeFile(path.join(upper, 'etc/resolv.conf'), 'changed');
    await ok(run('mknod', [path.join(upper, 'etc/gone'), 'c', '0', '0']));
    await ok(run('mknod', [path.join(upper, 'etc/never'), 'c', '0', '0']));
    await ok(run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(upper, 'var/cache')]));
    await ok(run('setfattr', ['-n', 'user.overlay.opaque', '-v', 'y', path.join(upper, 'newdir')]));
    await fsp.writeFile(path.join(upper, 'var/cache/y'), 'y');
    await fsp.writeFile(path.join(upper, 'a/h1'), 'linked');
    await fsp.link(path.join(upper, 'a/h1'), path.join(upper, 'a/h2'));
    await fsp.symlink('etc/new', path.join(upper, 's'));
    await ok(run('mkfifo', [path.join(upper, 'f')]));
    await ok(run('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind('${path.join(upper, 'sock')}')`]));
  });
  after(() => t.cleanup());

  const below = async (rel: string) => {
    const st = await fsp.lstat(path.join(lower, rel)).catch(() => undefined);
    return { exists: !!st, dir: !!st?.isDirectory() };
  };
  async function diff(timestamp?: number): Promise<{ buf: Buffer; diffID: string }> {
    const chunks: Buffer[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => { chunks.push(c); cb(); } });
    const r = await diffUpperDir(upper, sink, { below, ...(timestamp !== undefined ? { timestamp } : {}) });
    return { buf: Buffer.concat(chunks), diffID: r.diffID };
  }

  it('turns overlay whiteouts and opaque dirs into OCI ones, only where something below is hidden', async () => {
    const e = await entries((await diff()).buf);
    const names = e.map((x) => x.split(' ')[1]);
    assert.ok(names.includes('etc/.wh.gone'), 'whiteout for a file that exists below');
    assert.ok(!names.includes('etc/.wh.never'), 'no whiteout for a file that never existed');
    assert.ok(names.includes('var/cache/.wh..wh..opq'), 'opaque marker for a dir that exists below');
    assert.ok(!names.includes('newdir/.wh..wh..opq'), 'no opaque marker for a new dir');
    assert.ok(e.some((x) => x.startsWith('file etc/.wh.gone') && x.endsWith('epoch')), 'whiteouts at mtime 0');
    assert.ok(!names.includes('etc/hosts'), 'runtime stub left out');
    assert.ok(names.includes('etc/resolv.conf'), 'a changed file that existed below is kept');
    assert.ok(!names.some((n) => n?.startsWith('sock')), 'sockets skipped');
    assert.ok(e.some((x) => x.startsWith('link a/h2 -> a/h1')), 'hardlink kept as a link');
    assert.ok(e.some((x) => x.startsWith('symlink s -> etc/new')));
    assert.ok(e.some((x) => x.startsWith('fifo f')));
    assert.ok(e.some((x) => x.startsWith('file etc/new 1000:1000')), 'owners kept');
    assert.deepEqual(names, [...names].sort((a, b) => (a!.replace(/\/$/, '') < b!.replace(/\/$/, '') ? -1 : 1)), 'sorted');
  });

  it('is deterministic; --timestamp clamps mtimes', async () => {
    const a = await diff();
    const b = await diff();
    assert.equal(a.diffID, b.diffID);
    const c = await diff(1000);
    assert.notEqual(c.diffID, a.diffID);
    const ex = tar.extract();
    const times: number[] = [];
    ex.on('entry', (h, s, next) => { times.push(h.mtime!.getTime()); s.resume(); s.on('end', next); });
    const done = new Promise<void>((r) => ex.on('finish', () => r()));
    Readable.from([c.buf]).pipe(ex);
    await done;
    assert.ok(times.every((ms) => ms <= 1000 * 1000));
  });
});
