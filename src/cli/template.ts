/**
 * `--format` templates, the part of Go's text/template that skopeo's and podman's users write: text, field paths
 * (`{{.Digest}}`, `{{.Labels.version}}`), `{{json .X}}`, `{{index .Labels "k"}}`, `{{join .RepoTags ","}}`,
 * `{{upper .X}}` / `{{lower .X}}`, `{{range .List}}…{{end}}`, `{{if .X}}…{{else}}…{{end}}`, and `{{-`/`-}}` trimming.
 * Anything else is an error that names it, never silently wrong output.
 */
import { SkiffError } from '../core/errors.js';

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'expr'; words: string[] }
  | { kind: 'range'; words: string[]; body: Node[]; orElse: Node[] }
  | { kind: 'if'; words: string[]; body: Node[]; orElse: Node[] };

function bad(tpl: string, why: string): SkiffError {
  return new SkiffError('ERR_USAGE', `--format ${JSON.stringify(tpl)}: ${why}`);
}

/** Split an action into words: quoted strings stay whole (with their quotes). */
function words(action: string, tpl: string): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|[^\s"`]+)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(action))) {
    out.push(m[1]!);
    end = re.lastIndex;
  }
  if (action.slice(end).trim()) throw bad(tpl, `cannot read ${JSON.stringify(action.slice(end).trim())}`);
  return out;
}

