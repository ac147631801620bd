import { SkiffError } from '../src/core/errors.js';

/**
 * How long a response may send nothing once it has begun before its connection counts as dropped (a registry's
 * request is then retried, and a blob read resumes with a Range request from the byte it reached; a daemon's export
 * fails). `SKIFF_READ_TIMEOUT` seconds, default 30: a registry or daemon that hangs mid-blob is noticed in half a
 * minute, not never.
 */
export function readTimeoutMs(): number {
  const v = process.env.SKIFF_READ_TIMEOUT;
  if (v === undefined || v === '') return 30_000;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new SkiffError('ERR_USAGE', `SKIFF_READ_TIMEOUT=${JSON.stringify(v)}: expected a number of seconds`);
  return n * 1000;
}
