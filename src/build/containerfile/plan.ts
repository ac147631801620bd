/**
 * Containerfile -> typed build plan, as BuildKit/buildah interpret it: every instruction validated (all errors
 * reported, each as `FILE:LINE: message`), words expanded with Docker's rules and scoping, stages linked and
 * pruned to the target, and an order in which independent stages can run in parallel. Pure: no I/O, no pulls.
 */
import posixPath from 'node:path/posix';
import { SkiffError } from '../../core/errors.js';
import { hostPlatform, formatPlatform } from '../../core/platform.js';
import { Expander, ExpandError, splitKeyValues } from './expand.js';
import { parseContainerfile, type Heredoc, type RawFlag, type RawInstruction } from './parse.js';
import { parseGoDuration, parseMount, parsePort, validOctalMode, validSignal, type Mount } from './validate.js';

export interface PlanOptions {
  /** File name used in messages. */
  file?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  /** Target platform `os/arch[/variant]` (default: the host). */
  platform?: string;
  /** The ENV of a base image, when known (the builder passes it after pulling). */
  baseEnv?: (image: string) => string[] | undefined;
  /** The ONBUILD triggers of a base image, when known: they run right after its FROM, as in Docker. */
  baseOnBuild?: (image: string) => string[] | undefined;
  /** podman build --from: the image the first FROM uses instead of the one it names. */
  fromOverride?: string;
  /**
   * --build-context NAME=…, by lower-case name: an image (for FROM, COPY --from and RUN --mount from=) or a
   * directory (for COPY --from and RUN --mount from=). A named context comes before a stage of the same name, and
   * that before an image, as buildah orders them.
   */
  contexts?: Record<string, NamedContext>;
  /** buildah's --skip-unused-stages=false: every stage up to the target is built, needed or not. */
  allStages?: boolean;
}

export type NamedContext = { image: string } | { dir: string };

export type Form = { form: 'shell'; command: string } | { form: 'exec'; command: string[] };

interface StepBase {
  line: number;
  /** The instruction as written (continuations joined), for history `created_by`. */
  text: string;
}

export type Step = StepBase & (
  | { kind: 'RUN'; run: Form; heredocs: Heredoc[]; mounts: Mount[]; network: 'default' | 'none' | 'host'; security?: string; env: Record<string, string> }
  | { kind: 'COPY' | 'ADD'; sources: string[]; heredocs: Heredoc[]; dest: string; from?: string; fromStage?: number; fromDir?: string; chown?: string; chmod?: string; link: boolean; parents: boolean; exclude: string[]; checksum?: string; keepGitDir?: boolean }
  | { kind: 'ENV'; vars: [string, string][] }
  | { kind: 'ARG'; args: { name: string; value: string | undefined }[] }
  | { kind: 'LABEL'; labels: [string, string][] }
  | { kind: 'EXPOSE'; ports: string[] }
  | { kind: 'VOLUME'; volumes: string[] }
  | { kind: 'USER'; user: string }
  | { kind: 'WORKDIR'; dir: string }
  | { kind: 'CMD' | 'ENTRYPOINT'; value: Form }
  | { kind: 'SHELL'; shell: string[] }
  | { kind: 'HEALTHCHECK'; none: true } | { kind: 'HEALTHCHECK'; none: false; test: Form; interval?: number; timeout?: number; startPeriod?: number; startInterval?: number; retries?: number }
  | { kind: 'STOPSIGNAL'; signal: string }
  | { kind: 'ONBUILD'; trigger: string }
  | { kind: 'MAINTAINER'; maintainer: string }
);

export interface Stage {
  index: number;
  name?: string;
  line: number;
  /** Base: an image reference (expanded), or `stage` when FROM names an earlier stage. */
  from: { image: string; stage?: number; platform?: string };
  steps: Step[];
  /** Stages this one needs (FROM, COPY --from, RUN --mount from=). */
  dependsOn: number[];
}

export interface BuildPlan {
  file: string;
  stages: Stage[];
  /** The stage built (the last, or --target). */
  target: number;
  /** Batches of stage indexes: each batch's stages only depend on earlier batches, so they may run in parallel. */
  order: number[][];
  /** --build-arg names no ARG consumed (podman warns about them). */
  unusedBuildArgs: string[];
}

