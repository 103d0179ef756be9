import type { Cursor } from './spool';

/**
 * The spool's segments held, in ascending order, each with its size and where it starts in the stream of
 * every byte held. A sink's backlog is O(1) and the next segment O(log n), however many segments a long
 * outage has left (each batch asks for both); only a change in the middle (a segment set aside or found cut
 * short) moves the starts after it.
 */
export class SegmentIndex {
  private readonly numbers: number[] = [];
  private readonly segments = new Map<number, { start: number; size: number }>();
  /** Stream position just past the last byte held. */
  private end = 0;

  /** Adds segment n, numbered above every segment held. */
  add(n: number, size: number): void {
    this.numbers.push(n);
    this.segments.set(n, { start: this.end, size });
    this.end += size;
  }

  has(n: number): boolean {
    return this.segments.has(n);
  }

  /** A segment's size; 0 when it is not held. */
  size(n: number): number {
    return this.segments.get(n)?.size ?? 0;
  }

  /** Sets a segment's size: the segments after it move with it (none when it is the last, as on an append). */
  resize(n: number, size: number): void {
    const s = this.segments.get(n);
    if (!s) return;
    const delta = size - s.size;
    s.size = size;
    this.end += delta;
    for (let i = this.indexAfter(n); i < this.numbers.length; i++)
      (this.segments.get(this.numbers[i] as number) as { start: number }).start += delta;
  }

  remove(n: number): void {
    if (!this.segments.has(n)) return;
    // The oldest goes as is (the stream begins further on); one in the middle first gives up its bytes.
    if (n !== this.first()) this.resize(n, 0);
    this.numbers.splice(this.indexAfter(n) - 1, 1);
    this.segments.delete(n);
  }

  first(): number | undefined {
    return this.numbers[0];
  }

  /** The first segment held numbered above n. */
  after(n: number): number | undefined {
    return this.numbers[this.indexAfter(n)];
  }

  /** Segment numbers, oldest first. */
  all(): readonly number[] {
    return this.numbers;
  }

  /** Bytes held from `c` to the end. */
  backlog(c: Cursor): number {
    const s = this.segments.get(c.segment);
    if (s) return this.end - s.start - Math.min(Math.max(c.offset, 0), s.size);
    const next = this.after(c.segment);
    return next === undefined ? 0 : this.end - (this.segments.get(next) as { start: number }).start;
  }

  /** Bytes held in all segments. */
  get bytes(): number {
    const first = this.first();
    return first === undefined ? 0 : this.end - (this.segments.get(first) as { start: number }).start;
  }

  /** Index of the first number above n (binary search). */
  private indexAfter(n: number): number {
    let lo = 0;
    let hi = this.numbers.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.numbers[mid] as number) <= n) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
