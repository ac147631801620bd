/**
 * .containerignore / .dockerignore: Docker's semantics (patterns relative to the context root, Go filepath.Match
 * plus `**`, `#` comments only in column 1, `!` exceptions, last match wins, a pattern also excludes everything
 * under a directory it matches) evaluated per path, so `!` exceptions with wildcards re-include files inside
 * excluded directories — docker/cli#2919, where Docker gets `!**\/*.py` wrong.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { minimatch } from 'minimatch';
import { isFile } from '../../core/fs.js';

interface Pattern {
  text: string;
  negate: boolean;
}

export function parseIgnoreFile(text: string): Pattern[] {
  const out: Pattern[] = [];
  for (const raw of text.replace(/\r\n/g, '\n').split('\n')) {
    if (raw.startsWith('#')) continue;
    let line = raw.trim();
    if (line === '') continue;
    let negate = false;
    if (line.startsWith('!')) {
      negate = true;
      line = line.slice(1).trim();
    }
    let p = path.posix.normalize(line.replace(/\\/g, '/'));
    p = p.replace(/^\/+/, '').replace(/\/+$/, '');
    if (p === '' || p === '.') continue;
    out.push({ text: p, negate });
  }
  return out;
}

export class IgnoreMatcher {
  private readonly compiled: { re: RegExp; negate: boolean }[];
  readonly hasExceptions: boolean;
  constructor(patterns: Pattern[]) {
    this.compiled = patterns.map((p) => {
      const re = minimatch.makeRe(p.text, { dot: true, nobrace: true, noext: true, nonegate: true, nocomment: true });
      if (!re) throw new Error(`invalid ignore pattern ${JSON.stringify(p.text)}`);
      return { re, negate: p.negate };
    });
    this.hasExceptions = patterns.some((p) => p.negate);
  }

  /** Does a pattern match `rel` or one of its parent directories? (Docker's MatchesOrParentMatches.) */
  private static matches(re: RegExp, rel: string): boolean {
    if (re.test(rel)) return true;
    for (let i = rel.indexOf('/'); i > 0; i = rel.indexOf('/', i + 1)) if (re.test(rel.slice(0, i))) return true;
    return false;
  }

  /** Is the context path `rel` (relative, '/'-separated) excluded? The last matching pattern decides. */
  excludes(rel: string): boolean {
    let excluded = false;
    for (const p of this.compiled) if (IgnoreMatcher.matches(p.re, rel)) excluded = !p.negate;
    return excluded;
  }

  /** May a walk skip the excluded directory `rel` entirely? Only when no exception could re-include anything. */
  canPrune(rel: string): boolean {
    return this.excludes(rel) && !this.hasExceptions;
  }
}

/**
 * The ignore file for a build: --ignorefile; else `<Containerfile>.containerignore` / `.dockerignore` next to the
 * Containerfile; else `.containerignore`, then `.dockerignore`, in the context root. (Synchronous, as the rest of
 * a build's start: small lookups, where each trip through the thread pool cost more than the call.)
 */
export function findIgnoreFile(contextDir: string, containerfile: string | undefined, explicit?: string): string | undefined {
  // (A Containerfile read from standard input has no place of its own: only the context's files apply.)
  const beside = containerfile ? [`${containerfile}.containerignore`, `${containerfile}.dockerignore`] : [];
  const candidates = explicit ? [explicit] : [...beside, path.join(contextDir, '.containerignore'), path.join(contextDir, '.dockerignore')];
  for (const c of candidates) {
    if (isFile(c)) return c;
  }
  return undefined;
}

export function loadIgnore(contextDir: string, containerfile: string | undefined, explicit?: string): IgnoreMatcher {
  const f = findIgnoreFile(contextDir, containerfile, explicit);
  return new IgnoreMatcher(f ? parseIgnoreFile(readFileSync(f, 'utf8')) : []);
}
