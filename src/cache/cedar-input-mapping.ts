/**
 * How a Cedar request is assumed to be built from verdict's input document (the "cedar" engine's input
 * mapping). The lint uses it to turn what a Cedar policy reads into input paths. Kept in this one place so
 * that when the engine's mapping changes, only this table changes:
 *
 *   principal  ← input.spiffe.id                      (the caller's verified SPIFFE ID)
 *   action     ← input.attributes.request.http.method
 *   resource   ← input.attributes.request.http.path
 *   context.X  ← input.X                              (context carries the input document's fields)
 *
 * Attributes of the principal, action or resource entities (`principal.department`) come from the bundle's
 * entity data, which the bundle sha256 in every key already covers; reading them depends only on which
 * entity it is, i.e. on the path above.
 */
export const CEDAR_SCOPE_INPUT: Readonly<Record<'principal' | 'action' | 'resource', readonly string[]>> = Object.freeze({
  principal: Object.freeze(['spiffe', 'id']),
  action: Object.freeze(['attributes', 'request', 'http', 'method']),
  resource: Object.freeze(['attributes', 'request', 'http', 'path']),
});

/** Input path for a Cedar variable and the attributes read from it (`context.a.b` → `a.b`). */
export function cedarReadToInput(variable: string, attrs: readonly string[]): readonly string[] {
  if (variable === 'context') return attrs;
  const scope = CEDAR_SCOPE_INPUT[variable as keyof typeof CEDAR_SCOPE_INPUT];
  // An unknown variable cannot be mapped: treat it as reading the whole input (conservative).
  return scope ?? [];
}
