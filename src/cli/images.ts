import { Command } from 'commander';
import { minimatch } from 'minimatch';
import { SkiffError } from '../core/errors.js';
import { imageSize, type Image, type Layer, type Store } from '../store/store.js';
import { rfc3339 } from '../core/config.js';
import { guessManifestType } from '../core/manifest.js';
import { MT } from '../core/media-types.js';
import * as path from 'node:path';
import { parseDuration, platformFrom, storeOf, writeOut, type GlobalOptions } from './common.js';
import { choosePlatform } from '../core/platform.js';
import { alignTable, compileTable, compileTemplate, GoNil, GoStruct, GoTime, goJSON } from './template.js';

interface Flags {
  filter?: string[];
  format?: string;
  quiet?: boolean;
  digests?: boolean;
  trunc?: boolean;
  noheading?: boolean;
  sort?: string;
  all?: boolean;
  history?: boolean;
}

const SORTS = ['created', 'id', 'repository', 'size', 'tag'];

/** podman's CreatedAt: the time to the second, RFC 3339 (as Go marshals a time.Time with no fraction). */
function createdAt(iso: string | undefined): string {
  return iso ? rfc3339(iso).replace(/\.\d+(?=Z|[+-])/, '') : '0001-01-01T00:00:00Z';
}

/** An image's config labels ({} when it has none or the config cannot be read). */
async function configLabels(store: Store, img: Image): Promise<Record<string, string>> {
  try {
    const cfg = await store.bigData(img, `sha256:${img.id}`);
    return (JSON.parse(cfg?.toString() ?? '{}') as { config?: { Labels?: Record<string, string> | null } }).config?.Labels ?? {};
  } catch {
    return {};
  }
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];


/**
 * A store name's repository and tag. A name by digest (an image pulled as repo@sha256:…) has no tag: podman shows
 * the repository and <none>, as for a name without one.
 */
function nameParts(n: string): [string, string] {
  const at = n.indexOf('@');
  if (at > n.lastIndexOf('/')) return [n.slice(0, at), '<none>'];
  const colon = n.lastIndexOf(':');
  return colon > n.lastIndexOf('/') ? [n.slice(0, colon), n.slice(colon + 1)] : [n, '<none>'];
}

/**
 * podman's `--filter`s: reference=PATTERN (a glob, `*` stopping at `/`, tried on each name in full, familiar
 * (`busybox:latest`) and by its last path component, each with and without the tag: podman 4.3's observed
 * matching), dangling=true|false, label=KEY[=VALUE], label!=KEY[=VALUE], before=IMAGE, since=IMAGE, until=TIME,
 * id=PREFIX. Filters of one key
 * are alternatives; different keys must all hold. An image matches as a whole: all its names are listed.
 */
