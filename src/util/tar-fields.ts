/** Fields of tar headers, read by the one header decoder (tar-decoder.ts). */

/**
 * A numeric field: octal text (up to the first NUL, spaces around it allowed), or GNU base-256 when
 * the first byte's high bit is set (0x80 positive, 0xff negative, two's complement). NaN when the
 * field holds anything else or a value past 2^53.
 */
export function tarNumber(buf: Buffer, start: number, len: number): number {
  const first = buf[start]!;
  if (first & 0x80) {
    const negative = first === 0xff;
    let v = negative ? 0 : first & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + (negative ? 0xff - buf[start + i]! : buf[start + i]!);
    if (negative) v = -(v + 1);
    return Number.isSafeInteger(v) ? v : NaN;
  }
  const s = buf.toString('latin1', start, start + len).replace(/\0.*$/s, '').trim();
  if (!/^[0-7]*$/.test(s)) return NaN;
  const v = s === '' ? 0 : parseInt(s, 8);
  return Number.isSafeInteger(v) ? v : NaN;
}

/** A NUL-terminated (or full-width) text field. */
export function tarString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

/**
 * PAX records (`LEN KEY=VALUE\n`): key → raw value bytes. Returns a description of the first
 * malformed record instead when there is one (NUL padding after the last record is allowed).
 */
export function paxRecords(data: Buffer): Map<string, Buffer> | string {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0 && data.subarray(pos).every((b) => b === 0)) break;
    const space = data.indexOf(0x20, pos);
    const digits = space < 0 ? '' : data.toString('latin1', pos, space);
    const len = /^[0-9]{1,8}$/.test(digits) ? parseInt(digits, 10) : NaN;
    if (!(len > space - pos + 1) || pos + len > data.length || data[pos + len - 1] !== 0x0a) return `malformed PAX record at byte ${pos} of the extended header`;
    const rec = data.subarray(space + 1, pos + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) return `malformed PAX record at byte ${pos} of the extended header (no KEY=)`;
    out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Whether the header checksum holds: the sum of the header's bytes with the checksum field counted as
 * spaces, as unsigned bytes or (old Sun and BSD tars) signed ones.
 */
export function tarChecksumOk(h: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const stored = tarNumber(h, 148, 8);
  return stored === unsigned || stored === signed;
}