const INSTRUCTIONS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
const FLAGS: Record<string, string[]> = {
  FROM: ['platform'],
  RUN: ['mount', 'network', 'security'],
  COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ADD: ['chown', 'chmod', 'link', 'checksum', 'keep-git-dir', 'exclude'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};
/** Docker's predefined proxy arguments: given with --build-arg, RUN has them without an ARG; never recorded. */
export const PROXY_ARGS = new Set(['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'ftp_proxy', 'no_proxy', 'all_proxy']);
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

/** The closest known instruction, for "did you mean". */
function suggest(word: string): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of INSTRUCTIONS) {
    const d = levenshtein(word, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function platformArgs(target: string): Map<string, string> {
  const host = hostPlatform();
  const [os = 'linux', arch = 'amd64', variant = ''] = target.split('/');
  return new Map([
    ['TARGETPLATFORM', target], ['TARGETOS', os], ['TARGETARCH', arch], ['TARGETVARIANT', variant],
    ['BUILDPLATFORM', formatPlatform(host)], ['BUILDOS', host.os], ['BUILDARCH', host.architecture], ['BUILDVARIANT', host.variant ?? ''],
  ]);
}

function isBool(v: string | undefined): boolean {
  return v === undefined || v === '' || v === 'true' || v === 'false';
}

class Planner {
  readonly errors: { line: number; message: string }[] = [];
  private readonly usedBuildArgs = new Set<string>();
  constructor(private readonly o: PlanOptions) {}

  err(line: number, message: string): void {
    this.errors.push({ line, message });
  }

  checkFlags(ins: RawInstruction): Map<string, string[]> {
    const allowed = FLAGS[ins.keyword] ?? [];
    const out = new Map<string, string[]>();
    for (const f of ins.flags) {
      if (!allowed.includes(f.name)) {
        this.err(ins.line, `${ins.keyword}: unknown flag --${f.name}${allowed.length ? ` (allowed: ${allowed.map((a) => `--${a}`).join(', ')})` : ''}`);
        continue;
      }
      out.set(f.name, [...(out.get(f.name) ?? []), f.value ?? '']);
    }
    return out;
  }

  /** Expand, turning expander errors into plan errors (the result is then '' so checking can go on). */
  expand(line: number, f: () => string[]): string[] {
    try {
      return f();
    } catch (e) {
      if (e instanceof ExpandError) {
        this.err(line, e.message);
        return [];
      }
      throw e;
    }
  }

  buildArg(name: string): string | undefined {
    const v = this.o.buildArgs?.[name];
    if (v !== undefined) this.usedBuildArgs.add(name);
    return v;
  }

  unused(): string[] {
    return Object.keys(this.o.buildArgs ?? {}).filter((k) => !this.usedBuildArgs.has(k) && !PROXY_ARGS.has(k)).sort();
  }
}

function form(ins: RawInstruction): Form {
  return ins.json ? { form: 'exec', command: ins.json } : { form: 'shell', command: ins.args };
}

function textOf(ins: RawInstruction): string {
  const flags = ins.flags.map((f: RawFlag) => `--${f.name}${f.value !== undefined ? `=${f.value}` : ''}`).join(' ');
  return `${ins.keyword}${flags ? ` ${flags}` : ''}${ins.args ? ` ${ins.args}` : ''}`;
}

/** Parse and plan a Containerfile. Throws ERR_BUILD with every problem, one `FILE:LINE: message` per line. */
export function planContainerfile(text: string, o: PlanOptions = {}): BuildPlan {
  const file = o.file ?? 'Containerfile';
  const parsed = parseContainerfile(text);
  const p = new Planner(o);
  const target = o.platform ?? formatPlatform(hostPlatform());
  const auto = platformArgs(target);
  const stages: Stage[] = [];

  if (!parsed.instructions.length) p.err(1, 'the file has no instructions');
  // Global scope: ARGs before the first FROM (meta args), usable in FROM lines.
  const meta = new Map<string, string>(auto);
  let i = 0;
  for (; i < parsed.instructions.length && parsed.instructions[i]!.keyword !== 'FROM'; i++) {
    const ins = parsed.instructions[i]!;
    if (ins.keyword !== 'ARG') {
      p.err(ins.line, INSTRUCTIONS.has(ins.keyword) ? `${ins.keyword} before the first FROM: only ARG may come before FROM` : `unknown instruction: ${ins.keyword}${suggest(ins.keyword) ? ` (did you mean ${suggest(ins.keyword)}?)` : ''}`);
      continue;
    }
    p.checkFlags(ins);
    for (const a of argDecls(p, ins, new Expander(meta, parsed.escape))) {
      const v = p.buildArg(a.name) ?? a.value;
      if (v !== undefined) meta.set(a.name, v);
      else meta.delete(a.name);
    }
  }
  if (parsed.instructions.length && i === parsed.instructions.length) p.err(parsed.instructions[parsed.instructions.length - 1]!.line, 'no FROM instruction: the file has no build stage');

  let stage: Stage | undefined;
  let env = new Map<string, string>();
  let args = new Map<string, string>();
  let workdir = '/';
  const byName = new Map<string, number>();
  // The ENV and WORKDIR each stage ends with, inherited by stages built FROM it.
  const stageEnv = new Map<number, Map<string, string>>();
  const stageWorkdir = new Map<number, string>();
  let scope: Expander | undefined;
  /** ENV's and LABEL's `KEY=VALUE …` pairs; errors recorded against the instruction. */
  const keyValuePairs = (ins: RawInstruction): { key: string; value: string | undefined }[] => {
    let pairs: { key: string; value: string | undefined }[] = [];
    try {
      pairs = splitKeyValues(ins.args, parsed.escape);
    } catch (e) {
      p.err(ins.line, `${ins.keyword}: ${(e as Error).message}`);
    }
    if (!pairs.length) p.err(ins.line, `${ins.keyword} requires at least one argument`);
    return pairs;
  };
  for (; i < parsed.instructions.length; i++) {
    // The previous instruction changed ARGs or ENV: the next expansion needs a fresh scope.
    if (['FROM', 'ENV', 'ARG'].includes(parsed.instructions[i - 1]?.keyword ?? '')) scope = undefined;
    const ins = parsed.instructions[i]!;
    if (!INSTRUCTIONS.has(ins.keyword)) {
      const s = suggest(ins.keyword);
      p.err(ins.line, `unknown instruction: ${ins.keyword}${s ? ` (did you mean ${s}?)` : ''}`);
      continue;
    }
    const flags = p.checkFlags(ins);
    const one = (name: string): string | undefined => flags.get(name)?.at(-1);
    // Expansion environment: ARGs then ENV over them (ENV beats ARG); rebuilt only after ARG/ENV/FROM change it.
    const ex = (): Expander => (scope ??= new Expander(new Map([...args, ...env]), parsed.escape));
    if (ins.keyword === 'FROM') {
      const words = p.expand(ins.line, () => new Expander(meta, parsed.escape).words(ins.args));
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toUpperCase() === 'AS')) {
        p.err(ins.line, `FROM requires either one argument, or three: FROM <image> [AS <name>]`);
      }
      const overridden = stages.length === 0 && o.fromOverride !== undefined;
      const named = overridden ? undefined : o.contexts?.[(words[0] ?? '').toLowerCase()];
      if (named && 'dir' in named) p.err(ins.line, `FROM ${words[0]}: the build context ${JSON.stringify(words[0])} is a directory; FROM takes an image (--build-context ${words[0]}=container-image://IMAGE)`);
      const image = overridden ? o.fromOverride! : named && 'image' in named ? named.image : words[0] ?? '';
      const name = words.length === 3 ? words[2]!.toLowerCase() : undefined;
      if (name !== undefined) {
        if (!STAGE_NAME.test(name)) p.err(ins.line, `invalid stage name ${JSON.stringify(words[2])}: must start with a letter and contain only letters, digits, -, _ and .`);
        else if (byName.has(name)) p.err(ins.line, `duplicate stage name ${JSON.stringify(name)}`);
      }
      if (image === '' && words.length) p.err(ins.line, 'FROM: the image name expands to an empty string');
      const platform = one('platform') !== undefined ? p.expand(ins.line, () => [new Expander(meta, parsed.escape).word(one('platform')!)])[0] : undefined;
      if (platform !== undefined && !/^[a-z0-9_]+\/[a-z0-9_]+(\/[a-z0-9_.]+)?$/.test(platform)) p.err(ins.line, `FROM --platform: invalid platform ${JSON.stringify(platform)} (os/arch[/variant])`);
      const fromStage = named ? undefined : byName.get(image.toLowerCase());
      stage = { index: stages.length, line: ins.line, from: { image, ...(fromStage !== undefined ? { stage: fromStage } : {}), ...(platform ? { platform } : {}) }, steps: [], dependsOn: fromStage !== undefined ? [fromStage] : [] };
      if (name !== undefined) {
        stage.name = name;
        if (!byName.has(name)) byName.set(name, stage.index);
      }
      stages.push(stage);
      const base = fromStage !== undefined ? undefined : image === 'scratch' ? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] : o.baseEnv?.(image);
      env = new Map((base ?? []).map((kv) => {
        const eq = kv.indexOf('=');
        return [kv.slice(0, eq < 0 ? kv.length : eq), eq < 0 ? '' : kv.slice(eq + 1)] as [string, string];
      }));
      if (fromStage !== undefined) env = new Map(stageEnv.get(fromStage) ?? []);
      // The base image's ONBUILD triggers run first, as instructions of this stage (reported at the FROM line).
      const triggers = fromStage !== undefined ? undefined : o.baseOnBuild?.(image);
      if (triggers?.length) {
        const injected = parseContainerfile(triggers.join("\n")).instructions.map((t) => ({ ...t, line: ins.line }));
        for (const t of injected) {
          if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(t.keyword)) p.err(ins.line, `FROM ${image}: the image's ONBUILD trigger ${t.keyword} is not allowed`);
        }
        parsed.instructions.splice(i + 1, 0, ...injected.filter((t) => !['ONBUILD', 'FROM', 'MAINTAINER'].includes(t.keyword)));
      }
      args = new Map();
      workdir = fromStage !== undefined ? stageWorkdir.get(fromStage) ?? '/' : '/';
      continue;
    }
    if (!stage) continue;
    const base: StepBase = { line: ins.line, text: textOf(ins) };
    switch (ins.keyword) {
      case 'RUN': {
        if (!ins.args && !ins.heredocs.length) p.err(ins.line, 'RUN requires at least one argument');
        const mounts: Mount[] = [];
        for (const spec of flags.get('mount') ?? []) {
          const expanded = p.expand(ins.line, () => [ex().word(spec)])[0] ?? '';
          const r = parseMount(expanded);
          if ('error' in r) p.err(ins.line, `RUN --mount: ${r.error}`);
          else {
            mounts.push(r.mount);
            const named = r.mount.from !== undefined ? o.contexts?.[r.mount.from.toLowerCase()] : undefined;
            if (named) {
              if ('dir' in named) r.mount.fromDir = named.dir;
              else {
                r.mount.from = named.image;
                r.mount.fromImage = true;
              }
            } else if (r.mount.from !== undefined) {
              const dep = byName.get(r.mount.from.toLowerCase()) ?? (/^\d+$/.test(r.mount.from) ? Number(r.mount.from) : undefined);
              if (dep !== undefined) {
                if (dep >= stage.index) p.err(ins.line, `RUN --mount from=${r.mount.from}: refers to this or a later stage`);
                else stage.dependsOn.push(dep);
              }
            }
          }
        }
        const network = one('network') ?? 'default';
        if (!['default', 'none', 'host'].includes(network)) p.err(ins.line, `RUN --network: invalid value ${JSON.stringify(network)} (default, none, host)`);
        const security = one('security');
        if (security !== undefined && !['sandbox', 'insecure'].includes(security)) p.err(ins.line, `RUN --security: invalid value ${JSON.stringify(security)} (sandbox, insecure)`);
        // The RUN environment: declared ARGs and ENV. (Proxy arguments are left out here, so out of the history and
        // the cache key: the builder gives RUN those from --build-arg itself.)
        const runEnv: Record<string, string> = {};
        for (const [k, v] of args) if (!PROXY_ARGS.has(k)) runEnv[k] = v;
        stage.steps.push({ ...base, kind: 'RUN', run: form(ins), heredocs: ins.heredocs, mounts, network: network as 'default', ...(security ? { security } : {}), env: runEnv });
        break;
      }
      case 'COPY':
      case 'ADD': {
        const words = ins.json ?? p.expand(ins.line, () => ex().words(ins.args));
        const expandedWords = ins.json ? p.expand(ins.line, () => ins.json!.map((w) => ex().word(w))) : words;
        if (expandedWords.length < 2) {
          p.err(ins.line, `${ins.keyword} requires at least two arguments, but only ${expandedWords.length} provided: ${ins.keyword} <source>... <dest>`);
          break;
        }
        const dest = expandedWords[expandedWords.length - 1]!;
        const sources = expandedWords.slice(0, -1);
        const heredocs: Heredoc[] = [];
        for (const s of sources) {
          const hm = /^<<(\d+)$/.exec(s);
          if (hm) {
            const h = ins.heredocs[Number(hm[1])];
            if (h) heredocs.push(h.quoted ? h : { ...h, body: p.expand(ins.line, () => [ex().words(h.body, false)[0] ?? ''])[0] ?? '' });
          }
        }
        const chmod = one('chmod');
        if (chmod !== undefined && !validOctalMode(chmod)) p.err(ins.line, `${ins.keyword} --chmod: invalid mode ${JSON.stringify(chmod)} (octal, e.g. 755)`);
        for (const b of ['link', 'parents', 'keep-git-dir']) if (!isBool(one(b))) p.err(ins.line, `${ins.keyword} --${b}: expected true or false`);
        const step: Step = {
          ...base,
          kind: ins.keyword,
          sources: sources.filter((s) => !/^<<\d+$/.test(s)),
          heredocs,
          dest,
          link: one('link') !== undefined && one('link') !== 'false',
          parents: one('parents') !== undefined && one('parents') !== 'false',
          exclude: (flags.get('exclude') ?? []).map((e) => p.expand(ins.line, () => [ex().word(e)])[0] ?? ''),
        };
        const chown = one('chown');
        if (chown !== undefined) step.chown = p.expand(ins.line, () => [ex().word(chown)])[0] ?? '';
        if (chmod !== undefined) step.chmod = chmod;
        const checksum = one('checksum');
        if (checksum !== undefined) {
          if (!/^sha(256|384|512):[a-f0-9]+$/.test(checksum)) p.err(ins.line, `ADD --checksum: invalid digest ${JSON.stringify(checksum)}`);
          step.checksum = checksum;
        }
        if (one('keep-git-dir') !== undefined) step.keepGitDir = one('keep-git-dir') !== 'false';
        const from = one('from');
        if (from !== undefined) {
          const f = p.expand(ins.line, () => [ex().word(from)])[0] ?? '';
          step.from = f;
          const named = o.contexts?.[f.toLowerCase()];
          const dep = named ? undefined : byName.get(f.toLowerCase()) ?? (/^\d+$/.test(f) ? Number(f) : undefined);
          if (named && 'dir' in named) step.fromDir = named.dir;
          else if (named) step.from = named.image;
          else if (dep !== undefined) {
            if (dep >= stage.index) p.err(ins.line, `COPY --from=${f}: refers to this or a later stage (a stage can only copy from earlier ones)`);
            else {
              step.fromStage = dep;
              stage.dependsOn.push(dep);
            }
          }
        }
        stage.steps.push(step);
        break;
      }
      case 'ENV': {
        const pairs = keyValuePairs(ins);
        // Every value is expanded with the environment as it was before this instruction.
        const before = ex();
        const out: [string, string][] = [];
        for (const pr of pairs) {
          if (pr.value === undefined) {
            p.err(ins.line, `ENV ${pr.key}: missing =VALUE (ENV KEY=VALUE ...)`);
            continue;
          }
          if (pr.key === '') p.err(ins.line, 'ENV names can not be blank');
          out.push([pr.key, p.expand(ins.line, () => [before.word(pr.value!)])[0] ?? '']);
        }
        for (const [k, v] of out) env.set(k, v);
        stage.steps.push({ ...base, kind: 'ENV', vars: out });
        break;
      }
      case 'ARG': {
        const decls = argDecls(p, ins, ex());
        for (const a of decls) {
          const v = p.buildArg(a.name) ?? a.value ?? meta.get(a.name) ?? (auto.has(a.name) ? auto.get(a.name) : undefined);
          if (v !== undefined) args.set(a.name, v);
        }
        stage.steps.push({ ...base, kind: 'ARG', args: decls.map((a) => ({ name: a.name, value: PROXY_ARGS.has(a.name) ? undefined : args.get(a.name) })) });
        break;
      }
      case 'LABEL': {
        const pairs = keyValuePairs(ins);
        const labels: [string, string][] = [];
        const e = ex();
        for (const pr of pairs) {
          if (pr.value === undefined) {
            p.err(ins.line, `LABEL ${pr.key}: missing =VALUE (LABEL KEY=VALUE ...)`);
            continue;
          }
          labels.push([p.expand(ins.line, () => [e.word(pr.key)])[0] ?? '', p.expand(ins.line, () => [e.word(pr.value!)])[0] ?? '']);
        }
        stage.steps.push({ ...base, kind: 'LABEL', labels });
        break;
      }
      case 'EXPOSE': {
        const words = p.expand(ins.line, () => ex().words(ins.args));
        if (!words.length) p.err(ins.line, 'EXPOSE requires at least one argument');
        const ports: string[] = [];
        for (const w of words) {
          const r = parsePort(w);
          if ('error' in r) p.err(ins.line, `EXPOSE: ${r.error}`);
          else ports.push(r.port);
        }
        stage.steps.push({ ...base, kind: 'EXPOSE', ports });
        break;
      }
      case 'VOLUME': {
        const words = ins.json ? ins.json.map((w) => p.expand(ins.line, () => [ex().word(w)])[0] ?? '') : p.expand(ins.line, () => ex().words(ins.args));
        if (!words.length || words.some((w) => w.trim() === '')) p.err(ins.line, 'VOLUME specified can not be an empty string');
        stage.steps.push({ ...base, kind: 'VOLUME', volumes: words });
        break;
      }
      case 'USER': {
        const words = p.expand(ins.line, () => ex().words(ins.args));
        if (words.length !== 1) p.err(ins.line, 'USER requires exactly one argument');
        stage.steps.push({ ...base, kind: 'USER', user: words[0] ?? '' });
        break;
      }
      case 'WORKDIR': {
        const dir = p.expand(ins.line, () => [ex().word(ins.args)])[0] ?? '';
        if (!ins.args || dir === '') p.err(ins.line, 'WORKDIR requires exactly one argument');
        workdir = posixPath.resolve(workdir, dir || '.');
        stage.steps.push({ ...base, kind: 'WORKDIR', dir: workdir });
        break;
      }
      case 'CMD':
      case 'ENTRYPOINT':
        stage.steps.push({ ...base, kind: ins.keyword, value: form(ins) });
        break;
      case 'SHELL':
        if (!ins.json || !ins.json.length) p.err(ins.line, 'SHELL requires the arguments to be in JSON form: SHELL ["executable", "parameters"]');
        else stage.steps.push({ ...base, kind: 'SHELL', shell: ins.json });
        break;
      case 'HEALTHCHECK': {
        const rest = ins.args.trim();
        const word = (/^(\S+)/.exec(rest)?.[1] ?? '').toUpperCase();
        if (word === 'NONE') {
          if (rest.length > 4) p.err(ins.line, 'HEALTHCHECK NONE takes no other arguments');
          if (ins.flags.length) p.err(ins.line, 'HEALTHCHECK NONE takes no options');
          stage.steps.push({ ...base, kind: 'HEALTHCHECK', none: true });
          break;
        }
        if (word !== 'CMD') {
          p.err(ins.line, 'HEALTHCHECK: expected NONE or CMD <command>');
          break;
        }
        const cmdText = rest.slice(3).trim();
        if (!cmdText) p.err(ins.line, 'HEALTHCHECK CMD requires a command');
        const test: Form = parseJsonForm(cmdText) ?? { form: 'shell', command: cmdText };
        const step: Step = { ...base, kind: 'HEALTHCHECK', none: false, test };
        for (const [flag, key] of [['interval', 'interval'], ['timeout', 'timeout'], ['start-period', 'startPeriod'], ['start-interval', 'startInterval']] as const) {
          const v = one(flag);
          if (v === undefined) continue;
          const ms = parseGoDuration(v);
          if (ms === undefined) p.err(ins.line, `HEALTHCHECK --${flag}: invalid duration ${JSON.stringify(v)} (e.g. 30s, 1m30s)`);
          else if (ms !== 0 && ms < 1) p.err(ins.line, `HEALTHCHECK --${flag} cannot be less than 1ms`);
          else step[key] = ms;
        }
        const retries = one('retries');
        if (retries !== undefined) {
          if (!/^\d+$/.test(retries)) p.err(ins.line, `HEALTHCHECK --retries: invalid number ${JSON.stringify(retries)}`);
          else step.retries = Number(retries);
        }
        stage.steps.push(step);
        break;
      }
      case 'STOPSIGNAL': {
        const sig = p.expand(ins.line, () => [ex().word(ins.args)])[0] ?? '';
        if (!ins.args) p.err(ins.line, 'STOPSIGNAL requires exactly one argument');
        else if (!validSignal(sig)) p.err(ins.line, `STOPSIGNAL: invalid signal ${JSON.stringify(sig)}`);
        stage.steps.push({ ...base, kind: 'STOPSIGNAL', signal: sig });
        break;
      }
      case 'ONBUILD': {
        const trigger = (/^(\S+)/.exec(ins.args)?.[1] ?? '').toUpperCase();
        if (!trigger) p.err(ins.line, 'ONBUILD requires at least one argument');
        else if (trigger === 'ONBUILD') p.err(ins.line, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
        else if (trigger === 'FROM' || trigger === 'MAINTAINER') p.err(ins.line, `${trigger} isn't allowed as an ONBUILD trigger`);
        else if (!INSTRUCTIONS.has(trigger)) p.err(ins.line, `ONBUILD: unknown instruction ${trigger}`);
        stage.steps.push({ ...base, kind: 'ONBUILD', trigger: ins.args });
        break;
      }
      case 'MAINTAINER':
        if (!ins.args) p.err(ins.line, 'MAINTAINER requires exactly one argument');
        stage.steps.push({ ...base, kind: 'MAINTAINER', maintainer: ins.args });
        break;
    }
    stageEnv.set(stage.index, env);
    stageWorkdir.set(stage.index, workdir);
  }

  let targetIndex = stages.length - 1;
  if (o.target !== undefined) {
    const t = byName.get(o.target.toLowerCase());
    if (t === undefined) p.err(1, `--target ${o.target}: no stage of that name (stages: ${[...byName.keys()].join(', ') || 'none named'})`);
    else targetIndex = t;
  }
  if (p.errors.length) {
    const lines = p.errors.sort((a, b) => a.line - b.line).map((e) => `${file}:${e.line}: ${e.message}`);
    throw new SkiffError('ERR_BUILD', lines.join('\n'));
  }
  for (const s of stages) s.dependsOn = [...new Set(s.dependsOn)].sort((a, b) => a - b);
  return { file, stages, target: targetIndex, order: buildOrder(stages, targetIndex, !!o.allStages), unusedBuildArgs: p.unused() };
}

function parseJsonForm(text: string): Form | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return { form: 'exec', command: v as string[] };
  } catch {
    /* shell form */
  }
  return undefined;
}

