import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { crc32 } from 'node:zlib';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { VerdictGate } from '../../src/core/digest.js';
import { followTar, hashFileRange, stopHashWorker } from '../../src/core/hash-worker.js';
import { tarHeader } from '../../src/archive/tar-append.js';
import { TarTree } from '../../src/archive/tar-index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-hash-worker-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('hashFileRange (digests of file ranges on a thread of their own)', () => {
  it('hashes ranges as createHash does, several at once, sha256 and sha512; a range past the end says how much it read', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const file = path.join(dir, 'data');
    writeFileSync(file, data);
    const want = (start: number, length: number, alg = 'sha256') => createHash(alg).update(data.subarray(start, start + length)).digest('hex');
    const ranges: [number, number][] = [[0, data.length], [512, 1 << 20], [(1 << 20) + 7, 2 * (1 << 20)], [100, 0], [data.length - 10, 10]];
    const got = await Promise.all(ranges.map(([s, n]) => hashFileRange(file, s, n, 'sha256')));
    for (const [i, [s, n]] of ranges.entries()) assert.deepEqual(got[i], { hex: want(s, n), size: n });
    assert.deepEqual(await hashFileRange(file, 1000, 5000, 'sha512'), { hex: want(1000, 5000, 'sha512'), size: 5000 });
    assert.deepEqual(await hashFileRange(file, data.length - 100, 1000, 'sha256'), { hex: want(data.length - 100, 100), size: 100 });
  });

  it('rejects for a missing file and when the answer is no longer wanted', async () => {
    await assert.rejects(hashFileRange(path.join(dir, 'nope'), 0, 10, 'sha256'), /ENOENT/);
    const file = path.join(dir, 'big');
    writeFileSync(file, randomBytes(8 << 20));
    const stop = new AbortController();
    const p = hashFileRange(file, 0, 8 << 20, 'sha256', stop.signal);
    stop.abort(new Error('not wanted'));
    await assert.rejects(p, /not wanted/);
    await assert.rejects(hashFileRange(file, 0, 10, 'sha256', stop.signal), /not wanted/);
  });
});

describe('followTar (the entries of a tar hashed as it is written)', () => {
  /** A tar: small and large files, an empty one, and a PAX header whose size overrides a wrong one in the next header. */
  function makeTar(): Buffer {
    const parts: Buffer[] = [];
    const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
    const add = (name: string, data: Buffer, headerSize = data.length) => parts.push(tarHeader(name, headerSize), data, pad(data.length));
    add('small.json', Buffer.from('{"a":1}'));
    add('big.tar', randomBytes(9 * 1024 * 1024 + 77));
    add('empty', Buffer.alloc(0));
    const record = (k: string, v: string) => {
      const body = ` ${k}=${v}\n`;
      let n = body.length + 1;
      while (`${n}${body}`.length !== n) n++;
      return `${n}${body}`;
    };
    const sized = randomBytes(700_000);
    const pax = Buffer.from(record('size', String(sized.length)));
    const paxHeader = tarHeader('PaxHeaders/sized', pax.length);
    paxHeader[156] = 'x'.charCodeAt(0);
    paxHeader.write('        ', 148, 'latin1');
    let sum = 0;
    for (const b of paxHeader) sum += b;
    paxHeader.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    parts.push(paxHeader, pax, pad(pax.length));
    add('sized', sized, 0);
    add('last', randomBytes(5 * 1024 * 1024));
    parts.push(Buffer.alloc(1024));
    return Buffer.concat(parts);
  }

  it('gives the digest of every entry by where its data starts, as TarTree finds them, whatever pieces the file grows by', async () => {
    const tar = makeTar();
    const file = path.join(dir, 'follow.tar');
    writeFileSync(file, '');
    const f = followTar(file)!;
    assert.ok(f);
    let at = 0;
    let i = 0;
    while (at < tar.length) {
      const n = Math.min(tar.length - at, [1, 511, 4096, 1 << 20, 3 << 20][i++ % 5]!);
      appendFileSync(file, tar.subarray(at, at + n));
      at += n;
      f.grown(at);
    }
    const hashes = await f.finish(tar.length);
    const tree = await TarTree.open(file);
    const names = await tree.list();
    assert.equal(hashes.size, names.length);
    for (const name of names) {
      const r = tree.range(name)!;
      const want = createHash('sha256').update(tar.subarray(r.offset, r.offset + r.size)).digest('hex');
      const bytes = tar.subarray(r.offset, r.offset + r.size);
      assert.deepEqual(hashes.get(r.offset), { size: r.size, hex: want, crc32: crc32(bytes) }, name);
    }
  });

  it('a file that is not a tar gives what it could (nothing), and a dropped follower holds nothing up', async () => {
    const file = path.join(dir, 'junk.tar');
    writeFileSync(file, randomBytes(100_000));
    const f = followTar(file)!;
    f.grown(100_000);
    const got = await f.finish(100_000);
    assert.ok(got.size <= 1);
    const g = followTar(file)!;
    g.drop();
    assert.equal((await g.finish(100_000)).size, 0);
    // A file that cannot be read (gone before the first bytes were reported): the finish still answers, empty.
    const h = followTar(path.join(dir, 'never-there.tar'))!;
    h.grown(8 << 20);
    assert.equal((await h.finish(8 << 20)).size, 0);
  });
});

