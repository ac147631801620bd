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
 * Input per block. On a layer of real files (/usr) 256 KiB blocks kept the two CPUs only ~1.6 busy (every block is
 * a trip through the thread pool and the main thread): 512 KiB, with SLOTS below, 1.14 -> 1.02 s (1 MiB: 0.97 s,
 * but the bench's generated layers, whose 64 KiB pieces alternate random and text, 4 % slower). Memory: SLOTS.
 */
export const BLOCK = 512 * 1024;
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
 * took ~6 trips through the pool, each waiting for the main thread (real files, level 4: 1.20 -> 1.16 s).
 * memLevel 9 (a hash table twice zlib's default) takes 7 % less CPU for 0.3 % more output.
 */
function deflate(data: Buffer, level: number, dictionary: Buffer | undefined, last: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflateRaw(data, { level, memLevel: 9, chunkSize: data.length + 4096, ...(dictionary ? { dictionary } : {}), finishFlush: last ? zc.Z_FINISH : zc.Z_SYNC_FLUSH }, (e, out) => {
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
  // The runs are deflated at the same time, not one after another: each one's dictionary is input, known now.
  const parts = runs.map((r, i): Buffer[] | Promise<Buffer> => {
    const final = last && i === runs.length - 1;
    const piece = data.subarray(r.start, r.end);
    if (r.store) return stored(piece, final);
    const prev = runs[i - 1];
    const randomBefore = prev !== undefined && prev.end - prev.start >= DICT;
    const before = randomBefore ? Buffer.alloc(0) : r.start >= DICT ? data.subarray(r.start - DICT, r.start) : Buffer.concat([dictionary ?? Buffer.alloc(0), data.subarray(0, r.start)]).subarray(-DICT);
    return deflate(piece, level, before.length ? before : undefined, final);
  });
  const out = (await Promise.all(parts)).flat();
  // One buffer per block: a copy costs less than passing its pieces one by one down the pipeline.
  return [out.length === 1 ? out[0]! : Buffer.concat(out)];
}

/**
 * Blocks being compressed at once by all the process's compressors together: the CPUs and the memory are shared,
 * and a copy compresses several layers at the same time (each block holds up to 1 MiB: its input and zlib's
 * output buffer). 16 keep two CPUs busy on real files and on the bench's layers alike (8: the latter 4 % slower);
 * before, each stream had 4 of its own, so 4 layers had 16 of 256 KiB. Peak RSS the same (86-94 MiB).
 */
const SLOTS = 16;
let freeSlots = SLOTS;
const waitingForSlot: (() => void)[] = [];

function acquireSlot(): Promise<void> | undefined {
  if (freeSlots > 0) {
    freeSlots--;
    return undefined;
  }
  return new Promise((resolve) => waitingForSlot.push(resolve));
}

/** Slots no compressor holds (for the tests: none is lost when a stream fails or is destroyed). */
export function freeGzipSlots(): number {
  return freeSlots;
}

function releaseSlot(): void {
  const next = waitingForSlot.shift();
  if (next) next();
  else freeSlots++;
}

interface Job {
  settled: Promise<void>;
  done: boolean;
  out?: Buffer[];
  error?: unknown;
  /** It still holds a slot. */
  slot: boolean;
}

/**
 * A gzip compressor stream: its blocks go to the thread pool as they fill (up to `parallel` of its own, within the
 * process's SLOTS), and each is written out as soon as it and those before it are done.
 */
export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private crc = 0;
  private total = 0;
  private prevTail: Buffer | undefined;
  private prevTailRandom = false;
  private headerSent = false;
  private readonly inFlight: Job[] = [];
  private failed: unknown;

  /**
   * `knownCrc32`: the CRC-32 of the whole input, where its source computed it already (a daemon's export, as it
   * arrived): the main thread then does not (~24 ms for the bench's 157 MB).
   */
  constructor(
    private readonly level = DEFAULT_GZIP_LEVEL,
    private readonly parallel = SLOTS,
    private readonly knownCrc32?: number,
  ) {
    super();
  }

  private header(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    // mtime 0, XFL as gzip sets it for the level, OS 3 (Unix).
    this.push(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, this.level >= 9 ? 2 : this.level === 1 ? 4 : 0, 0x03]));
  }

  /** Write out the finished blocks at the head of the queue, in order, and give their slots back. */
  private drain(): void {
    while (this.inFlight[0]?.done) {
      const job = this.inFlight.shift()!;
      if (job.slot) {
        job.slot = false;
        releaseSlot();
      }
      if (job.error !== undefined) this.failed ??= job.error;
      else if (!this.destroyed && this.failed === undefined) for (const b of job.out!) this.push(b);
    }
  }

  /** Wait for the oldest block (written out by then); a block that failed fails the stream. */
  private async settleOldest(): Promise<void> {
    await this.inFlight[0]!.settled;
    if (this.failed !== undefined) throw this.failed;
  }

  /** Queue a block for compression, once this stream and the process have room for it. */
  private async block(data: Buffer, last: boolean): Promise<void> {
    if (this.knownCrc32 === undefined) this.crc = crc32(data, this.crc);
    this.total += data.length;
    const runs = planRuns(data);
    // (The block before ended with 32 KiB or more of incompressible bytes: nothing to match against.)
    const dict = this.prevTailRandom ? undefined : this.prevTail;
    const tail = runs.at(-1)!;
    this.prevTailRandom = tail.store && tail.end - tail.start >= DICT;
    this.prevTail = data.length >= DICT ? Buffer.from(data.subarray(data.length - DICT)) : Buffer.concat([this.prevTail ?? Buffer.alloc(0), data]).subarray(-DICT);
    while (this.inFlight.length >= this.parallel) await this.settleOldest();
    // (While this waits, this stream's own blocks still finish and give their slots back.)
    const wait = acquireSlot();
    if (wait) await wait;
    if (this.destroyed) {
      releaseSlot();
      return;
    }
    const job: Job = { settled: Promise.resolve(), done: false, slot: true };
    job.settled = compressBlock(data, runs, this.level, dict, last).then(
      (out) => {
        job.out = out;
      },
      (e: unknown) => {
        job.error = e;
      },
    ).then(() => {
      job.done = true;
      this.drain();
    });
    this.inFlight.push(job);
    if (last) while (this.inFlight.length) await this.settleOldest();
    if (this.failed !== undefined) throw this.failed;
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    // Blocks still compressing give their slots to other streams now (they finish on their own).
    for (const job of this.inFlight) {
      if (job.slot) {
        job.slot = false;
        releaseSlot();
      }
    }
    cb(err);
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
      trailer.writeUInt32LE((this.knownCrc32 ?? this.crc) >>> 0, 0);
      trailer.writeUInt32LE(this.total % 0x100000000, 4);
      this.push(trailer);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}
