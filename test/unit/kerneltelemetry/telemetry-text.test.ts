import { describe, expect, it } from 'vitest';
import { SeriesBook } from '../../../src/kerneltelemetry/series-book';
import { emptyStats, slotUpperSeconds } from '../../../src/kerneltelemetry/telemetry-layout';
import { renderKernelSeries } from '../../../src/kerneltelemetry/telemetry-text';

/** One series per identity, all to 10.0.0.1:80, with 2 handshakes in slot 15 and 1 in the open-ended last slot. */
function render(identities: string[]): string {
  const book = new SeriesBook(10);
  const stats = { ...emptyStats(), attempts: 3, established: 3, handshakeNsSum: 2e9 };
  stats.hist[15] = 2;
  stats.hist[35] = 1;
  book.apply(
    identities.map((_, i) => ({ cgroupId: BigInt(i), dstAddress: '10.0.0.1', dstPort: 80, stats })),
    true,
    (id) => identities[Number(id)]!,
  );
  return renderKernelSeries(book.all());
}

describe('renderKernelSeries: Prometheus text of the kernel series', () => {
  it('writes each sample with its escaped labels, cumulative buckets up to +Inf, and UTF-8 help text intact', () => {
    const text = render(['spiffe://t/a"b']);
    const labels = 'spiffe_id="spiffe://t/a\\"b",destination="10.0.0.1:80"';
    const lines = text.split('\n');
    expect(text.endsWith('\n')).toBe(true);
    expect(lines).toContain(`verdict_kernel_connect_attempts_total{${labels}} 3`);
    expect(lines).toContain(`verdict_kernel_connections_refused_total{${labels},by="peer"} 0`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_bucket{${labels},le="${slotUpperSeconds(14)}"} 0`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_bucket{${labels},le="${slotUpperSeconds(15)}"} 2`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_bucket{${labels},le="${slotUpperSeconds(34)}"} 2`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_bucket{${labels},le="+Inf"} 3`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_sum{${labels}} 2`);
    expect(lines).toContain(`verdict_kernel_handshake_seconds_count{${labels}} 3`);
    expect(lines).toContain(
      "# HELP verdict_kernel_handshake_seconds SYN→ESTABLISHED time; the buckets are the kernel's log2 nanosecond slots.",
    );
  });

  it('labels far longer than the initial buffer estimate are written whole (the buffer grows)', () => {
    const long = `spiffe://t/${'x'.repeat(20_000)}é`;
    const text = render([long, 'spiffe://t/b']);
    expect(text).toContain(`verdict_kernel_connect_attempts_total{spiffe_id="${long}",destination="10.0.0.1:80"} 3\n`);
    expect(text).toContain('verdict_kernel_connect_attempts_total{spiffe_id="spiffe://t/b",destination="10.0.0.1:80"} 3\n');
    expect(text.split('\n').filter((l) => l.startsWith('verdict_kernel_handshake_seconds_count{'))).toHaveLength(2);
  });

  it('no series, no text', () => {
    expect(renderKernelSeries([])).toBe('');
  });
});
