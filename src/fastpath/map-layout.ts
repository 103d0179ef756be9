import { isIPv6 } from 'node:net';

/**
 * Byte layout of `struct fp_key` and `struct fp_verdict` (bpf/fastpath.h), little-endian hosts only.
 * test/unit/fastpath/map-layout.test.ts checks these numbers against what the C compiler produced.
 */
export const KEY_LAYOUT = Object.freeze({ size: 36, src: 0, dst: 16, dstPort: 32, family: 34 });
export const VALUE_LAYOUT = Object.freeze({ size: 24, generation: 0, expiresNs: 8, action: 16 });

export const FAMILY_INET = 2;
export const FAMILY_INET6 = 10;

export type KernelAction = 'allow' | 'deny';
export const ACTION_CODES: Readonly<Record<KernelAction, number>> = Object.freeze({ allow: 1, deny: 2 });

/** Per-CPU counter slots, in the order of FP_CTR_* in fastpath.h. */
export const COUNTER_NAMES = Object.freeze(['hitAllow', 'hitDeny', 'miss', 'stale'] as const);
export type CounterName = (typeof COUNTER_NAMES)[number];

/** What the kernel sees at connect(): bound source address, destination address and port. */
export interface L4Tuple {
  srcAddress: string;
  dstAddress: string;
  dstPort: number;
}

export interface KernelVerdict {
  generation: bigint;
  expiresNs: bigint;
  action: KernelAction;
}

/** Encodes a tuple into `out` at `offset`; false when the addresses are not both IPv4 or both IPv6. */
export function writeKey(tuple: L4Tuple, out: Buffer, offset = 0): boolean {
  if (!Number.isInteger(tuple.dstPort) || tuple.dstPort < 1 || tuple.dstPort > 65535) return false;
  out.fill(0, offset, offset + KEY_LAYOUT.size);
  // IPv4 first, parsed by hand: this runs once per map write and net.isIPv4's regex dominated the cost.
  let family = FAMILY_INET;
  if (!writeIPv4(tuple.srcAddress, out, offset + KEY_LAYOUT.src) || !writeIPv4(tuple.dstAddress, out, offset + KEY_LAYOUT.dst)) {
    family = FAMILY_INET6;
    if (!isIPv6(tuple.srcAddress) || !isIPv6(tuple.dstAddress)) return false;
    out.fill(0, offset, offset + KEY_LAYOUT.size);
    writeAddress(tuple.srcAddress, family, out, offset + KEY_LAYOUT.src);
    writeAddress(tuple.dstAddress, family, out, offset + KEY_LAYOUT.dst);
  }
  out.writeUInt16LE(tuple.dstPort, offset + KEY_LAYOUT.dstPort);
  out.writeUInt8(family, offset + KEY_LAYOUT.family);
  return true;
}

export function encodeKey(tuple: L4Tuple): Buffer | null {
  const out = Buffer.alloc(KEY_LAYOUT.size);
  return writeKey(tuple, out) ? out : null;
}

export function decodeKey(buf: Buffer, offset = 0): L4Tuple {
  const family = buf.readUInt8(offset + KEY_LAYOUT.family);
  return {
    srcAddress: readAddress(buf, offset + KEY_LAYOUT.src, family),
    dstAddress: readAddress(buf, offset + KEY_LAYOUT.dst, family),
    dstPort: buf.readUInt16LE(offset + KEY_LAYOUT.dstPort),
  };
}

export function writeValue(v: KernelVerdict, out: Buffer, offset = 0): void {
  out.writeBigUInt64LE(v.generation, offset + VALUE_LAYOUT.generation);
  out.writeBigUInt64LE(v.expiresNs, offset + VALUE_LAYOUT.expiresNs);
  out.writeUInt32LE(ACTION_CODES[v.action], offset + VALUE_LAYOUT.action);
  out.writeUInt32LE(0, offset + VALUE_LAYOUT.action + 4); // pad
}

export function decodeValue(buf: Buffer, offset = 0): KernelVerdict {
  const code = buf.readUInt32LE(offset + VALUE_LAYOUT.action);
  return {
    generation: buf.readBigUInt64LE(offset + VALUE_LAYOUT.generation),
    expiresNs: buf.readBigUInt64LE(offset + VALUE_LAYOUT.expiresNs),
    // Anything but an explicit deny code is not a deny: the kernel reads it the same way.
    action: code === ACTION_CODES.deny ? 'deny' : 'allow',
  };
}

/** Dotted-quad IPv4 (no leading zeros, as net.isIPv4) into 4 bytes; false when it is not one. */
function writeIPv4(address: string, out: Buffer, offset: number): boolean {
  let octet = 0;
  let digits = 0;
  let index = 0;
  for (let i = 0; i <= address.length; i++) {
    const c = i < address.length ? address.charCodeAt(i) : 46; /* '.' ends the last octet */
    if (c === 46) {
      if (digits === 0 || index > 3) return false;
      out[offset + index++] = octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return false;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else return false;
  }
  return index === 4;
}

function writeAddress(address: string, family: number, out: Buffer, offset: number): void {
  if (family === FAMILY_INET) {
    writeIPv4(address, out, offset);
    return;
  }
  expandIPv6(address).forEach((group, i) => out.writeUInt16BE(group, offset + 2 * i));
}

function readAddress(buf: Buffer, offset: number, family: number): string {
  if (family === FAMILY_INET) return [0, 1, 2, 3].map((i) => buf.readUInt8(offset + i)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(offset + 2 * i).toString(16));
  return groups.join(':');
}

/** "fe80::1" → eight 16-bit groups; an embedded dotted IPv4 tail ("::ffff:1.2.3.4") becomes two groups. */
function expandIPv6(address: string): number[] {
  let text = address.split('%')[0] as string;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const o = dotted[1].split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1].length)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  if (tail === undefined) return h;
  const t = parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}
