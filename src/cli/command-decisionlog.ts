import type { Command } from 'commander';
import { VerdictError } from '../errors';
import { verifyLogFiles } from '../decisionlog/hash-chain';

export function registerDecisionLog(program: Command): void {
  const group = program.command('decisionlog').description('Decision-log tools');
  group
    .command('verify <files...>')
    .description('Check the hash chain of decision-log files (give rotated files oldest first); exit 1 when broken')
    .option('--anchor <sha256>', 'expected prev_hash of the first line')
    .action(async (files: string[], opts: { anchor?: string }) => {
      const check = await verifyLogFiles(files, opts.anchor);
      process.stdout.write(`${JSON.stringify(check, null, 2)}\n`);
      if (!check.ok) {
        const first = check.broken[0];
        throw new VerdictError('ERR_DECISIONLOG_CHAIN', `${check.brokenTotal} broken link(s); first at line ${first?.line}: ${first?.why}`);
      }
    });
}
