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

/**
 * A Debian bookworm base made locally with debootstrap (minbase, from the Debian mirror the machine uses) as a
 * one-layer `oci:DIR:debian`. Files are owned by several uids/gids (root, _apt, …). debootstrap takes ~30 s, so its
 * tar is kept under /var/tmp between runs on one machine.
 */
export async function makeDebianLayout(dir: string): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const cache = process.env.SKIFF_TEST_CACHE ?? '/var/tmp/skiff-test-cache';
  const tarFile = `${cache}/debian-bookworm-minbase.tar`;
  if (!(await fsp.stat(tarFile).then(() => true, () => false))) {
    await fsp.mkdir(cache, { recursive: true });
    const root = `${cache}/rootfs-${process.pid}`;
    const mirror = process.env.SKIFF_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
    const r = spawnSync('debootstrap', ['--variant=minbase', 'bookworm', root, mirror], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`debootstrap failed (the Debian mirror ${mirror} must be reachable): ${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
    // apt's downloaded lists and caches are not part of a base image.
    spawnSync('sh', ['-c', `rm -rf ${root}/var/lib/apt/lists/* ${root}/var/cache/apt/*.bin ${root}/var/cache/apt/archives/*.deb ${root}/var/log/*.log`]);
    const t = spawnSync('tar', ['--numeric-owner', '--xattrs', '--sort=name', '-C', root, '-cf', `${tarFile}.tmp`, '.'], { encoding: 'utf8' });
    spawnSync('rm', ['-rf', root]);
    if (t.status !== 0) throw new Error(`tar of the debootstrap root failed: ${t.stderr}`);
    await fsp.rename(`${tarFile}.tmp`, tarFile);
  }
  await layoutFromTar(dir, tarFile, 'debian', { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['bash'] });
}

/** An OCI layout `oci:DIR:NAME` whose one layer is an existing uncompressed tar file. */
export async function layoutFromTar(dir: string, tarFile: string, name: string, containerConfig: Record<string, unknown> = {}): Promise<void> {
  const { createHash } = await import('node:crypto');
  const { createReadStream } = await import('node:fs');
  const h = createHash('sha256');
  for await (const c of createReadStream(tarFile)) h.update(c as Buffer);
  const layerHex = h.digest('hex');
  const size = (await fsp.stat(tarFile)).size;
  await fsp.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await fsp.copyFile(tarFile, `${dir}/blobs/sha256/${layerHex}`);
  const put = async (o: unknown): Promise<{ digest: string; size: number }> => {
    const b = Buffer.from(JSON.stringify(o));
    const hex = createHash('sha256').update(b).digest('hex');
    await fsp.writeFile(`${dir}/blobs/sha256/${hex}`, b);
    return { digest: `sha256:${hex}`, size: b.length };
  };
  const config = await put({
    architecture: 'amd64',
    os: 'linux',
    created: '2025-01-01T00:00:00Z',
    config: containerConfig,
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
    history: [{ created: '2025-01-01T00:00:00Z', created_by: `layer from ${tarFile}` }],
  });
  const manifest = await put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerHex}`, size }],
  });
  await fsp.writeFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fsp.writeFile(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': name } }] }));
}