export async function imageFilter(store: Store, filters: string[], intermediate: Set<string>): Promise<(img: Image) => Promise<boolean>> {
  const byKey = new Map<string, string[]>();
  for (const f of filters) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new SkiffError('ERR_USAGE', `--filter ${f}: expected KEY=VALUE`);
    const key = f.slice(0, eq);
    if (!['reference', 'dangling', 'label', 'label!', 'before', 'since', 'until', 'id'].includes(key)) throw new SkiffError('ERR_USAGE', `--filter ${key}: not a filter skiff knows (reference, dangling, label, label!, before, since, until, id)`);
    byKey.set(key, [...(byKey.get(key) ?? []), f.slice(eq + 1)]);
  }
  const when = async (ref: string, key: string): Promise<number> => {
    const img = await store.findImage(ref);
    if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `--filter ${key}=${ref}: image not known`);
    return Date.parse(img.created ?? '') || 0;
  };
  const before = await Promise.all((byKey.get('before') ?? []).map((r) => when(r, 'before')));
  const until = (byKey.get('until') ?? []).map(untilTime);
  const since = await Promise.all((byKey.get('since') ?? []).map((r) => when(r, 'since')));
  for (const d of byKey.get('dangling') ?? []) if (d !== 'true' && d !== 'false') throw new SkiffError('ERR_USAGE', `--filter dangling=${d}: expected true or false`);
  const globs = (byKey.get('reference') ?? []).map((p) => minimatch.makeRe(p, { nobrace: true, noext: true, nonegate: true, nocomment: true, dot: true }));
  const candidates = (name: string): string[] => {
    const out = new Set<string>();
    const add = (n: string): void => {
      out.add(n);
      out.add(nameParts(n)[0]);
    };
    add(name);
    add(name.replace(/^docker\.io\/(library\/)?/, ''));
    add(name.slice(name.lastIndexOf('/') + 1));
    return [...out];
  };
  const any = (key: string, test: (v: string) => boolean): boolean | undefined => (byKey.has(key) ? byKey.get(key)!.some((v) => test(v)) : undefined);
  return async (img) => {
    const created = Date.parse(img.created ?? '') || 0;
    const names = img.names ?? [];
    const checks = [
      globs.length ? globs.some((re) => re !== false && names.some((n) => candidates(n).some((c) => re.test(c)))) : undefined,
      // (Dangling: no name and no image built on it; a nameless parent is intermediate, not dangling.)
      any('dangling', (v) => (v === 'true') === (names.length === 0 && !intermediate.has(img.id))),
      any('id', (v) => img.id.startsWith(v.replace(/^sha256:/, ''))),
      before.length ? before.some((t) => created < t) : undefined,
      since.length ? since.some((t) => created > t) : undefined,
      until.length ? until.some((t) => created < t) : undefined,
    ];
    if (checks.some((c) => c === false)) return false;
    if (byKey.has('label') || byKey.has('label!')) {
      const labels = await configLabels(store, img);
      const has = (l: string): boolean => {
        const eq = l.indexOf('=');
        return eq < 0 ? Object.hasOwn(labels, l) : labels[l.slice(0, eq)] === l.slice(eq + 1);
      };
      if (byKey.has('label') && !byKey.get('label')!.some(has)) return false;
      // label!=KEY[=VALUE]: images without that label (or with another value).
      if (byKey.has('label!') && !byKey.get('label!')!.some((l) => !has(l))) return false;
    }
    return true;
  };
}

/**
 * An `until=` filter's time, as containers/common reads it: a Go duration back from now (`24h`, `1h30m`), Unix
 * seconds, or an RFC 3339 time or date (without a zone: local time).
 */
function untilTime(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  try {
    return Date.now() - parseDuration(v);
  } catch {
    /* not a duration */
  }
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw new SkiffError('ERR_USAGE', `--filter until=${v}: expected a duration (24h), Unix seconds or an RFC 3339 time`);
  return t;
}

