import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED_DECODER, checkRequestDecoderSource } from '../../../src/request/check-request-codegen';
import { packageRoot } from '../../../src/package-root';

/**
 * The per-message decoder is generated from the schema tables and committed. This holds the committed file to
 * the tables, so a field added to check-request-schema.ts (which check-request-reference.test.ts demands for
 * every new Envoy field) cannot be missing from the decoder that runs.
 */
describe('the generated CheckRequest decoder', () => {
  it('is exactly what check-request-codegen writes from the schema (regenerate: node dist/src/request/check-request-codegen.js)', () => {
    expect(readFileSync(join(packageRoot(), GENERATED_DECODER), 'utf8')).toBe(checkRequestDecoderSource());
  });
});
