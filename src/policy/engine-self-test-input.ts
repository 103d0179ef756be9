import type { InputDocument } from '../request/input-document';

/**
 * A GET / with no identity, in the input shape every engine receives. Evaluating it proves the new
 * engine runs end to end (memory, data, entrypoint) before it may replace the serving one.
 */
export const SELF_TEST_INPUT: InputDocument = Object.freeze({
  attributes: {
    source: { address: { socketAddress: { address: '127.0.0.1', portValue: 1 } } },
    destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 2 } } },
    request: {
      http: { id: 'verdict-self-test', method: 'GET', path: '/', host: 'verdict.self-test', headers: { ':method': 'GET', ':path': '/' } },
    },
  },
  parsed_path: [],
  parsed_query: {},
  parsed_body: null,
  truncated_body: false,
  version: { ext_authz: 'v3', encoding: 'protojson' },
}) as InputDocument;
