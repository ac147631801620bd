/**
 * Containerfile syntax: dockerfile-ast finds directives and instruction boundaries; skiff adds what it lacks or gets
 * wrong (REFERENCE.md): heredoc bodies (`<<EOF`, `<<-EOF`, quoted delimiters, `<< 'EOF'`, several per line),
 * line continuations with comments inside, flags with quoted values, and exec-form JSON read from the raw text.
 */
import { DockerfileParser } from 'dockerfile-ast';

export interface Heredoc {
  /** Delimiter word, e.g. EOF. */
  name: string;
  /** Quoted delimiter: the body is not expanded. */
  quoted: boolean;
  /** `<<-`: leading tabs stripped from body lines. */
  stripTabs: boolean;
  body: string;
}

export interface RawFlag {
  name: string;
  value: string | undefined;
}

export interface RawInstruction {
  keyword: string;
  /** 1-based line where the instruction starts. */
  line: number;
  flags: RawFlag[];
  /** Arguments after the flags, continuations joined; heredoc markers replaced by `<<N` placeholders (see heredocs). */
  args: string;
  /** Exec form, when args are a JSON array of strings. */
  json?: string[];
  heredocs: Heredoc[];
}

export interface ParsedFile {
  escape: string;
  syntax?: string;
  check?: string;
  instructions: RawInstruction[];
}

const HEREDOC_RE = /(^|\s)<<(-?)\s*(["']?)([A-Za-z_][A-Za-z0-9_]*)\3/g;
const HEREDOC_KEYWORDS = new Set(['RUN', 'COPY', 'ADD']);
export const HEREDOC_PLACEHOLDER = (n: number): string => `\u241E${n}\u241E`;

function endsWithEscape(line: string, escape: string): boolean {
  return line.replace(/\s+$/, '').endsWith(escape);
}

/** Directives (`# escape=`, `# syntax=`, `# check=`) before anything else; their escape char; lines as given. */
function readDirectives(lines: string[]): { escape: string; syntax?: string; check?: string } {
  const out: { escape: string; syntax?: string; check?: string } = { escape: '\\' };
  for (const l of lines) {
    const m = /^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$/.exec(l);
    if (!m) break;
    const k = m[1]!.toLowerCase();
    if (k === 'escape') out.escape = m[2] === '`' ? '`' : '\\';
    else if (k === 'syntax') out.syntax = m[2]!;
    else if (k === 'check') out.check = m[2]!;
    else break;
  }
  return out;
}

/**
 * Pre-pass: find heredoc bodies, record them by the line of their instruction, and blank them (and replace the
 * markers) in a copy of the text, so dockerfile-ast sees plain instructions with line numbers unchanged.
 */
function extractHeredocs(lines: string[], escape: string): { sanitized: string[]; byLine: Map<number, Heredoc[]> } {
  const out = [...lines];
  const byLine = new Map<number, Heredoc[]>();
  let i = 0;
  while (i < lines.length) {
    const first = lines[i]!;
    if (/^\s*(#|$)/.test(first)) {
      i++;
      continue;
    }
    const start = i;
    const keyword = (/^\s*(\S+)/.exec(first)?.[1] ?? '').toUpperCase();
    // The logical line: continues while a line ends with the escape char; comment lines inside are skipped.
    let end = i;
    while (end + 1 < lines.length && (endsWithEscape(lines[end]!, escape) || (end > start && /^\s*#/.test(lines[end]!)))) end++;
    i = end + 1;
    if (!HEREDOC_KEYWORDS.has(keyword)) continue;
    const docs: Heredoc[] = [];
    for (let l = start; l <= end; l++) {
      out[l] = out[l]!.replace(HEREDOC_RE, (_m, pre: string, dash: string, q: string, name: string) => {
        docs.push({ name, quoted: q !== '', stripTabs: dash === '-', body: '' });
        return `${pre}${HEREDOC_PLACEHOLDER(docs.length - 1)}`;
      });
    }
    if (!docs.length) continue;
    for (const d of docs) {
      const body: string[] = [];
      while (i < lines.length) {
        const raw = lines[i]!;
        out[i] = '';
        i++;
        const cmp = d.stripTabs ? raw.replace(/^\t+/, '') : raw;
        if (cmp === d.name) break;
        body.push(d.stripTabs ? raw.replace(/^\t+/, '') : raw);
      }
      d.body = body.length ? `${body.join('\n')}\n` : '';
    }
    byLine.set(start, docs);
  }
  return { sanitized: out, byLine };
}

/** Join a multi-line instruction: drop escape+newline and comment lines inside continuations. */
function joinLines(lines: string[], escape: string): string {
  const parts: string[] = [];
  for (const [k, l] of lines.entries()) {
    if (k > 0 && /^\s*#/.test(l)) continue;
    const t = l.replace(/\s+$/, '');
    parts.push(t.endsWith(escape) ? t.slice(0, -1) : l);
  }
  return parts.join('');
}

/** Split leading `--flag[=value]` tokens (values may be quoted) off an instruction's argument text. */
export function splitFlags(text: string): { flags: RawFlag[]; rest: string } {
  const flags: RawFlag[] = [];
  let s = text.replace(/^\s+/, '');
  while (s.startsWith('--')) {
    let i = 2;
    let quote: string | undefined;
    let tok = '';
    while (i < s.length && (quote || !/\s/.test(s[i]!))) {
      const c = s[i]!;
      if (quote && c === quote) quote = undefined;
      else if (!quote && (c === '"' || c === "'")) quote = c;
      else tok += c;
      i++;
    }
    const eq = tok.indexOf('=');
    flags.push(eq < 0 ? { name: tok, value: undefined } : { name: tok.slice(0, eq), value: tok.slice(eq + 1) });
    s = s.slice(i).replace(/^\s+/, '');
  }
  return { flags, rest: s };
}

/** Exec form: a JSON array of strings, parsed from the raw text (dockerfile-ast drops inner spaces). */
export function parseExecForm(args: string): string[] | undefined {
  const t = args.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    /* not JSON: Docker treats it as shell form */
  }
  return undefined;
}

export function parseContainerfile(text: string): ParsedFile {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const dir = readDirectives(lines);
  const { sanitized, byLine } = extractHeredocs(lines, dir.escape);
  const ast = DockerfileParser.parse(sanitized.join('\n'));
  const instructions: RawInstruction[] = [];
  for (const ins of ast.getInstructions()) {
    const r = ins.getRange();
    const start = r.start.line;
    const text0 = joinLines(sanitized.slice(start, r.end.line + 1), dir.escape);
    const m = /^\s*(\S+)\s*(.*)$/s.exec(text0);
    if (!m) continue;
    const { flags, rest } = splitFlags(m[2] ?? '');
    const heredocs = byLine.get(start) ?? [];
    // Placeholders become `<<N` markers for the instruction handlers.
    const args = rest.replace(/\u241E(\d+)\u241E/g, (_x, n: string) => `<<${n}`).trim();
    const raw: RawInstruction = { keyword: m[1]!.toUpperCase(), line: start + 1, flags, args, heredocs };
    const json = parseExecForm(args);
    if (json) raw.json = json;
    instructions.push(raw);
  }
  const out: ParsedFile = { escape: dir.escape, instructions };
  if (dir.syntax) out.syntax = dir.syntax;
  if (dir.check) out.check = dir.check;
  return out;
}
