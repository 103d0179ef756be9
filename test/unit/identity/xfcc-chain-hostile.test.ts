import { describe, expect, it } from 'vitest';
import { chainFromXFCC } from '../../../src/identity/xfcc-chain';
import { verdictErrorOf } from '../../helpers/error-code';

// x-forwarded-client-cert is a header a caller can send whenever Envoy is not told to sanitize it: its
// Chain= element is bounded by the header size (64 KiB) and by a certificate count (16), and the count
// must hold before the PEM is scanned or parsed. Inputs are generated here.
const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';
const xfccWithChain = (pem: string): string => `Hash=00;Chain="${encodeURIComponent(pem)}";URI=spiffe://example.org/w`;
/** A block that is PEM-shaped but whose DER does not parse. */
const junkBlock = `${BEGIN}\n${Buffer.from('not a certificate').toString('base64')}\n${END}\n`;

describe('chainFromXFCC: certificate count before any scan or parse', () => {
  it('2,000 unterminated BEGIN CERTIFICATE markers (under 64 KiB) are refused ERR_SVID_MALFORMED as too many certificates', () => {
    const header = xfccWithChain(`${BEGIN}\n`.repeat(2000));
    expect(header.length).toBeLessThanOrEqual(64 * 1024);
    const err = verdictErrorOf(() => chainFromXFCC(header));
    expect(err.code).toBe('ERR_SVID_MALFORMED');
    expect(err.message).toBe('x-forwarded-client-cert Chain holds more than 16 certificates');
  });

  it('17 blocks are refused by their count before any of them is parsed (the message is the count, not a parse failure)', () => {
    const err = verdictErrorOf(() => chainFromXFCC(xfccWithChain(junkBlock.repeat(17))));
    expect(err.code).toBe('ERR_SVID_MALFORMED');
    expect(err.message).toBe('x-forwarded-client-cert Chain holds more than 16 certificates');
  });

  it('16 blocks are within the bound: they are parsed, and a block that does not parse is refused as such', () => {
    const err = verdictErrorOf(() => chainFromXFCC(xfccWithChain(junkBlock.repeat(16))));
    expect(err.code).toBe('ERR_SVID_MALFORMED');
    expect(err.message).toBe('x-forwarded-client-cert Chain: a certificate does not parse');
  });
});
