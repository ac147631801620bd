import { Command } from 'commander';
import { defaultStoreLocation, Store, type Image } from '../store/store.js';
import { writeOut, type GlobalOptions } from './common.js';
import { alignTable, compileTable, compileTemplate, GoTime } from './template.js';

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
    .option('--format <format>', 'json for podman\'s JSON, or a Go template ({{.Repository}}:{{.Tag}}, table ...)')
    .option('-q, --quiet', 'image IDs only')
    .option('--digests', 'show manifest digests')
    .option('--no-trunc', 'full image IDs')
    .action(async (flags: Flags, cmd: Command) => {
      const g = cmd.optsWithGlobals() as GlobalOptions & { root?: string; runroot?: string; storageDriver?: string };
      const def = await defaultStoreLocation();
      const store = new Store({ driver: g.storageDriver ?? def.driver, root: g.root ?? def.root, runroot: g.runroot ?? def.runroot });
      const images = await store.images();
      const layers = new Map((await store.layers()).map((l) => [l.id, l]));
      // As containers/storage's ImageSize (what podman shows): the layers' uncompressed sizes and the image's big
      // data (config, manifests).
      const size = (img: Image): number => {
        let n = Object.values(img['big-data-sizes'] ?? {}).reduce((a, b) => a + b, 0);
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
      // One row per name of an image, with podman's template fields.
      const rowsOf = images.flatMap((i) => (i.names?.length ? i.names : ['<none>:<none>']).map((n) => {
        const colon = n.lastIndexOf(':');
        const named = colon > n.lastIndexOf('/');
        return {
          ID: id(i),
          Id: i.id,
          Repository: named ? n.slice(0, colon) : n,
          Tag: named ? n.slice(colon + 1) : '<none>',
          Digest: i.digest ?? '',
          Created: ago(i.created),
          CreatedSince: ago(i.created),
          CreatedAt: new GoTime(i.created ?? '0001-01-01T00:00:00Z'),
          Size: humanSize(size(i)),
          VirtualSize: size(i),
          Names: i.names ?? [],
        };
      }));
      if (flags.format) {
        // (podman reads \t and \n in a format as a tab and a newline: `--format 'table {{.ID}}\t{{.Size}}'`.)
        const format = flags.format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
        const titles = { ID: 'IMAGE ID', Id: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', Created: 'CREATED', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', VirtualSize: 'SIZE', Names: 'NAMES' };
        const table = compileTable(format, titles);
        if (table) {
          await writeOut(alignTable([table.header, ...rowsOf.map(table.row)]));
          return;
        }
        const render = compileTemplate(format);
        // (As podman: a row per image name, each on its own line.)
        await writeOut(rowsOf.map((r) => `${render(r)}\n`).join(''));
        return;
      }
      const rows: string[][] = [['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE']];
      for (const r of rowsOf) rows.push([r.Repository, r.Tag, ...(flags.digests ? [r.Digest] : []), r.ID, r.CreatedSince, r.Size]);
      await writeOut(alignTable(rows));
    });
}
