import { describe, expect, it } from 'vitest';
import { kernelTelemetrySchema } from '../../../src/config/sections/kernel-telemetry';

const base = { enabled: true, cgroupPath: '/sys/fs/cgroup/unified/mesh' };
const row = (extra: object): object => ({ cgroupPath: '/sys/fs/cgroup/unified/mesh/a', ...extra });
const messages = (value: unknown): string[] => {
  const r = kernelTelemetrySchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('kernelTelemetry identity config', () => {
  it('the Delegated Identity binding is off by default, with bounded defaults', () => {
    expect(kernelTelemetrySchema.parse({}).delegatedIdentity).toEqual({
      enabled: false,
      socket: null,
      pidsPerCgroup: 2,
      pidCheckIntervalMs: 1000,
      reconnectInitialMs: 250,
      reconnectMaxMs: 10_000,
      stalenessMs: 60_000,
    });
  });

  it('a row names exactly one of spiffeId, sourceAddress or delegatedIdentity', () => {
    const one = /exactly one of spiffeId, sourceAddress or delegatedIdentity/;
    expect(messages({ ...base, identities: [row({})] })).toEqual([expect.stringMatching(one)]);
    const on = { delegatedIdentity: { enabled: true, socket: '/run/spire/admin.sock' } };
    expect(messages({ ...base, ...on, identities: [row({ spiffeId: 'spiffe://td/a', delegatedIdentity: true })] })).toEqual([
      expect.stringMatching(one),
    ]);
    expect(messages({ ...base, identities: [row({ spiffeId: 'spiffe://td/a' })] })).toEqual([]);
  });

  it('a delegatedIdentity row needs the binding enabled and the agent admin socket', () => {
    const delegatedRow = { ...base, identities: [row({ delegatedIdentity: true })] };
    const needs = /needs kernelTelemetry.delegatedIdentity.enabled and its socket/;
    expect(messages(delegatedRow)).toEqual([expect.stringMatching(needs)]);
    expect(messages({ ...delegatedRow, delegatedIdentity: { enabled: true } })).toEqual([expect.stringMatching(needs)]);
    expect(messages({ ...delegatedRow, delegatedIdentity: { enabled: true, socket: 'unix:///run/spire/admin.sock' } })).toEqual([]);
  });

  it('refuses a reconnect backoff that starts above its cap', () => {
    expect(messages({ delegatedIdentity: { reconnectInitialMs: 5000, reconnectMaxMs: 1000 } })).toEqual([
      expect.stringMatching(/reconnectInitialMs must not exceed reconnectMaxMs/),
    ]);
  });
});
