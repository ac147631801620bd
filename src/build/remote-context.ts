/**
 * Build contexts given as URLs, as buildah takes them (`skiff build https://…/src.tar.gz`, `--build-context
 * NAME=https://…`): the file is downloaded; an archive (tar, plain or compressed, recognised by content) is unpacked
 * and its root is the context; anything else is the Containerfile, with an empty context. Git repositories
 * (`git://…`, `github.com/…`, an http(s) URL whose path ends in `.git`; `#REF[:SUBDIR]` picks a branch or tag and
 * a directory in it) are cloned with git, as buildah clones them.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { safeRelativePath } from '../archive/file-tree.js';
import type { Header } from '../archive/tar-pack.js';
import { SkiffError } from '../core/errors.js';
import { download, isArchive, unpackArchive } from './sources.js';

/**
 * A git repository URL, as buildah recognises one: `git://…`, `github.com/…` (https), or an http(s) URL whose
 * path ends in `.git`; the fragment, `#REF[:SUBDIR]`, is not part of the path.
 */
export function isGitContext(spec: string): boolean {
  if (/^git:\/\/|^github\.com\//.test(spec)) return true;
  return /^https?:\/\//i.test(spec) && /\.git$/.test(spec.replace(/#.*$/, '').replace(/\?.*$/, ''));
}

/**
 * Is this context argument a URL skiff fetches (http or https, or a git repository)? Other schemes, and git over
 * ssh (`git@host:…`, which needs keys skiff does not handle), are refused.
 * `what` prefixes the messages with the spec right after it: `build context URL`, `--build-context NAME=URL`.
 */
export function isRemoteContext(spec: string, what: string): boolean {
  if (isGitContext(spec)) return true;
  if (/^git@/.test(spec)) throw new SkiffError('ERR_UNSUPPORTED', `${what}${spec}: git over ssh is not supported: give a git://, https://….git or github.com/… URL, or clone it and give the directory`);
  if (/^https?:\/\//i.test(spec)) return true;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new SkiffError('ERR_UNSUPPORTED', `${what}${spec}: only http and https URLs are supported (and git repositories: git://…, https://….git, github.com/…)`);
  return false;
}

/**
 * Clone a git repository into `work`/context, as buildah does (`git clone --recurse-submodules -b REF`), only
 * shallow: the context is the checkout (or SUBDIR of it, which must stay inside), `.git` included.
 */
async function cloneContext(spec: string, work: string, what: string): Promise<RemoteContext> {
  // (A token in the URL, https://user:token@host/…, is not repeated in any message.)
  const redact = (t: string): string => t.replace(/(\w+:\/\/)[^/@\s]+@/g, '$1***@');
  const shown = redact(spec);
  const hash = spec.indexOf('#');
  let url = hash < 0 ? spec : spec.slice(0, hash);
  const fragment = hash < 0 ? '' : spec.slice(hash + 1);
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const sub = colon < 0 ? '' : safeRelativePath(fragment.slice(colon + 1), `${what}${shown}`);
  if (url.startsWith('github.com/')) url = `https://${url}`;
  const dir = path.join(work, 'context');
  const args = ['clone', '--quiet', '--depth', '1', '--recurse-submodules', '--shallow-submodules', ...(ref ? ['--branch', ref] : []), '--', url, dir];
  const r = await new Promise<{ code: number; err: string }>((resolve, reject) => {
    // (No prompt for credentials: a build must not wait on a terminal.)
    const p = spawn('git', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } });
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', (e) => reject(new SkiffError('ERR_UNSUPPORTED', `${what}${shown}: running git: ${e.message} (git is needed to build from a repository: apt-get install git)`)));
    p.on('close', (code) => resolve({ code: code ?? -1, err }));
  });
  if (r.code !== 0) throw new SkiffError('ERR_BUILD', `${what}${shown}: git clone failed: ${redact(r.err.trim().split('\n').pop() ?? `exit status ${r.code}`)}`);
  if (!sub) return { dir };
  // (Inside the checkout, also through the repository's symbolic links.)
  const root = await fsp.realpath(dir);
  const context = await fsp.realpath(path.join(dir, sub)).catch(() => undefined);
  const st = context ? await fsp.stat(context) : undefined;
  if (!context || !st?.isDirectory() || !(context + path.sep).startsWith(root + path.sep)) throw new SkiffError('ERR_USAGE', `${what}${shown}: ${sub} is not a directory in the repository`);
  return { dir: context };
}

