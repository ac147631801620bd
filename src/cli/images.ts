import { Command } from 'commander';
import { defaultStoreLocation, Store, type Image } from '../store/store.js';
import { writeOut, type GlobalOptions } from './common.js';

interface Flags {
  format?: string;
  quiet?: boolean;
  digests?: boolean;
  trunc?: boolean;
}

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  const units: [number, string][] = [[31536000, 'year'], [2592000, 'month'], [604800, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [n, u] of units) if (s >= n) {
    const k = Math.floor(s / n);
    return `${k} ${u}${k > 1 ? 's' : ''} ago`;
  }
  return 'Less than a minute ago';
}

function humanSize(n: number): string {
  // podman prints decimal units (kB, MB, GB) with 3 significant digits.
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i ? Number(v.toPrecision(3)) : v} ${u[i]}`;
}

/** `skiff images`: the images in the containers-storage store, podman's columns and JSON. */
export function imagesCommand(program: Command): void {
  program
    .command('images')
    .description('List images in local storage (the store podman and buildah use)')
    .option('--format <format>', 'json for podman\'s JSON')
    .option('-q, --quiet', 'image IDs only')
    .option('--digests', 'show manifest digests')
    .option('--no-trunc', 'full image IDs')
    .action(async (flags: Flags, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions & { root?: string; runroot?: string; storageDriver?: string };
      const def = await defaultStoreLocation();
      const store = new Store({ driver: g.storageDriver ?? def.driver, root: g.root ?? def.root, runroot: g.runroot ?? def.runroot });
      const images = await store.images();
      const layers = new Map((await store.layers()).map((l) => [l.id, l]));
      const size = (img: Image): number => {
        let n = 0;
        for (let id = img.layer; id; id = layers.get(id)?.parent) n += layers.get(id)?.['diff-size'] ?? 0;
        return n;
      };
      const id = (i: Image): string => (flags.trunc === false ? `sha256:${i.id}` : i.id.slice(0, 12));
      if (flags.quiet) {
        await writeOut(images.map((i) => `${id(i)}\n`).join(''));
        return;
      }
      if (flags.format === 'json') {
        // Like podman 4: one entry per name (tag) of an image.
        const out = images.flatMap((i) => (i.names?.length ? i.names.map(() => i) : [i])).map((i) => ({
          Id: i.id,
          ParentId: '',
          RepoTags: i.names ?? [],
          RepoDigests: (i.names ?? []).map((n) => `${n.replace(/:[^:/]+$/, '')}@${i.digest ?? ''}`),
          Size: size(i),
          Labels: null,
          Names: i.names ?? [],
          Digest: i.digest ?? '',
          Created: i.created ? Math.floor(Date.parse(i.created) / 1000) : 0,
          CreatedAt: i.created ?? '',
        }));
        await writeOut(`${JSON.stringify(out, null, 4)}\n`);
        return;
      }
      const rows: string[][] = [['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE']];
      for (const i of images) {
        const names = i.names?.length ? i.names : ['<none>:<none>'];
        for (const n of names) {
          const colon = n.lastIndexOf(':');
          const repo = colon > n.lastIndexOf('/') ? n.slice(0, colon) : n;
          const tag = colon > n.lastIndexOf('/') ? n.slice(colon + 1) : '<none>';
          rows.push([repo, tag, ...(flags.digests ? [i.digest ?? ''] : []), id(i), ago(i.created), humanSize(size(i))]);
        }
      }
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      await writeOut(rows.map((r) => `${r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]! + 2))).join('')}\n`).join(''));
    });
}
