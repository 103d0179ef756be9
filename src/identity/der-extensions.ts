/**
 * Finds the extensions of a DER certificate (RFC 5280 §4.1: Certificate → tbsCertificate → [3] extensions)
 * without decoding the rest. A schema-driven decode of the whole certificate costs milliseconds; OpenSSL has
 * already parsed and checked the structure by the time this runs, and every read is still bounds-checked.
 */
export interface RawExtension {
  /** The OID's content bytes, hex (e.g. `551d11` for 2.5.29.17). */
  oidHex: string;
  critical: boolean;
  /** The DER inside the extnValue OCTET STRING. */
  value: Buffer;
}

interface TLV {
  tag: number;
  start: number;
  end: number;
  next: number;
}

function readTLV(der: Buffer, offset: number, limit: number): TLV {
  if (offset + 2 > limit) throw new Error('truncated DER');
  const tag = der[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new Error('high tag numbers do not occur here');
  let length = der[offset + 1] as number;
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || start + octets > limit) throw new Error('bad DER length');
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[start + i] as number);
    start += octets;
  }
  const end = start + length;
  if (end > limit) throw new Error('DER element overruns its parent');
  return { tag, start, end, next: end };
}

const SEQUENCE = 0x30;
const EXTENSIONS_TAG = 0xa3;

export function certificateExtensions(der: Buffer): RawExtension[] {
  const cert = readTLV(der, 0, der.length);
  if (cert.tag !== SEQUENCE) throw new Error('not a certificate');
  const tbs = readTLV(der, cert.start, cert.end);
  if (tbs.tag !== SEQUENCE) throw new Error('no tbsCertificate');
  for (let at = tbs.start; at < tbs.end;) {
    const field = readTLV(der, at, tbs.end);
    if (field.tag === EXTENSIONS_TAG) return readExtensions(der, readTLV(der, field.start, field.end));
    at = field.next;
  }
  return [];
}

function readExtensions(der: Buffer, list: TLV): RawExtension[] {
  const out: RawExtension[] = [];
  for (let at = list.start; at < list.end;) {
    const ext = readTLV(der, at, list.end);
    const oid = readTLV(der, ext.start, ext.end);
    let next = readTLV(der, oid.next, ext.end);
    let critical = false;
    if (next.tag === 0x01) {
      critical = der[next.start] !== 0;
      next = readTLV(der, next.next, ext.end);
    }
    if (oid.tag !== 0x06 || next.tag !== 0x04) throw new Error('malformed extension');
    out.push({ oidHex: der.toString('hex', oid.start, oid.end), critical, value: der.subarray(next.start, next.end) });
    at = ext.next;
  }
  return out;
}

function children(der: Buffer, parent: TLV): TLV[] {
  const out: TLV[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = readTLV(der, at, parent.end);
    out.push(child);
    at = child.next;
  }
  return out;
}

/** subjectAltName (RFC 5280 §4.2.1.6): the uniformResourceIdentifier names ([6] IMPLICIT IA5String). */
export function subjectAltNameURIs(value: Buffer): string[] {
  const names = readTLV(value, 0, value.length);
  if (names.tag !== SEQUENCE) throw new Error('subjectAltName is not a SEQUENCE');
  return children(value, names)
    .filter((n) => n.tag === 0x86)
    .map((n) => value.toString('latin1', n.start, n.end));
}

/** basicConstraints (RFC 5280 §4.2.1.9): cA, which defaults to FALSE. */
export function basicConstraintsCA(value: Buffer): boolean {
  const seq = readTLV(value, 0, value.length);
  if (seq.tag !== SEQUENCE) throw new Error('basicConstraints is not a SEQUENCE');
  const first = children(value, seq)[0];
  return first !== undefined && first.tag === 0x01 && first.end > first.start && value[first.start] !== 0;
}

export interface KeyUsageBits {
  digitalSignature: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

/** keyUsage (RFC 5280 §4.2.1.3): a BIT STRING; bit 0 digitalSignature, bit 5 keyCertSign, bit 6 cRLSign. */
export function keyUsageBits(value: Buffer): KeyUsageBits {
  const bits = readTLV(value, 0, value.length);
  if (bits.tag !== 0x03 || bits.end <= bits.start) throw new Error('keyUsage is not a BIT STRING');
  const first = bits.end > bits.start + 1 ? (value[bits.start + 1] as number) : 0;
  return { digitalSignature: (first & 0x80) !== 0, keyCertSign: (first & 0x04) !== 0, cRLSign: (first & 0x02) !== 0 };
}
