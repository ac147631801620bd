import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { VerdictGate } from '../../src/core/digest.js';
import { hashFileRange, stopHashWorker } from '../../src/core/hash-worker.js';

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
