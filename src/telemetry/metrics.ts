import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per verdict instance (tests run several side by side). */
export class Metrics {
  readonly registry = new Registry();

  readonly decisions = new Counter({
    name: 'verdict_decisions_total',
    help: 'Decisions made, by result, engine and reason code.',
    labelNames: ['result', 'engine', 'reason'] as const,
    registers: [this.registry],
  });

  readonly checkDuration = new Histogram({
    name: 'verdict_check_duration_seconds',
    help: 'Server time of one Check, from decode to response.',
    labelNames: ['protocol'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
    registers: [this.registry],
  });

  readonly bundleInfo = new Gauge({
    name: 'verdict_bundle_info',
    help: 'The active policy bundle (value 1), labelled by name, revision and sha256.',
    labelNames: ['name', 'revision', 'sha256', 'engine'] as const,
    registers: [this.registry],
  });

  readonly bundleLoads = new Counter({
    name: 'verdict_bundle_loads_total',
    help: 'Bundle activations attempted, by outcome and reason code.',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });

  readonly engineRecycles = new Counter({
    name: 'verdict_engine_recycles_total',
    help: 'Policy engine instances replaced (memory bound reached or trap).',
    labelNames: ['engine', 'why'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'verdict_' });
  }
}
