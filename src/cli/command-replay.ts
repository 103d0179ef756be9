import type { Command } from 'commander';
import { formatReplayReport, replayDecisionLog } from '../decisionlog/replay';
import { engineFactory } from '../policy/engine-registry';
import { commandConfig, commandEngineOptions, configOptions, type ConfigOpts } from './config-options';
import { readBundleFile } from './named-files';

export function registerReplay(program: Command): void {
  configOptions(
    program
      .command('replay')
      .description('Re-evaluate logged decisions against a candidate bundle and report the ones that flip; exit 3 when any flips')
      .requiredOption('--log <file>', 'decision log (JSON lines, as the file sink writes)')
      .requiredOption('--bundle <file>', 'candidate bundle (.tar.gz)')
      .option('--entrypoint <path>', 'rule path, unless the bundle names one (default: policy.entrypoint, envoy/authz/allow)')
      .option('--examples <n>', 'examples per direction', '5')
      .option('--json', 'print the report as JSON'),
  ).action(async (opts: ConfigOpts & { log: string; bundle: string; entrypoint?: string; examples: string; json?: boolean }) => {
    const config = await commandConfig(opts);
    const b = await readBundleFile(opts.bundle);
    const engine = await engineFactory(b.engine)(b, commandEngineOptions(config, opts.entrypoint));
    const report = await replayDecisionLog(opts.log, engine, Number(opts.examples));
    process.stdout.write(
      opts.json ? `${JSON.stringify({ bundle: { name: b.name, sha256: b.sha256 }, ...report }, null, 2)}\n` : formatReplayReport(report),
    );
    if (report.allowToDeny.count + report.denyToAllow.count > 0) process.exitCode = 3;
  });
}
