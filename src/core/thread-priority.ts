/**
 * The CLI's main thread is the copy pipeline's bottleneck: it hashes every byte (twice where layers are
 * re-compressed), runs zstd and hands blocks to the thread pool, while the pool's threads deflate them and V8's
 * helper threads collect garbage. On a machine with few cores those threads preempt the main thread each time it
 * hands them work, and the pipeline stalls behind them. Raising the other threads' nice value (which any process
 * may do to its own threads) lets the main thread run whenever it has work, and the helpers take the rest of the
 * CPU. Measured on 2 vCPUs, median of 9, alternating: containers-storage -> oci 0.630 -> 0.586 s,
 * docker-archive -> oci 0.560 -> 0.533 s, docker-daemon -> oci 1.565 -> 1.515 s, pull 0.263 -> 0.254 s.
 *
 * libuv starts its pool's threads, all of them, with the first job: one is queued here first, so the pool exists
 * when the threads are listed. Threads started later (none in skiff) keep the default priority; child processes are
 * started from the main thread and keep it too. The CLI calls this; a library user's process is its own business.
 */
import { readdirSync, stat } from 'node:fs';
import { setPriority } from 'node:os';

export function deprioritizeHelperThreads(nice = 10): number {
  if (process.platform !== 'linux') return 0;
  stat('/', () => undefined);
  let n = 0;
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  for (const t of tasks) {
    const tid = Number(t);
    if (tid === process.pid) continue;
    try {
      setPriority(tid, nice);
      n++;
    } catch {
      // (A thread that ended meanwhile, or a sandbox that forbids it: the default priority is only slower.)
    }
  }
  return n;
}
