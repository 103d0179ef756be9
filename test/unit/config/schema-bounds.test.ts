import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { loadConfig, validateConfig } from '../../../src/config/load-config';
import { configSchema } from '../../../src/config/schema';
import { verdictErrorOf } from '../../helpers/error-code';

// Every string the config takes is echoed somewhere (a log line, an error, a header): each has a length
// bound in the schema, so that no setting can carry a value without end into those places.

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  in?: z.ZodType;
  out?: z.ZodType;
  checks?: { _zod: { def: { check: string } } }[];
}

/** Path → whether it has a max_length check, for every string the schema reaches. */
function strings(schema: z.ZodType, path: string, out: Map<string, boolean>): Map<string, boolean> {
  const def = (schema as unknown as { _zod: { def: Def } })._zod.def;
  const walk = (child: z.ZodType | undefined, at: string): void => void (child && strings(child, at, out));
  switch (def.type) {
    case 'object':
      for (const [key, child] of Object.entries(def.shape ?? {})) walk(child, path === '' ? key : `${path}.${key}`);
      break;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      walk(def.innerType, path);
      break;
    case 'array':
      walk(def.element, `${path}[]`);
      break;
    case 'record':
      walk(def.keyType, `${path}{key}`);
      walk(def.valueType, `${path}{value}`);
      break;
    case 'union':
      (def.options ?? []).forEach((option, i) => walk(option, `${path}<${i}>`));
      break;
    case 'pipe':
      walk(def.in, path);
      walk(def.out, path);
      break;
    case 'string':
      out.set(path, (out.get(path) ?? true) && (def.checks ?? []).some((c) => c._zod.def.check === 'max_length'));
      break;
  }
  return out;
}

describe('the config schema', () => {
  it('bounds the length of every string setting', () => {
    const found = strings(configSchema, '', new Map());
    expect(found.size).toBeGreaterThan(50);
    expect([...found].filter(([, bounded]) => !bounded).map(([path]) => path)).toEqual([]);
  });

  const url = (length: number): string => `http://collector.example/${'a'.repeat(length - 'http://collector.example/'.length)}`;
  const httpSource = (authorization: string): unknown => ({
    bundles: { source: { type: 'http', url: 'https://bundles.example/b.tar.gz', authorization } },
  });
  it.each([
    { key: 'policy.bundle', at: (n: number) => validateConfig({ policy: { bundle: `/${'p'.repeat(n - 1)}` } }), max: 4095 },
    { key: 'tracing.otlpEndpoint', at: (n: number) => validateConfig({ tracing: { otlpEndpoint: url(n) } }), max: 8192 },
    { key: 'decision.reasonHeader', at: (n: number) => validateConfig({ decision: { reasonHeader: 'h'.repeat(n) } }), max: 256 },
    { key: 'bundles.source.authorization', at: (n: number) => validateConfig(httpSource('t'.repeat(n))), max: 8192 },
    {
      key: 'decisionLog.labels.team',
      at: (n: number) => loadConfig({ overrides: [`decisionLog.labels.team=${'v'.repeat(n)}`] }),
      max: 1024,
    },
  ])('takes $key up to $max characters and refuses one more with ERR_CONFIG naming it', ({ key, at, max }) => {
    expect(at(max)).toBeDefined();
    const err = verdictErrorOf(() => at(max + 1));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toContain(`"${key}"`);
  });
});
