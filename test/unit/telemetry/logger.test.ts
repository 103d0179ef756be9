import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/telemetry/logger';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { lines, stream };
}

describe('logger', () => {
  it('a field named msg becomes detail: one msg key per line', async () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    logger.warn({ code: 'ERR_CACHE_LINT', msg: 'the reason' }, 'cache key could not be checked');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    expect(lines[0]?.match(/"msg":/g)).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      msg: 'cache key could not be checked',
      detail: 'the reason',
      code: 'ERR_CACHE_LINT',
    });
  });
});
