import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SKIFF = path.join(REPO, 'bin', 'skiff.js');

// The blob location cache (transports/docker/locations.ts) would let one test's pushes turn another's uploads into
// mounts, depending on the order tests run in: off for every test, except where a test turns it on to test it.
process.env.SKIFF_BLOB_CACHE ??= 'off';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run skiff's CLI as a user would. */
export function skiff(args: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return run(process.execPath, [SKIFF, ...args], opts);
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix = 'skiff-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Assert a command exited 0 (showing its stderr otherwise) and return its stdout. */
export async function ok(p: Promise<RunResult>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Unmount whatever is mounted under `dir` (containers/storage may leave a private bind mount of <root>/overlay
 * behind after podman or skopeo used a store), so the directory can be removed.
 */
export function unmountUnder(dir: string): void {
  spawnSync('sh', ['-c', `grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
}
