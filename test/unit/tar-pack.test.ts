import { strict as assert } from 'node:assert';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import * as tar from 'tar-stream';
import { addEntry, packTo } from '../../src/archive/tar-pack.js';
import { paxRecord, paxXattrs } from '../../src/archive/tar-header.js';

describe('PAX xattrs', () => {
  it('records are binary-safe and count their own length', () => {
    const cap = Buffer.from('0100000200200080000000000000000000000000', 'hex');
    const rec = paxRecord('SCHILY.xattr.security.capability', cap);
    assert.equal(Number(rec.toString('latin1').split(' ')[0]), rec.length);
    // A record whose length crosses a power of ten (the length's own digits change).
    for (let n = 80; n < 110; n++) {
      const r = paxRecord('k', Buffer.alloc(n, 0x61));
      assert.equal(Number(r.toString('latin1').split(' ')[0]), r.length, `value of ${n} bytes`);
    }
    assert.deepEqual(paxXattrs(Buffer.concat([paxRecord('path', 'x'), rec, paxRecord('SCHILY.xattr.user.a', 'b')])), [['security.capability', cap], ['user.a', Buffer.from('b')]]);
  });

  it('entries with xattrs (and names too long for ustar) read back with tar-stream with their exact names', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}`;
    const veryLong = `${'x'.repeat(300)}`;
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await packTo(out, async (pack) => {
      await addEntry(pack, { name: 'cap', type: 'file', mode: 0o755, mtime: new Date(0), xattrs: [['user.note', Buffer.from('hello')]] }, Buffer.from('x'));
      await addEntry(pack, { name: long, type: 'file', mode: 0o644, mtime: new Date(0), xattrs: [['user.k', Buffer.from('v')]] }, Buffer.from('y'));
      await addEntry(pack, { name: veryLong, type: 'file', mode: 0o644, mtime: new Date(0), xattrs: [['user.k', Buffer.from('w')]] }, Buffer.from('z'));
      await addEntry(pack, { name: 'plain', type: 'file', mode: 0o644, mtime: new Date(0) }, Buffer.from('p'));
    });
    const ex = tar.extract();
    const seen: [string, Record<string, string> | undefined, string][] = [];
    ex.on('entry', (h, s, next) => {
      let body = '';
      s.on('data', (c: unknown) => (body += (c as Buffer).toString()));
      s.on('end', () => {
        seen.push([h.name, h.pax as Record<string, string> | undefined, body]);
        next();
      });
    });
    const done = new Promise<void>((resolve) => ex.on('finish', () => resolve()));
    ex.end(Buffer.concat(chunks));
    await done;
    assert.deepEqual(seen.map(([n, , b]) => [n, b]), [['cap', 'x'], [long, 'y'], [veryLong, 'z'], ['plain', 'p']]);
    assert.equal(seen[0]![1]?.['SCHILY.xattr.user.note'], 'hello');
    assert.equal(seen[2]![1]?.['SCHILY.xattr.user.k'], 'w');
    assert.ok(!seen[3]![1], 'no PAX header on an entry without xattrs');
  });
});
