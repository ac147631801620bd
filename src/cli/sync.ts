import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { SkiffError } from '../core/errors.js';
import { sha256 } from '../core/digest.js';
import { parseManifest } from '../core/manifest.js';
import { choosePlatform } from '../core/platform.js';
import { parseDockerReference } from '../core/reference.js';
import type { SourceOptions } from '../core/image.js';
import { copyImage, type CopyOptions } from '../copy/copy.js';
import { ACCEPT, connect, DockerRef, listTags } from '../../transports/docker/index.js';
import { addRegistryFlags, addRetryFlags, openDestination, openSource, parseIntOption, platformFrom, registryOptions, type GlobalOptions } from './common.js';

type Kind = 'docker' | 'dir' | 'oci' | 'yaml';

/** One image to sync: where it comes from, and its repository path and tag for naming the destination. */
interface Job {
  src: string;
  repo: string;
  tag: string;
  srcOpts: SourceOptions;
}

interface YamlRegistry {
  images?: Record<string, string[] | null>;
  'images-by-tag-regex'?: Record<string, string>;
  'images-by-semver'?: Record<string, string>;
  'tls-verify'?: boolean;
  'cert-dir'?: string;
  credentials?: { username?: string; password?: string };
}

async function dockerJobs(spec: string, opts: SourceOptions, filter?: (tag: string) => boolean): Promise<Job[]> {
  const named = parseDockerReference(spec);
  const repo = `${named.domain}/${named.path}`;
  if (named.tag !== undefined || named.digest) {
    return [{ src: `docker://${spec}`, repo, tag: named.tag ?? named.digest!.replace(':', '-'), srcOpts: opts }];
  }
  const ref = new DockerRef({ ...named, tag: 'latest' });
  const ep = await connect(ref, opts);
  try {
    const tags = (await listTags(ep, ref)).filter((t) => !filter || filter(t));
    return tags.map((tag) => ({ src: `docker://${repo}:${tag}`, repo, tag, srcOpts: opts }));
  } finally {
    await ep.client.close();
  }
}

async function dirJobs(root: string): Promise<Job[]> {
  const jobs: Job[] = [];
  const walk = async (d: string): Promise<void> => {
    const names = await fsp.readdir(d, { withFileTypes: true }).catch(() => undefined);
    if (!names) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `sync: ${d}: no such directory`);
    if (names.some((n) => n.name === 'manifest.json' && n.isFile())) {
      const rel = path.relative(root, d) || path.basename(d);
      const i = rel.lastIndexOf(':');
      jobs.push({ src: `dir:${d}`, repo: i > 0 ? rel.slice(0, i) : rel, tag: i > 0 ? rel.slice(i + 1) : 'latest', srcOpts: {} });
      return;
    }
    for (const n of names) if (n.isDirectory()) await walk(path.join(d, n.name));
  };
  await walk(root);
  return jobs;
}

async function ociJobs(layout: string): Promise<Job[]> {
  let index: { manifests?: { annotations?: Record<string, string> }[] };
  try {
    index = JSON.parse(await fsp.readFile(path.join(layout, 'index.json'), 'utf8'));
  } catch (e) {
    throw new SkiffError('ERR_IMAGE_NOT_FOUND', `sync: ${layout}: not an OCI layout (${(e as Error).message})`);
  }
  const repo = path.basename(path.resolve(layout));
  return (index.manifests ?? []).flatMap((m) => {
    const tag = m.annotations?.['org.opencontainers.image.ref.name'];
    return tag ? [{ src: `oci:${layout}:${tag}`, repo, tag, srcOpts: {} }] : [];
  });
}

