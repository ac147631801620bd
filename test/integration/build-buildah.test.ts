/**
 * The differential suite: each Containerfile is built by skiff rootless (as the unprivileged user .ci/run creates,
 * inside a user namespace over the subuid/subgid ranges) and by buildah 1.28 (root, chroot isolation, vfs) from the
 * same local bases: busybox-static, and a Debian bookworm made with debootstrap (one case installs packages with
 * apt-get). Image config fields and the flattened filesystems (types, modes, owners, sizes, content hashes, link
 * targets) must match.
 *
 * Left out of the comparison: the stubs buildah's runtime leaks for mount points (etc/hosts, …: a buildah bug,
 * REFERENCE.md). Known differences where skiff follows Docker/BuildKit, tested in build-cli.test.ts and
 * build-features.test.ts instead: SHELL applied to a shell-form ENTRYPOINT, VOLUME not creating its directory,
 * heredocs (buildah 1.28 has none).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxLayout, makeDebianLayout } from '../kit/fixtures.js';
import { ok, run, SKIFF, tempDir, unmountUnder } from '../kit/run.js';
import { flatRef, type Flat } from '../kit/validate.js';

const USER = 'skiffci';

interface Case {
  name: string;
  file: string;
  files?: Record<string, string>;
  /** Shell commands run in the context dir before the build (archives, symlinks). */
  setup?: string;
  /** Flags given to both builders. */
  flags?: string[];
  /** Paths (regexp on the flattened path) left out of the comparison, with the reason in the case. */
  skip?: RegExp;
  /** More checks on skiff's flattened image. */
  check?: (mine: Flat) => void;
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
  {
    name: 'ARG and --build-arg reach RUN and ENV; ENV beats ARG',
    file: 'FROM $BASE\nARG V=default\nARG W\nENV FROM_ARG=$V\nRUN echo "$V $W $FROM_ARG" > /args\nARG X=1\nENV X=2\nRUN echo $X > /x\n',
    flags: ['--build-arg', 'W=given'],
  },
  {
    name: 'WORKDIR chains relative dirs and creates them; RUN runs there',
    file: 'FROM $BASE\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nRUN pwd > here\nWORKDIR /made/by/workdir\n',
  },
  {
    name: 'USER uid:gid runs RUN as that user; files it writes are its own',
    file: 'FROM $BASE\nUSER 1000:1000\nRUN id > /tmp/id && touch /tmp/mine && mkdir /tmp/dir\nUSER root\nRUN chown 1000:0 /tmp/dir\n',
  },
  {
    name: 'RUN makes hard links, a fifo, symlinks (absolute, relative, dangling)',
    file: 'FROM $BASE\nRUN mkdir /l && echo x > /l/h1 && ln /l/h1 /l/h2 && mkfifo /l/fifo && ln -s /l/h1 /l/abs && ln -s h1 /l/rel && ln -s /nowhere /l/dangling\n',
  },
  {
    name: 'RUN changes only metadata of base files (chmod, chown, touch)',
    file: 'FROM $BASE\nRUN chmod 700 /home/user && chown 1000:1000 /etc/passwd && chmod 4755 /bin/busybox\n',
  },
  {
    name: 'RUN deletes and recreates: a file becomes a directory, a directory a file',
    file: 'FROM $BASE\nRUN rm /etc/passwd && mkdir /etc/passwd && echo in > /etc/passwd/f && rm -rf /home/user && echo now-a-file > /home/user\n',
  },
  {
    name: 'COPY of context symlinks: kept as links (one points outside the context), never followed',
    file: 'FROM $BASE\nCOPY links /links/\n',
    setup: 'mkdir links && echo t > links/target && ln -s target links/rel && ln -s /etc/shadow links/outside && ln -s ../../nowhere links/up',
  },
  {
    name: '.containerignore with an exception; COPY . keeps the rest',
    file: 'FROM $BASE\nCOPY . /ctx/\n',
    files: { '.containerignore': '*.log\n!keep.log\nsecret/\n', 'a.log': 'no\n', 'keep.log': 'yes\n', 'secret/key': 'k\n', 'app/main.txt': 'm\n' },
  },
  {
    name: 'COPY destination rules: trailing slash, rename, directory contents, several sources',
    file: 'FROM $BASE\nCOPY a.txt /newdir/\nCOPY a.txt /renamed.txt\nCOPY dir /dest\nCOPY a.txt b.txt /multi/\nCOPY dir/ /dest2/\n',
    files: { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/x': 'x\n', 'dir/sub/y': 'y\n' },
  },
  {
    name: 'COPY wildcards',
    file: 'FROM $BASE\nCOPY *.txt /txt/\nCOPY d?r/*.md /md/\n',
    files: { 'one.txt': '1\n', 'two.txt': '2\n', 'skip.bin': 'b\n', 'dir/a.md': 'a\n', 'dir/b.txt': 'b\n' },
  },
  {
    name: 'ADD unpacks a gzip tar and a plain tar; a non-archive .gz is copied as it is',
    file: 'FROM $BASE\nADD app.tgz /opt/\nADD plain.tar /srv\nADD note.gz /notes/\n',
    setup: 'mkdir -p tree/sub && echo 1 > tree/one && echo 2 > tree/sub/two && chmod 600 tree/one && tar --owner=1000 --group=1000 -czf app.tgz tree && tar -cf plain.tar tree && rm -rf tree && echo plain | gzip > note.gz',
  },
  {
    name: 'config only: ENV, LABEL with spaces, EXPOSE ranges, ENTRYPOINT shell form with CMD',
    file: 'FROM $BASE\nENV A=1 B="two words"\nENV A=3\nLABEL "key with space"="value with space" k2=v2\nEXPOSE 80 443/tcp 7000-7002/udp\nENTRYPOINT echo hi\nCMD ["ignored"]\n',
  },
  {
    name: 'HEALTHCHECK and numeric STOPSIGNAL (docker format)',
    file: 'FROM $BASE\nHEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=4 CMD ["/bin/sh", "-c", "exit 0"]\nSTOPSIGNAL 9\n',
    flags: ['--format', 'docker'],
  },
  {
    name: 'ONBUILD triggers recorded (docker format)',
    file: 'FROM $BASE\nONBUILD RUN echo child > /child\nONBUILD COPY . /src\n',
    flags: ['--format', 'docker'],
  },
  {
    name: 'RUN --mount=type=bind from the context and from a stage; nothing of the mounts stays',
    file: 'FROM $BASE AS data\nRUN mkdir /d && echo staged > /d/s\nFROM $BASE\nRUN --mount=type=bind,source=input,target=/in cat /in/f > /from-ctx\nRUN --mount=type=bind,from=data,source=/d,target=/mnt/d cat /mnt/d/s > /from-stage\n',
    files: { 'input/f': 'context\n' },
    // buildah leaves the parent directories it made for mount targets; skiff removes them, as BuildKit does.
    skip: /^mnt$/,
  },
  {
    name: 'RUN --mount=type=cache and type=tmpfs',
    file: 'FROM $BASE\nRUN --mount=type=cache,target=/var/cache/app echo c > /var/cache/app/x && ls /var/cache/app > /listed\nRUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /tmpfs\n',
    skip: /^(var|var\/cache)$/,
  },
  {
    name: 'RUN --mount=type=secret: readable in the step, absent from the image',
    file: 'FROM $BASE\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /used && test ! -s /run/secrets/nothing\n',
    flags: ['--secret', 'id=tok,src=SECRETFILE'],
  },
  {
    name: '--env and --unsetenv change the image\'s environment only (RUN does not see them); a key set again moves to the end',
    file: 'FROM $BASE\nENV KEEP=1 DROP=2\nRUN echo "foo=$FOO drop=$DROP keep=$KEEP" > /seen.txt\n',
    flags: ['--env', 'FOO=bar', '--env', 'KEEP=9', '--unsetenv', 'DROP'],
  },
  {
    name: '--target stops at a named stage',
    file: 'FROM $BASE AS one\nRUN echo 1 > /one\nFROM one AS two\nRUN echo 2 > /two\nFROM two\nRUN echo 3 > /three\n',
    flags: ['--target', 'two'],
  },
  {
    name: 'COPY --from an image by name',
    // (A global ARG is seen inside a stage only once the stage declares it again.)
    file: 'FROM scratch\nARG BASE\nCOPY --from=$BASE /bin/busybox /bin/busybox\nCOPY --from=$BASE /etc /etc\n',
  },
  {
    name: 'FROM scratch with files only; a whiteout of nothing adds no entry',
    file: 'FROM scratch\nCOPY a.txt /a.txt\nCOPY dir /dir\n',
    files: { 'a.txt': 'a\n', 'dir/deep/er/x': 'x\n' },
  },
  {
    name: 'Debian base (debootstrap): apt-get install in RUN, a user added, files owned by several uids, file capabilities and user xattrs',
    file: 'FROM $DEB\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends file libcap2-bin attr >/dev/null && useradd -u 1234 -m app && install -o app -g app -d /srv/app && echo hi > /srv/app/f && chown app:app /srv/app/f && rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/*\nRUN cp /usr/bin/file /usr/local/bin/netfile && setcap cap_net_raw,cap_setfcap+ep /usr/local/bin/netfile && setfattr -n user.origin -v skiff-test /srv/app/f\nRUN getcap /usr/local/bin/netfile | grep -q cap_net_raw\nUSER app\nWORKDIR /srv/app\nCMD ["file", "/srv/app/f"]\n',
    // Logs and caches carry times and are emptied by the RUN; /etc/shadow and friends record the day.
    skip: /^(var\/log|var\/cache|var\/lib\/apt\/lists)\/|^etc\/(shadow|gshadow|shadow-|gshadow-|passwd-|group-|subuid-|subgid-)$/,
    check: (mine) => {
      assert.match(mine.get('usr/local/bin/netfile') ?? '', / security\.capability=01000002/);
      assert.match(mine.get('srv/app/f') ?? '', /uid=1234 gid=1234 .* user\.origin=736b6966662d74657374$/);
      assert.ok([...mine.values()].some((d) => / gid=42( |$)/.test(d)), 'files of group shadow (42)');
    },
  },
];

