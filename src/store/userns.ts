/**
 * Rootless storage the way podman does it: an unprivileged user's store holds files owned by its subordinate IDs,
 * so skiff re-runs itself inside a user namespace that maps the user to root and the /etc/subuid and /etc/subgid
 * ranges to the IDs above (util-linux `unshare --map-auto`). Inside, layers keep their owners (uid 1000 in a layer
 * stays 1000 in a container) and whiteouts are 0:0 devices; opaque directories use `user.overlay.opaque`, the
 * attribute rootless overlay mounts (userxattr) read.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

const MARK = 'SKIFF_ROOTLESS_USERNS';

/** Are we an unprivileged user's skiff, re-run inside its user namespace? */
export function inRootlessUserns(): boolean {
  return process.env[MARK] === '1';
}

/** Does this process act for an unprivileged user (outside or inside its user namespace)? */
export function isRootless(): boolean {
  return inRootlessUserns() || process.getuid?.() !== 0;
}

/** The xattr that marks an overlay opaque directory for this kind of store. */
export function opaqueXattr(): string {
  return isRootless() ? 'user.overlay.opaque' : 'trusted.overlay.opaque';
}

/** The commands that work on containers-storage. bin/skiff's launcher lists them too (a test keeps the two equal). */
export const STORAGE_COMMANDS: readonly string[] = ['images', 'image', 'history', 'pull', 'push', 'tag', 'untag', 'rmi', 'save', 'load', 'build', 'bud', 'manifest'];

/** Does this command line touch containers-storage (and so need the user namespace when rootless)? */
export function needsStorage(argv: string[]): boolean {
  const cmds = new Set(STORAGE_COMMANDS);
  return argv.some((a) => a.includes('containers-storage:')) || argv.slice(2).some((a) => cmds.has(a));
}

/**
 * Re-run this command inside a user namespace (the user as root, subordinate ranges mapped) with a private mount
 * namespace; resolves with its exit status. Fails clearly when the user has no subordinate IDs.
 */
export function reexecInUserns(argv: string[]): Promise<number> {
  const missing = missingSubordinateIds();
  if (missing) {
    process.stderr.write(`skiff: ${missing}\n`);
    return Promise.resolve(1);
  }
  return new Promise((resolve) => {
    const p = spawn('unshare', ['--user', '--map-root-user', '--map-auto', '--mount', '--', process.execPath, ...argv.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, [MARK]: '1' },
    });
    p.on('error', (e) => {
      process.stderr.write(`skiff: cannot enter a user namespace for rootless storage (unshare from util-linux is needed): ${e.message}\n`);
      resolve(1);
    });
    p.on('close', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
  });
}

/**
 * Why this user cannot have the user namespace rootless storage needs (no range of subordinate IDs in /etc/subuid
 * or /etc/subgid), or undefined when it can. (unshare would only say "no line matching user".)
 */
export function missingSubordinateIds(files = { uid: '/etc/subuid', gid: '/etc/subgid' }): string | undefined {
  const uid = process.getuid?.() ?? 0;
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = String(uid);
  }
  const has = (file: string): boolean => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return false;
    }
    return text.split('\n').some((l) => {
      const [who, start, count] = l.split(':');
      return (who === name || who === String(uid)) && Number(count) > 0 && start !== undefined && start !== '';
    });
  };
  const lacking = [files.uid, files.gid].filter((f) => !has(f));
  if (!lacking.length) return undefined;
  return `rootless storage needs subordinate IDs for user ${name}, and ${lacking.join(' and ')} ${lacking.length > 1 ? 'have' : 'has'} none (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${name})`;
}
