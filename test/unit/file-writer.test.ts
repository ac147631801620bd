import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import fs, { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { FileWriter, IO_CHUNK, streamToTempFile } from '../../src/core/fs.js';

const dir = mkdtempSync(path.join(tmpdir(), 'skiff-filewriter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Chunks of mixed sizes: many socket-sized ones (gathered into batches), some larger than IO_CHUNK, a last small one. */
function chunks(): Buffer[] {
  const out: Buffer[] = [];
  let seed = 1;
  for (let i = 0; i < 70; i++) {
    const n = i % 10 === 9 ? IO_CHUNK + 4096 : 65536 - (i % 7) * 1000;
    const b = Buffer.alloc(n);
    for (let j = 0; j < n; j += 4096) b[j] = seed = (seed * 31 + i) & 0xff;
    out.push(b);
  }
  out.push(Buffer.from('tail'));
  return out;
}

describe('FileWriter', () => {
  it('writes every byte in order, gathered or not, and counts them', async () => {
    const parts = chunks();
    const file = path.join(dir, 'a');
    const w = new FileWriter(file);
    await pipeline(Readable.from(parts), w);
    const want = Buffer.concat(parts);
    const got = readFileSync(file);
    assert.equal(got.length, want.length);
    assert.ok(got.equals(want));
    assert.equal(w.bytesWritten, want.length);
  });

  it('an empty stream makes an empty file', async () => {
    const file = path.join(dir, 'empty');
    await pipeline(Readable.from([]), new FileWriter(file));
    assert.equal(readFileSync(file).length, 0);
  });

  it('fails when the file cannot be made', async () => {
    await assert.rejects(pipeline(Readable.from([Buffer.from('x')]), new FileWriter(path.join(dir, 'no', 'such', 'dir'))), /ENOENT/);
  });

  it('a full disk is an error, not a short file (/dev/full)', async () => {
    await assert.rejects(pipeline(Readable.from(chunks()), new FileWriter('/dev/full')), /ENOSPC/);
  });

  it('streamToTempFile: hash and size of what was written; a failing source leaves no temp file', async () => {
    const parts = chunks();
    const t = await streamToTempFile(Readable.from(parts), dir);
    const want = Buffer.concat(parts);
    assert.equal(t.size, want.length);
    assert.equal(t.digest, `sha256:${createHash('sha256').update(want).digest('hex')}`);
    assert.ok(readFileSync(t.path).equals(want));
    rmSync(t.path);
    const failing = new Readable({ read() {} });
    failing.push(Buffer.alloc(65536));
    setImmediate(() => failing.destroy(new Error('connection reset')));
    await assert.rejects(streamToTempFile(failing, dir), /connection reset/);
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.tmp-')), []);
    assert.ok(!existsSync(path.join(dir, 'no')));
  });

  it('streamToTempFile: a source that fails while the file is still being opened leaves no temp file either', async () => {
    // (The open made slow, as on a busy thread pool: the failure and the removal come before the file exists.)
    const realOpen = fs.open;
    (fs as { open: unknown }).open = (...a: unknown[]) => void setTimeout(() => (realOpen as (...x: unknown[]) => void)(...a), 50);
    syncBuiltinESMExports();
    try {
      const failing = new Readable({
        read() {
          this.destroy(new Error('gone at once'));
        },
      });
      await assert.rejects(streamToTempFile(failing, dir), /gone at once/);
    } finally {
      (fs as { open: unknown }).open = realOpen;
      syncBuiltinESMExports();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.tmp-')), []);
  });
});
