/**
 * Differential check of the front end against buildah 1.28 on this machine: the same Containerfiles, built by
 * buildah (as root, chroot isolation, vfs, a local busybox base), print their ARG/ENV values and working directory
 * from a final RUN; skiff's plan must resolve the same values. Only forms buildah 1.28 supports are used.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planContainerfile } from '../../src/build/containerfile/plan.js';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { run, tempDir } from '../kit/run.js';

interface Case {
  name: string;
  file: string;
  buildArgs?: Record<string, string>;
}

const cases: Case[] = [
  { name: 'ARG default, ENV from ARG, ENV beats ARG', file: 'FROM $BASE\nARG A=1\nENV B=$A C="x y"\nENV A=env D=${A}\n' },
  { name: 'build arg overrides a default', file: 'FROM $BASE\nARG A=1\nARG U\nENV B=$A\n', buildArgs: { A: 'cli', U: 'set' } },
  { name: 'global ARG needs re-declaring in the stage', file: 'ARG G=global\nFROM $BASE\nENV BEFORE=$G\nARG G\nENV AFTER=$G\n' },
  { name: 'pairs in one ENV see earlier values only', file: 'FROM $BASE\nENV A=1\nENV A=2 B=$A C=${A}\n' },
  { name: 'defaults with :- and :+', file: 'FROM $BASE\nARG E=\nENV X=${UNSET:-dflt} Y=${E:-e} Z=${A1:+alt} W=${GREETING:+has}\n' },
  { name: 'WORKDIR relative, from ENV', file: 'FROM $BASE\nENV D=/srv\nWORKDIR $D\nWORKDIR app/sub\nWORKDIR ..\n' },
  { name: 'legacy ENV, quotes and escapes', file: 'FROM $BASE\nENV MSG hello big world\nENV Q="a b" R=c\\ d S=\'$lit\'\n' },
  { name: 'ARG after ENV of the same name', file: 'FROM $BASE\nENV V=env\nARG V=arg\nENV W=$V\n', buildArgs: { V: 'cli' } },
  { name: 'base image ENV is visible', file: 'FROM $BASE\nENV P=$PATH:/opt/bin G2=${GREETING}-there\n' },
];

/** The values skiff's plan gives the final RUN: ENV (which wins) over the stage's ARGs, and the working dir. */
function expected(text: string, buildArgs: Record<string, string>, baseEnv: string[]): { vars: Map<string, string>; names: string[]; pwd: string } {
  const plan = planContainerfile(text, { buildArgs, baseEnv: () => baseEnv });
  const stage = plan.stages[plan.target]!;
  const vars = new Map<string, string>();
  const names = new Set<string>();
  let pwd = '/';
  for (const s of stage.steps) {
    if (s.kind === 'ENV') for (const [k, v] of s.vars) {
      vars.set(k, v);
      names.add(k);
    }
    if (s.kind === 'ARG') for (const a of s.args) names.add(a.name);
    if (s.kind === 'WORKDIR') pwd = s.dir;
    if (s.kind === 'RUN') for (const [k, v] of Object.entries(s.env)) if (!vars.has(k)) vars.set(k, v);
  }
  return { vars, names: [...names], pwd };
}

describe('front end vs buildah', () => {
  let t: ReturnType<typeof tempDir>;
  let base: string;
  let lower: string;
  before(async () => {
    t = tempDir();
    // buildah derives an image name from an oci: path, and image names must be lowercase.
    lower = `/tmp/skiff-buildah-${process.pid}-${Date.now().toString(36)}`;
    await makeBusyboxLayout(`${lower}/busybox`);
    base = `oci:${lower}/busybox:busybox`;
  });
  after(async () => {
    t.cleanup();
    await fsp.rm(lower, { recursive: true, force: true });
  });

  for (const [i, c] of cases.entries()) {
    it(c.name, async () => {
      const dir = path.join(t.dir, `case${i}`);
      await fsp.mkdir(dir);
      const text = `ARG BASE\n${c.file.replace('$BASE', '${BASE}')}RUN echo "@@PWD=$(pwd)" && env | sed 's/^/@@/'\n`;
      await fsp.writeFile(path.join(dir, 'Containerfile'), text);
      const args = ['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, '--storage-driver', 'vfs', 'bud', '--isolation', 'chroot', '--build-arg', `BASE=${base}`];
      for (const [k, v] of Object.entries(c.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
      const r = await run('buildah', [...args, '-f', path.join(dir, 'Containerfile'), dir]);
      assert.equal(r.code, 0, r.stderr);
      const got = new Map<string, string>();
      for (const line of r.stdout.split('\n')) {
        const m = /^@@([^=]+)=(.*)$/.exec(line);
        if (m) got.set(m[1]!, m[2]!);
      }
      const want = expected(text, { ...(c.buildArgs ?? {}), BASE: base }, ['PATH=/bin', 'GREETING=hello']);
      assert.equal(want.pwd, got.get('PWD'), 'working directory');
      for (const n of want.names) assert.equal(want.vars.get(n), got.get(n), `${n}`);
    });
  }
});
