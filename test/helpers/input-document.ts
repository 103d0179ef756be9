import type { InputDocument } from '../../src/request/input-document';

/** The input document of a plain HTTP request (no identity, no body): what a policy sees for `method path`. */
export function httpInput(path: string, headers: Record<string, string> = {}, method = 'GET'): InputDocument {
  return {
    attributes: { request: { http: { method, path, headers } } },
    parsed_path: path.slice(1).split('/'),
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
  };
}