/** How long ago, as podman prints it: go-units' HumanDuration and " ago" (its thresholds and roundings exactly). */
export function ago(iso: string | undefined): string {
  if (!iso) return '';
  const ms = Math.max(0, Date.now() - Date.parse(iso));
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60_000);
  const hours = Math.round(ms / 3_600_000);
  let d: string;
  if (seconds < 1) d = 'Less than a second';
  else if (seconds === 1) d = '1 second';
  else if (seconds < 60) d = `${seconds} seconds`;
  else if (minutes === 1) d = 'About a minute';
  else if (minutes < 60) d = `${minutes} minutes`;
  else if (hours === 1) d = 'About an hour';
  else if (hours < 48) d = `${hours} hours`;
  else if (hours < 24 * 7 * 2) d = `${Math.floor(hours / 24)} days`;
  else if (hours < 24 * 30 * 2) d = `${Math.floor(hours / 24 / 7)} weeks`;
  else if (hours < 24 * 365 * 2) d = `${Math.floor(hours / 24 / 30)} months`;
  else d = `${Math.floor(Math.floor(ms / 3_600_000) / 24 / 365)} years`;
  return `${d} ago`;
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
  addHistoryCommand(program);
  program
    .command('images')
    .description('List images in local storage (the store podman and buildah use)')
    .option('--format <format>', 'json for podman\'s JSON, or a Go template ({{.Repository}}:{{.Tag}}, table ...)')
    .option('-f, --filter <filter>', 'reference=, dangling=, label=, before=, since=, id= (repeatable)', collect)
    .option('-q, --quiet', 'image IDs only')
    .option('--digests', 'show manifest digests')
    .option('--no-trunc', 'full image IDs')
    .option('-a, --all', 'every image, intermediate ones too (nameless images another image is built on)')
    .option('-n, --noheading', 'no header row')
    .option('--sort <key>', 'created (newest first, the default), id, repository, size or tag')
    .option('--history', 'a HISTORY column: the names each image has had, newest first (podman\'s)')
    .action(async (flags: Flags, cmd: Command) => {
      const sortBy = flags.sort ?? 'created';
      if (!SORTS.includes(sortBy)) throw new SkiffError('ERR_USAGE', `--sort ${JSON.stringify(flags.sort)}: expected one of ${SORTS.join(', ')}`);
      const store = await storeOf(cmd.optsWithGlobals() as GlobalOptions);
      const all = await store.images();
      // (Only what hides rows or answers dangling= needs it: it reads nameless images' configs.)
      const needed = !flags.all || flags.filter?.some((f) => f.startsWith('dangling='));
      const intermediate = needed ? await store.intermediateImages(all) : new Set<string>();
      const keep = flags.filter?.length ? await imageFilter(store, flags.filter, intermediate) : undefined;
      const images: Image[] = [];
      // (As podman: intermediate images only with -a.)
      for (const i of all) if ((flags.all || !intermediate.has(i.id)) && (!keep || (await keep(i)))) images.push(i);
      const layers = new Map((await store.layers()).map((l) => [l.id, l]));
      const size = (img: Image): number => imageSize(img, layers);
      const id = (i: Image): string => (flags.trunc === false ? `sha256:${i.id}` : i.id.slice(0, 12));
      // podman's order: stable sorts of the store's order; newest first by default, the rest ascending.
      // (Whole seconds, as podman compares them: images made within one second keep the store's order.)
      const created = (i: Image): number => Math.floor((Date.parse(i.created ?? '') || 0) / 1000);
      const firstName = (i: Image): [string, string] => nameParts(i.names?.[0] ?? '<none>:<none>');
      const cmp = (a: string | number, b: string | number): number => (a < b ? -1 : a > b ? 1 : 0);
      if (sortBy === 'created') images.sort((a, b) => created(b) - created(a));
      else if (sortBy === 'id') images.sort((a, b) => cmp(a.id, b.id));
      else if (sortBy === 'size') images.sort((a, b) => size(a) - size(b));
      else images.sort((a, b) => cmp(firstName(a)[sortBy === 'tag' ? 1 : 0], firstName(b)[sortBy === 'tag' ? 1 : 0]));
      if (flags.quiet) {
        await writeOut(images.map((i) => `${id(i)}\n`).join(''));
        return;
      }
      if (flags.format === 'json') {
        // podman 4's shape, field for field: RepoTags always null (the names are in Names), Labels from the config,
        // History the store's names-history, Go's RFC 3339 times.
        const inUse = new Map<string, number>();
        for (const c of await store.containers()) if (c.image) inUse.set(c.image, (inUse.get(c.image) ?? 0) + 1);
        const out = [];
        for (const i of images) {
          // (Read once per image, whatever number of entries its names make.)
          const l = await configLabels(store, i);
          const labels = Object.keys(l).length ? l : null;
          const history = i['names-history'];
          const bytes = size(i);
          const entry = {
            Id: i.id,
            // (The image this one is built on, as podman's image inspect finds its Parent.)
            ParentId: (await store.parentImage(i, all))?.id ?? '',
            RepoTags: null,
            // (One per repository: two tags of one repository are one repo digest.)
            RepoDigests: [...new Set((i.names ?? []).map((n) => `${n.replace(/:[^:/]+$/, '')}@${i.digest ?? ''}`))],
            Size: bytes,
            SharedSize: 0,
            VirtualSize: bytes,
            Labels: labels,
            Containers: inUse.get(i.id) ?? 0,
            // (Go's omitempty: Names and History only when there are any; Dangling only when true.)
            ...(i.names?.length ? { Names: i.names } : { Dangling: true }),
            Digest: i.digest ?? '',
            ...(history?.length ? { History: history } : {}),
            Created: i.created ? Math.floor(Date.parse(i.created) / 1000) : 0,
            CreatedAt: createdAt(i.created),
          };
          // (As podman 4: the same entry once per name.)
          for (let k = 0; k < Math.max(1, i.names?.length ?? 0); k++) out.push(entry);
        }
        await writeOut(`${goJSON(out, 4)}\n`);
        return;
      }
      // One row per name of an image, with podman's template fields.
      // (Names by digest count only for an image with no tagged name, once per repository: podman's rows.)
      const rowParts = (i: Image): [string, string][] => {
        const names = i.names ?? [];
        const tagged = names.filter((n) => !n.includes('@'));
        if (tagged.length) return tagged.map(nameParts);
        const repos = [...new Set(names.map((n) => nameParts(n)[0]))];
        return repos.length ? repos.map((r) => [r, '<none>']) : [['<none>', '<none>']];
      };
      const rowsOf = images.flatMap((i) => rowParts(i).map(([repository, tag]) => {
        return {
          ID: id(i),
          Id: i.id,
          Repository: repository,
          Tag: tag,
          Digest: i.digest ?? '',
          Created: ago(i.created),
          CreatedSince: ago(i.created),
          CreatedAt: new GoTime(i.created ?? '0001-01-01T00:00:00Z'),
          Size: humanSize(size(i)),
          VirtualSize: size(i),
          // (A nil slice in podman's template data: [] printed, null in json.)
          Names: i.names?.length ? i.names : new GoNil('slice'),
          History: i['names-history']?.join(', ') ?? '',
        };
      }));
      // (Each name is a row: sorted by repository or tag, the rows are, not the images.)
      if (sortBy === 'repository') rowsOf.sort((a, b) => cmp(a.Repository, b.Repository));
      if (sortBy === 'tag') rowsOf.sort((a, b) => cmp(a.Tag, b.Tag));
      const heading = !flags.noheading;
      if (flags.format) {
        // (podman reads \t and \n in a format as a tab and a newline: `--format 'table {{.ID}}\t{{.Size}}'`.)
        const format = flags.format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
        const titles = { ID: 'IMAGE ID', Id: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', Created: 'CREATED', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE', VirtualSize: 'SIZE', Names: 'NAMES', History: 'HISTORY' };
        const table = compileTable(format, titles);
        if (table) {
          await writeOut(alignTable([...(heading ? [table.header] : []), ...rowsOf.map(table.row)]));
          return;
        }
        const render = compileTemplate(format);
        // (As podman: a row per image name, each on its own line.)
        await writeOut(rowsOf.map((r) => `${render(r)}\n`).join(''));
        return;
      }
      const rows: string[][] = [['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE', ...(flags.history ? ['HISTORY'] : [])]];
      for (const r of rowsOf) rows.push([r.Repository, r.Tag, ...(flags.digests ? [r.Digest] : []), r.ID, r.CreatedSince, r.Size, ...(flags.history ? [r.History || '<none>'] : [])]);
      // (Columns are as wide as with the header: podman's tabwriter sees the header either way.)
      const text = alignTable(rows);
      await writeOut(heading ? text : text.slice(text.indexOf('\n') + 1));
    });
}