/** skopeo sync's YAML: registries, each with images (all tags when the list is empty) and tag regexes. */
async function yamlJobs(file: string, base: SourceOptions): Promise<Job[]> {
  let doc: Record<string, YamlRegistry>;
  try {
    const { parse: parseYaml } = await import('yaml'); // loaded only for YAML syncs
    doc = parseYaml(await fsp.readFile(file, 'utf8')) as Record<string, YamlRegistry>;
  } catch (e) {
    throw new SkiffError('ERR_USAGE', `sync: ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object') throw new SkiffError('ERR_USAGE', `sync: ${file}: expected a map of registries`);
  const jobs: Job[] = [];
  for (const [registry, r] of Object.entries(doc)) {
    const opts: SourceOptions = { ...base };
    if (r['tls-verify'] !== undefined) opts.tlsVerify = r['tls-verify'];
    if (r['cert-dir']) opts.certDir = r['cert-dir'];
    if (r.credentials?.username) opts.creds = `${r.credentials.username}:${r.credentials.password ?? ''}`;
    for (const [image, tags] of Object.entries(r.images ?? {})) {
      if (tags && tags.length) for (const t of tags) jobs.push(...(await dockerJobs(`${registry}/${image}:${t}`, opts)));
      else jobs.push(...(await dockerJobs(`${registry}/${image}`, opts)));
    }
    for (const [image, re] of Object.entries(r['images-by-tag-regex'] ?? {})) {
      let rx: RegExp;
      try {
        rx = new RegExp(re);
      } catch (e) {
        throw new SkiffError('ERR_USAGE', `sync: ${file}: ${registry}/${image}: invalid tag regex: ${(e as Error).message}`);
      }
      jobs.push(...(await dockerJobs(`${registry}/${image}`, opts, (t) => rx.test(t))));
    }
    if (r['images-by-semver']) throw new SkiffError('ERR_UNSUPPORTED', `sync: ${file}: images-by-semver is not supported yet`);
  }
  return jobs;
}

function destinationFor(kind: Kind, dest: string, job: Job, scoped: boolean): string {
  const name = scoped ? job.repo : job.repo.split('/').pop()!;
  switch (kind) {
    case 'docker':
      return `docker://${dest.replace(/\/$/, '')}/${name}:${job.tag}`;
    case 'dir':
      return `dir:${path.join(dest, `${name}:${job.tag}`)}`;
    case 'oci':
      return `oci:${path.join(dest, name)}:${job.tag}`;
    default:
      throw new SkiffError('ERR_USAGE', `sync: --dest ${kind} is not supported (docker, dir, oci)`);
  }
}

/** Run `f` over `items` with at most `n` at once. */
async function pool<T>(items: T[], n: number, f: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await f(items[i]!, i);
    }
  }));
}

