/**
 * Garbage collection paced by the bytes skiff streams. A chunk's memory (an ArrayBuffer outside V8's heap) is
 * freed only when V8 collects the small Buffer object that holds it, and V8 lets ~64 MiB of such external memory
 * pile up before it looks: copies of a 150 MB image peaked 15-25 MiB higher than they needed to. So every 4 MiB
 * streamed the young generation is collected (well under a millisecond: it holds little else), which frees the
 * chunks that have passed; and every 256 MiB the whole heap, for chunks that lived long enough in a stage's buffer
 * to be promoted. (Scavenging every 1-2 MiB promoted more of them and raised the peak instead.) Measured on the
 * bench image: oci -> oci 91 -> 64 MiB, pull 98 -> ~85 MiB, containers-storage -> oci 117 -> ~100 MiB, same times.
 * A full collection every 64 MiB, as first done, marked the whole heap four times in a 150 MB copy for no lower a
 * peak than every 256 MiB (1 GiB layer: 61-62 MiB to docker-archive, 83-84 MiB with zstd either way), and cost
 * ~8 % of the CPU: docker-archive -> oci 0.80 -> 0.73 s of CPU, 0.50 -> 0.46 s, median of 9.
 * Off unless enabled: the CLI enables it; a library user's process is its own business.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const MINOR_EVERY = 4 << 20;
const MAJOR_EVERY = 256 << 20;
let gc: ((o?: { type: 'minor' }) => void) | undefined;
let sinceMinor = 0;
let sinceMajor = 0;

export function enableGcPacing(): void {
  if (gc) return;
  // (gc is defined in contexts made after the flag is set: a fresh one hands it over.)
  setFlagsFromString('--expose-gc');
  gc = runInNewContext('gc') as typeof gc;
}

/** Note `n` bytes streamed. */
export function paced(n: number): void {
  if (!gc) return;
  sinceMinor += n;
  sinceMajor += n;
  if (sinceMajor >= MAJOR_EVERY) {
    sinceMajor = sinceMinor = 0;
    gc();
  } else if (sinceMinor >= MINOR_EVERY) {
    sinceMinor = 0;
    gc({ type: 'minor' });
  }
}