/** go-units' HumanSizeWithPrecision(n, 3), as `podman history` prints sizes: Go's %.3g of decimal units. */
function historySize(n: number): string {
  const u = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  const g = Number(v.toPrecision(3));
  // (%.3g of 999.5 and up, rounded to 1000, is Go's 1e+03.)
  return `${g >= 1000 ? '1e+03' : String(g)} ${u[i]}`;
}

/** A config time as Go re-formats it: RFC 3339 with the fraction's trailing zeros dropped (`nano`), or none. */
function goRFC3339(iso: string | undefined, nano: boolean): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/i.exec(iso ?? '');
  if (!m) return '0001-01-01T00:00:00Z';
  const frac = nano ? (m[2] ?? '').replace(/0+$/, '') : '';
  return `${m[1]}${frac ? `.${frac}` : ''}${m[3]!.toUpperCase()}`;
}

interface HistoryFlags {
  format?: string;
  human?: string | boolean;
  trunc?: boolean;
  quiet?: boolean;
}

/**
 * `history IMAGE` (and `image history`): the image's history, newest first, as podman 4 lists it (containers/
 * common's libimage): each entry with a layer takes the next layer down from the image's top, its size the layer's;
 * an entry's ID is that of the first image whose top layer is the layer reached, once (`<missing>` otherwise).
 */
