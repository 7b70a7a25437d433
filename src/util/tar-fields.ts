/** Fields of tar headers, shared by the archive index and the layer reader. */

/** A numeric field: octal text, or GNU base-256 when the first byte's high bit is set. */
export function tarNumber(buf: Buffer, start: number, len: number): number {
  if (buf[start]! & 0x80) {
    let v = buf[start]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + buf[start + i]!;
    return v;
  }
  const s = buf.toString('latin1', start, start + len).replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** A NUL-terminated (or full-width) text field. */
export function tarString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

/** PAX records (`LEN KEY=VALUE\n`): key → raw value bytes. */
export function paxRecords(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.toString('latin1', pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) break;
    const rec = data.subarray(space + 1, pos + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

/** The header checksum as stored, and as computed (the checksum field counted as spaces). */
export function tarChecksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum === tarNumber(h, 148, 8);
}
