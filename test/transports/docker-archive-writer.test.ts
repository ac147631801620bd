/** docker-archive's writer: layers go straight into the tar; a layer is not spooled just because the config is. */
import { strict as assert } from 'node:assert';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '../../src/core/digest.js';
import { parseImageRef } from '../../src/core/ref.js';
import { transports } from '../../transports/index.js';
import { pseudoRandom } from '../kit/image.js';
import { tempDir } from '../kit/run.js';

describe('docker-archive writer', () => {
  let t: ReturnType<typeof tempDir>;
  before(() => (t = tempDir()));
  after(() => t.cleanup());

  it('a layer arriving while the (small) config is being written waits for it instead of being spooled', async () => {
    const d = parseImageRef(`docker-archive:${t.dir}/out.tar`, transports);
    const dest = await d.transport.openDestination(d.ref);
    try {
      const config = Buffer.from('{"small":"config"}');
      const layer = pseudoRandom(3 << 20, 5);
      // The config stream stays open while the layer starts: the writer must not spool the layer.
      const slowConfig = new PassThrough();
      const configPut = dest.putBlob(slowConfig, { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length, isConfig: true });
      slowConfig.write(config);
      await new Promise((r) => setTimeout(r, 20));
      const layerStream = new PassThrough();
      const layerPut = dest.putBlob(layerStream, { mediaType: 'application/vnd.docker.image.rootfs.diff.tar', digest: sha256(layer), size: layer.length, isConfig: false });
      layerStream.end(layer);
      await new Promise((r) => setTimeout(r, 50));
      const stage = (await fsp.readdir(t.dir)).find((n) => n.endsWith('.d'))!;
      assert.deepEqual(await fsp.readdir(path.join(t.dir, stage)), [], 'nothing spooled while the config was in the tar');
      slowConfig.end();
      await Promise.all([configPut, layerPut]);
      assert.deepEqual(await fsp.readdir(path.join(t.dir, stage)), [], 'the layer went straight into the tar');
    } finally {
      await dest.close();
    }
  });
});