/** `ARG a`, `ARG a=b`, `ARG a=b c=d` (BuildKit allows several); defaults expanded with the current scope. */
function argDecls(p: Planner, ins: RawInstruction, ex: Expander): { name: string; value: string | undefined }[] {
  let pairs: { key: string; value: string | undefined }[] = [];
  try {
    pairs = splitKeyValues(ins.args, '\\', false);
  } catch (e) {
    p.err(ins.line, `ARG: ${(e as Error).message}`);
  }
  if (!pairs.length) p.err(ins.line, 'ARG requires at least one argument');
  const out: { name: string; value: string | undefined }[] = [];
  for (const pr of pairs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(pr.key)) {
      p.err(ins.line, `ARG: invalid name ${JSON.stringify(pr.key)}`);
      continue;
    }
    out.push({ name: pr.key, value: pr.value === undefined ? undefined : p.expand(ins.line, () => [ex.word(pr.value!)])[0] ?? '' });
  }
  return out;
}

/** Stages needed for `target` (with `all`, every stage up to it), in batches: a batch only depends on earlier ones. */
function buildOrder(stages: Stage[], target: number, all: boolean): number[][] {
  const need = new Set<number>();
  const visit = (i: number): void => {
    if (need.has(i)) return;
    need.add(i);
    for (const d of stages[i]?.dependsOn ?? []) visit(d);
  };
  visit(target);
  if (all) for (let i = 0; i < target; i++) visit(i);
  const level = new Map<number, number>();
  const levelOf = (i: number): number => {
    const known = level.get(i);
    if (known !== undefined) return known;
    const l = Math.max(-1, ...(stages[i]?.dependsOn ?? []).map(levelOf)) + 1;
    level.set(i, l);
    return l;
  };
  const batches: number[][] = [];
  for (const i of [...need].sort((a, b) => a - b)) {
    const l = levelOf(i);
    (batches[l] ??= []).push(i);
  }
  return batches.filter((b) => b.length);
}
