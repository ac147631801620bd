/**
 * `--format` templates, the part of Go's text/template that skopeo's and podman's users write: text, field paths
 * (`{{.Digest}}`, `{{.Labels.version}}`), literals, `(…)` sub-expressions and `|` pipelines, Go's functions `len`,
 * `index`, `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `and`/`or`/`not`, `print`/`printf`/`println`, podman's `json`, `join`,
 * `upper`, `lower`, `{{range .List}}…{{end}}`, `{{if …}}…{{else if …}}…{{else}}…{{end}}`, and `{{-`/`-}}`
 * trimming. Anything else (variables, `with`, `define`) is an error that names it, never silently wrong output.
 */
import { SkiffError } from '../core/errors.js';

/** An operand: a word (field path, `.`, literal or function name) or a parenthesised pipeline. */
type Operand = { word: string } | { sub: Pipeline; path?: string };
/** Commands joined by `|`: each one's result is the last argument of the next. */
type Pipeline = Operand[][];

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'expr'; pipe: Pipeline }
  | { kind: 'range'; pipe: Pipeline; body: Node[]; orElse: Node[] }
  | { kind: 'if'; pipe: Pipeline; body: Node[]; orElse: Node[] };

const FUNCS = ['json', 'index', 'join', 'upper', 'lower', 'len', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or', 'not', 'print', 'printf', 'println'];

function bad(tpl: string, why: string): SkiffError {
  return new SkiffError('ERR_USAGE', `--format ${JSON.stringify(tpl)}: ${why}`);
}

/** Split an action into tokens: quoted strings stay whole (with their quotes); `(`, `)` and `|` stand alone. */
function words(action: string, tpl: string): string[] {
  const out: string[] = [];
  // (`).Field` stays one token: a field of a parenthesised result.)
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\)(?:\.[^\s"`()|]+)?|[(|]|[^\s"`()|]+)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(action))) {
    out.push(m[1]!);
    end = re.lastIndex;
  }
  if (action.slice(end).trim()) throw bad(tpl, `cannot read ${JSON.stringify(action.slice(end).trim())}`);
  return out;
}

const isLiteral = (w: string): boolean => /^["`]/.test(w) || /^-?\d+(\.\d+)?$/.test(w) || w === 'true' || w === 'false' || w === 'nil';

/** Parse tokens into a pipeline; unknown functions and stray words are errors now, not when rendering. */
function parsePipeline(tokens: string[], tpl: string): Pipeline {
  let i = 0;
  const pipeline = (): Pipeline => {
    const cmds: Pipeline = [[]];
    while (i < tokens.length && !tokens[i]!.startsWith(')')) {
      const t = tokens[i++]!;
      if (t === '|') {
        if (!cmds.at(-1)!.length) throw bad(tpl, 'an empty command before |');
        cmds.push([]);
      } else if (t === '(') {
        const sub = pipeline();
        const close = tokens[i++];
        if (!close?.startsWith(')')) throw bad(tpl, 'an unclosed (');
        cmds.at(-1)!.push(close.length > 1 ? { sub, path: close.slice(1) } : { sub });
      } else if (t.startsWith('$')) {
        throw bad(tpl, `variables (${t}) are not supported`);
      } else {
        if (!t.startsWith('.') && !isLiteral(t) && !FUNCS.includes(t)) throw bad(tpl, `{{${t}}} is not supported (fields, literals, ${FUNCS.join(', ')}, range, if)`);
        if (FUNCS.includes(t) && cmds.at(-1)!.length) throw bad(tpl, `${t} must come first in its command (or in parentheses)`);
        cmds.at(-1)!.push({ word: t });
      }
    }
    if (!cmds.at(-1)!.length) throw bad(tpl, cmds.length > 1 ? 'an empty command after |' : 'an empty ( )');
    return cmds;
  };
  const p = pipeline();
  if (i < tokens.length) throw bad(tpl, 'an unmatched )');
  return p;
}

function parse(tpl: string): Node[] {
  const root: Node[] = [];
  // (`chained`: an `{{else if}}`'s if, which ends with the {{end}} of the if it continues.)
  const stack: { node: Extract<Node, { kind: 'range' | 'if' }>; inElse: boolean; chained?: boolean }[] = [];
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
      if (w.length < 2) throw bad(tpl, `{{${head}}} needs a value`);
      const node = { kind: head, pipe: parsePipeline(w.slice(1), tpl), body: [], orElse: [] } as Extract<Node, { kind: 'range' | 'if' }>;
      target().push(node);
      stack.push({ node, inElse: false });
    } else if (head === 'else') {
      const top = stack.at(-1);
      if (!top || top.inElse) throw bad(tpl, '{{else}} outside {{if}} or {{range}}');
      top.inElse = true;
      if (w.length > 1) {
        if (w[1] !== 'if' || w.length < 3 || top.node.kind !== 'if') throw bad(tpl, `{{${w.join(' ')}}}: after else only "if" and a value`);
        const node = { kind: 'if' as const, pipe: parsePipeline(w.slice(2), tpl), body: [], orElse: [] };
        top.node.orElse.push(node);
        stack.push({ node, inElse: false, chained: true });
      }
    } else if (head === 'end') {
      let popped = stack.pop();
      if (!popped) throw bad(tpl, '{{end}} without {{if}} or {{range}}');
      while (popped?.chained) popped = stack.pop();
    } else if (['with', 'define', 'template', 'block', 'break', 'continue'].includes(head)) {
      throw bad(tpl, `{{${head}}} is not supported (fields, literals, ${FUNCS.join(', ')}, range, if)`);
    } else {
      target().push({ kind: 'expr', pipe: parsePipeline(w, tpl) });
    }
  }
  if (stack.length) throw bad(tpl, `{{${stack.at(-1)!.node.kind}}} without {{end}}`);
  let rest = tpl.slice(last);
  if (rest.includes('{{')) throw bad(tpl, 'an unclosed {{ action');
  if (trimNext) rest = rest.replace(/^\s+/, '');
  if (rest) root.push({ kind: 'text', text: rest });
  return root;
}

