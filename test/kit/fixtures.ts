import { promises as fsp } from 'node:fs';
import { makeLayout, pseudoRandom, type FileSpec } from './image.js';

/**
 * A small real image made locally from Debian's busybox-static: /bin/busybox plus applet links, and a second
 * layer with /etc files. Returns the manifest digest of `oci:DIR:busybox`.
 */
export async function makeBusyboxLayout(dir: string): Promise<string> {
  const busybox = await fsp.readFile('/bin/busybox');
  const applets = ['sh', 'ls', 'cat', 'echo', 'env', 'id', 'sleep'];
  const base: FileSpec[] = [
    { path: 'bin/', type: 'dir' },
    { path: 'bin/busybox', content: busybox, mode: 0o755 },
    ...applets.map((a): FileSpec => ({ path: `bin/${a}`, type: 'symlink', target: 'busybox' })),
    { path: 'tmp/', type: 'dir', mode: 0o1777 },
  ];
  const etc: FileSpec[] = [
    { path: 'etc/', type: 'dir' },
    { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
    { path: 'etc/group', content: 'root:x:0:\nuser:x:1000:\n' },
    { path: 'home/', type: 'dir' },
    { path: 'home/user/', type: 'dir', uid: 1000 },
    { path: 'home/user/data.bin', content: pseudoRandom(200_000, 9), uid: 1000 },
  ];
  return makeLayout(dir, 'busybox', { layers: [{ files: base }, { files: etc }], env: ['PATH=/bin', 'GREETING=hello'], labels: { 'org.example.fixture': 'busybox' } });
}
