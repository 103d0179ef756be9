import { Counter, Gauge, type Registry } from 'prom-client';

/** The shadow rollout's metrics, registered on the instance's registry (kept out of the shared Metrics class). */
export class ShadowMetrics {
  readonly disagreements: Counter<'direction'>;
  readonly evaluations: Counter<'outcome'>;
  readonly bundleInfo: Gauge<'name' | 'revision' | 'sha256' | 'engine'>;
  readonly bundleLoads: Counter<'outcome' | 'reason'>;
  readonly queueDepth: Gauge;
  /** Set by the evaluator: sampled at scrape time. */
  queueSize: () => number = () => 0;

  constructor(registry: Registry) {
    const registers = [registry];
    this.disagreements = new Counter({
      name: 'verdict_shadow_disagreements_total',
      help: 'Sampled requests the candidate bundle decided otherwise, by direction (allow_to_deny, deny_to_allow, result_changed).',
      labelNames: ['direction'] as const,
      registers,
    });
    this.evaluations = new Counter({
      name: 'verdict_shadow_evaluations_total',
      help: 'Shadow evaluations by outcome: agree, disagree, error (candidate failed: counted as a deny), dropped (queue full), no_candidate, benched (the candidate ran past policy.timeoutMs three times: not evaluated until the next candidate bundle).',
      labelNames: ['outcome'] as const,
      registers,
    });
    this.bundleInfo = new Gauge({
      name: 'verdict_shadow_bundle_info',
      aggregator: 'max',
      help: 'The candidate bundle under shadow evaluation (value 1).',
      labelNames: ['name', 'revision', 'sha256', 'engine'] as const,
      registers,
    });
    this.bundleLoads = new Counter({
      name: 'verdict_shadow_bundle_loads_total',
      help: 'Candidate bundle activations attempted, by outcome and reason code.',
      labelNames: ['outcome', 'reason'] as const,
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'verdict_shadow_queue_depth',
      help: 'Sampled requests waiting for the candidate.',
      registers,
      collect: () => this.queueDepth.set(this.queueSize()),
    });
  }
}
