/**
 * The legacy (Docker < 1.10) metadata of a `docker save` archive as containers/image writes it, so that an archive
 * skiff writes is byte for byte the one skopeo writes from the same image: one `<id>/` per layer holding a
 * `layer.tar` symlink, `VERSION` and a `json` whose keys Go's map marshalling sorts, the top layer's carrying
 * seven of the image config's fields verbatim (compacted and HTML-escaped, as Go re-encodes a json.RawMessage;
 * null where the config has none). A layer's ID, as c/image makes it: the digest of that json without its id and
 * with the chain ID of the layers so far (Docker's layer.CreateChainID) as `layer_id`.
 */
import { sha256, digestHex, type Digest } from '../../src/core/digest.js';

/** The config fields c/image copies into the top layer's json. */
const TOP_FIELDS = ['architecture', 'config', 'container', 'container_config', 'created', 'docker_version', 'os'];

export interface LegacyLayer {
  id: string;
  /** The layer's `json`. */
  json: Buffer;
}

/** The legacy layer entries for an image's layers (by digest, bottom first) and its config's bytes. */
export function legacyLayers(layers: Digest[], config: Buffer): LegacyLayer[] {
  const raw = topLevelMembers(config.toString('utf8'));
  const out: LegacyLayer[] = [];
  let chainID = '';
  let parent = '';
  for (const [i, digest] of layers.entries()) {
    chainID = chainID ? sha256(`${chainID} ${digest}`) : digest;
    const members: [string, string][] = [];
    if (parent) members.push(['parent', JSON.stringify(parent)]);
    if (i === layers.length - 1) for (const k of TOP_FIELDS) members.push([k, raw.has(k) ? goCompact(raw.get(k)!) : 'null']);
    const id = digestHex(sha256(goObject([...members, ['layer_id', JSON.stringify(chainID)]])));
    out.push({ id, json: Buffer.from(goObject([...members, ['id', JSON.stringify(id)]])) });
    parent = id;
  }
  return out;
}

/** A JSON object of already-encoded values, keys sorted as Go marshals a map. */
function goObject(members: [string, string][]): string {
  const sorted = [...members].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${sorted.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/** `repositories` as Go marshals the map: keys sorted at both levels. */
export function repositoriesJSON(repos: Record<string, Record<string, string>>): Buffer {
  const inner = (tags: Record<string, string>): string => goObject(Object.entries(tags).map(([t, id]) => [t, JSON.stringify(id)]));
  return Buffer.from(goObject(Object.entries(repos).map(([r, tags]) => [r, inner(tags)])));
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * The raw text of each member of a JSON object (the last of duplicates, as Go's Unmarshal keeps it). Assumes valid
 * JSON (the config has been parsed before); an object not at the top gives no members.
 */
export function topLevelMembers(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const ws = (): void => {
    while (i < text.length && WS.has(text.charCodeAt(i))) i++;
  };
  /** Past the string starting at i (a quote). */
  const skipString = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  /** Past the value starting at i. */
  const skipValue = (): void => {
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      let depth = 0;
      for (; i < text.length; ) {
        const d = text[i];
        if (d === '"') {
          skipString();
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') depth--;
        i++;
        if (depth === 0) return;
      }
      return;
    }
    while (i < text.length && !',}] \t\n\r'.includes(text[i]!)) i++;
  };
  ws();
  if (text[i] !== '{') return out;
  i++;
  for (;;) {
    ws();
    if (text[i] !== '"') return out;
    const k0 = i;
    skipString();
    const key = JSON.parse(text.slice(k0, i)) as string;
    ws();
    i++; // ':'
    ws();
    const v0 = i;
    skipValue();
    out.set(key, text.slice(v0, i));
    ws();
    if (text[i] !== ',') return out;
    i++;
  }
}

/**
 * JSON text as Go's encoder writes a json.RawMessage back: whitespace outside strings dropped, and inside strings
 * <, >, & and U+2028/U+2029 escaped (Go's HTML-safe encoding); everything else, numbers' spelling included, kept.
 */
export function goCompact(raw: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (inString) {
      if (c === '\\') {
        out += c + raw[i + 1];
        i++;
      } else if (c === '"') {
        inString = false;
        out += c;
      } else if (c === '<') out += '\\u003c';
      else if (c === '>') out += '\\u003e';
      else if (c === '&') out += '\\u0026';
      else if (c === '\u2028') out += '\\u2028';
      else if (c === '\u2029') out += '\\u2029';
      else out += c;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (!WS.has(c.charCodeAt(0))) out += c;
  }
  return out;
}
