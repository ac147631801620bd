import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { goCompact, legacyLayers, repositoriesJSON, topLevelMembers } from '../../transports/docker-archive/legacy.js';

describe('docker-archive legacy metadata (as containers/image writes it)', () => {
  it('takes each top-level member verbatim, braces and quotes inside strings included; the last of duplicates wins', () => {
    const text = ' {\n "a" : {"x": "}{\\"", "y": [1, {"z": "]"}]},\n "b": 1.50e3, "c": "s\\u00e9", "a2": null, "b": true } ';
    const m = topLevelMembers(text);
    assert.deepEqual([...m.keys()], ['a', 'b', 'c', 'a2']);
    assert.equal(m.get('a'), '{"x": "}{\\"", "y": [1, {"z": "]"}]}');
    assert.equal(m.get('b'), 'true');
    assert.equal(m.get('c'), '"s\\u00e9"');
    assert.equal(m.get('a2'), 'null');
  });

  it('compacts as Go re-encodes a json.RawMessage: whitespace out, <, >, & and U+2028/9 escaped in strings, numbers as spelled', () => {
    assert.equal(goCompact('{ "k" : [ 1.50e3 , "a <b> & c\\" d" ],\n "e\u2028": "\u2029" }'), '{"k":[1.50e3,"a \\u003cb\\u003e \\u0026 c\\" d"],"e\\u2028":"\\u2029"}');
  });

  it('IDs chain through the layers; the top one carries the config fields (null where missing); maps sorted', () => {
    const config = Buffer.from('{"os":"linux","architecture":"amd64","config":{"Labels":{"a":"<&>"}},"rootfs":{}}');
    const a = 'sha256:cb1830ddd5e6fb670a0cf144684174aa025c77dc27ebb410242904f4ab04ddc3' as const;
    const b = 'sha256:0944446e7170986d74b14522323eff760f9131aa0e8d9959536220c3af055e6b' as const;
    const [l1, l2] = legacyLayers([a, b], config);
    // (skopeo 1.9.3 gave the first layer of an image whose bottom layer is `a` this ID.)
    assert.equal(l1!.id, '0f115a3f49dfeaea88b421861c172751e2e86bee1e29e3e3dd1c325997a66373');
    assert.equal(l1!.json.toString(), `{"id":"${l1!.id}"}`);
    assert.equal(l2!.json.toString(), `{"architecture":"amd64","config":{"Labels":{"a":"\\u003c\\u0026\\u003e"}},"container":null,"container_config":null,"created":null,"docker_version":null,"id":"${l2!.id}","os":"linux","parent":"${l1!.id}"}`);
    assert.equal(repositoriesJSON({ 'b/x': { z: '2', a: '1' }, 'a/y': { t: '3' } }).toString(), '{"a/y":{"t":"3"},"b/x":{"a":"1","z":"2"}}');
  });
});
