/**
 * Builds compared with buildah 1.28 (root, chroot isolation, vfs) on the same Containerfiles and the same local
 * busybox base: image config fields and the flattened filesystem must match. buildah leaks the stubs its runtime
 * created for mount points (etc/hosts, …: a buildah bug, REFERENCE.md), so those paths are left out of the comparison.
 */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout } from '../kit/fixtures.js';
import { ok, run, skiff, tempDir, unmountUnder } from '../kit/run.js';
import { flatRef, type Flat } from '../kit/validate.js';

interface Case {
  name: string;
  file: string;
  files?: Record<string, string>;
}

const cases: Case[] = [
  {
    name: 'ENV, WORKDIR, COPY, RUN, USER, EXPOSE, LABEL, CMD',
    file: 'FROM $BASE\nENV APP=/app GREETING2="hi there"\nWORKDIR $APP\nCOPY greeting.txt sub ./\nRUN echo "built $GREETING" > built.txt && rm /etc/group && mkdir -p /var/x\nUSER user\nEXPOSE 8080 53/udp\nLABEL org.example=yes\nCMD ["cat", "/app/built.txt"]\n',
    files: { 'greeting.txt': 'hello\n', 'sub/a.txt': 'a\n', 'sub/deeper/b.txt': 'b\n' },
  },
  {
    name: 'a directory replaced by RUN becomes opaque; whiteouts hide base files',
    file: 'FROM $BASE\nRUN rm -rf /home/user && mkdir -p /home/user && echo new > /home/user/fresh && rm /bin/env\n',
  },
  {
    name: 'COPY --chown with names from the image, --chmod, into a new directory',
    file: 'FROM $BASE\nCOPY --chown=user:user --chmod=640 conf/ /etc/app/\nCOPY --chown=1000 single.txt /opt/single\n',
    files: { 'conf/a.conf': 'a=1\n', 'conf/b.conf': 'b=2\n', 'single.txt': 'one\n' },
  },
  {
    // (A shell-form ENTRYPOINT after SHELL differs: Docker applies SHELL to it, buildah 1.28 does not; skiff follows
    // Docker — see build-cli.test.ts.)
    // (VOLUME differs too: buildah creates the directory, BuildKit does not; skiff follows BuildKit.)
    name: 'SHELL, exec-form RUN, ENTRYPOINT resetting an inherited CMD, STOPSIGNAL',
    file: 'FROM $BASE\nSHELL ["/bin/sh", "-ec"]\nRUN ["/bin/sh", "-c", "echo exec > /exec.txt"]\nRUN echo shell > /shell.txt\nENTRYPOINT ["echo", "entry"]\nSTOPSIGNAL SIGINT\n',
  },
  {
    name: 'multi-stage: COPY --from a build stage keeps its owners; --chown overrides',
    file: 'FROM $BASE AS build\nRUN mkdir -p /out && echo artefact > /out/a && chown 1000:1000 /out/a && echo b > /out/b\nFROM $BASE\nCOPY --from=build /out /srv/out\nCOPY --from=build --chown=user:user /out/b /srv/b\n',
  },
  {
    name: 'multi-stage: FROM an earlier stage',
    file: 'FROM $BASE AS first\nRUN echo one > /one\nFROM first\nRUN echo two > /two\n',
  },
];

const LEAKS = /^(etc\/hosts|etc\/resolv\.conf|etc\/hostname|run(\/.*)?|dev(\/.*)?|proc|sys)$/;
const FIELDS = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'StopSignal'];

function clean(f: Flat): Flat {
  return new Map([...f].filter(([k]) => !LEAKS.test(k)));
}

describe('builds compared with buildah', () => {
  let t: ReturnType<typeof tempDir>;
  let lower: string;
  before(async () => {
    t = tempDir();
    lower = `/tmp/skiff-bb-${process.pid}-${Date.now().toString(36)}`;
    await makeBusyboxLayout(`${lower}/busybox`);
    await ok(skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'copy', '-q', `oci:${lower}/busybox:busybox`, 'containers-storage:localhost/busybox:latest']));
  });
  after(async () => {
    unmountUnder(t.dir);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
    await fsp.rm(lower, { recursive: true, force: true });
  });

  for (const [i, c] of cases.entries()) {
    it(c.name, async () => {
      const ctx = path.join(t.dir, `ctx${i}`);
      await fsp.mkdir(ctx, { recursive: true });
      await fsp.writeFile(path.join(ctx, 'Containerfile'), `ARG BASE\n${c.file}`);
      for (const [f, text] of Object.entries(c.files ?? {})) {
        await fsp.mkdir(path.dirname(path.join(ctx, f)), { recursive: true });
        await fsp.writeFile(path.join(ctx, f), text);
      }
      await ok(skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'build', '-q', '--build-arg', 'BASE=localhost/busybox:latest', '-t', `localhost/case${i}:1`, ctx]));
      await ok(skiff(['--root', `${t.dir}/root`, '--runroot', `${t.dir}/run`, 'copy', '-q', `containers-storage:localhost/case${i}:1`, `oci:${t.dir}/mine${i}:x`]));
      const bflags = ['--root', `${t.dir}/broot`, '--runroot', `${t.dir}/brun`, '--storage-driver', 'vfs'];
      await ok(run('buildah', [...bflags, 'bud', '-q', '--isolation', 'chroot', '--build-arg', `BASE=oci:${lower}/busybox:busybox`, '-t', `localhost/case${i}:1`, ctx]));
      await ok(run('skopeo', ['copy', '-q', `containers-storage:[vfs@${t.dir}/broot+${t.dir}/brun]localhost/case${i}:1`, `oci:${t.dir}/theirs${i}:x`]));
      const mine = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `oci:${t.dir}/mine${i}:x`]))) as { config: Record<string, unknown> };
      const theirs = JSON.parse(await ok(skiff(['inspect', '--config', '--raw', `oci:${t.dir}/theirs${i}:x`]))) as { config: Record<string, unknown> };
      for (const f of FIELDS) assert.deepEqual(mine.config[f] ?? null, theirs.config[f] ?? null, f);
      const labels = (x: { config: Record<string, unknown> }) => Object.fromEntries(Object.entries((x.config.Labels as Record<string, string>) ?? {}).filter(([k]) => !k.startsWith('io.buildah')));
      assert.deepEqual(labels(mine), labels(theirs), 'Labels');
      assert.deepEqual(clean(await flatRef(`oci:${t.dir}/mine${i}:x`)), clean(await flatRef(`oci:${t.dir}/theirs${i}:x`)));
    });
  }
});
