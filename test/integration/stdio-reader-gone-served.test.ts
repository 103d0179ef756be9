import { once } from 'node:events';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseMetrics } from '../helpers/kernel-telemetry-fixtures';
import { connectRaw, grpcHeaders, lpm, rawCall } from '../helpers/grpc-raw-client';
import { checkClient, httpCheckRequest } from '../helpers/verdict-harness';
import { VerdictChild } from '../helpers/verdict-child';

// The reader of stderr or stdout goes away under a running server (a log shipper that died). stderr: the
// server keeps answering, counts the log lines it can no longer write, and still stops on SIGTERM (sonic-boom
// 4 under pino retried the broken pipe in its exit flush for ever, so such a process never exited). stdout
// with decisionLog.console: the EPIPE was an uncaught exception at the first decision (exit 70); now the
// console sink is down like any sink, and the process serves on.
describe('verdict serve whose stderr or stdout reader has gone', () => {
  let verdict: VerdictChild | undefined;
  afterAll(() => {
    if (verdict?.alive) verdict.child.kill('SIGKILL');
  });

  const metric = async (v: VerdictChild, sample: string): Promise<number | undefined> => parseMetrics(await v.metrics()).get(sample);

  it('counts the lines it drops, keeps serving, and exits 0 on SIGTERM', async () => {
    const v = (verdict = await VerdictChild.start(['log.level=debug']));
    expect(await metric(v, 'verdict_log_output_stopped')).toBe(0);
    v.child.stderr!.destroy();
    // Each call to a method verdict does not serve is refused with one debug line.
    const session = connectRaw(`http://127.0.0.1:${v.grpcPort}`);
    const refused = async (): Promise<number | null> =>
      (await rawCall(session, grpcHeaders('/no.Such/Method'), (s) => s.end(lpm(Buffer.alloc(0))))).grpcStatus;
    expect(await refused()).toBe(12);
    await vi.waitFor(async () => expect(await metric(v, 'verdict_log_output_stopped')).toBe(1), { timeout: 10_000, interval: 50 });
    for (let i = 0; i < 3; i++) expect(await refused()).toBe(12);
    expect(await metric(v, 'verdict_log_lines_dropped_total')).toBeGreaterThanOrEqual(3);
    session.close();
    const exited = once(v.child, 'exit');
    v.child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  });

  it('decisionLog.console: Checks are answered by the same process, the console sink counts its failures, exit 0 on SIGTERM', async () => {
    const v = (verdict = await VerdictChild.start(['decisionLog.console=true'], { stdout: 'pipe' }));
    const client = checkClient(`127.0.0.1:${v.grpcPort}`);
    const before = (await client.check(httpCheckRequest({ path: '/before' }))).status?.code;
    expect(typeof before).toBe('number');
    v.child.stdout!.destroy();
    for (let i = 0; i < 5; i++) expect((await client.check(httpCheckRequest({ path: `/after/${i}` }))).status?.code).toBe(before);
    await vi.waitFor(
      async () => expect(await metric(v, 'verdict_decisionlog_sink_errors_total{sink="console",why="error"}')).toBeGreaterThanOrEqual(1),
      { timeout: 10_000, interval: 50 },
    );
    expect(v.alive).toBe(true);
    expect(v.lines.filter((l) => l.msg === 'uncaught exception; exiting')).toEqual([]);
    client.close();
    const exited = once(v.child, 'exit');
    v.child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  });
});
