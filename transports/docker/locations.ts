/**
 * Where blobs were last seen in registries: registry -> digest -> the repositories that hold it, newest first. A
 * push whose blob is not in the target repository mounts it from one of those (a cross-repository mount costs one
 * request; an upload costs the blob), as skopeo does with its blob info cache. Learnt from every blob skiff pulls,
 * finds or pushes; kept in a small JSON file that several skiff processes may update (the last writer's merge wins;
 * a lost entry only costs an upload).
 *
 * The file: $SKIFF_BLOB_CACHE, else $XDG_CACHE_HOME/skiff/blob-locations.json (~/.cache by default).
 * SKIFF_BLOB_CACHE=off keeps nothing.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Digest } from '../../src/core/digest.js';

/** registry -> digest -> [repository, unix seconds last seen][] */
type Table = Record<string, Record<string, [string, number][]>>;

/**
 * Repositories remembered per blob, blobs per registry, and registries (the least recently seen go first: a CI
 * machine meets a new throwaway registry on a new port every run, and the file must not grow for ever).
 */
const REPOS_PER_BLOB = 4;
const BLOBS_PER_REGISTRY = 2000;
const REGISTRIES = 64;

function cacheFile(): string | undefined {
  const v = process.env.SKIFF_BLOB_CACHE;
  if (v === 'off' || v === '') return undefined;
  if (v) return v;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'skiff', 'blob-locations.json');
}

function readTable(file: string): Table {
  try {
    const t = JSON.parse(readFileSync(file, 'utf8')) as { v?: number; registries?: Table };
    return t.v === 1 && t.registries && typeof t.registries === 'object' ? t.registries : {};
  } catch {
    // Missing or unreadable: an empty cache (it is only a hint).
    return {};
  }
}

function add(table: Table, registry: string, digest: string, repo: string, when: number): void {
  const blobs = (table[registry] ??= {});
  const seen = (blobs[digest] ??= []).filter(([r]) => r !== repo);
  seen.unshift([repo, when]);
  seen.sort((a, b) => b[1] - a[1]);
  blobs[digest] = seen.slice(0, REPOS_PER_BLOB);
}

function prune(table: Table): void {
  const registries = Object.keys(table);
  if (registries.length > REGISTRIES) {
    const newest = (r: string): number => Math.max(0, ...Object.values(table[r]!).map((seen) => seen[0]?.[1] ?? 0));
    const at = new Map(registries.map((r) => [r, newest(r)]));
    registries.sort((a, b) => at.get(b)! - at.get(a)!);
    for (const r of registries.slice(REGISTRIES)) delete table[r];
  }
  for (const [registry, blobs] of Object.entries(table)) {
    const digests = Object.keys(blobs);
    if (digests.length <= BLOBS_PER_REGISTRY) continue;
    const newest = (d: string): number => blobs[d]![0]?.[1] ?? 0;
    digests.sort((a, b) => newest(b) - newest(a));
    table[registry] = Object.fromEntries(digests.slice(0, BLOBS_PER_REGISTRY).map((d) => [d, blobs[d]!]));
  }
}

export class BlobLocations {
  private table: Table | undefined;
  private readonly learnt: [string, string, string, number][] = [];
  private saving = false;

  constructor(private readonly file: string | undefined) {}

  private load(): Table {
    this.table ??= this.file ? readTable(this.file) : {};
    return this.table;
  }

  /** Repositories of `registry` other than `exclude` known to hold `digest`, newest first. */
  candidates(registry: string, digest: Digest, exclude: string): string[] {
    if (!this.file) return [];
    return (this.load()[registry]?.[digest] ?? []).map(([r]) => r).filter((r) => r !== exclude);
  }

  /** `repo` at `registry` holds `digest` (it was just pulled, found or pushed there). */
  record(registry: string, repo: string, digest: Digest): void {
    if (!this.file) return;
    const when = Math.floor(Date.now() / 1000);
    if (this.table) add(this.table, registry, digest, repo, when);
    this.learnt.push([registry, digest, repo, when]);
    if (!this.saving) {
      this.saving = true;
      // Written once, as the process ends (synchronously: nothing else may run then).
      process.once('exit', () => this.save());
    }
  }

  /** Merge what this process learnt into the file as it is now, and replace it atomically. */
  save(): void {
    if (!this.file || !this.learnt.length) return;
    try {
      const table = readTable(this.file);
      // Nothing new (every location already there, seen within the day): the file is left alone.
      const known = (registry: string, digest: string, repo: string, when: number): boolean =>
        (table[registry]?.[digest] ?? []).some(([r, t]) => r === repo && when - t < 86_400);
      if (this.learnt.every(([registry, digest, repo, when]) => known(registry, digest, repo, when))) return;
      for (const [registry, digest, repo, when] of this.learnt) add(table, registry, digest, repo, when);
      prune(table);
      mkdirSync(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ v: 1, registries: table }));
      renameSync(tmp, this.file);
      this.learnt.length = 0;
    } catch {
      // A cache that cannot be written (read-only home) is no reason to fail a copy.
    }
  }
}

let shared: BlobLocations | undefined;

/** This process's view of the blob location cache. */
export function blobLocations(): BlobLocations {
  shared ??= new BlobLocations(cacheFile());
  return shared;
}
