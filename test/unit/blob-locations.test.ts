import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BlobLocations } from '../../transports/docker/locations.js';
import { tempDir } from '../kit/run.js';

const d = (n: number): `sha256:${string}` => `sha256:${n.toString(16).padStart(64, '0')}`;

describe('blob location cache', () => {
  it('what one process learns, the next finds: newest repository first, the asking repository left out', () => {
    const t = tempDir();
    try {
      const file = path.join(t.dir, 'c', 'locations.json');
      const a = new BlobLocations(file);
      a.record('reg:5000', 'lib/old', d(1));
      a.record('reg:5000', 'lib/new', d(1));
      a.record('other:5000', 'x/y', d(2));
      a.save();
      const b = new BlobLocations(file);
      assert.deepEqual(b.candidates('reg:5000', d(1), 'lib/target'), ['lib/new', 'lib/old']);
      assert.deepEqual(b.candidates('reg:5000', d(1), 'lib/new'), ['lib/old']);
      assert.deepEqual(b.candidates('reg:5000', d(2), 'lib/target'), [], 'another registry');
      assert.deepEqual(b.candidates('other:5000', d(2), 'z'), ['x/y']);
    } finally {
      t.cleanup();
    }
  });

  it('two writers merge (neither loses the other\'s entries); it stays bounded: 4 repositories a blob, 2,000 blobs a registry', () => {
    const t = tempDir();
    try {
      const file = path.join(t.dir, 'locations.json');
      const a = new BlobLocations(file);
      const b = new BlobLocations(file);
      a.record('r', 'one', d(1));
      b.record('r', 'two', d(2));
      a.save();
      b.save();
      const c = new BlobLocations(file);
      assert.deepEqual(c.candidates('r', d(1), 'x'), ['one']);
      assert.deepEqual(c.candidates('r', d(2), 'x'), ['two']);
      const big = new BlobLocations(file);
      for (let i = 0; i < 6; i++) big.record('r', `repo${i}`, d(1));
      for (let i = 10; i < 2100; i++) big.record('r', 'many', d(i));
      big.save();
      const table = JSON.parse(readFileSync(file, 'utf8')).registries.r as Record<string, unknown[]>;
      assert.equal(Object.keys(table).length, 2000);
      assert.ok(new BlobLocations(file).candidates('r', d(1), 'x').length <= 4);
    } finally {
      t.cleanup();
    }
  });

  it('at most 64 registries are kept, the least recently seen dropped (throwaway registries on new ports do not grow the file for ever)', () => {
    const t = tempDir();
    try {
      const file = path.join(t.dir, 'locations.json');
      // 70 registries seen long ago, the older the lower their port.
      const registries = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`127.0.0.1:${10000 + i}`, { [d(i)]: [['x/y', 1_000_000 + i]] }]));
      writeFileSync(file, JSON.stringify({ v: 1, registries }));
      const a = new BlobLocations(file);
      a.record('127.0.0.1:20000', 'new/one', d(999));
      a.save();
      const kept = Object.keys(JSON.parse(readFileSync(file, 'utf8')).registries as object);
      assert.equal(kept.length, 64);
      assert.ok(kept.includes('127.0.0.1:20000'), 'the one just seen');
      for (let i = 0; i < 7; i++) assert.ok(!kept.includes(`127.0.0.1:${10000 + i}`), `oldest ${i} dropped`);
      assert.ok(kept.includes('127.0.0.1:10069') && kept.includes('127.0.0.1:10007'));
      assert.deepEqual(new BlobLocations(file).candidates('127.0.0.1:10069', d(69), 'z'), ['x/y']);
    } finally {
      t.cleanup();
    }
  });

  it('a damaged file counts as empty and is replaced; no file (SKIFF_BLOB_CACHE=off) keeps nothing', () => {
    const t = tempDir();
    try {
      const file = path.join(t.dir, 'locations.json');
      writeFileSync(file, '{not json');
      const a = new BlobLocations(file);
      assert.deepEqual(a.candidates('r', d(1), 'x'), []);
      a.record('r', 'one', d(1));
      a.save();
      assert.deepEqual(new BlobLocations(file).candidates('r', d(1), 'x'), ['one']);
      const off = new BlobLocations(undefined);
      off.record('r', 'one', d(1));
      off.save();
      assert.deepEqual(off.candidates('r', d(1), 'x'), []);
    } finally {
      t.cleanup();
    }
  });
});
