/**
 * Docker-exact word expansion (BuildKit's shell lexer): quotes, the escape character, and
 * `$x ${x} ${x:-d} ${x-d} ${x:+a} ${x+a} ${x:?m} ${x?m} ${x#p} ${x##p} ${x%p} ${x%%p} ${x/a/b} ${x//a/b}`.
 * Unset variables expand to nothing; `$` not followed by a name is literal.
 */

export type Env = ReadonlyMap<string, string>;

export class ExpandError extends Error {}

interface Scanner {
  s: string;
  i: number;
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Convert a shell glob (`*`, `?`, `[...]`, `\x`) to a RegExp source (no anchors). */
function globToRegex(p: string): string {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') out += '.*?';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const j = p.indexOf(']', i + 1);
      if (j < 0) out += '\\[';
      else {
        let cls = p.slice(i + 1, j);
        if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        out += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = j;
      }
    } else if (c === '\\' && i + 1 < p.length) out += p[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return out;
}

function removePrefix(v: string, pat: string, longest: boolean): string {
  const re = globToRegex(pat);
  const m = new RegExp(`^(${longest ? re.replace(/\.\*\?/g, '.*') : re})`, 's').exec(v);
  return m ? v.slice(m[1]!.length) : v;
}

function removeSuffix(v: string, pat: string, longest: boolean): string {
  const re = globToRegex(pat).replace(/\.\*\?/g, '.*');
  // Shortest suffix: try from the end; longest: from the start.
  if (longest) {
    for (let i = 0; i <= v.length; i++) if (new RegExp(`^(?:${re})$`, 's').test(v.slice(i))) return v.slice(0, i);
  } else {
    for (let i = v.length; i >= 0; i--) if (new RegExp(`^(?:${re})$`, 's').test(v.slice(i))) return v.slice(0, i);
  }
  return v;
}

function substitute(v: string, pat: string, rep: string, all: boolean): string {
  if (pat === '') return v;
  const re = new RegExp(globToRegex(pat).replace(/\.\*\?/g, '.*'), all ? 'gs' : 's');
  return v.replace(re, () => rep);
}

export class Expander {
  constructor(
    private readonly env: Env,
    private readonly escape = '\\',
  ) {}

  /** One word: quotes removed, variables expanded, no splitting (WORKDIR, USER, ENV values, …). */
  word(text: string): string {
    return this.words(text, false)[0] ?? '';
  }

  /**
   * Split into words on unquoted white space and expand each (COPY sources, EXPOSE, VOLUME, …). With
   * `split` false, the whole text is one word (white space kept).
   */
  words(text: string, split = true): string[] {
    const sc: Scanner = { s: text, i: 0 };
    const words: string[] = [];
    let cur = '';
    let inWord = false;
    while (sc.i < sc.s.length) {
      const c = sc.s[sc.i]!;
      if (split && /\s/.test(c)) {
        if (inWord) words.push(cur);
        cur = '';
        inWord = false;
        sc.i++;
        continue;
      }
      inWord = true;
      if (c === this.escape) {
        sc.i++;
        if (sc.i < sc.s.length) cur += sc.s[sc.i++]!;
        continue;
      }
      if (c === "'") {
        const j = sc.s.indexOf("'", sc.i + 1);
        if (j < 0) throw new ExpandError(`unexpected end of statement while looking for matching single-quote`);
        cur += sc.s.slice(sc.i + 1, j);
        sc.i = j + 1;
        continue;
      }
      if (c === '"') {
        cur += this.doubleQuoted(sc);
        continue;
      }
      if (c === '$') {
        cur += this.dollar(sc);
        continue;
      }
      cur += c;
      sc.i++;
    }
    if (inWord || (!split && words.length === 0)) words.push(cur);
    return words;
  }

  private doubleQuoted(sc: Scanner): string {
    sc.i++; // opening quote
    let out = '';
    while (sc.i < sc.s.length) {
      const c = sc.s[sc.i]!;
      if (c === '"') {
        sc.i++;
        return out;
      }
      if (c === '$') {
        out += this.dollar(sc);
        continue;
      }
      if (c === this.escape && sc.i + 1 < sc.s.length) {
        const n = sc.s[sc.i + 1]!;
        // Inside double quotes the escape only protects ", $ and itself.
        out += n === '"' || n === '$' || n === this.escape ? n : `${c}${n}`;
        sc.i += 2;
        continue;
      }
      out += c;
      sc.i++;
    }
    throw new ExpandError('unexpected end of statement while looking for matching double-quote');
  }

  private lookup(name: string): string | undefined {
    return this.env.get(name);
  }

