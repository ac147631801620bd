import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { crc32, gunzipSync, gzipSync } from 'node:zlib';
import { BLOCK, freeGzipSlots, ParallelGzip } from '../../src/archive/pgzip.js';

async function pgzip(data: Buffer, level = 6, pieces = 3, knownCrc32?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  const step = Math.max(1, Math.ceil(data.length / pieces));
  const parts = [];
  for (let i = 0; i < data.length; i += step) parts.push(data.subarray(i, i + step));
  await pipeline(Readable.from(parts), new ParallelGzip(level, undefined, knownCrc32), new Writable({ write: (c: Buffer, _e, cb) => void (out.push(c), cb()) }));
  return Buffer.concat(out);
}

function random(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  let b = createHash('sha256').update(seed).digest();
  for (let off = 0; off < n; off += 32) {
    b = createHash('sha256').update(b).digest();
    b.copy(out, off, 0, Math.min(32, n - off));
  }
  return out;
}

describe('parallel gzip', () => {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(40_000));
  const rnd = random(1_300_000, 'x');
  // Random and text interleaved in pieces that do not line up with the compressor's blocks.
  const mixed = Buffer.concat(Array.from({ length: 12 }, (_, i) => (i % 2 ? text.subarray(0, 70_001) : rnd.subarray(i * 50_000, i * 50_000 + 90_003))));
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.from('a')],
    ['text', text],
    ['random', rnd],
    ['mixed', mixed],
    ['exactly one block', Buffer.alloc(BLOCK, 1)],
    ['one block and a byte', Buffer.alloc(BLOCK + 1, 2)],
  ];
  for (const [name, data] of cases) {
    it(`${name}: gunzip gives the input back, system gzip agrees, the same input gives the same bytes`, async () => {
      const z = await pgzip(data);
      assert.ok(gunzipSync(z).equals(data));
      const sys = spawnSync('gzip', ['-dc'], { input: z, maxBuffer: 1 << 26 });
      assert.equal(sys.status, 0, sys.stderr?.toString());
      assert.ok(sys.stdout.equals(data));
      assert.ok((await pgzip(data, 6, 7)).equals(z), 'how the input was chunked does not matter');
    });
  }

  it('random data is stored (not bigger than the input by more than framing), text compresses like zlib', async () => {
    const r = await pgzip(rnd);
    assert.ok(r.length < rnd.length * 1.001 + 100, `${r.length} for ${rnd.length}`);
    const t = await pgzip(text);
    assert.ok(t.length < gzipSync(text).length * 1.05, `${t.length} vs zlib ${gzipSync(text).length}`);
    const m = await pgzip(mixed);
    assert.ok(m.length < gzipSync(mixed).length * 1.05, `${m.length} vs zlib ${gzipSync(mixed).length}`);
  });

  it('a block that compresses to little is not held in a block-sized buffer while it waits to be written', async () => {
    const chunks: Buffer[] = [];
    await pipeline(Readable.from([Buffer.alloc(BLOCK * 3)]), new ParallelGzip(), new Writable({ write: (c: Buffer, _e, cb) => void (chunks.push(c), cb()) }));
    assert.ok(gunzipSync(Buffer.concat(chunks)).equals(Buffer.alloc(BLOCK * 3)));
    for (const c of chunks) assert.ok(c.buffer.byteLength < BLOCK / 2, `a ${c.length}-byte piece keeps ${c.buffer.byteLength} bytes`);
  });

  it('several streams at once share the process\'s blocks in flight; one destroyed part-way gives its slots back', async () => {
    const free = freeGzipSlots();
    const big = Buffer.concat(Array.from({ length: 24 }, (_, i) => Buffer.concat([text.subarray(0, BLOCK / 2), rnd.subarray(i * 1000, i * 1000 + BLOCK / 2)])));
    // One stream is destroyed after its first output, with blocks still compressing.
    const doomed = new ParallelGzip();
    const dead = new Promise<void>((resolve) => doomed.once('close', resolve));
    doomed.once('data', () => doomed.destroy());
    doomed.on('error', () => undefined);
    doomed.end(big);
    // Three more at the same time, all correct.
    const outs = await Promise.all([0, 1, 2].map(() => pgzip(big, 4, 9)));
    for (const z of outs) assert.ok(gunzipSync(z).equals(big));
    await dead;
    // Every slot is back once the doomed stream's blocks have finished in the pool.
    for (let i = 0; i < 100 && freeGzipSlots() !== free; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(freeGzipSlots(), free);
    assert.ok(gunzipSync(await pgzip(big, 4, 5)).equals(big), 'a stream after it runs');
  });

  it('with the CRC-32 known (a daemon export hashed as it arrived) the same bytes, and that CRC in the trailer', async () => {
    const z = await pgzip(mixed);
    assert.ok((await pgzip(mixed, 6, 3, crc32(mixed))).equals(z));
    const wrong = await pgzip(mixed, 6, 3, crc32(mixed) ^ 1);
    assert.equal(wrong.readUInt32LE(wrong.length - 8), (crc32(mixed) ^ 1) >>> 0);
    assert.throws(() => gunzipSync(wrong), /incorrect data check/);
  });

  it('level 0 stores everything; level 9 still round-trips', async () => {
    assert.ok(gunzipSync(await pgzip(text, 0)).equals(text));
    assert.ok((await pgzip(text, 0)).length > text.length);
    assert.ok(gunzipSync(await pgzip(mixed, 9)).equals(mixed));
  });
});
