/** Checks of instruction arguments that need no variables: durations, signals, ports, modes, mounts. */

/** Go's time.ParseDuration subset Docker accepts: `1h2m3.5s`, `300ms`, `10us`; returns milliseconds or undefined. */
export function parseGoDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)/gy; // (\u00b5 is µ: the bundle is kept ASCII)
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, '\u00b5s': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? total : undefined;
}

const SIGNALS = new Set([
  'ABRT', 'ALRM', 'BUS', 'CHLD', 'CLD', 'CONT', 'FPE', 'HUP', 'ILL', 'INT', 'IO', 'IOT', 'KILL', 'PIPE', 'POLL', 'PROF', 'PWR',
  'QUIT', 'SEGV', 'STKFLT', 'STOP', 'SYS', 'TERM', 'TRAP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'USR1', 'USR2', 'VTALRM', 'WINCH', 'XCPU', 'XFSZ',
]);

/** A signal as STOPSIGNAL takes it: a number 1-64, a name with or without SIG, or RTMIN+n / RTMAX-n. */
export function validSignal(s: string): boolean {
  if (/^\d+$/.test(s)) return Number(s) >= 1 && Number(s) <= 64;
  const n = s.toUpperCase().replace(/^SIG/, '');
  return SIGNALS.has(n) || /^RTMIN(\+\d+)?$/.test(n) || /^RTMAX(-\d+)?$/.test(n);
}

/** `80`, `80/tcp`, `53/udp`, `8000-8010/sctp`; returns the normalised `port/proto` or an error message. */
export function parsePort(p: string): { port: string } | { error: string } {
  const m = /^(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(p);
  if (!m) return { error: `invalid port ${JSON.stringify(p)}` };
  const a = Number(m[1]);
  const b = m[2] !== undefined ? Number(m[2]) : undefined;
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (a < 0 || a > 65535 || (b !== undefined && (b > 65535 || b < a))) return { error: `invalid port range ${JSON.stringify(p)}` };
  if (!['tcp', 'udp', 'sctp'].includes(proto)) return { error: `invalid proto ${JSON.stringify(m[3])} in port ${JSON.stringify(p)}` };
  return { port: `${m[1]}${b !== undefined ? `-${b}` : ''}/${proto}` };
}

export function validOctalMode(s: string): boolean {
  return /^0?[0-7]{3,4}$/.test(s);
}

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';

export interface Mount {
  type: MountType;
  target?: string;
  source?: string;
  from?: string;
  /** `from` names a --build-context directory: this one. */
  fromDir?: string;
  /** `from` is an image (a --build-context image), never a stage of the same name. */
  fromImage?: boolean;
  readonly?: boolean;
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  mode?: string;
  uid?: number;
  gid?: number;
  size?: string;
  required?: boolean;
  env?: string;
}

const MOUNT_KEYS: Record<MountType, string[]> = {
  bind: ['target', 'source', 'from', 'readonly', 'readwrite'],
  cache: ['target', 'source', 'from', 'readonly', 'id', 'sharing', 'mode', 'uid', 'gid'],
  tmpfs: ['target', 'size'],
  secret: ['target', 'id', 'required', 'mode', 'uid', 'gid', 'env'],
  ssh: ['target', 'id', 'required', 'mode', 'uid', 'gid'],
};
const ALIASES: Record<string, string> = { dst: 'target', destination: 'target', src: 'source', ro: 'readonly', rw: 'readwrite' };

/** Parse a `--mount=` value (CSV, `key=value` or bare boolean keys); returns the mount or error messages. */
export function parseMount(spec: string): { mount: Mount } | { error: string } {
  const fields = spec.split(',').map((f) => f.trim()).filter((f) => f !== '');
  const kv = fields.map((f) => {
    const eq = f.indexOf('=');
    return eq < 0 ? [f.toLowerCase(), undefined] as const : [f.slice(0, eq).toLowerCase(), f.slice(eq + 1)] as const;
  });
  const typeField = kv.find(([k]) => k === 'type');
  const type = (typeField?.[1] ?? 'bind') as MountType;
  if (!(type in MOUNT_KEYS)) return { error: `unsupported mount type ${JSON.stringify(type)} (bind, cache, tmpfs, secret, ssh)` };
  const m: Mount = { type };
  for (const [k0, v] of kv) {
    if (k0 === 'type') continue;
    const k = ALIASES[k0] ?? k0;
    if (!MOUNT_KEYS[type].includes(k)) return { error: `unexpected key ${JSON.stringify(k0)} in a ${type} mount` };
    const bool = (): boolean | undefined => (v === undefined || v === 'true' ? true : v === 'false' ? false : undefined);
    switch (k) {
      case 'readonly':
      case 'readwrite':
      case 'required': {
        const b = bool();
        if (b === undefined) return { error: `invalid value for ${k0}: ${JSON.stringify(v)}` };
        if (k === 'required') m.required = b;
        else m.readonly = k === 'readonly' ? b : !b;
        break;
      }
      case 'uid':
      case 'gid':
        if (v === undefined || !/^\d+$/.test(v)) return { error: `invalid ${k}: ${JSON.stringify(v)}` };
        m[k] = Number(v);
        break;
      case 'mode':
        if (v === undefined || !validOctalMode(v)) return { error: `invalid mode ${JSON.stringify(v)} (octal expected)` };
        m.mode = v;
        break;
      case 'sharing':
        if (v !== 'shared' && v !== 'private' && v !== 'locked') return { error: `invalid sharing ${JSON.stringify(v)} (shared, private, locked)` };
        m.sharing = v;
        break;
      default:
        if (v === undefined || v === '') return { error: `${k0} needs a value` };
        (m as unknown as Record<string, string>)[k] = v;
    }
  }
  if ((type === 'bind' || type === 'cache' || type === 'tmpfs') && !m.target) return { error: `a ${type} mount needs a target` };
  return { mount: m };
}
