/** Reading tar headers: the pieces the tar index and the layer applier share. */

/** An octal numeric field, or GNU base-256 when the high bit is set. */
export function octal(buf: Buffer, off: number, len: number): number {
  if ((buf[off]! & 0x80) !== 0) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const s = buf.toString('latin1', off, off + len).replace(/[\0 ]+$/g, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** A NUL-terminated string field. */
export function cstring(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** The records of a PAX extended header (`len key=value\n`): key as text, value as raw bytes. */
function* paxEntries(data: Buffer): Generator<[string, Buffer]> {
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.toString('latin1', i, sp), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const eq = data.indexOf(0x3d, sp + 1);
    if (eq > 0 && eq < i + len) yield [data.toString('utf8', sp + 1, eq), data.subarray(eq + 1, i + len - 1)];
    i += len;
  }
}

/** PAX extended header records as text. */
export function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of paxEntries(data)) out[k] = v.toString('utf8');
  return out;
}

/** The `SCHILY.xattr.NAME` records of a PAX header, values as raw bytes (xattr values are binary). */
export function paxXattrs(data: Buffer): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const [k, v] of paxEntries(data)) if (k.startsWith('SCHILY.xattr.')) out.push([k.slice(13), Buffer.from(v)]);
  return out;
}

/** One PAX record, `LEN KEY=VALUE\n`, LEN counting itself; binary-safe. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.isBuffer(value) ? value : Buffer.from(value), Buffer.from('\n')]);
  let len = body.length + String(body.length).length;
  if (String(len).length + body.length !== len) len = String(len + 1).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Does a 512-byte header's checksum field match its bytes? */
export function headerChecksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === octal(h, 148, 8);
}

/** The entry name: PAX path, GNU long name, or ustar prefix + name. */
export function entryName(h: Buffer, pax: Record<string, string>, longName: string | undefined): string {
  const prefix = h.toString('latin1', 257, 262) === 'ustar' ? cstring(h, 345, 155) : '';
  return pax.path ?? longName ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
}