const LEAKS = /^(etc\/hosts|etc\/resolv\.conf|etc\/hostname|run(\/.*)?|dev(\/.*)?|proc|sys)$/;
const FIELDS = ['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'StopSignal', 'Healthcheck', 'OnBuild'];

function clean(f: Flat, skip?: RegExp): Flat {
  return new Map([...f].filter(([k]) => !LEAKS.test(k) && !(skip && skip.test(k))));
}

describe('builds compared with buildah (skiff rootless)', () => {
  let t: ReturnType<typeof tempDir>;
  let lower: string;
  let as: (cmd: string) => Promise<string>;
  const store = (): string => `--root ${t.dir}/root --runroot ${t.dir}/run`;
  const skiff = (args: string): string => `${process.execPath} ${SKIFF} ${store()} ${args}`;

  before(async () => {
    if (spawnSync('id', [USER]).status !== 0) throw new Error(`user ${USER} is missing: .ci/run creates it (with /etc/subuid and /etc/subgid ranges)`);
    t = tempDir('skiff-bb-');
    await fsp.chmod(t.dir, 0o755);
    // buildah wants lowercase oci: paths (mkdtemp's may have capitals).
    lower = `/tmp/skiff-bb-${process.pid}-${Date.now().toString(36)}`;
    await makeBusyboxLayout(`${lower}/busybox`);
    await makeDebianLayout(`${lower}/debian`);
    await fsp.writeFile(`${lower}/secret`, 'top secret\n');
    await fsp.mkdir(`${t.dir}/xdg`, { mode: 0o700 });
    await ok(run('chown', ['-R', `${USER}:`, t.dir, lower]));
    const env = `export HOME=${t.dir} XDG_RUNTIME_DIR=${t.dir}/xdg XDG_CONFIG_HOME=${t.dir}/config;`;
    as = (cmd) => ok(run('su', [USER, '-s', '/bin/sh', '-c', `${env} cd ${t.dir} && ${cmd}`]));
    await as(skiff(`copy -q oci:${lower}/busybox:busybox containers-storage:localhost/busybox:latest`));
    await as(skiff(`copy -q oci:${lower}/debian:debian containers-storage:localhost/debian:latest`));
  });
  after(async () => {
    unmountUnder(t.dir);
    await run('su', [USER, '-s', '/bin/sh', '-c', `unshare --user --map-root-user --map-auto rm -rf ${t.dir}/root ${t.dir}/run`]);
    await run('chmod', ['-R', 'u+w', t.dir]);
    t.cleanup();
    await fsp.rm(lower, { recursive: true, force: true });
  });

  it(`has at least 25 cases (${cases.length})`, () => assert.ok(cases.length >= 25));

  for (const [i, c] of cases.entries()) {
    it(c.name, async () => {
      const ctx = path.join(t.dir, `ctx${i}`);
      await fsp.mkdir(ctx, { recursive: true });
      await fsp.writeFile(path.join(ctx, 'Containerfile'), `ARG BASE\nARG DEB\n${c.file}`);
      for (const [f, text] of Object.entries(c.files ?? {})) {
        await fsp.mkdir(path.dirname(path.join(ctx, f)), { recursive: true });
        await fsp.writeFile(path.join(ctx, f), text);
      }
      if (c.setup) await ok(run('sh', ['-c', c.setup], { cwd: ctx }));
      await ok(run('chown', ['-R', `${USER}:`, ctx]));
      const flags = (c.flags ?? []).map((f) => f.replace('SECRETFILE', `${lower}/secret`));
      const quoted = flags.map((f) => `'${f}'`).join(' ');
      await as(skiff(`build -q ${quoted} --build-arg BASE=localhost/busybox:latest --build-arg DEB=localhost/debian:latest -t localhost/case${i}:1 ${ctx}`));
      // dir: keeps a Docker-format manifest and config as they are (an oci: copy converts and drops Healthcheck).
      await as(skiff(`copy -q containers-storage:localhost/case${i}:1 dir:${t.dir}/mine${i}`));
      const bflags = ['--root', `${t.dir}/broot`, '--runroot', `${t.dir}/brun`, '--storage-driver', 'vfs'];
      const bud = (): ReturnType<typeof run> => run('buildah', [...bflags, 'bud', '-q', '--isolation', 'chroot', ...flags, '--build-arg', `BASE=oci:${lower}/busybox:busybox`, '--build-arg', `DEB=oci:${lower}/debian:debian`, '-t', `localhost/case${i}:1`, ctx]);
      // buildah 1.28's chroot isolation now and then fails to seal the memfd copy of itself it runs RUN with
      // ("Close_Fd sealing memfd copy: Device or resource busy"): a fault of the reference tool, tried once more.
      let theirBuild = await bud();
      if (theirBuild.code !== 0 && /sealing memfd copy/.test(theirBuild.stderr)) theirBuild = await bud();
      await ok(Promise.resolve(theirBuild));
      await ok(run('skopeo', ['copy', '-q', `containers-storage:[vfs@${t.dir}/broot+${t.dir}/brun]localhost/case${i}:1`, `dir:${t.dir}/theirs${i}`]));
      const mine = JSON.parse(await ok(run(process.execPath, [SKIFF, 'inspect', '--config', '--raw', `dir:${t.dir}/mine${i}`]))) as { config: Record<string, unknown> };
      const theirs = JSON.parse(await ok(run(process.execPath, [SKIFF, 'inspect', '--config', '--raw', `dir:${t.dir}/theirs${i}`]))) as { config: Record<string, unknown> };
      // (buildah writes empty fields in the Docker format, Entrypoint [], WorkingDir "", Volumes {}; skiff leaves them out as
      // BuildKit does: both mean none.)
      const norm = (v: unknown): unknown => ((Array.isArray(v) && v.length === 0) || v === '' || (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) ? null : v ?? null);
      for (const f of FIELDS) assert.deepEqual(norm(mine.config[f]), norm(theirs.config[f]), f);
      const labels = (x: { config: Record<string, unknown> }) => Object.fromEntries(Object.entries((x.config.Labels as Record<string, string>) ?? {}).filter(([k]) => !k.startsWith('io.buildah')));
      assert.deepEqual(labels(mine), labels(theirs), 'Labels');
      const mineFlat = await flatRef(`dir:${t.dir}/mine${i}`);
      assert.deepEqual(clean(mineFlat, c.skip), clean(await flatRef(`dir:${t.dir}/theirs${i}`), c.skip));
      c.check?.(mineFlat);
    });
  }
});