function parse(tpl: string): Node[] {
  const root: Node[] = [];
  const stack: { node: Extract<Node, { kind: 'range' | 'if' }>; inElse: boolean }[] = [];
  const target = (): Node[] => {
    const top = stack.at(-1);
    return top ? (top.inElse ? top.node.orElse : top.node.body) : root;
  };
  const re = /\{\{(-\s)?([\s\S]*?)(\s-)?\}\}/g;
  let last = 0;
  let trimNext = false;
  for (let m = re.exec(tpl); m; m = re.exec(tpl)) {
    let text = tpl.slice(last, m.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (m[1]) text = text.replace(/\s+$/, '');
    if (text) target().push({ kind: 'text', text });
    last = re.lastIndex;
    trimNext = !!m[3];
    const w = words(m[2]!.trim(), tpl);
    const head = w[0];
    if (head === undefined) throw bad(tpl, 'an empty {{ }}');
    if (head === 'range' || head === 'if') {
      const node = { kind: head, words: w.slice(1), body: [], orElse: [] } as Extract<Node, { kind: 'range' | 'if' }>;
      if (!node.words.length) throw bad(tpl, `{{${head}}} needs a value`);
      target().push(node);
      stack.push({ node, inElse: false });
    } else if (head === 'else') {
      const top = stack.at(-1);
      if (!top || top.inElse || w.length > 1) throw bad(tpl, '{{else}} outside {{if}} or {{range}}');
      top.inElse = true;
    } else if (head === 'end') {
      if (!stack.pop()) throw bad(tpl, '{{end}} without {{if}} or {{range}}');
    } else if (head.startsWith('.') || head.startsWith('"') || ['json', 'index', 'join', 'upper', 'lower', 'println'].includes(head)) {
      target().push({ kind: 'expr', words: w });
    } else {
      throw bad(tpl, `{{${head}}} is not supported (fields, json, index, join, upper, lower, range, if)`);
    }
  }
  if (stack.length) throw bad(tpl, `{{${stack.at(-1)!.node.kind}}} without {{end}}`);
  let rest = tpl.slice(last);
  if (rest.includes('{{')) throw bad(tpl, 'an unclosed {{ action');
  if (trimNext) rest = rest.replace(/^\s+/, '');
  if (rest) root.push({ kind: 'text', text: rest });
  return root;
}

/** A value: `.`, a field path, or a string literal. Missing keys are Go's "<no value>" (as for a map). */
function value(word: string, dot: unknown, tpl: string): unknown {
  if (word.startsWith('"')) return JSON.parse(word) as string;
  if (word.startsWith('`')) return word.slice(1, -1);
  if (word === '.') return dot;
  if (!word.startsWith('.')) throw bad(tpl, `cannot use ${JSON.stringify(word)} as a value`);
  let v: unknown = dot;
  for (const key of word.slice(1).split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function evaluate(w: string[], dot: unknown, tpl: string): unknown {
  const [head, ...args] = w;
  const vals = () => args.map((a) => value(a, dot, tpl));
  switch (head) {
    case 'json':
      if (args.length !== 1) throw bad(tpl, 'json takes one value');
      return JSON.stringify(vals()[0] ?? null);
    case 'index': {
      const [obj, ...keys] = vals();
      let v = obj;
      for (const k of keys) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
      return v ?? '';
    }
    case 'join': {
      const [list, sep] = vals();
      if (!Array.isArray(list) || typeof sep !== 'string') throw bad(tpl, 'join takes a list and a separator string');
      return list.map((x) => show(x)).join(sep);
    }
    case 'upper':
    case 'lower': {
      const s = show(vals()[0]);
      return head === 'upper' ? s.toUpperCase() : s.toLowerCase();
    }
    case 'println':
      return `${vals().map((x) => show(x)).join(' ')}\n`;
    default:
      if (args.length) throw bad(tpl, `${head} takes no arguments`);
      return value(head!, dot, tpl);
  }
}

/**
 * A timestamp that prints as Go's time.Time does (`2024-01-01 00:00:00 +0000 UTC`, what skopeo's and podman's
 * templates show) and stays RFC 3339 in `{{json}}`.
 */
export class GoTime {
  constructor(readonly iso: string) {}
  toJSON(): string {
    return this.iso;
  }
  toString(): string {
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(this.iso);
    if (!m) return this.iso;
    const frac = (m[3] ?? '').replace(/0+$/, '');
    const zone = m[4] === 'Z' ? '+0000 UTC' : `${m[4]!.replace(':', '')} ${m[4]!.replace(':', '')}`;
    return `${m[1]} ${m[2]}${frac ? `.${frac}` : ''} ${zone}`;
  }
}

/** How Go's templates print a value. */
function show(v: unknown): string {
  if (v instanceof GoTime) return v.toString();
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.keys(v).sort().map((k) => `${k}:${show((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  return String(v);
}

/** Go's truth: false, 0, "", nil and empty lists or maps are false. */
function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
  return !!v;
}

function run(nodes: Node[], dot: unknown, tpl: string): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'expr') {
      const v = evaluate(n.words, dot, tpl);
      out += typeof v === 'string' ? v : show(v);
    } else {
      const v = evaluate(n.words, dot, tpl);
      if (n.kind === 'if') out += run(truthy(v) ? n.body : n.orElse, dot, tpl);
      else {
        const items = Array.isArray(v) ? v : v !== null && typeof v === 'object' ? Object.keys(v).sort().map((k) => (v as Record<string, unknown>)[k]) : [];
        out += items.length ? items.map((x) => run(n.body, x, tpl)).join('') : run(n.orElse, dot, tpl);
      }
    }
  }
  return out;
}

/** Compile `tpl` once (errors now, before any work), then render it for each value. */
export function compileTemplate(tpl: string): (data: unknown) => string {
  const nodes = parse(tpl);
  return (data) => run(nodes, data, tpl);
}

/**
 * podman's `table` formats: `table {{.A}} {{.B}}` prints a header row (each field's column title) and then aligned
 * rows. Returns undefined for a plain template.
 */
export function compileTable(tpl: string, titles: Record<string, string>): { header: string[]; row: (data: unknown) => string[] } | undefined {
  const m = /^table\s+([\s\S]*)$/.exec(tpl);
  if (!m) return undefined;
  // Columns are what the template separates by whitespace or tabs outside its actions.
  const cols = m[1]!.trim().split(/(?<=\}\})\s+|\s+(?=\{\{)|\t+/).filter(Boolean);
  const header = cols.map((c) => c.replace(/\{\{-?\s*\.?(\w+)[^}]*\}\}/g, (_, f: string) => titles[f] ?? f.toUpperCase()));
  const renders = cols.map((c) => compileTemplate(c));
  return { header, row: (data) => renders.map((r) => r(data)) };
}

/**
 * Rows of cells as podman prints tables (Go's tabwriter with a minimum cell width of 12 and padding 2): each
 * column as wide as its widest cell plus two spaces, and at least 12; the last column unpadded.
 */
export function alignTable(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(12, ...rows.map((r) => (r[c]?.length ?? 0) + 2))) ?? [];
  return rows.map((r) => `${r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join('')}\n`).join('');
}