/** `skiff sync`: skopeo sync's model — one image, every tag of a repository, or a YAML list — copied concurrently. */
export function syncCommand(program: Command): void {
  const cmd = program
    .command('sync')
    .description('Synchronise images between registries and local directories')
    .argument('<source>', 'docker: HOST/REPO[:TAG]; dir: a directory of dir: images; oci: a layout; yaml: a file')
    .argument('<destination>', 'docker: HOST[/NAMESPACE]; dir or oci: a directory')
    .addOption(new Option('-s, --src <kind>', 'source kind').choices(['docker', 'dir', 'oci', 'yaml']).makeOptionMandatory())
    .addOption(new Option('-d, --dest <kind>', 'destination kind').choices(['docker', 'dir', 'oci']).makeOptionMandatory())
    .option('-a, --all', 'copy whole manifest lists/indexes')
    .option('--scoped', 'prefix destination names with the full source repository (host/path)')
    .option('-j, --jobs <n>', 'images copied at once (default 4)', parseIntOption('--jobs'))
    .option('--keep-going', 'carry on after an image fails; exit 1 at the end if any did')
    .option('--dry-run', 'list what would be copied, copy nothing')
    .addOption(new Option('-f, --format <format>', 'manifest type of the destination images: oci or v2s2').choices(['oci', 'v2s2']))
    .option('--preserve-digests', 'fail rather than change any digest')
    .option('--remove-signatures', 'do not copy the source\'s signatures')
    .option('--sign-by <fingerprint>', 'sign each copied manifest with this GnuPG key, for its registry name (--dest docker)')
    .option('--sign-passphrase-file <file>', 'the key\'s passphrase, from this file')
    .option('--digestfile <file>', 'write "DIGEST DESTINATION" lines for the copied images')
    .option('-q, --quiet', 'no per-image progress');
  addRetryFlags(cmd);
  addRegistryFlags(cmd, 'src');
  addRegistryFlags(cmd, 'dest');
  cmd.action(async (source: string, destination: string, flags: Record<string, unknown>, c: Command) => {
    const g = c.optsWithGlobals() as GlobalOptions;
    const platform = platformFrom(g);
    const srcOpts = registryOptions(flags, 'src');
    const destOpts = registryOptions(flags, 'dest');
    const srcKind = flags.src as Kind;
    const destKind = flags.dest as Kind;
    const jobs = srcKind === 'docker' ? await dockerJobs(source.replace(/^docker:\/\//, ''), srcOpts)
      : srcKind === 'dir' ? await dirJobs(source)
      : srcKind === 'oci' ? await ociJobs(source)
      : await yamlJobs(source, srcOpts);
    if (!jobs.length) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `sync: no images found at ${source}`);
    // --sign-by: the key checked before anything is copied; each signature vouches for that image's registry name.
    let signer: NonNullable<CopyOptions['sign']>['sign'] | undefined;
    if (typeof flags.signBy === 'string' && !flags.dryRun) {
      if (destKind !== 'docker') throw new SkiffError('ERR_USAGE', '--sign-by: signatures vouch for registry names: it needs --dest docker');
      signer = await (await import('./sign.js')).signerFor(flags.signBy, typeof flags.signPassphraseFile === 'string' ? flags.signPassphraseFile : undefined);
    }
    const quiet = !!flags.quiet;
    const failures: string[] = [];
    const digests: string[] = [];
    let copied = 0;
    let skipped = 0;
    await pool(jobs, (flags.jobs as number | undefined) ?? 4, async (job, i) => {
      const dst = destinationFor(destKind, destination, job, !!flags.scoped);
      const label = `(${i + 1}/${jobs.length}) ${job.src} -> ${dst}`;
      if (flags.dryRun) {
        process.stdout.write(`${job.src} ${dst}\n`);
        return;
      }
      try {
        const src = await openSource(job.src, { ...job.srcOpts, platform });
        try {
          const dest = await openDestination(dst, { ...destOpts, platform });
          try {
            // Incremental: when the destination tag already has the digest this copy would write, skip it.
            // (With --format the copy may convert, and the digest it writes is not known before it runs.)
            if (dst.startsWith('docker://') && !flags.all && !flags.format) {
              const top = await src.getManifest();
              const parsed = parseManifest(top.bytes, top.mediaType);
              const want = parsed.kind === 'index' ? choosePlatform(parsed, platform).digest : sha256(top.bytes);
              if (await destinationHas(dst, want, destOpts)) {
                skipped++;
                if (!quiet) process.stderr.write(`Skipping ${label}: already there (${want.slice(0, 19)})\n`);
                return;
              }
            }
            if (!quiet) process.stderr.write(`Copying ${label}\n`);
            const o: CopyOptions = { platform, all: !!flags.all };
            if (flags.preserveDigests) o.preserveDigests = true;
            if (flags.removeSignatures) o.removeSignatures = true;
            if (signer) o.sign = { identity: dst.replace(/^docker:\/\//, ''), sign: signer };
            if (flags.format) o.format = flags.format as 'oci' | 'v2s2';
            if (typeof flags.retryTimes === 'number') o.retryTimes = flags.retryTimes;
            if (typeof flags.retryDelay === 'number') o.retryDelayMs = flags.retryDelay;
            const r = await copyImage(src, dest, o);
            digests.push(`${r.digest} ${dst}`);
            copied++;
          } finally {
            await dest.close();
          }
        } finally {
          await src.close();
        }
      } catch (e) {
        if (!flags.keepGoing) throw e;
        failures.push(`${job.src}: ${(e as Error).message}`);
        process.stderr.write(`skiff: ${(e as Error).message}\n`);
      }
    });
    if (flags.digestfile) await fsp.writeFile(flags.digestfile as string, digests.map((l) => `${l}\n`).join(''));
    if (!flags.dryRun && !quiet) process.stderr.write(`Synced ${copied} image(s), ${skipped} already up to date${failures.length ? `, ${failures.length} failed` : ''}\n`);
    if (failures.length) throw new SkiffError('ERR_REGISTRY', `sync: ${failures.length} of ${jobs.length} image(s) failed`);
  });
}

/** One HEAD: does the destination tag already point at `digest`? */
async function destinationHas(dst: string, digest: string, opts: SourceOptions): Promise<boolean> {
  const ref = new DockerRef(parseDockerReference(dst.slice('docker://'.length)));
  const ep = await connect(ref, opts);
  try {
    const res = await ep.client.send({ method: 'HEAD', path: `/v2/${ep.path}/manifests/${ref.reference}`, headers: { accept: ACCEPT }, scopes: [`repository:${ep.path}:pull`], ok: [200, 404] }, `checking ${dst}`);
    await res.body.dump();
    const h = res.headers['docker-content-digest'];
    return res.statusCode === 200 && (Array.isArray(h) ? h[0] : h) === digest;
  } finally {
    await ep.client.close();
  }
}
