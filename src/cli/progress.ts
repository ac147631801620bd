import type { Digest } from '../core/digest.js';
import { shortDigest } from '../core/digest.js';
import type { Descriptor } from '../core/manifest.js';
import type { ProgressSink } from '../copy/copy.js';

function human(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

/** Plain lines (not a TTY): one when a blob starts, one when it ends, like skopeo's non-TTY output. */
export class LineProgress implements ProgressSink {
  constructor(private readonly out: NodeJS.WritableStream) {}
  blobStart(d: Descriptor, kind: 'layer' | 'config'): void {
    this.out.write(`Copying ${kind === 'config' ? 'config' : 'blob'} ${shortDigest(d.digest)} (${human(d.size)})\n`);
  }
  blobAdvance(): void {}
  blobDone(d: Descriptor, how: 'copied' | 'skipped', kind: 'layer' | 'config'): void {
    this.out.write(`Copying ${kind === 'config' ? 'config' : 'blob'} ${shortDigest(d.digest)} ${how === 'skipped' ? 'skipped: already exists' : 'done'}\n`);
  }
  manifest(digest: Digest): void {
    this.out.write(`Writing manifest ${digest} to image destination\n`);
  }
}

interface Bar {
  label: string;
  total: number;
  done: number;
  state: 'active' | 'done' | 'skipped';
}

/** Bars on a TTY: one line per blob, redrawn at most 10 times a second. */
export class BarProgress implements ProgressSink {
  private readonly bars = new Map<string, Bar>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly out: NodeJS.WriteStream) {}
  private bar(d: Descriptor, kind: string): Bar {
    let b = this.bars.get(d.digest);
    if (!b) {
      b = { label: `Copying ${kind} ${shortDigest(d.digest)}`, total: d.size, done: 0, state: 'active' };
      this.bars.set(d.digest, b);
    }
    return b;
  }
  blobStart(d: Descriptor, kind: 'layer' | 'config'): void {
    this.bar(d, kind === 'config' ? 'config' : 'blob');
    this.schedule();
  }
  blobAdvance(d: Descriptor, n: number): void {
    this.bar(d, 'blob').done += n;
    this.schedule();
  }
  blobDone(d: Descriptor, how: 'copied' | 'skipped', kind: 'layer' | 'config'): void {
    const b = this.bar(d, kind === 'config' ? 'config' : 'blob');
    b.state = how === 'skipped' ? 'skipped' : 'done';
    b.done = b.total;
    this.schedule();
  }
  manifest(digest: Digest): void {
    this.draw();
    this.out.write(`Writing manifest ${digest} to image destination\n`);
  }
  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, 100);
  }
  private draw(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 80) - 60));
    let s = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const b of this.bars.values()) {
      const frac = b.total ? Math.min(1, b.done / b.total) : 1;
      const fill = Math.round(frac * width);
      const tail = b.state === 'skipped' ? 'skipped: already exists' : b.state === 'done' ? 'done' : `${human(b.done)} / ${human(b.total)}`;
      s += `\x1b[2K${b.label} [${'='.repeat(fill)}${' '.repeat(width - fill)}] ${tail}\n`;
    }
    this.drawn = this.bars.size;
    this.out.write(s);
  }
}

export function makeProgress(quiet: boolean): ProgressSink | undefined {
  if (quiet) return undefined;
  return process.stderr.isTTY ? new BarProgress(process.stderr) : new LineProgress(process.stderr);
}
