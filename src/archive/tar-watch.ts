/**
 * Following a tar stream as it passes by: each member's name, type and where its data lies in the stream, reported
 * as its header goes by. For acting on a member as soon as its bytes have passed (they are being written
 * somewhere), without reading the stream a second time.
 */
import { cstring, entryName, headerChecksumOk, octal, parsePax } from './tar-header.js';

export interface WatchedMember {
  name: string;
  /** The typeflag: '0' (or '\0') for a regular file. */
  type: string;
  /** Where the member's data starts in the stream, and its length. */
  offset: number;
  size: number;
}

const padded = (n: number): number => Math.ceil(n / 512) * 512;

export class TarWatch {
  /** Bytes of the stream seen so far. */
  private pos = 0;
  /** Where the next header starts. */
  private next = 0;
  /** A header split between chunks: its bytes so far. */
  private head: Buffer[] = [];
  private headLen = 0;
  /** The data of a PAX or GNU long-name header, being collected. */
  private meta: { kind: 'pax' | 'longname'; end: number; parts: Buffer[] } | undefined;
  private pax: Record<string, string> = {};
  private longName: string | undefined;
  /** The stream stopped making sense as a tar (a bad header checksum): nothing more is reported. */
  lost = false;
  /** The end-of-archive block went by. */
  ended = false;

  constructor(private readonly onMember: (m: WatchedMember) => void) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.lost && !this.ended) {
      const at = this.pos + i;
      if (this.meta) {
        const take = Math.min(this.meta.end - at, chunk.length - i);
        this.meta.parts.push(Buffer.from(chunk.subarray(i, i + take)));
        i += take;
        if (this.pos + i === this.meta.end) this.endMeta();
        continue;
      }
      if (at < this.next) {
        i += Math.min(this.next - at, chunk.length - i);
        continue;
      }
      const take = Math.min(512 - this.headLen, chunk.length - i);
      this.head.push(chunk.subarray(i, i + take));
      this.headLen += take;
      i += take;
      if (this.headLen === 512) {
        const h = Buffer.concat(this.head);
        this.head = [];
        this.headLen = 0;
        this.header(h);
      }
    }
    this.pos += chunk.length;
  }

  private header(h: Buffer): void {
    const start = this.next;
    if (h.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    if (!headerChecksumOk(h)) {
      this.lost = true;
      return;
    }
    const type = String.fromCharCode(h[156]!);
    const size = type === 'x' || type === 'g' || type === 'L' || type === 'K' || this.pax.size === undefined ? octal(h, 124, 12) : Number(this.pax.size);
    if (!Number.isSafeInteger(size) || size < 0) {
      this.lost = true;
      return;
    }
    this.next = start + 512 + padded(size);
    if (type === 'x' || type === 'L') {
      // Applies to the member after it: collected, then read.
      this.meta = { kind: type === 'x' ? 'pax' : 'longname', end: start + 512 + size, parts: [] };
      if (size === 0) this.endMeta();
      return;
    }
    if (type === 'g' || type === 'K') return;
    const name = entryName(h, this.pax, this.longName);
    this.pax = {};
    this.longName = undefined;
    this.onMember({ name, type, offset: start + 512, size });
  }

  private endMeta(): void {
    const m = this.meta!;
    this.meta = undefined;
    const data = Buffer.concat(m.parts);
    if (m.kind === 'pax') this.pax = parsePax(data);
    else this.longName = cstring(data, 0, data.length);
  }
}
