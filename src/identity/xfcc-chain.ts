import type { X509Certificate } from 'node:crypto';
import { VerdictError } from '../errors';
import { parsePEMCertificates } from './trust-bundle';

/** Bounds for a header any caller could try to send (Envoy strips it only when told to sanitize). */
const MAX_XFCC_BYTES = 64 * 1024;
const MAX_CHAIN_CERTIFICATES = 16;

/**
 * The certificates of the `Chain=` element of Envoy's `x-forwarded-client-cert` header (URL-encoded PEM,
 * leaf first), to use as path-building candidates. Only meaningful when Envoy sanitizes the header and sets
 * it from the current connection (`forward_client_cert_details: SANITIZE_SET`,
 * `set_current_client_cert_details: { chain: true }`): then it holds exactly one element. More than one
 * element means Envoy appended to a header the client sent, which SANITIZE_SET never does: refused.
 * Returns [] when the header or its Chain is absent.
 */
export function chainFromXFCC(header: string | undefined): X509Certificate[] {
  if (header === undefined || header === '') return [];
  if (header.length > MAX_XFCC_BYTES) throw new VerdictError('ERR_SVID_MALFORMED', 'x-forwarded-client-cert is too large');
  const elements = splitOutsideQuotes(header, ',');
  if (elements.length !== 1)
    throw new VerdictError('ERR_SVID_MALFORMED', `x-forwarded-client-cert has ${elements.length} elements; SANITIZE_SET sets one`);
  const chain = splitOutsideQuotes(elements[0] as string, ';')
    .map((pair) => pair.trim())
    .find((pair) => pair.slice(0, 6).toLowerCase() === 'chain=');
  if (chain === undefined) return [];
  let pem: string;
  try {
    pem = decodeURIComponent(unquote(chain.slice(6)));
  } catch (err) {
    throw new VerdictError('ERR_SVID_MALFORMED', 'x-forwarded-client-cert Chain is not URL-encoded', { cause: err });
  }
  return parsePEMCertificates(pem, 'x-forwarded-client-cert Chain', MAX_CHAIN_CERTIFICATES);
}

/** Envoy quotes a value holding `,` `;` or `=` in double quotes, with `\"` inside. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && quoted) i++;
    else if (ch === '"') quoted = !quoted;
    else if (ch === separator && !quoted) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) throw new VerdictError('ERR_SVID_MALFORMED', 'x-forwarded-client-cert has an unterminated quote');
  out.push(text.slice(start));
  return out;
}

function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"') && value.length >= 2 ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}