export function addHistoryCommand(parent: Command): void {
  parent
    .command('history')
    .description('Show the history of an image in local storage (podman history)')
    .argument('<image>', 'NAME or ID')
    .option('--format <format>', 'json, or a Go template ({{.ID}}, {{.Created}}, {{.CreatedBy}}, {{.Size}}, {{.Comment}}, {{.CreatedAt}}; table ...)')
    .option('-H, --human [bool]', 'sizes and dates human-readable (the default; -H=false for RFC 3339 dates)')
    .option('--no-trunc', 'full IDs and CREATED BY')
    .option('-q, --quiet', 'IDs only')
    .action(async (name: string, flags: HistoryFlags, cmd: Command) => {
      const human = flags.human === undefined || flags.human === true || !/^=?(false|0)$/i.test(String(flags.human));
      const globals = cmd.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(globals);
      const img = await lookupImage(store, name, globals);
      if (!img) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `${name}: image not known`, { exitCode: 125 });
      const bytes = await store.bigData(img, `sha256:${img.id}`);
      let history: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[] = [];
      try {
        history = (JSON.parse(bytes?.toString() ?? '{}') as { history?: typeof history }).history ?? [];
      } catch {
        throw new SkiffError('ERR_INVALID_CONFIG', `${name}: the image's config is not JSON`);
      }
      const layers = new Map((await store.layers()).map((l) => [l.id, l]));
      const onTop = new Map<string, Image[]>();
      for (const i of await store.images()) if (i.layer) onTop.set(i.layer, [...(onTop.get(i.layer) ?? []), i]);
      const used = new Set<string>();
      let node = img.layer;
      const entries: { id: string; created?: string; createdBy: string; size: number; comment: string }[] = [];
      for (let x = history.length - 1; x >= 0; x--) {
        const h = history[x]!;
        let id = '<missing>';
        const first = node ? onTop.get(node)?.[0] : undefined;
        if (first && !used.has(first.id)) {
          id = first.id;
          used.add(first.id);
        }
        let size = 0;
        if (!h.empty_layer) {
          if (!node) throw new SkiffError('ERR_INVALID_CONFIG', `${name}: no layer left for the history entry ${JSON.stringify(h.created_by ?? '')}`);
          size = layers.get(node)?.['diff-size'] ?? 0;
          node = layers.get(node)?.parent;
        }
        entries.push({ id, ...(h.created ? { created: h.created } : {}), createdBy: h.created_by ?? '', size, comment: h.comment ?? '' });
      }
      if (flags.format === 'json') {
        // podman 4's objects, field for field (Go's omitempty), and its extra "Created" string.
        const out = entries.map((e) => ({ id: e.id, created: goRFC3339(e.created, true), ...(e.createdBy ? { CreatedBy: e.createdBy } : {}), size: e.size, ...(e.comment ? { comment: e.comment } : {}), Created: goRFC3339(e.created, false) }));
        await writeOut(`${out.length ? goJSON(out) : '[]'}\n`);
        return;
      }
      const trunc = flags.trunc !== false;
      const rows = entries.map((e) => {
        const created = human ? ago(e.created ?? '0001-01-01T00:00:00Z') : goRFC3339(e.created, false);
        return {
          ID: trunc && e.id.length >= 12 ? e.id.slice(0, 12) : e.id,
          Created: created,
          CreatedSince: created,
          // (Whole seconds, as podman's CreatedAt.)
          CreatedAt: new GoTime(goRFC3339(e.created, false)),
          CreatedBy: trunc && e.createdBy.length > 45 ? `${e.createdBy.slice(0, 42)}...` : e.createdBy,
          Size: historySize(e.size),
          Comment: e.comment,
          Tags: new GoNil('slice'),
        };
      });
      if (flags.quiet) {
        await writeOut(rows.map((r) => `${r.ID}\n`).join(''));
        return;
      }
      const titles = { ID: 'ID', Created: 'CREATED', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT', Tags: 'TAGS' };
      if (flags.format) {
        const format = flags.format.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
        const table = compileTable(format, titles);
        if (table) {
          await writeOut(alignTable([table.header, ...rows.map(table.row)]));
          return;
        }
        const render = compileTemplate(format);
        await writeOut(rows.map((r) => `${render(r)}\n`).join(''));
        return;
      }
      await writeOut(alignTable([['ID', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], ...rows.map((r) => [r.ID, r.Created, r.CreatedBy, r.Size, r.Comment])]));
    });
}

/** Give `target` a JSON form other than its fields (Go's omitempty), not shown as a field of its own. */
function withJSON<T extends object>(target: T, json: () => unknown): T {
  Object.defineProperty(target, 'toJSON', { value: json, enumerable: false });
  return target;
}

const IMAGE_CONFIG_FIELDS = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped'] as const;

/**
 * An OCI image config's `config` as podman prints it: the fields of the image spec's ImageConfig in its order,
 * empty ones left out of JSON (Go's omitempty), and in templates every field there, nil lists and maps as Go
 * prints them.
 */
