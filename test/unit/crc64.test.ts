import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Crc64 } from '../../src/store/crc64.js';

/** The definition, bit by bit with BigInt: slow and obviously right. */
function reference(buf: Uint8Array): string {
  const poly = 0xd800000000000000n;
  let crc = 0xffffffffffffffffn;
  for (const byte of buf) {
    crc ^= BigInt(byte);
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return (crc ^ 0xffffffffffffffffn).toString(16).padStart(16, '0');
}

describe('CRC-64/ISO (tar-split file checksums)', () => {
  it('gives the catalogue check value (Go hash/crc64 ISO of "123456789")', () => {
    assert.equal(new Crc64().update(Buffer.from('123456789')).digest().toString('hex'), 'b90956c775a41001');
  });
  it('matches the bit-by-bit definition for every length, alignment and split of the input', () => {
    const data = randomBytes(4096 + 37);
    for (const len of [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096 + 37]) {
      for (const start of [0, 1, 2, 3, 4, 5]) {
        const piece = data.subarray(start, Math.min(data.length, start + len));
        const want = reference(piece);
        assert.equal(new Crc64().update(piece).digest().toString('hex'), want, `len ${len} offset ${start}`);
        const split = new Crc64();
        split.update(piece.subarray(0, 3)).update(piece.subarray(3, 11)).update(piece.subarray(11));
        assert.equal(split.digest().toString('hex'), want, `len ${len} offset ${start}, in pieces`);
      }
    }
  });
  it('handles inputs larger than its 64 KiB scratch when unaligned', () => {
    const big = randomBytes(200_003);
    const odd = big.subarray(1);
    assert.equal(new Crc64().update(odd).digest().toString('hex'), reference(odd));
  });
});
