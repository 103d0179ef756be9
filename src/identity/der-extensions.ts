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
  /** Where the element (its tag octet) begins. */
  at: number;
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
  return { tag, at: offset, start, end, next: end };
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

/** tbsCertificate's issuer and subject Names (RFC 5280 §4.1.2.4, §4.1.2.6), as their raw DER, for byte-exact name chaining. */
export function certificateNames(der: Buffer): { issuer: Buffer; subject: Buffer } {
  const cert = readTLV(der, 0, der.length);
  if (cert.tag !== SEQUENCE) throw new Error('not a certificate');
  const tbs = readTLV(der, cert.start, cert.end);
  if (tbs.tag !== SEQUENCE) throw new Error('no tbsCertificate');
  const fields = children(der, tbs);
  // [0] version is optional (v1); then serialNumber, signature, issuer, validity, subject.
  const base = fields[0]?.tag === 0xa0 ? 1 : 0;
  const issuer = fields[base + 2];
  const subject = fields[base + 4];
  if (!issuer || !subject || issuer.tag !== SEQUENCE || subject.tag !== SEQUENCE) throw new Error('tbsCertificate lacks its names');
  return { issuer: der.subarray(issuer.at, issuer.end), subject: der.subarray(subject.at, subject.end) };
}

/** GeneralNames of the forms path validation reads; anything else is counted, not decoded. */
export interface GeneralNames {
  uris: string[];
  dnsNames: string[];
  /** Names of other forms (rfc822Name, iPAddress, directoryName, …). */
  others: number;
}

/**
 * Bounds on the name lists path validation reads, so that decoding them, and comparing every name below a
 * CA with every constraint it sets (RFC 5280 §6.1.3 (b)(c)), stays small for any certificate. 128 names per
 * certificate is above the 100 that Let's Encrypt, the common upper end, puts on one; an SVID carries its one
 * URI SAN and a few DNS names. 64 subtrees per nameConstraints extension: each is a trust domain or DNS zone.
 */
export const MAX_NAMES_PER_CERTIFICATE = 128;
export const MAX_NAME_CONSTRAINT_SUBTREES = 64;

/** Adds one GeneralName; `fold` lowercases it (constraints are matched case-insensitively, so they are folded once, here). */
function addGeneralName(into: GeneralNames, value: Buffer, n: TLV, fold = false): void {
  const text = (): string => {
    const s = value.toString('latin1', n.start, n.end);
    return fold ? s.toLowerCase() : s;
  };
  if (n.tag === 0x86) into.uris.push(text());
  else if (n.tag === 0x82) into.dnsNames.push(text());
  else into.others++;
}

/** subjectAltName (RFC 5280 §4.2.1.6): URI and dNSName forms, and a count of the rest; at most MAX_NAMES_PER_CERTIFICATE. */
export function subjectAltNames(value: Buffer): GeneralNames {
  const names = readTLV(value, 0, value.length);
  if (names.tag !== SEQUENCE) throw new Error('subjectAltName is not a SEQUENCE');
  const list = children(value, names);
  if (list.length > MAX_NAMES_PER_CERTIFICATE) throw new Error(`subjectAltName holds more than ${MAX_NAMES_PER_CERTIFICATE} names`);
  const out: GeneralNames = { uris: [], dnsNames: [], others: 0 };
  for (const n of list) addGeneralName(out, value, n);
  return out;
}

/** basicConstraints (RFC 5280 §4.2.1.9): cA (default FALSE) and pathLenConstraint (null when absent). */
export function basicConstraints(value: Buffer): { ca: boolean; pathLen: number | null } {
  const seq = readTLV(value, 0, value.length);
  if (seq.tag !== SEQUENCE) throw new Error('basicConstraints is not a SEQUENCE');
  let ca = false;
  let pathLen: number | null = null;
  for (const f of children(value, seq)) {
    if (f.tag === 0x01) ca = f.end > f.start && value[f.start] !== 0;
    else if (f.tag === 0x02) pathLen = smallInteger(value, f);
    else throw new Error('basicConstraints holds an unexpected field');
  }
  return { ca, pathLen };
}

/** A non-negative INTEGER of at most 4 content octets (pathLenConstraint is INTEGER (0..MAX)). */
function smallInteger(der: Buffer, f: TLV): number {
  const len = f.end - f.start;
  if (len < 1 || len > 4 || ((der[f.start] as number) & 0x80) !== 0) throw new Error('integer out of range');
  let n = 0;
  for (let i = f.start; i < f.end; i++) n = n * 256 + (der[i] as number);
  return n;
}

/** subjectKeyIdentifier (RFC 5280 §4.2.1.2): the KeyIdentifier OCTET STRING, hex. */
export function subjectKeyIdentifier(value: Buffer): string {
  const id = readTLV(value, 0, value.length);
  if (id.tag !== 0x04) throw new Error('subjectKeyIdentifier is not an OCTET STRING');
  return value.toString('hex', id.start, id.end);
}

/** authorityKeyIdentifier (RFC 5280 §4.2.1.1): [0] keyIdentifier, hex; null when only issuer+serial is given. */
export function authorityKeyIdentifier(value: Buffer): string | null {
  const seq = readTLV(value, 0, value.length);
  if (seq.tag !== SEQUENCE) throw new Error('authorityKeyIdentifier is not a SEQUENCE');
  const keyID = children(value, seq).find((f) => f.tag === 0x80);
  return keyID ? value.toString('hex', keyID.start, keyID.end) : null;
}

export interface NameConstraintSet {
  permitted: GeneralNames;
  excluded: GeneralNames;
}

/**
 * nameConstraints (RFC 5280 §4.2.1.10): permitted [0] and excluded [1] GeneralSubtrees, at most
 * MAX_NAME_CONSTRAINT_SUBTREES in all. Each subtree's minimum must be 0 and maximum absent (the RFC's rule for
 * conforming CAs), else the extension is refused. URI and DNS bases are lowercased, once, here: hosts match
 * case-insensitively (§4.2.1.10, §7.2).
 */
export function nameConstraints(value: Buffer): NameConstraintSet {
  const seq = readTLV(value, 0, value.length);
  if (seq.tag !== SEQUENCE) throw new Error('nameConstraints is not a SEQUENCE');
  const out: NameConstraintSet = { permitted: { uris: [], dnsNames: [], others: 0 }, excluded: { uris: [], dnsNames: [], others: 0 } };
  let subtrees = 0;
  for (const part of children(value, seq)) {
    if (part.tag !== 0xa0 && part.tag !== 0xa1) throw new Error('nameConstraints holds an unexpected field');
    const into = part.tag === 0xa0 ? out.permitted : out.excluded;
    for (const subtree of children(value, part)) {
      if (++subtrees > MAX_NAME_CONSTRAINT_SUBTREES)
        throw new Error(`nameConstraints holds more than ${MAX_NAME_CONSTRAINT_SUBTREES} subtrees`);
      if (subtree.tag !== SEQUENCE) throw new Error('GeneralSubtree is not a SEQUENCE');
      const [base, ...rest] = children(value, subtree);
      if (!base) throw new Error('GeneralSubtree has no base');
      if (rest.some((r) => r.tag !== 0x80 || r.end - r.start !== 1 || value[r.start] !== 0))
        throw new Error('GeneralSubtree minimum/maximum is not supported');
      addGeneralName(into, value, base, true);
    }
  }
  return out;
}
