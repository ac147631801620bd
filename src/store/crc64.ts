/**
 * CRC-64/ISO as Go's hash/crc64 with crc64.ISO computes it (tar-split's file checksums): reflected polynomial
 * 0xD800000000000000, initial value and final xor all ones. Two 32-bit halves instead of BigInt, eight bytes per
 * step read as two words ("slicing-by-8": eight tables, each byte's effect looked up where it lands). Byte by byte
 * it was a third of the main thread's time when storing a 150 MB image: ~0.45 GB/s, now ~1.7 GB/s.
 */
const LO: Uint32Array[] = [];
const HI: Uint32Array[] = [];
for (let t = 0; t < 8; t++) {
  LO.push(new Uint32Array(256));
  HI.push(new Uint32Array(256));
}
for (let i = 0; i < 256; i++) {
  let hi = 0;
  let lo = i;
  for (let k = 0; k < 8; k++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry) hi = (hi ^ 0xd8000000) >>> 0;
  }
  LO[0]![i] = lo;
  HI[0]![i] = hi;
}
// Table t: the CRC of byte i followed by t zero bytes.
for (let t = 1; t < 8; t++) {
  for (let i = 0; i < 256; i++) {
    const plo = LO[t - 1]![i]!;
    const phi = HI[t - 1]![i]!;
    const idx = plo & 0xff;
    LO[t]![i] = (((plo >>> 8) | ((phi & 0xff) << 24)) ^ LO[0]![idx]!) >>> 0;
    HI[t]![i] = ((phi >>> 8) ^ HI[0]![idx]!) >>> 0;
  }
}
const [L0, L1, L2, L3, L4, L5, L6, L7] = LO as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
const [H0, H1, H2, H3, H4, H5, H6, H7] = HI as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/** Words are read in the machine's order; on a big-endian machine every byte goes the slow way. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Unaligned input is copied here first, a piece at a time (copying costs far less than the CRC). */
const scratch = new Uint8Array(64 * 1024);

export class Crc64 {
  private hi = 0xffffffff;
  private lo = 0xffffffff;

  update(buf: Uint8Array): this {
    let off = 0;
    if (LITTLE_ENDIAN) {
      if ((buf.byteOffset & 3) === 0) off = this.words(buf, buf.length & ~7);
      else {
        while (buf.length - off >= 8) {
          const n = Math.min(scratch.length, (buf.length - off) & ~7);
          scratch.set(buf.subarray(off, off + n));
          this.words(scratch, n);
          off += n;
        }
      }
    }
    this.bytes(buf, off);
    return this;
  }

  /** The first `n` bytes (a multiple of 8; `buf` 4-byte aligned) as little-endian word pairs; returns `n`. */
  private words(buf: Uint8Array, n: number): number {
    if (n === 0) return 0;
    let lo = this.lo;
    let hi = this.hi;
    const w = new Uint32Array(buf.buffer, buf.byteOffset, n >>> 2);
    for (let j = 0; j < w.length; j += 2) {
      const a = (lo ^ w[j]!) >>> 0;
      const b = (hi ^ w[j + 1]!) >>> 0;
      lo = (L7[a & 0xff]! ^ L6[(a >>> 8) & 0xff]! ^ L5[(a >>> 16) & 0xff]! ^ L4[a >>> 24]! ^ L3[b & 0xff]! ^ L2[(b >>> 8) & 0xff]! ^ L1[(b >>> 16) & 0xff]! ^ L0[b >>> 24]!) >>> 0;
      hi = (H7[a & 0xff]! ^ H6[(a >>> 8) & 0xff]! ^ H5[(a >>> 16) & 0xff]! ^ H4[a >>> 24]! ^ H3[b & 0xff]! ^ H2[(b >>> 8) & 0xff]! ^ H1[(b >>> 16) & 0xff]! ^ H0[b >>> 24]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
    return n;
  }

  /** Bytes from `from` to the end, one at a time. */
  private bytes(buf: Uint8Array, from: number): void {
    let lo = this.lo;
    let hi = this.hi;
    for (let i = from; i < buf.length; i++) {
      const idx = (lo ^ buf[i]!) & 0xff;
      lo = (((lo >>> 8) | ((hi & 0xff) << 24)) ^ L0[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ H0[idx]!) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** The checksum as 8 big-endian bytes (how tar-split stores it, base64-encoded). */
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32BE((this.hi ^ 0xffffffff) >>> 0, 0);
    out.writeUInt32BE((this.lo ^ 0xffffffff) >>> 0, 4);
    return out;
  }
}
