import { describe, expect, it } from 'vitest';
import { errorsByKind } from '../../../loadtest/lib/ghz';

describe("ghz's error distribution by kind", () => {
  it('folds messages that differ only in socket addresses into one kind, keeping status and text', () => {
    const kinds = errorsByKind({
      'rpc error: code = Unavailable desc = error reading from server: read tcp 127.0.0.1:44900->127.0.0.1:44675: use of closed network connection': 1,
      'rpc error: code = Unavailable desc = error reading from server: read tcp 127.0.0.1:44918->127.0.0.1:44675: use of closed network connection': 8,
      'rpc error: code = DeadlineExceeded desc = context deadline exceeded': 2,
      'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:9191: connect: connection refused"': 3,
    });
    expect(kinds).toEqual({
      'Unavailable: error reading from server: read tcp ADDR->ADDR: use of closed network connection': 9,
      'DeadlineExceeded: context deadline exceeded': 2,
      'Unavailable: connection error: desc = "transport: Error while dialing: dial tcp ADDR: connect: connection refused"': 3,
    });
  });

  it('is empty when ghz reports no errors (its field is absent or null then)', () => {
    expect(errorsByKind(undefined)).toEqual({});
    expect(errorsByKind(null)).toEqual({});
  });
});
