import { SkiffError } from '../../src/core/errors.js';

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header (RFC 7235): `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
 * Throws ERR_REGISTRY naming the header when it cannot be understood.
 */
export function parseChallenge(header: string): Challenge {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) throw new SkiffError('ERR_REGISTRY', `malformed WWW-Authenticate header ${JSON.stringify(header)}`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') throw new SkiffError('ERR_UNSUPPORTED', `unsupported authentication scheme ${JSON.stringify(m[1])}`);
  const params: Record<string, string> = {};
  const re = /\s*([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(,|$)/gy;
  let rest = m[2] ?? '';
  let pm: RegExpExecArray | null;
  let consumed = 0;
  while (consumed < rest.length && (pm = re.exec(rest)) !== null) {
    params[pm[1]!.toLowerCase()] = (pm[2] ?? pm[3] ?? '').replace(/\\(.)/g, '$1');
    consumed = re.lastIndex;
    if (pm[0] === '') break;
  }
  rest = rest.slice(consumed).trim();
  if (rest !== '') throw new SkiffError('ERR_REGISTRY', `malformed WWW-Authenticate header ${JSON.stringify(header)}`);
  if (scheme === 'bearer') {
    if (!params.realm) throw new SkiffError('ERR_REGISTRY', `WWW-Authenticate Bearer challenge without a realm: ${JSON.stringify(header)}`);
    let u: URL;
    try {
      u = new URL(params.realm);
    } catch {
      throw new SkiffError('ERR_REGISTRY', `WWW-Authenticate realm is not a URL: ${JSON.stringify(params.realm)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new SkiffError('ERR_REGISTRY', `WWW-Authenticate realm ${params.realm} is not http(s)`);
  }
  return { scheme, params };
}

/** `repository:NAME:pull` / `repository:NAME:pull,push` */
export function repoScope(repo: string, push: boolean): string {
  return `repository:${repo}:${push ? 'pull,push' : 'pull'}`;
}
