import { strict as assert } from 'node:assert';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { detectCompression, peek } from '../../src/archive/compression.js';

const drain = async (r: Readable): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('peek', () => {
  it('gives back the first bytes and leaves the stream whole', async () => {
    const r = Readable.from([Buffer.from('abc'), Buffer.from('defgh')]);
    assert.equal((await peek(r, 4)).toString(), 'abcd');
    assert.equal((await drain(r)).toString(), 'abcdefgh');
  });

  it('a stream shorter than asked for: its bytes come back and stay readable (it used to throw after end)', async () => {
    const r = Readable.from([Buffer.from('xy')]);
    assert.equal((await peek(r, 6)).toString(), 'xy');
    assert.equal((await drain(r)).toString(), 'xy');
    const empty = Readable.from([]);
    assert.equal((await peek(empty, 6)).length, 0);
  });

  it('detects compression by magic bytes', () => {
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8])), 'gzip');
    assert.equal(detectCompression(Buffer.from('BZh91AY')), 'bzip2');
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
    assert.equal(detectCompression(Buffer.from('plain')), 'none');
  });
});

describe('zstd compressor', () => {
  it('compresses on zstd\'s own thread in 1 MiB jobs: the same input gives the same bytes every time, and zstd(1) reads them', async () => {
    const { spawnSync } = await import('node:child_process');
    const { createHash } = await import('node:crypto');
    const { pipeline } = await import('node:stream/promises');
    const { createCompressor } = await import('../../src/archive/compression.js');
    // ~5 MiB, several jobs: text with some pseudo-random runs.
    let h = createHash('sha256').update('z').digest();
    const parts: Buffer[] = [];
    for (let i = 0; i < 80; i++) {
      parts.push(Buffer.from(`line ${i} of the quick brown fox\n`.repeat(1500)));
      h = createHash('sha256').update(h).digest();
      parts.push(Buffer.concat(Array.from({ length: 200 }, (_, j) => createHash('sha256').update(h).update(String(j)).digest())));
    }
    const data = Buffer.concat(parts);
    const once = async (): Promise<Buffer> => {
      const out: Buffer[] = [];
      const c = createCompressor('zstd')!;
      c.on('data', (b: Buffer) => out.push(b));
      await pipeline(Readable.from([data.subarray(0, 1_000_003), data.subarray(1_000_003)]), c);
      return Buffer.concat(out);
    };
    const [a, b] = await Promise.all([once(), once()]);
    assert.ok(a.equals(b), 'two runs at once gave different bytes');
    assert.ok(a.length < data.length / 2);
    const back = spawnSync('zstd', ['-d', '-c'], { input: a, maxBuffer: 1 << 26 });
    assert.equal(back.status, 0, back.stderr?.toString());
    assert.ok(back.stdout.equals(data));
  });
});
