import type { Command } from 'commander';
import { formatShadowReport, shadowReport } from '../shadow/shadow-report';

export function registerShadow(program: Command): void {
  const shadow = program.command('shadow').description('Shadow rollout of a candidate bundle (policy.shadow)');
  shadow
    .command('report')
    .description("Summarise a decision log's shadow events: the live decisions the candidate would flip; exit 3 when any")
    .requiredOption('--log <file>', 'decision log (JSON lines, as the file sink writes)')
    .option('--examples <n>', 'examples per direction', '5')
    .option('--json', 'print the report (with every flipped decision id) as JSON')
    .action(async (opts: { log: string; examples: string; json?: boolean }) => {
      const report = await shadowReport(opts.log, { maxExamples: Number(opts.examples) });
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatShadowReport(report));
      if (report.shadowEvents > 0) process.exitCode = 3;
    });
}
