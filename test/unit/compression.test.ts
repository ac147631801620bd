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
