import type { GeneralNames, NameConstraintSet } from './der-extensions';

/**
 * RFC 5280 §4.2.1.10 / §6.1.3 (b)(c): a CA's name constraints applied to the names of a certificate below
 * it. verdict applies the URI form (the constraint is on the URI's host: for a SPIFFE ID, its trust domain)
 * and the dNSName form; a constraint of any other form (directoryName, iPAddress, rfc822Name, …) is not
 * evaluated, so it refuses the path (deny on doubt, as Go's crypto/x509 refuses a critical one it cannot read).
 * Hosts compare case-insensitively: the constraints arrive lowercased (der-extensions.ts), each name is
 * lowercased once here. Returns why the names break the constraints, or null when they fit.
 */
export function nameConstraintViolation(constraints: NameConstraintSet, names: GeneralNames): string | null {
  if (constraints.permitted.others > 0 || constraints.excluded.others > 0)
    return 'the CA has a name constraint of a form verdict does not evaluate';
  for (const uri of names.uris) {
    const host = uriHost(uri);
    const why = check('URI', uri, host, constraints.permitted.uris, constraints.excluded.uris, hostMatchesURIConstraint);
    if (why) return why;
  }
  for (const dns of names.dnsNames) {
    const why = check(
      'DNS name',
      dns,
      dns.toLowerCase(),
      constraints.permitted.dnsNames,
      constraints.excluded.dnsNames,
      hostMatchesDNSConstraint,
    );
    if (why) return why;
  }
  return null;
}

function check(
  form: string,
  name: string,
  host: string | null,
  permitted: readonly string[],
  excluded: readonly string[],
  matches: (host: string, constraint: string) => boolean,
): string | null {
  const shown = JSON.stringify(name.slice(0, 128));
  // §4.2.1.10: a URI without a host (e.g. a URN) cannot fit a URI constraint.
  if (host === null)
    return permitted.length > 0 || excluded.length > 0 ? `${form} ${shown} has no host to check against the name constraints` : null;
  if (excluded.some((c) => matches(host, c))) return `${form} ${shown} is in an excluded subtree`;
  if (permitted.length > 0 && !permitted.some((c) => matches(host, c))) return `${form} ${shown} is outside the permitted subtrees`;
  return null;
}

/** The host of `scheme://[userinfo@]host[:port]/…`, lowercased; null when the URI has no authority. */
export function uriHost(uri: string): string | null {
  const sep = uri.indexOf('://');
  if (sep <= 0) return null;
  const rest = uri.slice(sep + 3);
  let end = rest.length;
  for (const stop of ['/', '?', '#']) {
    const at = rest.indexOf(stop);
    if (at !== -1 && at < end) end = at;
  }
  let authority = rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  if (authority.startsWith('[')) return null; // an IP literal is not a domain name
  const colon = authority.indexOf(':');
  const host = (colon === -1 ? authority : authority.slice(0, colon)).toLowerCase();
  return host === '' ? null : host;
}

/** §4.2.1.10 URI form: `host.example` matches that host only; `.example` matches any host below it. Both lowercase. */
function hostMatchesURIConstraint(host: string, constraint: string): boolean {
  if (constraint.startsWith('.')) return host.endsWith(constraint) && host.length > constraint.length;
  return host === constraint;
}

/** §4.2.1.10 dNSName form: the name itself or any name made by adding labels on the left; "" matches all. Both lowercase. */
function hostMatchesDNSConstraint(name: string, constraint: string): boolean {
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return name.endsWith(constraint);
  return name === constraint || name.endsWith(`.${constraint}`);
}
