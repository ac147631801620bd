import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { deprioritizeHelperThreads } from '../../src/core/thread-priority.js';

/** A thread's nice value: field 19 of /proc/<pid>/task/<tid>/stat (after the parenthesised name). */
const niceOf = (tid: string): number => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[16]);

describe('deprioritizeHelperThreads', () => {
  it('raises the nice value of every thread but the main one (thread pool included), which keeps its own', () => {
    const n = deprioritizeHelperThreads(7);
    const tasks = readdirSync('/proc/self/task');
    assert.ok(n >= 4, `${n} threads reniced`);
    // The thread pool exists now (libuv starts all of its threads with the first job): more threads than before.
    for (const t of tasks) assert.equal(niceOf(t), Number(t) === process.pid ? 0 : 7, `thread ${t}`);
  });

  it('children started afterwards keep the main thread\'s priority', () => {
    const r = spawnSync('sh', ['-c', 'cut -d" " -f19 /proc/self/stat'], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), '0');
  });
});