/** A value: `.`, a field path, or a literal. Missing keys are Go's "<no value>" (as for a map). */
function value(word: string, dot: unknown, tpl: string): unknown {
  if (word.startsWith('"')) return JSON.parse(word) as string;
  if (word.startsWith('`')) return word.slice(1, -1);
  if (/^-?\d+(\.\d+)?$/.test(word)) return Number(word);
  if (word === 'true' || word === 'false') return word === 'true';
  if (word === 'nil') return null;
  if (word === '.') return dot;
  if (!word.startsWith('.')) throw bad(tpl, `cannot use ${JSON.stringify(word)} as a value`);
  let v: unknown = dot;
  for (const key of word.slice(1).split('.')) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** A value compared or ordered as Go compares basic values (times by their instant). */
const basic = (v: unknown): unknown => (v instanceof GoTime ? Date.parse(v.iso) : v);

function compare(fn: string, a: unknown, b: unknown, tpl: string): boolean {
  const x = basic(a);
  const y = basic(b);
  if (fn === 'eq') return x === y;
  if (fn === 'ne') return x !== y;
  if (typeof x !== typeof y || (typeof x !== 'number' && typeof x !== 'string')) throw bad(tpl, `${fn}: cannot order ${show(a)} and ${show(b)}`);
  const [p, q] = [x as number | string, y as number | string];
  return fn === 'lt' ? p < q : fn === 'le' ? p <= q : fn === 'gt' ? p > q : p >= q;
}

/** Go's fmt verbs that templates use: %v %s %d %q %t %x %X %f %%, with flags, width and precision. */
function sprintf(format: string, args: unknown[], tpl: string): string {
  let n = 0;
  return format.replace(/%([-+# 0]*)(\d*)(?:\.(\d+))?([vsdqtxXf%])/g, (_, flags: string, width: string, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    if (n >= args.length) return `%!${verb}(MISSING)`;
    const a = args[n++];
    let out: string;
    switch (verb) {
      case 'd':
        out = typeof a === 'number' && Number.isInteger(a) ? String(a) : `%!d(${goType(a)}=${show(a)})`;
        break;
      case 'f':
        out = typeof a === 'number' ? a.toFixed(prec === undefined ? 6 : Number(prec)) : `%!f(${goType(a)}=${show(a)})`;
        break;
      case 'x':
      case 'X': {
        const hex = typeof a === 'number' ? Math.trunc(a).toString(16) : Buffer.from(show(a)).toString('hex');
        out = verb === 'X' ? hex.toUpperCase() : hex;
        break;
      }
      case 'q':
        out = JSON.stringify(show(a));
        break;
      case 't':
        out = typeof a === 'boolean' ? String(a) : `%!t(${goType(a)}=${show(a)})`;
        break;
      default:
        out = show(a);
        if (prec !== undefined && verb === 's') out = out.slice(0, Number(prec));
    }
    const w = Number(width || 0);
    if (out.length >= w) return out;
    return flags.includes('-') ? out.padEnd(w) : out.padStart(w, flags.includes('0') && /[dfxX]/.test(verb) ? '0' : ' ');
  }) + (n < args.length ? `%!(EXTRA ${args.slice(n).map((a) => `${goType(a)}=${show(a)}`).join(', ')})` : '');
}

function call(fn: string, args: unknown[], tpl: string): unknown {
  const one = (): unknown => {
    if (args.length !== 1) throw bad(tpl, `${fn} takes one value`);
    return args[0];
  };
  switch (fn) {
    case 'json':
      // (Go's json.Marshal, as podman's template function is.)
      return goJSON(one() ?? null);
    case 'index': {
      const [obj, ...keys] = args;
      let v = obj;
      for (const k of keys) v = v !== null && typeof v === 'object' && !(v instanceof GoNil) ? (v as Record<string, unknown>)[String(k)] : undefined;
      return v ?? '';
    }
    case 'join': {
      const [list, sep] = args;
      if (!Array.isArray(list) || typeof sep !== 'string') throw bad(tpl, 'join takes a list and a separator string');
      return list.map((x) => show(x)).join(sep);
    }
    case 'upper':
    case 'lower': {
      const s = show(one());
      return fn === 'upper' ? s.toUpperCase() : s.toLowerCase();
    }
    case 'len': {
      const v = one();
      if (typeof v === 'string') return Buffer.byteLength(v);
      if (Array.isArray(v)) return v.length;
      if (v === null || v === undefined || v instanceof GoNil) return 0;
      if (typeof v === 'object' && !(v instanceof GoTime)) return Object.keys(v).length;
      throw bad(tpl, `len of ${show(v)}`);
    }
    case 'eq':
      if (args.length < 2) throw bad(tpl, 'eq takes two or more values');
      return args.slice(1).some((b) => compare('eq', args[0], b, tpl));
    case 'ne':
    case 'lt':
    case 'le':
    case 'gt':
    case 'ge':
      if (args.length !== 2) throw bad(tpl, `${fn} takes two values`);
      return compare(fn, args[0], args[1], tpl);
    case 'not':
      return !truthy(one());
    case 'and':
    case 'or': {
      if (!args.length) throw bad(tpl, `${fn} takes one or more values`);
      for (const a of args) if (truthy(a) === (fn === 'or')) return a;
      return args.at(-1);
    }
    case 'print':
      // (fmt.Sprint: a space between two operands when neither is a string.)
      return args.map((a, i) => (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string' ? ' ' : '') + show(a)).join('');
    case 'println':
      return `${args.map((x) => show(x)).join(' ')}\n`;
    case 'printf': {
      const [format, ...rest] = args;
      if (typeof format !== 'string') throw bad(tpl, 'printf takes a format string first');
      return sprintf(format, rest, tpl);
    }
    default:
      throw bad(tpl, `{{${fn}}} is not supported`);
  }
}

const NONE = Symbol('none');

function evaluate(pipe: Pipeline, dot: unknown, tpl: string): unknown {
  let prev: unknown = NONE;
  for (const cmd of pipe) {
    const operand = (o: Operand): unknown => {
      if (!('sub' in o)) return value(o.word, dot, tpl);
      const v = evaluate(o.sub, dot, tpl);
      return o.path ? value(o.path, v, tpl) : v;
    };
    const head = cmd[0]!;
    if ('word' in head && FUNCS.includes(head.word)) {
      const args = cmd.slice(1).map(operand);
      if (prev !== NONE) args.push(prev);
      prev = call(head.word, args, tpl);
    } else {
      if (cmd.length > 1) throw bad(tpl, `${'word' in head ? head.word : '( … )'} is not a function: it takes no arguments`);
      if (prev !== NONE) throw bad(tpl, `${'word' in head ? head.word : '( … )'} is not a function: nothing can be piped into it`);
      prev = operand(head);
    }
  }
  return prev;
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

/**
 * A nil map or slice of a typed field (skopeo's Labels, Env): Go prints it as an empty one (`map[]`, `[]`), while
 * its JSON is `null`; it is false, and empty to len, index and range.
 */
/**
 * A Go struct value: its fields (own properties, in the struct's order) for templates, which print it as Go's %v
 * does (`{v1 v2 …}`), and `json` for {{json}} and JSON output (Go's tags and omitempty).
 */
export class GoStruct {
  constructor(fields: Record<string, unknown>, json: unknown) {
    Object.assign(this, fields);
    Object.defineProperty(this, 'toJSON', { value: () => json, enumerable: false });
  }
}

export class GoNil {
  constructor(readonly kind: 'map' | 'slice') {}
  toJSON(): null {
    return null;
  }
}

/** A value's type as Go's fmt names it in its error strings (`%!(EXTRA string=x)`). */
function goType(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof GoTime) return 'time.Time';
  if (v instanceof GoNil) return v.kind === 'map' ? 'map[string]string' : '[]string';
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string') ? '[]string' : '[]interface {}';
  if (v !== null && typeof v === 'object') return Object.values(v).every((x) => typeof x === 'string') ? 'map[string]string' : 'map[string]interface {}';
  return '<nil>';
}

/** How Go's templates print a value. */
function show(v: unknown): string {
  if (v instanceof GoTime) return v.toString();
  if (v instanceof GoNil) return v.kind === 'map' ? 'map[]' : '[]';
  if (v instanceof GoStruct) return `{${Object.values(v).map(show).join(' ')}}`;
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.keys(v).sort().map((k) => `${k}:${show((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  return String(v);
}

/** Go's truth: false, 0, "", nil and empty lists or maps are false. */
function truthy(v: unknown): boolean {
  if (v instanceof GoNil) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (v !== null && typeof v === 'object') return Object.keys(v).length > 0;
  return !!v;
}

function run(nodes: Node[], dot: unknown, tpl: string): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'expr') {
      const v = evaluate(n.pipe, dot, tpl);
      out += typeof v === 'string' ? v : show(v);
    } else {
      const v = evaluate(n.pipe, dot, tpl);
      if (n.kind === 'if') out += run(truthy(v) ? n.body : n.orElse, dot, tpl);
      else {
        const items = Array.isArray(v) ? v : v !== null && typeof v === 'object' && !(v instanceof GoNil) && !(v instanceof GoTime) ? Object.keys(v).sort().map((k) => (v as Record<string, unknown>)[k]) : [];
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

/**
 * JSON as Go's encoding/json writes it, which skopeo's and podman's output is: like JSON.stringify, but <, >, &
 * and the line and paragraph separators escaped (`\u003e`), so the same data prints the same bytes.
 */
export function goJSON(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
