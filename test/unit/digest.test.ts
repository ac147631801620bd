import { strict as assert } from 'node:assert';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { Hasher, Verifier, parseDigest, sha256, verifyBuffer } from '../../src/core/digest.js';
import { SkiffError } from '../../src/core/errors.js';

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

describe('digests', () => {
  it('sha256 of known input', () => {
    assert.equal(sha256(''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
  it('validates digest syntax', () => {
    assert.throws(() => parseDigest('sha256:ABC'), SkiffError);
    assert.throws(() => parseDigest('md5:' + 'a'.repeat(32)), SkiffError);
    assert.equal(parseDigest('sha256:' + 'a'.repeat(64)), 'sha256:' + 'a'.repeat(64));
  });
  it('Hasher counts and hashes a stream', async () => {
    const h = new Hasher();
    await pipeline(Readable.from([Buffer.from('ab'), Buffer.from('c')]), h, sink());
    assert.equal(h.digest, sha256('abc'));
    assert.equal(h.size, 3);
  });
  it('Verifier passes matching data', async () => {
    await pipeline(Readable.from([Buffer.from('abc')]), new Verifier(sha256('abc'), 3, 'x'), sink());
  });
  it('Verifier fails on a digest mismatch before end', async () => {
    let ended = false;
    const out = new Writable({ write: (_c, _e, cb) => cb(), final: (cb) => { ended = true; cb(); } });
    await assert.rejects(pipeline(Readable.from([Buffer.from('abd')]), new Verifier(sha256('abc'), 3, 'x'), out), (e: unknown) => e instanceof SkiffError && e.code === 'ERR_DIGEST_MISMATCH');
    assert.equal(ended, false, 'the consumer never sees a clean end');
  });
  it('Verifier fails on short and long input', async () => {
    await assert.rejects(pipeline(Readable.from([Buffer.from('ab')]), new Verifier(sha256('abc'), 3, 'x'), sink()), (e: unknown) => (e as SkiffError).code === 'ERR_SIZE_MISMATCH');
    await assert.rejects(pipeline(Readable.from([Buffer.from('abcd')]), new Verifier(sha256('abc'), 3, 'x'), sink()), (e: unknown) => (e as SkiffError).code === 'ERR_SIZE_MISMATCH');
  });
  it('verifyBuffer', () => {
    verifyBuffer(Buffer.from('abc'), sha256('abc'), 3, 'x');
    assert.throws(() => verifyBuffer(Buffer.from('abc'), sha256('abd'), undefined, 'x'), /digest mismatch/);
  });
});
