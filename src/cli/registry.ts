import { Command } from 'commander';
import { createInterface } from 'node:readline';
import { SkiffError } from '../core/errors.js';
import { parseDockerReference } from '../core/reference.js';
import { defaultAuthFile, lookupCredentials, removeCredentials, storeCredentials } from '../config/auth-file.js';
import { connect, DockerRef, dockerTransport, listTags } from '../../transports/docker/index.js';
import { addRegistryFlags, addRetryFlags, registryOptions, writeOut } from './common.js';
import { goJSON } from './template.js';

function dockerRef(input: string, what: string): DockerRef {
  if (!input.startsWith('docker://')) throw new SkiffError('ERR_INVALID_REFERENCE', `${what} works on docker://REPO references, got ${JSON.stringify(input)}`);
  return dockerTransport.parse(input.slice('docker:'.length)) as DockerRef;
}

/** `skiff list-tags docker://REPO`: skopeo's output, every page followed. */
export function listTagsCommand(program: Command): void {
  const cmd = program
    .command('list-tags')
    .description('List the tags of a repository')
    .argument('<repository>', 'docker://HOST/REPO');
  addRetryFlags(cmd);
  addRegistryFlags(cmd, '');
  cmd.action(async (repo: string, flags: Record<string, unknown>) => {
    // A tag or digest here is a mistake skopeo also refuses.
    const raw = repo.startsWith('docker://') ? repo.slice(9) : repo;
    const parsed = parseDockerReference(raw);
    if (parsed.tag !== undefined || parsed.digest) throw new SkiffError('ERR_INVALID_REFERENCE', `list-tags takes a repository without tag or digest, got ${JSON.stringify(repo)}`);
    const ref = dockerRef(repo, 'list-tags');
    const ep = await connect(ref, registryOptions(flags, ''));
    try {
      const tags = await listTags(ep, ref);
      await writeOut(`${goJSON({ Repository: ref.repository, Tags: tags }, 4)}\n`);
    } finally {
      await ep.client.close();
    }
  });
}

/** `skiff delete docker://REF`: deleting by tag deletes the manifest, and so every tag on it: say so. */
export function deleteCommand(program: Command): void {
  const cmd = program
    .command('delete')
    .description('Delete an image (its manifest) from a registry')
    .argument('<image>', 'docker://HOST/REPO:TAG or @DIGEST')
    .option('--tag-only', 'remove only this tag (refused where the registry cannot, e.g. distribution 2.x)');
  addRetryFlags(cmd);
  addRegistryFlags(cmd, '');
  cmd.action(async (image: string, flags: Record<string, unknown>) => {
    const ref = dockerRef(image, 'delete');
    const opts = registryOptions(flags, '');
    if (flags.tagOnly) {
      if (!ref.named.tag || ref.named.digest) throw new SkiffError('ERR_USAGE', '--tag-only needs a tag reference');
      const ep = await connect(ref, opts);
      try {
        const res = await ep.client.send({ method: 'DELETE', path: `/v2/${ep.path}/manifests/${ref.named.tag}`, scopes: [`repository:${ep.path}:pull,push`], ok: [202, 200, 400, 405, 404] }, `deleting tag ${ref}`);
        const text = await res.body.text();
        if (res.statusCode >= 400) {
          throw new SkiffError('ERR_UNSUPPORTED', `${ref.repository}: the registry cannot delete a tag alone (HTTP ${res.statusCode}${text.includes('UNSUPPORTED') ? ' UNSUPPORTED' : ''}); nothing was deleted. Without --tag-only the manifest and every tag on it is deleted.`);
        }
      } finally {
        await ep.client.close();
      }
      return;
    }
    if (!ref.named.digest) process.stderr.write(`skiff: note: deleting ${ref} deletes its manifest, so every tag pointing at it goes too\n`);
    await dockerTransport.delete!(ref, opts);
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function prompt(q: string, hidden: boolean): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.startsWith(q)) process.stderr.write(q);
  };
  const ans = await new Promise<string>((r) => rl.question(q, r));
  rl.close();
  if (hidden) process.stderr.write('\n');
  return ans;
}

