import { execFileSync } from 'node:child_process';
import { packageRoot } from '../src/package-root';
import { runAsScript } from './lib/run-as-script';
import { printTable, round } from './lib/stats';

/**
 * An accepted OPA bundle with a large data.json: the worst event-loop block while the engine is built
 * (`OPAEngine.create`: compile, load the data, self-test), measured by the building process itself from a
 * 1 ms interval timer, two ways: the longest wall time between two ticks (on a busy machine it also counts
 * the time the main thread waited for a core), and the main thread's longest CPU burst, the run time
 * /proc/thread-self/schedstat adds between two ticks (what the loop itself was busy with, which the
 * machine's load does not inflate); and the time the build takes. (perf_hooks' monitorEventLoopDelay
 * reported 10 ms for a turn the ticks saw take 100 ms wall and 69 ms of CPU, so it is not used here.) Each build runs in a
 * fresh node process (no JIT or heap carried over), this checkout and, with BENCH_OPA_DATA_BEFORE=<built
 * checkout>, an earlier one, interleaved round by round. Goal (issue 12): no step blocks the loop > 10 ms.
 * The data sits beside the default policy's own (`data.directory`, which the policy never reads), so what is
 * measured is loading it, not evaluating over it. Sizes are JSON MiB (BENCH_OPA_DATA_MIB, default 1,3):
 * opa_json_parse's time grows faster than the data (1.8 s for 4 MiB on this machine, minutes for 50 MiB,
 * past any load deadline), so the sizes stay where a load can finish.
 */
const SIZES = (process.env.BENCH_OPA_DATA_MIB ?? '1,3').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_OPA_DATA_ROUNDS ?? 2);

const CHILD = `
const { readFileSync } = require('node:fs');
const [root, mib] = process.argv.slice(1);
const { readBundle } = require(root + '/dist/src/policy/bundle-reader.js');
const { OPAEngine } = require(root + '/dist/src/policy/engine-opa.js');
(async () => {
  const path = root + '/dist/bundles/default.tar.gz';
  const bundle = await readBundle(readFileSync(path), path);
  const base = JSON.parse(bundle.files.get('data.json').toString());
  const rows = [];
  for (let i = 0, size = 0; size < Number(mib) * 1048576; i++) {
    const row = '{"id":"u' + ((i * 2654435761) % 4294967296) + '","team":"t' + (i % 97) + '","tags":["a' + (i % 13) + '"]}';
    rows.push(row);
    size += row.length + 1;
  }
  const data = Buffer.from(JSON.stringify(base).slice(0, -1) + ',"directory":[' + rows.join(',') + ']}');
  const files = new Map([...bundle.files, ['data.json', data]]);
  global.gc(); // the rows built above are the bench's garbage, not the load's
  const runNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  let lastRun = runNs();
  let lastWall = process.hrtime.bigint();
  let burstNs = 0;
  let gapNs = 0;
  const tick = () => {
    const run = runNs();
    const wall = process.hrtime.bigint();
    burstNs = Math.max(burstNs, run - lastRun);
    gapNs = Math.max(gapNs, Number(wall - lastWall));
    lastRun = run;
    lastWall = wall;
  };
  const ticker = setInterval(tick, 1);
  const t0 = process.hrtime.bigint();
  await OPAEngine.create({ ...bundle, files }, { entrypoint: 'envoy/authz/allow', maxMemoryPages: 16384, recycleMemoryPages: 256, loadTimeoutMs: 120000 });
  const createMs = Number(process.hrtime.bigint() - t0) / 1e6;
  clearInterval(ticker);
  tick();
  process.stdout.write(JSON.stringify({ worstGapMs: gapNs / 1e6, worstBurstMs: burstNs / 1e6, createMs }));
})().catch((err) => { process.stderr.write(String(err && err.stack)); process.exit(1); });
`;

interface Sample {
  worstGapMs: number;
  worstBurstMs: number;
  createMs: number;
}

function measure(root: string, mib: number): Sample {
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', CHILD, root, String(mib)], { maxBuffer: 1 << 20 });
  return JSON.parse(out.toString()) as Sample;
}

export async function run(): Promise<Record<string, unknown>> {
  const builds: [string, string][] = [['this checkout', packageRoot()]];
  const before = process.env.BENCH_OPA_DATA_BEFORE;
  if (before) builds.push(['before', before]);
  else process.stdout.write('BENCH_OPA_DATA_BEFORE not set: this checkout only\n');
  const results: Record<string, Record<string, Sample[]>> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const mib of SIZES) {
      for (const [label, root] of builds) {
        ((results[label] ??= {})[String(mib)] ??= []).push(measure(root, mib));
      }
    }
  }
  const worst = (s: Sample[], k: 'worstGapMs' | 'worstBurstMs'): number => Math.max(...s.map((x) => x[k]));
  const median = (s: Sample[]): number => [...s.map((x) => x.createMs)].sort((a, b) => a - b)[Math.floor(s.length / 2)] as number;
  printTable(
    `OPA bundle accepted with a large data.json: worst event-loop block while the engine is built (${ROUNDS} rounds)`,
    builds.flatMap(([label]) =>
      SIZES.map((mib) => {
        const s = results[label]?.[String(mib)] ?? [];
        return {
          build: label,
          'data MiB': mib,
          'worst gap ms (wall)': round(worst(s, 'worstGapMs')),
          'worst CPU burst ms': round(worst(s, 'worstBurstMs')),
          'build ms (median)': round(median(s)),
        };
      }),
    ),
  );
  return results;
}

runAsScript(module, run);
