import { describe, expect, it } from 'vitest';
import { OTHER_DESTINATION, SeriesBook } from '../../../src/kerneltelemetry/series-book';
import { emptyStats, type Aggregate, type Stats } from '../../../src/kerneltelemetry/telemetry-layout';

const stats = (over: Partial<Stats>): Stats => ({ ...emptyStats(), ...over });
const agg = (cgroupId: bigint, port: number, over: Partial<Stats>): Aggregate => ({
  cgroupId,
  dstAddress: '10.0.0.1',
  dstPort: port,
  stats: stats(over),
});
const identity = (id: bigint): string => `spiffe://t/${id}`;
const byDest = (book: SeriesBook, who: string): Record<string, number> =>
  Object.fromEntries([...book.all()].filter((s) => s.spiffeId === who).map((s) => [s.destination, s.stats.attempts]));

describe('SeriesBook: kernel reads → monotonic series', () => {
  it('adds only what changed since the previous read', () => {
    const book = new SeriesBook(10);
    book.apply([agg(1n, 80, { attempts: 3, established: 2 })], true, identity);
    const deltas = book.apply([agg(1n, 80, { attempts: 5, established: 2 })], true, identity);
    expect(deltas.map((d) => d.delta.attempts)).toEqual([2]);
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:80': 5 });
  });

  it('an evicted and re-created kernel entry (a counter went down) adds its whole new value: series never decrease', () => {
    const book = new SeriesBook(10);
    book.apply([agg(1n, 80, { attempts: 7 })], true, identity);
    book.apply([], true, identity); // evicted
    book.apply([agg(1n, 80, { attempts: 2 })], true, identity);
    book.apply([agg(1n, 80, { attempts: 1 })], true, identity); // evicted and re-created between two reads
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:80': 10 });
  });

  it('a truncated read keeps unread keys, so their next delta is not counted twice', () => {
    const book = new SeriesBook(10);
    book.apply([agg(1n, 80, { attempts: 4 }), agg(1n, 81, { attempts: 1 })], true, identity);
    book.apply([agg(1n, 80, { attempts: 4 })], false, identity);
    book.apply([agg(1n, 80, { attempts: 4 }), agg(1n, 81, { attempts: 2 })], true, identity);
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:80': 4, '10.0.0.1:81': 2 });
  });

  it('top-N per identity: the busiest new destinations get their own series, the rest fold into "other"', () => {
    const book = new SeriesBook(2);
    book.apply(
      [agg(1n, 1, { attempts: 1 }), agg(1n, 2, { attempts: 50 }), agg(1n, 3, { attempts: 20 }), agg(2n, 9, { attempts: 1 })],
      true,
      identity,
    );
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:2': 50, '10.0.0.1:3': 20, [OTHER_DESTINATION]: 1 });
    // A destination keeps its series; a new one finds no free slot.
    book.apply([agg(1n, 1, { attempts: 2 }), agg(1n, 2, { attempts: 51 }), agg(1n, 4, { attempts: 99 })], true, identity);
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:2': 51, '10.0.0.1:3': 20, [OTHER_DESTINATION]: 101 });
    expect(byDest(book, 'spiffe://t/2')).toEqual({ '10.0.0.1:9': 1 });
    expect(book.size).toBe(4);
  });

  it('topDestinations 0: one series per identity', () => {
    const book = new SeriesBook(0);
    book.apply([agg(1n, 1, { attempts: 1 }), agg(1n, 2, { attempts: 1 })], true, identity);
    expect(byDest(book, 'spiffe://t/1')).toEqual({ [OTHER_DESTINATION]: 2 });
  });

  it('histogram slots are diffed like counters', () => {
    const book = new SeriesBook(5);
    const h = (n: number): number[] => Object.assign(new Array<number>(36).fill(0), { 14: n });
    book.apply([agg(1n, 80, { established: 1, hist: h(1) })], true, identity);
    const d = book.apply([agg(1n, 80, { established: 3, hist: h(3) })], true, identity);
    expect(d[0]?.delta.hist[14]).toBe(2);
    expect([...book.all()][0]?.stats.hist[14]).toBe(3);
  });
});

describe('SeriesBook bounds and label text', () => {
  it('maxSeries caps all series: past it new destinations fold into their identity\'s "other"', () => {
    const book = new SeriesBook(100, 3);
    book.apply(
      [1, 2, 3, 4, 5].map((p) => agg(1n, p, { attempts: 10 - p })),
      true,
      identity,
    );
    expect(book.size).toBe(3);
    expect(byDest(book, 'spiffe://t/1')).toEqual({ '10.0.0.1:1': 9, '10.0.0.1:2': 8, [OTHER_DESTINATION]: 7 + 6 + 5 });
  });

  it('label values are escaped for the Prometheus text format', () => {
    const book = new SeriesBook(1);
    book.apply([agg(1n, 80, { attempts: 1 })], true, () => 'spiffe://t/a"b\\c\nd');
    expect(book.all()[0]?.labels.toString('utf8')).toBe('spiffe_id="spiffe://t/a\\"b\\\\c\\nd",destination="10.0.0.1:80"');
  });
});
