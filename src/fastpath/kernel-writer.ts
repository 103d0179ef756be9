import type { Metrics } from '../telemetry/metrics';
import type { KernelEntry, KernelVerdictMap } from './kernel-verdict-map';
import type { VerdictSink } from './hotness-tracker';
import type { KernelAction, L4Tuple } from './map-layout';

interface PendingPut {
  tuple: L4Tuple;
  action: KernelAction;
  ttlMs: number;
  generation: bigint;
}

/**
 * Collects hot verdicts and writes them in one batch per event-loop turn (or per `batchSize`), so a burst
 * of decisions costs one syscall, not one each. Owns the generation: an entry queued under an older
 * generation is discarded at flush, never written with the new one.
 */
export class KernelWriter implements VerdictSink {
  private readonly pending = new Map<string, PendingPut | L4Tuple>();
  private scheduled: NodeJS.Immediate | null = null;
  private gen: bigint;

  constructor(
    private readonly map: KernelVerdictMap,
    private readonly batchSize: number,
    private readonly metrics: Metrics,
    private readonly onError: (err: unknown) => void,
    initialGeneration: bigint,
  ) {
    this.gen = initialGeneration;
    map.setGeneration(initialGeneration);
  }

  get generation(): bigint {
    return this.gen;
  }

  /** One map write; from here on the kernel ignores every older entry. Pending writes are dropped. */
  bumpGeneration(): bigint {
    this.gen += 1n;
    this.pending.clear();
    this.map.setGeneration(this.gen);
    return this.gen;
  }

  put(tuple: L4Tuple, action: KernelAction, ttlMs: number, generation: bigint): void {
    this.enqueue(tuple, { tuple, action, ttlMs, generation });
  }

  drop(tuple: L4Tuple): void {
    this.enqueue(tuple, tuple);
  }

  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    if (this.pending.size === 0) return;
    const puts: KernelEntry[] = [];
    const drops: L4Tuple[] = [];
    const nowNs = this.map.kernelNowNs();
    let discarded = 0;
    for (const item of this.pending.values()) {
      if (!('action' in item)) drops.push(item);
      else if (item.generation !== this.gen) discarded++;
      else
        puts.push({ ...item.tuple, action: item.action, generation: item.generation, expiresNs: nowNs + BigInt(item.ttlMs) * 1_000_000n });
    }
    this.pending.clear();
    if (discarded > 0) this.metrics.fastpathWrites.inc({ op: 'discard', outcome: 'ok' }, discarded);
    this.apply('drop', drops.length, () => this.map.remove(drops));
    this.apply('put', puts.length, () => this.map.write(puts));
  }

  private retireAll(): void {
    try {
      this.bumpGeneration();
    } catch (err) {
      this.onError(err);
    }
  }

  close(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.pending.clear();
  }

  private enqueue(tuple: L4Tuple, item: PendingPut | L4Tuple): void {
    this.pending.set(`${tuple.srcAddress}|${tuple.dstAddress}|${tuple.dstPort}`, item);
    if (this.pending.size >= this.batchSize) this.flush();
    else this.scheduled ??= setImmediate(() => this.flush());
  }

  private apply(op: 'put' | 'drop', count: number, write: () => number): void {
    if (count === 0) return;
    try {
      write();
      this.metrics.fastpathWrites.inc({ op, outcome: 'ok' }, count);
    } catch (err) {
      // A failed write leaves the kernel without the entry: the full path still decides. Never a wrong verdict.
      this.metrics.fastpathWrites.inc({ op, outcome: 'error' }, count);
      this.onError(err);
      // A withdrawal that did not land must not leave a verdict standing: retire every entry instead.
      if (op === 'drop') this.retireAll();
    }
  }
}
