import { describe, expect, it } from 'vitest';
import { KEY_LAYOUT, VALUE_LAYOUT, decodeKey, decodeValue, encodeKey, writeValue } from '../../../src/fastpath/map-layout';
import { bpfObjectPath } from '../../../src/fastpath/native-addon';
import { btfStructs } from '../../helpers/bpf-btf';
import { requireBPF } from '../../helpers/bpf-kernel';

describe('struct layout agrees between C and TypeScript', () => {
  it('the addon (host C compiler) sees the layout map-layout.ts encodes', () => {
    const c = requireBPF().layout();
    expect({ size: c.keySize, src: c.keySrc, dst: c.keyDst, dstPort: c.keyDstPort, family: c.keyFamily }).toEqual(KEY_LAYOUT);
    expect({ size: c.valueSize, generation: c.valueGeneration, expiresNs: c.valueExpiresNs, action: c.valueAction }).toEqual(VALUE_LAYOUT);
    expect({ allow: c.actionAllow, deny: c.actionDeny, counters: c.counterCount }).toEqual({ allow: 1, deny: 2, counters: 4 });
  });

  it('the BPF object (clang -target bpf) has the same layout in its BTF', () => {
    requireBPF();
    const btf = btfStructs(bpfObjectPath());
    expect(btf.fp_key).toEqual({ size: KEY_LAYOUT.size, members: { src: 0, dst: 16, dst_port: 32, family: 34, pad: 35 } });
    expect(btf.fp_verdict).toEqual({ size: VALUE_LAYOUT.size, members: { generation: 0, expires_ns: 8, action: 16, pad: 20 } });
  });

  const cases = [
    { name: 'IPv4', tuple: { srcAddress: '127.0.0.66', dstAddress: '10.1.2.3', dstPort: 8080 } },
    { name: 'IPv6', tuple: { srcAddress: 'fd00:0:0:0:0:0:0:7', dstAddress: '0:0:0:0:0:0:0:1', dstPort: 443 } },
  ];
  it.each(cases)('$name keys round-trip', ({ tuple }) => {
    const key = encodeKey(tuple);
    expect(key).not.toBeNull();
    expect(decodeKey(key as Buffer)).toEqual(tuple);
  });

  it('IPv4 addresses are in network byte order in src[0]', () => {
    const key = encodeKey({ srcAddress: '127.0.0.9', dstAddress: '127.0.0.1', dstPort: 1 }) as Buffer;
    expect([...key.subarray(0, 4)]).toEqual([127, 0, 0, 9]);
    expect(key.readUInt8(KEY_LAYOUT.family)).toBe(2);
  });

  const invalid = [
    { name: 'mixed families', tuple: { srcAddress: '127.0.0.1', dstAddress: '::1', dstPort: 80 } },
    { name: 'hostname', tuple: { srcAddress: 'localhost', dstAddress: '127.0.0.1', dstPort: 80 } },
    { name: 'IPv4 with a leading zero', tuple: { srcAddress: '127.0.0.01', dstAddress: '127.0.0.1', dstPort: 80 } },
    { name: 'IPv4 octet > 255', tuple: { srcAddress: '127.0.0.256', dstAddress: '127.0.0.1', dstPort: 80 } },
    { name: 'IPv4 with five octets', tuple: { srcAddress: '1.2.3.4.5', dstAddress: '127.0.0.1', dstPort: 80 } },
    { name: 'IPv4 empty octet', tuple: { srcAddress: '1..3.4', dstAddress: '127.0.0.1', dstPort: 80 } },
    { name: 'port 0', tuple: { srcAddress: '127.0.0.1', dstAddress: '127.0.0.1', dstPort: 0 } },
    { name: 'port too large', tuple: { srcAddress: '127.0.0.1', dstAddress: '127.0.0.1', dstPort: 70000 } },
  ];
  it.each(invalid)('refuses $name', ({ tuple }) => expect(encodeKey(tuple)).toBeNull());

  it('values round-trip', () => {
    const buf = Buffer.alloc(VALUE_LAYOUT.size);
    const v = { generation: 1764000000000123n, expiresNs: 987654321012n, action: 'deny' as const };
    writeValue(v, buf);
    expect(decodeValue(buf)).toEqual(v);
  });
});
