import { describe, expect, it } from 'vitest';
import { loadTelemetryAddon, telemetryObjectPath } from '../../../src/kerneltelemetry/telemetry-addon';
import {
  HEALTH_NAMES,
  HIST_SLOTS,
  KT_KEY_LAYOUT,
  KT_STATS_LAYOUT,
  STAT_FIELDS,
  canonicalAddress,
  decodeAggregateKey,
  decodeStats,
  slotUpperSeconds,
} from '../../../src/kerneltelemetry/telemetry-layout';
import { btfStructs } from '../../helpers/bpf-btf';
import { requireTelemetryBPF } from '../../helpers/kernel-telemetry-fixtures';

/** snake_case C member → the camelCase name telemetry-layout.ts uses. */
const camel = (s: string): string => s.replace(/_(\w)/g, (_m, c: string) => c.toUpperCase());

function addon() {
  requireTelemetryBPF();
  const loaded = loadTelemetryAddon();
  if ('reason' in loaded) throw new Error(loaded.reason);
  return loaded.addon;
}

describe('kernel telemetry structs agree between C and TypeScript', () => {
  it('the addon (host C compiler) lays out kt_key and kt_stats as telemetry-layout.ts decodes them', () => {
    const c = addon().ktLayout();
    expect({ size: c.key.size, cgroupId: c.key.cgroup_id, dst: c.key.dst, dstPort: c.key.dst_port, family: c.key.family }).toEqual(
      KT_KEY_LAYOUT,
    );
    expect(c.stats.size).toBe(KT_STATS_LAYOUT.size);
    expect(c.stats.hist).toBe(KT_STATS_LAYOUT.hist);
    STAT_FIELDS.forEach((f, i) => expect(c.stats[Object.keys(c.stats).find((k) => camel(k) === f) as string], f).toBe(8 * i));
    expect({ slots: c.histSlots, health: c.healthCount }).toEqual({ slots: HIST_SLOTS, health: HEALTH_NAMES.length });
  });

  it('the BPF object (clang -target bpf) has the same layout in its BTF', () => {
    requireTelemetryBPF();
    const btf = btfStructs(telemetryObjectPath());
    expect(btf.kt_key).toEqual({ size: KT_KEY_LAYOUT.size, members: { cgroup_id: 0, dst: 8, dst_port: 24, family: 26, pad: 27 } });
    const members = Object.fromEntries(STAT_FIELDS.map((f, i) => [f, 8 * i]));
    expect(btf.kt_stats?.size).toBe(KT_STATS_LAYOUT.size);
    expect(Object.fromEntries(Object.entries(btf.kt_stats?.members ?? {}).map(([k, v]) => [camel(k), v]))).toEqual({
      ...members,
      hist: KT_STATS_LAYOUT.hist,
    });
  });
});

describe('decoding', () => {
  it('a key: cgroup id, IPv4 destination in network order, port in host order', () => {
    const buf = Buffer.alloc(KT_KEY_LAYOUT.size);
    buf.writeBigUInt64LE(12345n, KT_KEY_LAYOUT.cgroupId);
    buf.set([10, 1, 2, 3], KT_KEY_LAYOUT.dst);
    buf.writeUInt16LE(8443, KT_KEY_LAYOUT.dstPort);
    buf.writeUInt8(2, KT_KEY_LAYOUT.family);
    expect(decodeAggregateKey(buf, 0)).toEqual({ cgroupId: 12345n, dstAddress: '10.1.2.3', dstPort: 8443 });
  });

  it('stats: every counter and slot from its offset', () => {
    const buf = Buffer.alloc(KT_STATS_LAYOUT.size);
    STAT_FIELDS.forEach((_f, i) => buf.writeBigUInt64LE(BigInt(i + 1), 8 * i));
    buf.writeBigUInt64LE(7n, KT_STATS_LAYOUT.hist + 8 * 29);
    const s = decodeStats(buf, 0);
    STAT_FIELDS.forEach((f, i) => expect(s[f], f).toBe(i + 1));
    expect(s.hist[29]).toBe(7);
    expect(s.hist.reduce((a, b) => a + b, 0)).toBe(7);
  });

  it('slot upper bounds are 2^(slot+1) ns; the last slot is open', () => {
    expect(slotUpperSeconds(29)).toBe(1.073741824);
    expect(slotUpperSeconds(HIST_SLOTS - 1)).toBe(Infinity);
  });

  const addresses = [
    { name: 'IPv4', input: '10.0.0.1', out: '10.0.0.1' },
    { name: 'IPv6 compressed', input: '::1', out: '0:0:0:0:0:0:0:1' },
    { name: 'IPv6 with zone', input: 'fe80::1%eth0', out: 'fe80:0:0:0:0:0:0:1' },
    { name: 'IPv4 octet out of range', input: '10.0.0.300', out: null },
    { name: 'hostname', input: 'example.com', out: null },
    { name: 'two ::', input: '1::2::3', out: null },
    { name: 'nine groups', input: '1:2:3:4:5:6:7:8:9', out: null },
  ];
  it.each(addresses)('canonical address: $name', ({ input, out }) => expect(canonicalAddress(input)).toBe(out));
});