function imageConfigView(c: Record<string, unknown> | undefined): GoStruct {
  const kinds: Record<string, 'map' | 'slice' | 'string' | 'bool'> = { User: 'string', ExposedPorts: 'map', Env: 'slice', Entrypoint: 'slice', Cmd: 'slice', Volumes: 'map', WorkingDir: 'string', Labels: 'map', StopSignal: 'string', ArgsEscaped: 'bool' };
  const empty = (v: unknown): boolean => v === undefined || v === null || v === '' || v === false || (Array.isArray(v) ? v.length === 0 : typeof v === 'object' && Object.keys(v).length === 0);
  const view: Record<string, unknown> = {};
  for (const f of IMAGE_CONFIG_FIELDS) {
    const v = c?.[f];
    const k = kinds[f]!;
    // (Exposed ports and volumes map to empty structs, which Go prints as {}.)
    const set = (f === 'ExposedPorts' || f === 'Volumes') && v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).map((key) => [key, new GoStruct({}, {})])) : v;
    view[f] = set !== undefined && set !== null ? set : k === 'map' || k === 'slice' ? new GoNil(k) : k === 'bool' ? false : '';
  }
  return new GoStruct(view, Object.fromEntries(IMAGE_CONFIG_FIELDS.filter((f) => !empty(c?.[f])).map((f) => [f, c![f]])));
}

/** What `podman image inspect` prints for one image (containers/common's libimage ImageData, field for field). */
async function podmanImageData(store: Store, img: Image, images: Image[], layers: Map<string, Layer>): Promise<Record<string, unknown>> {
  const read = async (key: string): Promise<Record<string, unknown> | undefined> => {
    const b = await store.bigData(img, key);
    if (!b) return undefined;
    try {
      return JSON.parse(b.toString()) as Record<string, unknown>;
    } catch {
      throw new SkiffError('ERR_INVALID_CONFIG', `${img.id}: ${key} is not JSON`);
    }
  };
  const config = (await read(`sha256:${img.id}`)) ?? {};
  const manifestBytes = (img.digest ? await store.bigData(img, `manifest-${img.digest}`) : undefined) ?? (await store.bigData(img, 'manifest'));
  const manifest = manifestBytes ? (JSON.parse(manifestBytes.toString()) as { annotations?: Record<string, string> }) : undefined;
  const manifestType = manifestBytes ? guessManifestType(manifestBytes) : '';
  const names = img.names ?? [];
  // The image's digests: its own and every stored manifest's (containers/storage's Digests).
  const digests = new Set<string>(img.digest ? [img.digest] : []);
  for (const [k, d] of Object.entries(img['big-data-digests'] ?? {})) if (k === 'manifest' || k.startsWith('manifest-')) digests.add(d);
  const repoDigests = [...new Set(names.flatMap((n) => [...digests].map((d) => `${nameParts(n)[0]}@${d}`)))].sort();
  const chain: string[] = [];
  for (let id = img.layer; id; id = layers.get(id)?.parent) chain.push(id);
  const size = imageSize(img, layers);
  const driverDir = (id: string): string => path.join(store.loc.root, store.loc.driver, id);
  const graphData: Record<string, string> = {};
  if (chain.length > 1) graphData.LowerDir = chain.slice(1).map((id) => path.join(driverDir(id), 'diff')).join(':');
  if (chain.length) {
    graphData.UpperDir = path.join(driverDir(chain[0]!), 'diff');
    graphData.WorkDir = path.join(driverDir(chain[0]!), 'work');
  }
  const cfg = (config.config ?? {}) as Record<string, unknown>;
  const docker = manifestType === MT.dockerManifest;
  const healthcheck = docker ? ((config.container_config as { Healthcheck?: unknown } | undefined)?.Healthcheck ?? (cfg.Healthcheck as unknown) ?? null) : null;
  const created = typeof config.created === 'string' ? new GoTime(goRFC3339(config.created, true)) : null;
  // The image spec's History structs: Created, CreatedBy, Author, Comment, EmptyLayer.
  const history = Array.isArray(config.history)
    ? (config.history as Record<string, unknown>[]).map((h) => {
        const created = typeof h.created === 'string' ? goRFC3339(h.created, true) : undefined;
        const str = (x: unknown): string => (typeof x === 'string' ? x : '');
        return new GoStruct(
          { Created: created ? new GoTime(created) : null, CreatedBy: str(h.created_by), Author: str(h.author), Comment: str(h.comment), EmptyLayer: h.empty_layer === true },
          {
            ...(created ? { created } : {}),
            ...(h.created_by ? { created_by: h.created_by } : {}),
            ...(h.author ? { author: h.author } : {}),
            ...(h.comment ? { comment: h.comment } : {}),
            ...(h.empty_layer ? { empty_layer: true } : {}),
          },
        );
      })
    : null;
  const parent = await store.parentImage(img, images);
  const namesHistory = img['names-history'];
  const labels = cfg.Labels && typeof cfg.Labels === 'object' ? cfg.Labels : null;
  const rootfs = (config.rootfs ?? {}) as { type?: string; diff_ids?: string[] };
  const data: Record<string, unknown> = {
    Id: img.id,
    Digest: img.digest ?? '',
    RepoTags: names.filter((n) => !n.includes('@')),
    RepoDigests: repoDigests,
    Parent: parent?.id ?? '',
    Comment: docker && typeof config.comment === 'string' ? config.comment : '',
    Created: created,
    Config: imageConfigView(cfg),
    Version: docker && typeof config.docker_version === 'string' ? config.docker_version : '',
    Author: typeof config.author === 'string' ? config.author : '',
    Architecture: typeof config.architecture === 'string' ? config.architecture : '',
    Os: typeof config.os === 'string' ? config.os : '',
    Size: size,
    VirtualSize: size,
    GraphDriver: new GoStruct({ Name: store.loc.driver, Data: graphData }, { Name: store.loc.driver, Data: graphData }),
    RootFS: new GoStruct({ Type: rootfs.type ?? '', Layers: rootfs.diff_ids ?? new GoNil('slice') }, { Type: rootfs.type ?? '', Layers: rootfs.diff_ids ?? null }),
    Labels: labels ?? new GoNil('map'),
    Annotations: manifest?.annotations ?? {},
    ManifestType: manifestType,
    User: typeof cfg.User === 'string' ? cfg.User : '',
    History: history ?? new GoNil('slice'),
    NamesHistory: namesHistory ?? new GoNil('slice'),
    Healthcheck: healthcheck,
  };
  return withJSON(data, () => {
    const { Healthcheck, ...rest } = data;
    return Healthcheck === null ? rest : data;
  });
}

