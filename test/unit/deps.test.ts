import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../kit/run.js';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ts')) out.push(path.join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

describe('dependency fence', () => {
  it('src/ (core) never imports transports/, except the CLI which wires them together', async () => {
    const offenders: string[] = [];
    const files = await sources(path.join(REPO, 'src'));
    assert.ok(files.length > 10, `found only ${files.length} sources under ${REPO}/src`);
    for (const f of files) {
      if (f.includes(`${path.sep}src${path.sep}cli${path.sep}`)) continue;
      const text = await fsp.readFile(f, 'utf8');
      if (/from '(\.\.\/)+transports\//.test(text)) offenders.push(path.relative(REPO, f));
    }
    assert.deepEqual(offenders, []);
  });
  it('a transport does not import the CLI', async () => {
    const offenders: string[] = [];
    for (const f of await sources(path.join(REPO, 'transports'))) {
      if (/from '[./]*src\/cli\//.test(await fsp.readFile(f, 'utf8'))) offenders.push(path.relative(REPO, f));
    }
    assert.deepEqual(offenders, []);
  });
});
