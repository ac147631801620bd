/**
 * gzip in parallel blocks, the way pigz and Go's pgzip (which containers/image uses) do it: the input is cut into
 * blocks, each deflated on its own in the libuv thread pool with the previous 32 KiB as its dictionary and ended
 * with a sync flush (so the pieces join into one DEFLATE stream), then written in order between one gzip header
 * and trailer (CRC-32 and length over the whole input). A block that does not compress (already compressed or
 * random data, common in layers) is stored as is instead of being searched for matches, which is what costs zlib
 * most. The output is an ordinary single-member gzip file; the same input always gives the same bytes.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zc, crc32, deflateRaw } from 'node:zlib';

/**
 * zlib's level when none is asked for. containers/image compresses with pgzip at its default, whose output on real
 * layers zlib matches at level 4 at about the same CPU: a 150 MB layer of /usr files became 52.06 MB with skopeo,
 * 51.77 MB at zlib's 4 (1.9 s of CPU, skopeo 1.6 s), 50.34 MB at zlib's 6 (3.0 s of CPU: a recompressing copy took
 * twice skopeo's time). Level 3 was 53.05 MB. A level given (--dest-compress-level) is zlib's.
 */
export const DEFAULT_GZIP_LEVEL = 4;

/**
 * Input per block. (512 KiB was tried: ~8 MiB more peak RSS with two layers compressing, and no time gain that
 * held up when measured again alternately.)
 */
export const BLOCK = 256 * 1024;
const DICT = 32 * 1024;
/** Blocks are judged in pieces of this size: a piece whose bytes look random is stored, not searched. */
const PIECE = 16 * 1024;
/**
 * Every STRIDE-th byte of a piece is counted: 2,048 samples. On so few, random bytes measure ~7.91 bits, not 8
 * (the estimate is low by ~255/(2n ln 2)), hence the threshold below; text is ~4.5, machine code ~6.
 */
const STRIDE = 8;
const RANDOM_BITS = 7.85;

const SAMPLES = PIECE / STRIDE;
/** c * log2(c) for every count a sample can reach: the entropy sum without a logarithm per byte value. */
const C_LOG_C = Float64Array.from({ length: SAMPLES + 1 }, (_, c) => (c ? c * Math.log2(c) : 0));

/**
 * Does this piece look incompressible? Zero-order entropy of sampled bytes near 8 bits per byte is what
 * compressed, encrypted and random data have. Storing such data is what Go's deflate (pgzip, containers/image)
 * effectively does; zlib spends most of its time searching it for matches.
 */
function looksIncompressible(piece: Buffer): boolean {
  if (piece.length < PIECE) return false;
  const counts = new Uint16Array(256);
  for (let i = 0; i < PIECE; i += STRIDE) counts[piece[i]!]!++;
  // H = -sum (c/n) log2(c/n) = log2(n) - (1/n) sum c log2(c)
  let sum = 0;
  for (let v = 0; v < 256; v++) sum += C_LOG_C[counts[v]!]!;
  return Math.log2(SAMPLES) - sum / SAMPLES > RANDOM_BITS;
}

/**
 * One raw DEFLATE piece, in one thread-pool job: zlib's output buffer (16 KiB unless told) is made big enough for
 * all of it. With the default, every 16 KiB of output went back to the main thread for the next call, so a block
 * took ~6 trips through the pool, each waiting for the main thread: on a layer of real files (/usr) the two CPUs
 * were busy 1.58 of 2, and the copy took 1.21 s where 1.12 s does (below, with 8 blocks in flight).
 */
function deflate(data: Buffer, level: number, dictionary: Buffer | undefined, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflateRaw(data, { level, chunkSize: data.length + 4096, ...(dictionary ? { dictionary } : {}), finishFlush: last ? zc.Z_FINISH : zc.Z_SYNC_FLUSH }, (e, out) => {
      if (e) reject(e);
      // (The output is a view of that buffer: where it is much smaller, a copy lets the rest go now.)
      else resolve(out.length < out.buffer.byteLength / 2 ? Buffer.from(out) : out);
    }),
  );
}

/** DEFLATE stored blocks for `data` (byte-aligned, as every block before ends with a sync flush), in pieces. */
function stored(data: Buffer, last: boolean): Buffer[] {
  const parts: Buffer[] = [];
  if (data.length === 0) return last ? [Buffer.from([0x03, 0x00])] : [];
  for (let off = 0; off < data.length; off += 0xffff) {
    const piece = data.subarray(off, Math.min(off + 0xffff, data.length));
    const final = last && off + piece.length >= data.length;
    const head = Buffer.alloc(5);
    head[0] = final ? 1 : 0;
    head.writeUInt16LE(piece.length, 1);
    head.writeUInt16LE(~piece.length & 0xffff, 3);
    parts.push(head, piece);
  }
  return parts;
}

