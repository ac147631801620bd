import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { forwardSocket } from '../../src/build/run.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-fwd-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('RUN --mount=type=ssh forwarding', () => {
  it('a socket of its own mode whose connections reach the agent, both ways; closing cuts it', async () => {
    const agentPath = path.join(dir, 'agent.sock');
    // A stand-in agent: answers each line with "agent:" and the line.
    const agent = createServer((c) => c.on('data', (d) => c.write(`agent:${d.toString()}`)));
    await new Promise<void>((r) => agent.listen(agentPath, r));
    const at = path.join(dir, 'fwd.sock');
    const close = await forwardSocket(at, agentPath, 0o600, process.getuid!(), process.getgid!());
    assert.ok(statSync(at).isSocket());
    assert.equal(statSync(at).mode & 0o777, 0o600);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = connect(at);
      c.on('error', reject);
      c.once('data', (d) => {
        resolve(d.toString());
        c.end();
      });
      c.write('hello');
    });
    assert.equal(reply, 'agent:hello');
    await close();
    await assert.rejects(new Promise((resolve, reject) => {
      const c = connect(at);
      c.on('connect', resolve);
      c.on('error', reject);
    }), /ENOENT|ECONNREFUSED/);
    agent.close();
  });
});