/**
 * An image by name or ID as podman looks it up for inspect and history: a manifest list stands for its image for
 * this platform (--override-arch/os/variant), if that is in the store.
 */
async function lookupImage(store: Store, name: string, globals: GlobalOptions, images?: Image[]): Promise<Image | undefined> {
  const img = (await store.resolveImage(name))?.image;
  const list = img ? await store.listOf(img) : undefined;
  if (!img || !list) return img;
  const d = choosePlatform(list, platformFrom(globals)).digest;
  return (images ?? (await store.images())).find((i) => i.digest === d || Object.values(i['big-data-digests'] ?? {}).includes(d));
}

/** `image inspect IMAGE...`: podman's JSON for each image (or a Go template per image); a missing one exits 125. */
export function addImageInspectCommand(parent: Command): void {
  parent
    .command('inspect')
    .description('Show local images as podman image inspect does (JSON, or --format TEMPLATE per image)')
    .argument('<images...>', 'NAME or ID')
    .option('-f, --format <format>', 'json (the default), or a Go template ({{.Id}}, {{.Config.Env}}, {{json .Config}}, ...)')
    .action(async (names: string[], flags: { format?: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as GlobalOptions;
      const store = await storeOf(globals);
      const images = await store.images();
      const layers = new Map((await store.layers()).map((l) => [l.id, l]));
      const found: Record<string, unknown>[] = [];
      let missing: string | undefined;
      for (const name of names) {
        const img = await lookupImage(store, name, globals, images);
        if (!img) {
          missing ??= name;
          continue;
        }
        found.push(await podmanImageData(store, img, images, layers));
      }
      if (flags.format && flags.format !== 'json') {
        const render = compileTemplate(flags.format.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
        await writeOut(found.map((d) => `${render(d)}\n`).join(''));
      } else {
        // (Go's MarshalIndent with podman's five spaces.)
        await writeOut(`${found.length ? goJSON(found, 5) : '[]'}\n`);
      }
      if (missing !== undefined) throw new SkiffError('ERR_IMAGE_NOT_FOUND', `inspecting object: ${missing}: image not known`, { exitCode: 125 });
    });
}
