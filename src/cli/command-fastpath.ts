import type { Command } from 'commander';
import { loadConfig } from '../config/load-config';
import { VerdictError } from '../errors';
import { dumpEntries, readKernelStatus } from '../fastpath/fastpath-status';
import { KernelVerdictMap } from '../fastpath/kernel-verdict-map';
import { loadAddon } from '../fastpath/native-addon';
import { fetchMetricsText, formatReport, telemetryReport } from '../kerneltelemetry/telemetry-report';

interface Opts {
  config?: string;
  set: string[];
  json?: boolean;
  limit?: string;
  metricsUrl?: string;
  top?: string;
}

/** `verdict fastpath status|dump|telemetry`: status and dump read a running verdict's pinned maps (fastpath.pinPath) and its cgroup. */
export function registerFastpath(program: Command): void {
  const fp = program.command('fastpath').description('Inspect the kernel fast path of a running verdict');
  withConfig(fp.command('status').description('Attached programs, entries, generation, kernel counters')).action((opts: Opts) => {
    const { map, settings } = openPinned(opts);
    try {
      const status = { cgroupPath: settings.cgroupPath, pinPath: settings.pinPath, ...readKernelStatus(map, settings.maxEntries) };
      process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    } finally {
      map.close();
    }
  });
  withConfig(fp.command('dump').description('Every entry in the kernel verdict map'))
    .option('--limit <n>', 'at most this many entries', '10000')
    .action((opts: Opts) => {
      const { map } = openPinned(opts);
      try {
        const entries = dumpEntries(map, Number(opts.limit ?? '10000'));
        if (opts.json) process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
        else
          for (const e of entries)
            process.stdout.write(
              `${e.src} -> ${e.dst}:${e.dstPort} ${e.action} ${e.state} gen=${e.generation} expiresInMs=${Math.round(e.expiresInMs)}\n`,
            );
      } finally {
        map.close();
      }
    });
  withConfig(fp.command('telemetry').description('Kernel telemetry of a running verdict: top talkers and unexplained connections'))
    .option('--metrics-url <url>', "the running verdict's /metrics (default: from server.http in the config)")
    .option('--top <n>', 'show this many talkers', '20')
    .action(async (opts: Opts) => {
      const report = telemetryReport(await fetchMetricsText(opts.metricsUrl ?? metricsURL(opts)));
      const top = Number(opts.top ?? '20');
      process.stdout.write(
        opts.json ? `${JSON.stringify({ ...report, talkers: report.talkers.slice(0, top) }, null, 2)}\n` : formatReport(report, top),
      );
    });
}

/** Where the running verdict serves /metrics, from the same config `serve` was given. */
function metricsURL(opts: Opts): string {
  const http = loadConfig({ file: opts.config, env: process.env, overrides: opts.set }).server.http;
  if (http.port === null) throw new VerdictError('ERR_KERNEL_TELEMETRY_UNAVAILABLE', 'server.http.port is null: pass --metrics-url');
  const host = http.host.includes(':') ? `[${http.host}]` : http.host;
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${http.port}/metrics`;
}

function withConfig(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (fastpath.pinPath, fastpath.cgroupPath)')
    .option('--set <key=value>', 'override a config key (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--json', 'print JSON');
}

function openPinned(opts: Opts): { map: KernelVerdictMap; settings: ReturnType<typeof loadConfig>['fastpath'] } {
  const settings = loadConfig({ file: opts.config, env: process.env, overrides: opts.set }).fastpath;
  if (settings.pinPath === null) throw new VerdictError('ERR_FASTPATH_UNAVAILABLE', 'fastpath.pinPath is null: the maps are not pinned');
  const loaded = loadAddon();
  if ('reason' in loaded) throw new VerdictError('ERR_FASTPATH_UNAVAILABLE', loaded.reason);
  const map = KernelVerdictMap.openPinned(loaded.addon, settings.pinPath, settings.cgroupPath, settings.maxEntries);
  return { map, settings };
}

function formatStatus(s: ReturnType<typeof readKernelStatus> & { cgroupPath: string | null; pinPath: string | null }): string {
  const progs = s.attached.map((p) => `${p.attachType}(id ${p.id}, ${p.name})`).join(', ') || 'none';
  const c = s.counters;
  return [
    `cgroup:      ${s.cgroupPath ?? '(none)'}`,
    `pinned at:   ${s.pinPath}`,
    `programs:    ${progs}`,
    `generation:  ${s.generation}`,
    `entries:     ${s.entries} (${s.liveEntries} live) of ${s.maxEntries}`,
    `lookups:     hitAllow=${c.hitAllow} hitDeny=${c.hitDeny} miss=${c.miss} stale=${c.stale}`,
    '',
  ].join('\n');
}