/** The auth.json key for a login argument: `host`, or `host/ns/repo`; docker.io forms normalised. */
function loginKey(arg: string): string {
  let a = arg.replace(/^docker:\/\//, '').replace(/^https?:\/\//, '').replace(/\/$/, '');
  if (a === 'index.docker.io' || a === 'registry-1.docker.io') a = 'docker.io';
  return a;
}

/** `skiff login REGISTRY`: checks the credentials against the registry, then stores them (0600). */
export function loginCommand(program: Command): void {
  const cmd = program
    .command('login')
    .description('Log in to a registry (stores credentials in auth.json)')
    .argument('<registry>', 'HOST[:PORT][/NAMESPACE…]')
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--get-login', 'print the user name stored for the registry')
    .option('--authfile <file>', 'auth.json to write (default: $XDG_RUNTIME_DIR/containers/auth.json)')
    .option('-v, --verbose', 'accepted for skopeo\'s scripts (skiff says which file it wrote either way)');
  addRegistryFlags(cmd, '', { login: true });
  cmd.action(async (registry: string, flags: Record<string, unknown>) => {
    const key = loginKey(registry);
    const host = key.split('/')[0]!;
    const file = typeof flags.authfile === 'string' ? flags.authfile : defaultAuthFile();
    if (flags.getLogin) {
      const c = await lookupCredentials(host, key.includes('/') ? key.slice(host.length + 1) : undefined, typeof flags.authfile === 'string' ? flags.authfile : undefined);
      if (!c) throw new SkiffError('ERR_UNAUTHORIZED', `not logged into ${key}`);
      await writeOut(`${c.username}\n`);
      return;
    }
    let username = typeof flags.username === 'string' ? flags.username : undefined;
    let password = typeof flags.password === 'string' ? flags.password : undefined;
    if (flags.passwordStdin) {
      if (!username) throw new SkiffError('ERR_USAGE', '--password-stdin needs --username');
      password = await readStdin();
    }
    if (username === undefined) username = await prompt('Username: ', false);
    if (password === undefined) password = await prompt('Password: ', true);
    if (!username || !password) throw new SkiffError('ERR_USAGE', 'a user name and a password are needed');
    const probe = new DockerRef({ domain: host, path: 'skiff-login-probe', tag: 'latest' });
    // (Its -u/-p are what it stores, not how to connect: the connection options without them.)
    const opts = { ...registryOptions({ ...flags, username: undefined, password: undefined }, ''), creds: `${username}:${password}` };
    const ep = await connect(probe, opts);
    try {
      // /v2/ with the credentials: Basic registries check them directly, token registries via the token endpoint.
      const res = await ep.client.send({ method: 'GET', path: '/v2/', scopes: [], ok: [200] }, `logging in to ${host}`);
      await res.body.dump();
    } finally {
      await ep.client.close();
    }
    await storeCredentials(file, key, { username, password });
    process.stderr.write('Login Succeeded!\n');
  });
}

/** `skiff logout REGISTRY|--all` */
export function logoutCommand(program: Command): void {
  program
    .command('logout')
    .description('Remove stored credentials for a registry')
    .argument('[registry]', 'HOST[:PORT][/NAMESPACE…]')
    .option('-a, --all', 'remove every stored credential')
    .option('--authfile <file>', 'auth.json to change')
    .option('--tls-verify [bool]', 'accepted for skopeo\'s scripts: logging out contacts no registry')
    .action(async (registry: string | undefined, flags: { all?: boolean; authfile?: string }) => {
      if (!registry && !flags.all) throw new SkiffError('ERR_USAGE', 'name a registry or use --all');
      const file = flags.authfile ?? defaultAuthFile();
      const removed = await removeCredentials(file, registry ? loginKey(registry) : undefined, !!flags.all);
      if (!removed && !flags.all) throw new SkiffError('ERR_USAGE', `not logged into ${registry}`);
      process.stderr.write(flags.all ? 'Removed login credentials for all registries\n' : `Removed login credentials for ${loginKey(registry!)}\n`);
    });
}