interface Run {
  start: number;
  end: number;
  store: boolean;
}

/** A block's runs of pieces that compress and pieces that look incompressible (neighbouring runs differ). */
function planRuns(data: Buffer): Run[] {
  const runs: Run[] = [];
  for (let off = 0; off < data.length || runs.length === 0; off += PIECE) {
    const end = Math.min(off + PIECE, data.length);
    const store = looksIncompressible(data.subarray(off, end));
    const prev = runs.at(-1);
    if (prev && prev.store === store) prev.end = end;
    else runs.push({ start: off, end, store });
    if (end >= data.length) break;
  }
  return runs;
}

/**
 * One block: runs of pieces that compress are deflated (with the 32 KiB before them as dictionary), runs that
 * look incompressible are stored; every run ends byte-aligned (sync flush), the stream's last one final. A run
 * whose 32 KiB before are all incompressible gets no dictionary: matches into random bytes are not found, and
 * loading one into zlib (deflateSetDictionary) cost ~4 % of a copy's CPU where layers mix both kinds of data.
 */
async function compressBlock(data: Buffer, runs: Run[], level: number, dictionary: Buffer | undefined, last: boolean): Promise<Buffer[]> {
  if (level === 0) return stored(data, last);
  const out: Buffer[] = [];
  for (const [i, r] of runs.entries()) {
    const final = last && i === runs.length - 1;
    const piece = data.subarray(r.start, r.end);
    if (r.store) out.push(...stored(piece, final));
    else {
      const prev = runs[i - 1];
      const randomBefore = prev !== undefined && prev.end - prev.start >= DICT;
      const before = randomBefore ? Buffer.alloc(0) : r.start >= DICT ? data.subarray(r.start - DICT, r.start) : Buffer.concat([dictionary ?? Buffer.alloc(0), data.subarray(0, r.start)]).subarray(-DICT);
      out.push(await deflate(piece, level, before.length ? before : undefined, final));
    }
  }
  // One buffer per block: a copy of 256 KiB costs less than passing its pieces one by one down the pipeline.
  return [out.length === 1 ? out[0]! : Buffer.concat(out)];
}

/** A gzip compressor stream: up to `parallel` blocks in the thread pool at once, written out in order. */
export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private crc = 0;
  private total = 0;
  private prevTail: Buffer | undefined;
  private prevTailRandom = false;
  private headerSent = false;
  private readonly inFlight: Promise<Buffer[]>[] = [];

  /**
   * `parallel`: blocks in the thread pool at once. 8 keeps two CPUs busy where 4 left gaps while the main thread
   * took each finished block out and handed the next one in (real files, level 4: 1.16 -> 1.12 s; 16: no better).
   */
  constructor(
    private readonly level = DEFAULT_GZIP_LEVEL,
    private readonly parallel = 8,
  ) {
    super();
  }

  private header(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    // mtime 0, XFL as gzip sets it for the level, OS 3 (Unix).
    this.push(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, this.level >= 9 ? 2 : this.level === 1 ? 4 : 0, 0x03]));
  }

  /** Queue a block for compression; when `parallel` are queued, wait for the oldest and write it. */
  private async block(data: Buffer, last: boolean): Promise<void> {
    this.crc = crc32(data, this.crc);
    this.total += data.length;
    const runs = planRuns(data);
    // (The block before ended with 32 KiB or more of incompressible bytes: nothing to match against.)
    const dict = this.prevTailRandom ? undefined : this.prevTail;
    const tail = runs.at(-1)!;
    this.prevTailRandom = tail.store && tail.end - tail.start >= DICT;
    this.prevTail = data.length >= DICT ? Buffer.from(data.subarray(data.length - DICT)) : Buffer.concat([this.prevTail ?? Buffer.alloc(0), data]).subarray(-DICT);
    const job = compressBlock(data, runs, this.level, dict, last);
    // (Awaited in order below; until then a failure must not count as an unhandled rejection.)
    job.catch(() => undefined);
    this.inFlight.push(job);
    while (this.inFlight.length >= this.parallel || (last && this.inFlight.length)) for (const b of await this.inFlight.shift()!) this.push(b);
  }

  override async _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): Promise<void> {
    try {
      this.header();
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      while (this.pendingLen >= BLOCK) {
        const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
        const rest = all.subarray(BLOCK);
        this.pending = rest.length ? [rest] : [];
        this.pendingLen = rest.length;
        await this.block(all.subarray(0, BLOCK), false);
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override async _flush(cb: TransformCallback): Promise<void> {
    try {
      this.header();
      await this.block(Buffer.concat(this.pending), true);
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.total % 0x100000000, 4);
      this.push(trailer);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}