  /** At a `$`: expand a variable reference, or return a literal `$`. */
  private dollar(sc: Scanner): string {
    const s = sc.s;
    sc.i++;
    const c = s[sc.i];
    if (c === undefined) return '$';
    if (c !== '{') {
      if (!NAME_START.test(c) && !/[0-9]/.test(c)) return '$';
      let name = '';
      if (/[0-9]/.test(c)) name = s[sc.i++]!;
      else while (sc.i < s.length && NAME_CHAR.test(s[sc.i]!)) name += s[sc.i++]!;
      return this.lookup(name) ?? '';
    }
    sc.i++; // {
    let name = '';
    while (sc.i < s.length && NAME_CHAR.test(s[sc.i]!)) name += s[sc.i++]!;
    if (name === '') throw new ExpandError(`bad substitution: missing variable name in \${`);
    if (s[sc.i] === '}') {
      sc.i++;
      return this.lookup(name) ?? '';
    }
    // Modifier and its word (which is itself expanded), up to the matching }.
    let mod = s[sc.i++] ?? '';
    if ((mod === ':' && /[-+?]/.test(s[sc.i] ?? '')) || ((mod === '#' || mod === '%') && s[sc.i] === mod) || (mod === '/' && s[sc.i] === '/')) mod += s[sc.i++];
    if (!['-', '+', '?', ':-', ':+', ':?', '#', '##', '%', '%%', '/', '//'].includes(mod)) {
      throw new ExpandError(`unsupported modifier (${mod}) in substitution \${${name}${mod}…}`);
    }
    const start = sc.i;
    let depth = 0;
    while (sc.i < s.length) {
      const ch = s[sc.i]!;
      if (ch === this.escape) sc.i += 2;
      else if (ch === '{') {
        depth++;
        sc.i++;
      } else if (ch === '}') {
        if (depth === 0) break;
        depth--;
        sc.i++;
      } else sc.i++;
    }
    if (sc.i >= s.length) throw new ExpandError(`missing '}' in \${${name}${mod}…`);
    const rawWord = s.slice(start, sc.i);
    sc.i++; // }
    const value = this.lookup(name);
    const set = value !== undefined;
    const nonEmpty = set && value !== '';
    const w = (): string => this.words(rawWord, false)[0] ?? '';
    switch (mod) {
      case '-':
        return set ? value : w();
      case ':-':
        return nonEmpty ? value : w();
      case '+':
        return set ? w() : '';
      case ':+':
        return nonEmpty ? w() : '';
      case '?':
        if (!set) throw new ExpandError(`${name}: ${w() || 'is not allowed to be unset'}`);
        return value;
      case ':?':
        if (!nonEmpty) throw new ExpandError(`${name}: ${w() || 'is not allowed to be unset'}`);
        return value;
      case '#':
      case '##':
        return removePrefix(value ?? '', w(), mod === '##');
      case '%':
      case '%%':
        return removeSuffix(value ?? '', w(), mod === '%%');
      default: {
        // ${x/pattern/replacement} and ${x//pattern/replacement}
        const slash = findUnescapedSlash(rawWord, this.escape);
        const pat = slash < 0 ? rawWord : rawWord.slice(0, slash);
        const rep = slash < 0 ? '' : rawWord.slice(slash + 1);
        return substitute(value ?? '', this.words(pat, false)[0] ?? '', this.words(rep, false)[0] ?? '', mod === '//');
      }
    }
  }
}

function findUnescapedSlash(s: string, escape: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === escape) i++;
    else if (s[i] === '/') return i;
  }
  return -1;
}

/** Parse ENV/LABEL/ARG style `k=v k2="v 2"` pairs (quotes kept for the expander to process), or legacy `k v`. */
export function splitKeyValues(text: string, escape = '\\', legacyAllowed = true): { key: string; value: string | undefined }[] {
  const words: string[] = [];
  let cur = '';
  let i = 0;
  let quote: string | undefined;
  let inWord = false;
  while (i < text.length) {
    const c = text[i]!;
    if (!quote && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === escape && i + 1 < text.length) {
      cur += c + text[i + 1]!;
      i += 2;
      continue;
    }
    if (quote && c === quote) quote = undefined;
    else if (!quote && (c === '"' || c === "'")) quote = c;
    cur += c;
    i++;
  }
  if (quote) throw new ExpandError(`unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  if (inWord) words.push(cur);
  if (words.length && !words[0]!.includes('=')) {
    if (!legacyAllowed) return words.map((w) => ({ key: w, value: undefined }));
    // Legacy form: `ENV key value with spaces`
    const m = /^\s*(\S+)\s*(.*)$/s.exec(text)!;
    return [{ key: m[1]!, value: m[2] ? m[2] : undefined }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    return eq < 0 ? { key: w, value: undefined } : { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}
