/** Percentiles of a sample (nearest-rank), in the sample's unit. */
export function percentiles(samples: Float64Array | number[], ps: number[]): number[] {
  const sorted = Float64Array.from(samples).sort();
  return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN);
}

/** The middle value of a sample (the upper of the two middle ones when the count is even). */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Prints rows as an aligned table. */
export function printTable(title: string, rows: Record<string, unknown>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const cell = (v: unknown): string => (typeof v === 'number' ? String(round(v)) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => cell(r[c])))}\n`);
}

/** Prints rows of [label, ...cells]: the label left-aligned, each cell right-aligned (A-vs-B tables). */
export function printRows(rows: readonly (readonly string[])[]): void {
  for (const [label = '', ...cells] of rows) process.stdout.write(`${label.padEnd(30)}${cells.map((c) => c.padStart(14)).join('')}\n`);
}
