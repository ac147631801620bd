/** Test kit: podman's Docker-compatible Engine API on a temp store (the only Engine API these machines run). */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export interface PodmanService {
  /** `unix:///…/podman.sock` */
  host: string;
  /** podman's global flags for the same store, for podman CLI calls in tests. */
  storeFlags: string[];
  stop(): Promise<void>;
}

export async function startPodmanService(dir: string): Promise<PodmanService> {
  const sock = path.join(dir, 'podman.sock');
  const storeFlags = ['--root', `${dir}/root`, '--runroot', `${dir}/run`, '--storage-driver', 'vfs'];
  const svc = spawn('podman', [...storeFlags, 'system', 'service', '--time=0', `unix://${sock}`], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !(await fsp.stat(sock).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
  return {
    host: `unix://${sock}`,
    storeFlags,
    async stop() {
      const exited = new Promise((r) => svc.once('exit', r));
      svc.kill('SIGTERM');
      await exited;
    },
  };
}
