import { describe, expect, it } from 'vitest';
import { parseMultipart } from '../../../src/request/parse-multipart';

// Go's mime/multipart (opa-envoy-plugin's reader) keeps a part whose headers run to 10 MiB or 10,000
// lines; the upstream's reader sees it too. A part that verdict's reader dropped would be a field the
// policy never saw. The padded parts are generated here, each with its Content-Disposition last.
const LIMITS = { maxParsedBodyBytes: 64 * 1024, maxInputDepth: 64, maxQueryParams: 1000 };
const B = 'b0undary';

function paddedPart(padding: string): Buffer {
  return Buffer.from(`--${B}\r\n${padding}Content-Disposition: form-data; name="role"\r\n\r\nadmin\r\n--${B}--\r\n`);
}

describe('parseMultipart: padded part headers', () => {
  it.each([
    { name: 'one 20 KiB header line before Content-Disposition', padding: `X-Pad: ${'p'.repeat(20 * 1024)}\r\n` },
    { name: '150 header lines before Content-Disposition', padding: Array.from({ length: 150 }, (_, i) => `X-Pad-${i}: p\r\n`).join('') },
  ])('$name: the part still reaches parsed_body', async ({ padding }) => {
    const parsed = await parseMultipart(`multipart/form-data; boundary=${B}`, paddedPart(padding), LIMITS);
    expect(parsed?.value).toEqual({ role: ['admin'] });
  });
});
