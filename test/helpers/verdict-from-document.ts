import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load-config';
import { startVerdict, type RunningVerdict, type VerdictOptions } from '../../src/main';
import { createLogger } from '../../src/telemetry/logger';
import { tempDir } from './verdict-harness';

/**
 * A verdict on port 0 from a config document written as a file (lists need one: `--set` cannot build arrays),
 * logs silenced and a generous decision budget, as startTestVerdict.
 */
export function startVerdictFromDocument(
  doc: Record<string, unknown>,
  options: VerdictOptions = {},
  overrides: string[] = [],
): Promise<RunningVerdict> {
  const file = join(tempDir(), 'verdict.yaml');
  writeFileSync(file, JSON.stringify(doc)); // JSON is YAML
  const config = loadConfig({
    file,
    overrides: ['server.grpc.port=0', 'server.http.port=null', 'log.level=silent', 'policy.timeoutMs=5000', ...overrides],
  });
  return startVerdict(config, { logger: createLogger('silent'), ...options });
}
