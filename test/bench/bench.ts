/**
 * npm run bench: skiff and skopeo side by side in one run, on the same locally generated images; prints wall time,
 * peak RSS and the skiff/skopeo ratio (< 1 means skiff is faster). A benchmark, not a test: it asserts nothing.
 *
 *   npm run bench                 # ~150 MB 4-layer image, 3 rounds, plus the 1 GiB-layer memory check
 *   BENCH_QUICK=1 npm run bench   # skip the 1 GiB layer
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import { SKIFF, tempDir } from '../kit/run.js';
import { makeRealFilesImage } from '../kit/image.js';

/** The installed command (package.json "bin"): the sh launcher, which runs bin/skiff.js with Node. */
const SKIFF_CMD = path.join(path.dirname(SKIFF), 'skiff');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function header(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(1700000000).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** Streams a layer tar of `files` (name, size) whose content is half random, half text, so it compresses ~2x. */
function* layerChunks(files: [string, number][], seed: number): Generator<Buffer> {
  let block = createHash('sha256').update(`bench${seed}`).digest();
  const text = Buffer.from('the quick brown fox jumps over the lazy dog; '.repeat(1500).slice(0, 65536));
  for (const [name, size] of files) {
    yield header(name, size);
    let left = size;
    let i = 0;
    while (left > 0) {
      const n = Math.min(65536, left);
      let chunk: Buffer;
      if (i++ % 2) chunk = text.subarray(0, n);
      else {
        chunk = Buffer.alloc(n);
        for (let off = 0; off < n; off += 32) {
          block = createHash('sha256').update(block).digest();
          block.copy(chunk, off, 0, Math.min(32, n - off));
        }
      }
      left -= n;
      yield chunk;
    }
    const pad = (512 - (size % 512)) % 512;
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(1024);
}

function hashing(h: ReturnType<typeof createHash>, count: { n: number }): Transform {
  return new Transform({ transform(c: Buffer, _e, cb) { h.update(c); count.n += c.length; cb(null, c); } });
}

/** Write an OCI layout with one image whose layers are given as lists of (file, size); streamed, any size. */
export async function makeImage(dir: string, layers: [string, number][][]): Promise<void> {
  await fsp.mkdir(path.join(dir, 'blobs/sha256'), { recursive: true });
  const descs = [];
  const diffIDs = [];
  for (const [i, files] of layers.entries()) {
    const tmp = path.join(dir, `tmp-${i}`);
    const diff = createHash('sha256');
    const comp = createHash('sha256');
    const dn = { n: 0 };
    const cn = { n: 0 };
    await pipeline(Readable.from(layerChunks(files, i)), hashing(diff, dn), createGzip({ level: 6 }), hashing(comp, cn), createWriteStream(tmp));
    const d = comp.digest('hex');
    await fsp.rename(tmp, path.join(dir, 'blobs/sha256', d));
    descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${d}`, size: cn.n });
    diffIDs.push(`sha256:${diff.digest('hex')}`);
  }
  const put = async (b: Buffer) => {
    const d = createHash('sha256').update(b).digest('hex');
    await fsp.writeFile(path.join(dir, 'blobs/sha256', d), b);
    return { digest: `sha256:${d}`, size: b.length };
  };
  const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } })));
  const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: descs })));
  await fsp.writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await fsp.writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'bench' } }] }));
}

interface Sample {
  seconds: number;
  /** User + system CPU time of the command and the processes it waited for. */
  cpuSeconds: number;
  rssMiB: number;
}

/** Run a command under /usr/bin/time for wall time, CPU time and peak RSS. */
function measure(cmd: string[], cleanup: () => void, args: string[] | (() => string[]) = []): Sample {
  cleanup();
  cmd = [...cmd, ...(typeof args === 'function' ? args() : args)];
  // Flush the previous run's dirty pages so its writeback is not billed to this one.
  spawnSync('sync');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', ...cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr}`);
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [sec, kb, user, sys] = last.split(' ').map(Number);
  return { seconds: sec ?? NaN, cpuSeconds: (user ?? NaN) + (sys ?? NaN), rssMiB: (kb ?? NaN) / 1024 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function compare(title: string, skiffArgs: string[], skopeoArgs: string[], cleanup: () => void, rounds = ROUNDS, dest?: () => string, afterFirst?: () => void): void {
  const a: Sample[] = [];
  const b: Sample[] = [];
  // `dest` supplies a fresh destination per run (set by `cleanup`), substituted for __DEST__.
  const sub = (args: string[]): string[] => (dest ? args.map((x) => (x === '__DEST__' ? dest() : x)) : args);
  for (let i = 0; i < rounds; i++) {
    // Odd rounds run skopeo first: a run can pay for what the one before left behind (a daemon still cleaning up
    // after an export was seen to slow the next save by up to 20 %), and neither tool should always be that one.
    const first = i % 2 === 0;
    if (first) {
      a.push(measure([SKIFF_CMD], cleanup, () => sub(skiffArgs)));
      if (i === 0) afterFirst?.();
    }
    b.push(measure(['skopeo'], cleanup, () => sub(skopeoArgs)));
    if (i === 0) afterFirst?.();
    if (!first) a.push(measure([SKIFF_CMD], cleanup, () => sub(skiffArgs)));
  }
  report(title, a, b);
}

/** Registry cases on the real distribution registry (loopback): push to a fresh registry, pull, registry -> registry. */
async function registryCases(src: string, out: string, clean: () => void): Promise<void> {
  const { startRegistry } = await import('../kit/registry.js');
  const seed = await startRegistry();
  try {
    const seeded = spawnSync(process.execPath, [SKIFF, 'copy', '-q', '--dest-tls-verify=false', `oci:${src}:bench`, `docker://${seed.host}/bench/src:1`]);
    if (seeded.status !== 0) throw new Error(`seeding the registry failed: ${seeded.stderr}`);
    let dest: Awaited<ReturnType<typeof startRegistry>> | undefined;
    // A fresh destination registry for every run, so nothing is skipped as already there.
    const fresh = async (): Promise<string> => {
      await dest?.stop();
      dest = await startRegistry();
      return dest.host;
    };
    const pair = async (title: string, a: (h: string) => string[], b: (h: string) => string[]): Promise<void> => {
      const sa: Sample[] = [];
      const sb: Sample[] = [];
      // (Alternating which goes first, as compare() does.)
      for (let i = 0; i < ROUNDS; i++) {
        for (const who of i % 2 === 0 ? ['skiff', 'skopeo'] : ['skopeo', 'skiff']) {
          const h = await fresh();
          if (who === 'skiff') sa.push(measure([SKIFF_CMD, ...a(h)], clean));
          else sb.push(measure(['skopeo', ...b(h)], clean));
        }
      }
      report(title, sa, sb);
    };
    await pair('oci -> registry (push, fresh registry)', (h) => ['copy', '-q', '--dest-tls-verify=false', `oci:${src}:bench`, `docker://${h}/bench/x:1`], (h) => ['copy', '-q', '--dest-tls-verify=false', `oci:${src}:bench`, `docker://${h}/bench/x:1`]);
    await pair('registry -> oci (pull)', () => ['copy', '-q', '--src-tls-verify=false', `docker://${seed.host}/bench/src:1`, `oci:${out}:x`], () => ['copy', '-q', '--src-tls-verify=false', `docker://${seed.host}/bench/src:1`, `oci:${out}:x`]);
    await pair('registry -> registry (fresh destination)', (h) => ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${seed.host}/bench/src:1`, `docker://${h}/bench/x:1`], (h) => ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${seed.host}/bench/src:1`, `docker://${h}/bench/x:1`]);
    await dest?.stop();
  } finally {
    await seed.stop();
  }
}

/** docker-daemon cases against podman's Engine API (temp store): load into it, save out of it. */
async function daemonCases(src: string, out: string, clean: () => void): Promise<void> {
  const { startPodmanService } = await import('../kit/podman.js');
  const t = tempDir('skiff-bench-daemon-');
  const svc = await startPodmanService(t.dir);
  try {
    const host = svc.host;
    compare('oci -> docker-daemon (load)', ['copy', '-q', '--dest-daemon-host', host, `oci:${src}:bench`, 'docker-daemon:localhost/bench:1'], ['copy', '-q', '--dest-daemon-host', host, `oci:${src}:bench`, 'docker-daemon:localhost/bench:1'], clean);
    compare('docker-daemon -> oci (save)', ['copy', '-q', '--src-daemon-host', host, 'docker-daemon:localhost/bench:1', `oci:${out}:x`], ['copy', '-q', '--src-daemon-host', host, 'docker-daemon:localhost/bench:1', `oci:${out}:x`], clean);
  } finally {
    await svc.stop();
    t.cleanup();
  }
}

/** containers-storage: into a fresh store, and out of one (skopeo's own copy of the image serves both). */
async function storageCases(src: string, out: string, clean: () => void): Promise<void> {
  const t = tempDir('skiff-bench-store-');
  const store = (n: string) => `containers-storage:[overlay@${t.dir}/${n}/root+${t.dir}/${n}/run]localhost/bench:1`;
  let n = 0;
  // containers/storage may leave a private bind mount of <root>/overlay behind: undo it before deleting.
  const unmount = (): void => void spawnSync('sh', ['-c', `grep -o '${t.dir}[^ ]*' /proc/mounts | xargs -r -n1 umount`]);
  const fresh = (): string => {
    unmount();
    spawnSync('chmod', ['-R', 'u+w', t.dir]);
    for (const d of spawnSync('ls', [t.dir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) rmSync(path.join(t.dir, d), { recursive: true, force: true });
    return store(`s${++n}`);
  };
  try {
    let dest = '';
    compare('oci -> containers-storage', ['copy', '-q', `oci:${src}:bench`, '__DEST__'], ['copy', '-q', `oci:${src}:bench`, '__DEST__'], () => {
      clean();
      dest = fresh();
    }, ROUNDS, () => dest);
    spawnSync('skopeo', ['copy', '-q', `oci:${src}:bench`, store('seed')]);
    compare('containers-storage -> oci', ['copy', '-q', store('seed'), `oci:${out}:x`], ['copy', '-q', store('seed'), `oci:${out}:x`], clean);
  } finally {
    unmount();
    spawnSync('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
  }
}

/**
 * skiff build vs buildah bud, both rootless as the unprivileged user .ci/run creates (overlay storage, runc, host
 * network): a 5,000-file COPY, a 64 MiB file COPY and a RUN; then a fully cached rebuild (buildah --layers).
 */
async function buildCases(): Promise<void> {
  const { makeBusyboxLayout } = await import('../kit/fixtures.js');
  const user = 'skiffci';
  if (spawnSync('id', [user]).status !== 0) {
    console.log(`build cases skipped: the unprivileged user ${user} is missing (.ci/run creates it)`);
    return;
  }
  const t = tempDir('skiff-bench-build-');
  const lower = `/tmp/skiff-bench-base-${process.pid}`;
  const as = (cmd: string): string[] => ['su', user, '-s', '/bin/sh', '-c', `export HOME=${t.dir} XDG_RUNTIME_DIR=${t.dir}/xdg; cd ${t.dir} && ${cmd}`];
  try {
    await makeBusyboxLayout(`${lower}/busybox`);
    const ctx = path.join(t.dir, 'ctx');
    await fsp.mkdir(path.join(ctx, 'many'), { recursive: true });
    for (let d = 0; d < 50; d++) {
      await fsp.mkdir(path.join(ctx, 'many', `d${d}`));
      for (let f = 0; f < 100; f++) await fsp.writeFile(path.join(ctx, 'many', `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`.repeat(20));
    }
    await fsp.writeFile(path.join(ctx, 'big.bin'), Buffer.alloc(64 << 20, 7));
    await fsp.writeFile(path.join(ctx, 'Containerfile'), 'ARG BASE\nFROM $BASE\nCOPY many /many\nCOPY big.bin /big.bin\nRUN echo done > /done.txt && ls /many | wc -l\n');
    await fsp.mkdir(`${t.dir}/xdg`, { mode: 0o700 });
    spawnSync('chown', ['-R', `${user}:`, t.dir, lower]);
    await fsp.chmod(t.dir, 0o755);
    // The installed command (package.json "bin"): its launcher enters the user namespace before Node starts.
    const skiff = (args: string): string[] => as(`${SKIFF_CMD} --root ${t.dir}/s/root --runroot ${t.dir}/s/run ${args}`);
    const buildah = (args: string): string[] => as(`buildah --root ${t.dir}/b/root --runroot ${t.dir}/b/run --storage-driver overlay ${args}`);
    const seed = skiff(`copy -q oci:${lower}/busybox:busybox containers-storage:localhost/busybox:latest`);
    spawnSync(seed[0]!, seed.slice(1));
    const bud = '--isolation oci --runtime runc --network host';
    const sa: Sample[] = [];
    const sb: Sample[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      sa.push(measure(skiff(`build -q --no-cache --build-arg BASE=localhost/busybox:latest -t localhost/b:${i} ${ctx}`), () => undefined));
      sb.push(measure(buildah(`bud -q ${bud} --layers=false --build-arg BASE=oci:${lower}/busybox:busybox -t localhost/b:${i} ${ctx}`), () => undefined));
    }
    report('build rootless (5,000 files + 64 MiB + RUN), cold', sa, sb, 'buildah');
    // Fully cached rebuild (buildah with its --layers cache on the same store as well).
    const ca: Sample[] = [];
    const cb: Sample[] = [];
    measure(buildah(`bud -q ${bud} --layers --build-arg BASE=oci:${lower}/busybox:busybox -t localhost/c:0 ${ctx}`), () => undefined);
    for (let i = 0; i < ROUNDS; i++) {
      ca.push(measure(skiff(`build -q --build-arg BASE=localhost/busybox:latest -t localhost/c:${i} ${ctx}`), () => undefined));
      cb.push(measure(buildah(`bud -q ${bud} --layers --build-arg BASE=oci:${lower}/busybox:busybox -t localhost/c:${i} ${ctx}`), () => undefined));
    }
    report('build rootless, fully cached (target 0.1 s)', ca, cb, 'buildah');
  } finally {
    spawnSync('su', [user, '-s', '/bin/sh', '-c', `unshare --user --map-root-user --map-auto rm -rf ${t.dir}/s ${t.dir}/b`]);
    t.cleanup();
    rmSync(lower, { recursive: true, force: true });
  }
}

function report(title: string, a: Sample[], b: Sample[], peer = 'skopeo'): void {
  const sa = median(a.map((s) => s.seconds));
  const sb = median(b.map((s) => s.seconds));
  const ca = median(a.map((s) => s.cpuSeconds));
  const cb = median(b.map((s) => s.cpuSeconds));
  const ra = Math.max(...a.map((s) => s.rssMiB));
  const rb = Math.max(...b.map((s) => s.rssMiB));
  // (CPU beside wall time: on a small machine a copy is bound by the CPUs, and where skiff's time is behind its
  // peer's with the same CPU, what is behind is Node's start, not the transfer.)
  const side = (s: number, c: number, r: number): string => `${s.toFixed(2).padStart(6)} s (cpu ${c.toFixed(2)}) ${r.toFixed(0).padStart(5)} MiB`;
  console.log(`${title.padEnd(44)} skiff ${side(sa, ca, ra)} | ${peer.padEnd(7)} ${side(sb, cb, rb)} | ratio ${(sa / sb).toFixed(2)}`);
}

/** Parse, validate and plan a 1,000-instruction Containerfile (target: under 50 ms). */
async function frontEnd(): Promise<void> {
  const { planContainerfile } = await import('../../src/build/containerfile/plan.js');
  const lines = ['ARG BASE=busybox', 'FROM $BASE AS s0'];
  for (let i = 0; i < 998; i++) {
    if (i % 100 === 99) lines.push(`FROM s${Math.floor(i / 100)} AS s${Math.floor(i / 100) + 1}`);
    else if (i % 4 === 0) lines.push(`RUN --mount=type=cache,target=/c echo ${i}`);
    else if (i % 4 === 1) lines.push(`ENV V${i}=\${V${i - 2}:-x} W${i}="a b"`);
    else if (i % 4 === 2) lines.push(`COPY --chmod=644 src/f${i} /dst/`);
    else lines.push(`LABEL l${i}=v${i}`);
  }
  const text = lines.join('\n');
  const c0 = performance.now();
  planContainerfile(text); // first call: includes JIT warm-up, what a CLI run pays
  const cold = performance.now() - c0;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    planContainerfile(text);
    times.push(performance.now() - t0);
  }
  console.log(`${'plan a 1,000-instruction Containerfile'.padEnd(44)} skiff ${median(times).toFixed(1).padStart(6)} ms warm (median of 5), ${cold.toFixed(1)} ms cold; target < 50 ms`);
}

async function main(): Promise<void> {
  if (spawnSync('skopeo', ['--version']).status !== 0) throw new Error('skopeo is needed: apt-get install -y skopeo');
  const t = tempDir('skiff-bench-');
  try {
    const src = path.join(t.dir, 'src');
    const MB = 1 << 20;
    console.error('bench: generating a ~150 MB (uncompressed) 4-layer image...');
    await makeImage(src, [
      [['a/big1', 40 * MB], ['a/big2', 20 * MB]],
      [['b/mid', 40 * MB]],
      [...Array.from({ length: 200 }, (_, i): [string, number] => [`c/small${i}`, 100 * 1024])],
      [['d/last', 30 * MB]],
    ]);
    const out = path.join(t.dir, 'out');
    const clean = () => rmSync(out, { recursive: true, force: true });
    if (process.env.BENCH_ONLY === 'build') {
      // Just the builder cases (BENCH_ONLY=build npm run bench).
      await frontEnd();
      await buildCases();
      return;
    }
    await frontEnd();
    console.log(`skiff vs skopeo ${spawnSync('skopeo', ['--version'], { encoding: 'utf8' }).stdout.trim()}; median of ${ROUNDS}; ratio = skiff/skopeo time`);
    compare('oci -> docker-archive', ['copy', '-q', `oci:${src}:bench`, `docker-archive:${out}`], ['copy', '-q', `oci:${src}:bench`, `docker-archive:${out}`], clean);
    compare('oci -> oci (recompress zstd)', ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${src}:bench`, `oci:${out}:x`], ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${src}:bench`, `oci:${out}:x`], clean);
    compare('oci -> oci (plain copy)', ['copy', '-q', `oci:${src}:bench`, `oci:${out}:x`], ['copy', '-q', `oci:${src}:bench`, `oci:${out}:x`], clean);
    compare('oci -> dir', ['copy', '-q', `oci:${src}:bench`, `dir:${out}`], ['copy', '-q', `oci:${src}:bench`, `dir:${out}`], clean);
    const real = path.join(t.dir, 'real');
    console.error('bench: making a ~150 MB uncompressed layer of this machine\'s files under /usr...');
    await makeRealFilesImage(real, 150 * MB);
    // (The size of what each writes, too: a faster compressor that wrote more would not be a gain.)
    const written = (): string => `${(Number(spawnSync('du', ['-sb', out], { encoding: 'utf8' }).stdout.split('\t')[0]) / MB).toFixed(1)} MB`;
    for (const format of ['gzip', 'zstd']) {
      const args = ['copy', '-q', '--dest-compress', '--dest-compress-format', format, `oci:${real}:bench`, `oci:${out}:x`];
      const sizes: string[] = [];
      compare(`real files -> oci, ${format}`, args, args, clean, ROUNDS, undefined, () => sizes.push(written()));
      console.log(`${''.padEnd(44)} written: skiff ${sizes[0]}, skopeo ${sizes[1]}`);
    }
    await fsp.rm(real, { recursive: true });
    await registryCases(src, out, clean);
    await daemonCases(src, out, clean);
    await storageCases(src, out, clean);
    await buildCases();
    if (!process.env.BENCH_QUICK) {
      const big = path.join(t.dir, 'big');
      await fsp.rm(src, { recursive: true });
      console.error('bench: generating an image with a 1 GiB layer (memory check)...');
      await makeImage(big, [[['huge', 1024 * MB]]]);
      compare('1 GiB layer: oci -> docker-archive (RSS)', ['copy', '-q', `oci:${big}:bench`, `docker-archive:${out}`], ['copy', '-q', `oci:${big}:bench`, `docker-archive:${out}`], clean, 1);
      compare('1 GiB layer: oci -> oci zstd (RSS)', ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${big}:bench`, `oci:${out}:x`], ['copy', '-q', '--dest-compress-format', 'zstd', `oci:${big}:bench`, `oci:${out}:x`], clean, 1);
    }
  } finally {
    t.cleanup();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
