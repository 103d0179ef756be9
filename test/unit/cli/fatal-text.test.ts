import { describe, expect, it } from 'vitest';
import { MAX_FATAL_TEXT, boundedError, boundedText } from '../../../src/cli/fatal-text';

// The one fatal line must fit the log sink's line bound whatever an error carries (a 10 MB host name).
describe('fatal line text', () => {
  it('keeps a short text as it is', () => {
    expect(boundedText('ERR_LISTEN: 127.0.0.1:9191 is already in use')).toBe('ERR_LISTEN: 127.0.0.1:9191 is already in use');
  });

  it('cuts a longer text to the bound and says how long it was', () => {
    expect(boundedText('h'.repeat(10_000_000))).toBe(`${'h'.repeat(MAX_FATAL_TEXT)}… (10000000 characters)`);
  });

  it("cuts an error's message and stack alike", () => {
    const err = new Error(`getaddrinfo ENOTFOUND ${'h'.repeat(10_000_000)}`);
    const line = boundedError(err);
    expect(line.type).toBe('Error');
    expect(line.message.length).toBeLessThan(MAX_FATAL_TEXT + 64);
    expect(line.stack?.length).toBeLessThan(MAX_FATAL_TEXT + 64);
  });
});