export interface RemoteContext {
  /** The context directory (the archive's root, or empty). */
  dir: string;
  /** The downloaded Containerfile, when the URL was not an archive. */
  containerfile?: string;
}

/**
 * Fetch `url` into `work` (a new, empty directory the caller removes) and unpack it there (a git repository is
 * cloned there instead: cloneContext). The archive is
 * unpacked with every name kept inside the context: `..` cannot climb out, a file is never written through a
 * symlink or a file the archive made (refused as hostile), hard links point only at files of the archive, and
 * devices and fifos are left out. Owners are not kept (the context's files are the user's, as a directory's are).
 */
/** `what` as for isRemoteContext. */
export async function fetchContext(url: string, work: string, what: string): Promise<RemoteContext> {
  if (isGitContext(url)) return cloneContext(url, work, what);
  const file = path.join(work, 'download');
  const dir = path.join(work, 'context');
  await fsp.mkdir(dir, { recursive: true });
  await download(url, file, undefined, `${what}${url}`);
  if (!(await isArchive(file))) {
    const containerfile = path.join(work, 'Containerfile');
    await fsp.rename(file, containerfile);
    return { dir, containerfile };
  }
  const made = new Map<string, 'dir' | 'file' | 'symlink'>();
  /** The archive's modes, set at the end: a read-only directory must stay writable until its files are in. */
  const modes = new Map<string, number>();
  const hostile = (name: string, why: string): SkiffError => new SkiffError('ERR_BUILD', `${what}${url}: ${name}: ${why}`);
  /** Make the parents of `rel`: each must be a directory this archive made (or a new one). */
  const parents = async (rel: string): Promise<void> => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const kind = made.get(p);
      if (kind === undefined) {
        await fsp.mkdir(path.join(dir, p));
        made.set(p, 'dir');
      } else if (kind !== 'dir') throw hostile(rel, `its parent ${p} is a ${kind === 'symlink' ? 'symbolic link' : 'file'} in the archive`);
    }
  };
  /** An entry replaces what the archive made at its name before (a directory only by a directory). */
  const replace = async (rel: string, kind: 'dir' | 'file' | 'symlink'): Promise<boolean> => {
    const had = made.get(rel);
    if (had === undefined) return true;
    if (had === 'dir') {
      if (kind === 'dir') return false;
      throw hostile(rel, 'replaces a directory of the archive');
    }
    await fsp.rm(path.join(dir, rel), { force: true });
    return true;
  };
  await unpackArchive(file, '', async (h: Header, body?: Readable) => {
    // (unpackArchive has made names relative and kept them inside: `..` and leading slashes are gone.)
    const rel = h.name.replace(/\/+$/, '');
    if (!rel || rel === '.') return;
    await parents(rel);
    const full = path.join(dir, rel);
    const mode = (h.mode ?? 0o644) & 0o777;
    switch (h.type) {
      case 'directory':
        if (await replace(rel, 'dir')) await fsp.mkdir(full, { mode: 0o700 });
        made.set(rel, 'dir');
        modes.set(rel, mode);
        return;
      case 'symlink':
        await replace(rel, 'symlink');
        await fsp.symlink(h.linkname ?? '', full);
        made.set(rel, 'symlink');
        return;
      case 'link': {
        const target = (h.linkname ?? '').replace(/\/+$/, '');
        if (made.get(target) !== 'file') throw hostile(rel, `a hard link to ${target}, which is not a file of the archive`);
        await replace(rel, 'file');
        await fsp.link(path.join(dir, target), full);
        made.set(rel, 'file');
        return;
      }
      case 'file':
        await replace(rel, 'file');
        // (wx: the name was checked above; nothing may be opened through a link made in between.)
        await pipeline(body!, createWriteStream(full, { flags: 'wx', mode: 0o600 }));
        made.set(rel, 'file');
        modes.set(rel, mode);
        return;
      default:
        body?.resume();
    }
  }, undefined, `${what}${url}`);
  // Deepest first, so a directory made read-only no longer needs to be written into.
  for (const rel of [...modes.keys()].sort((x, y) => y.split('/').length - x.split('/').length)) if (made.get(rel) !== 'symlink') await fsp.chmod(path.join(dir, rel), modes.get(rel)!);
  await fsp.rm(file, { force: true });
  return { dir };
}
