import { describe, expect, it } from 'vitest';
import { SegmentIndex } from '../../../src/decisionlog/segment-index';

/** Segments 1 (100 bytes), 5 (50) and 9 (10). */
function index(): SegmentIndex {
  const i = new SegmentIndex();
  i.add(1, 100);
  i.add(5, 50);
  i.add(9, 10);
  return i;
}

describe('SegmentIndex', () => {
  it('finds the next segment held across gaps in the numbers', () => {
    const i = index();
    expect([i.after(0), i.after(1), i.after(4), i.after(5), i.after(9)]).toEqual([1, 5, 5, 9, undefined]);
  });

  it('counts the bytes from a cursor to the end, from a segment not held too', () => {
    const i = index();
    expect(i.bytes).toBe(160);
    expect([i.backlog({ segment: 1, offset: 40 }), i.backlog({ segment: 5, offset: 50 }), i.backlog({ segment: 3, offset: 0 })]).toEqual([
      120, 10, 60,
    ]);
  });

  it('keeps the backlog right when the oldest segment goes, a middle one goes, or one shrinks or grows', () => {
    const i = index();
    i.remove(1);
    expect([i.bytes, i.backlog({ segment: 5, offset: 0 }), i.first()]).toEqual([60, 60, 5]);
    i.add(12, 30);
    i.remove(9);
    expect([i.bytes, i.backlog({ segment: 5, offset: 20 }), i.backlog({ segment: 12, offset: 0 }), i.after(5)]).toEqual([80, 60, 30, 12]);
    i.resize(5, 10);
    i.resize(12, 35);
    expect([i.bytes, i.backlog({ segment: 5, offset: 0 }), i.backlog({ segment: 12, offset: 5 })]).toEqual([45, 45, 30]);
  });
});