describe('VerdictGate (a blob its source checks itself)', () => {
  const sink = (into: Buffer[]) => new Writable({ write: (c: Buffer, _e, cb) => (into.push(c), cb()) });
  const later = <T>(ms: number, f: () => T): Promise<T> => new Promise((r) => setTimeout(() => r(f()), ms));

  it('passes the bytes and ends only once the verdict is in', async () => {
    const parts = [randomBytes(1000), randomBytes(70_000)];
    const out: Buffer[] = [];
    let verdictAt = 0;
    const verdict = later(100, () => void (verdictAt = Date.now()));
    await pipeline(Readable.from(parts), new VerdictGate(verdict), sink(out));
    assert.ok(verdictAt > 0 && Date.now() >= verdictAt);
    assert.ok(Buffer.concat(out).equals(Buffer.concat(parts)));
  });

  it('fails the stream on a failing verdict, whether it comes before or after the last byte', async () => {
    const bad = () => Promise.reject(new Error('digest mismatch (test)'));
    // After the bytes: the end waits and then fails.
    const v1 = later(50, bad).then((p) => p);
    await assert.rejects(pipeline(Readable.from([Buffer.from('abc')]), new VerdictGate(v1), sink([])), /digest mismatch \(test\)/);
    // Before the end: the stream fails at once, while the source still has bytes to give.
    let sent = 0;
    const endless = new Readable({ read() { setTimeout(() => this.push(Buffer.alloc(1024, ++sent)), 5); } });
    const t0 = Date.now();
    await assert.rejects(pipeline(endless, new VerdictGate(later(50, bad).then((p) => p)), sink([])), /digest mismatch \(test\)/);
    assert.ok(Date.now() - t0 < 2000 && sent > 0);
  });
});

describe('the hashing thread and the process', () => {
  it('ranges the worker had not answered when it went away are hashed on the calling thread; a new worker starts later', async () => {
    const data = randomBytes(48 << 20);
    const file = path.join(dir, 'stop-data');
    writeFileSync(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    const p = Promise.all([hashFileRange(file, 0, data.length, 'sha256'), hashFileRange(file, 0, data.length, 'sha256')]);
    await stopHashWorker();
    for (const r of await p) assert.deepEqual(r, { hex: want, size: data.length });
    assert.deepEqual(await hashFileRange(file, 0, 1000, 'sha256'), { hex: createHash('sha256').update(data.subarray(0, 1000)).digest('hex'), size: 1000 });
  });

  it('a process that started the worker, used it or not, ends on its own', async () => {
    const { spawnSync } = await import('node:child_process');
    const mod = new URL('../../src/core/hash-worker.js', import.meta.url).href;
    const file = path.join(dir, 'exit-data');
    writeFileSync(file, randomBytes(1 << 20));
    for (const body of ['m.startHashWorker();', `m.startHashWorker(); console.log((await m.hashFileRange(${JSON.stringify(file)}, 0, 1 << 20, 'sha256')).size);`]) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(mod)}); ${body}`], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 0, `${body}: ${r.signal ?? ''} ${r.stderr}`);
    }
  });
});
