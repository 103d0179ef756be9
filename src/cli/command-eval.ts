import type { Command } from 'commander';
import { MAX_LINE_BYTES } from '../decisionlog/log-lines';
import { VerdictError } from '../errors';
import { defaultBundlePath } from '../package-root';
import { readConfiguredFile } from '../policy/bundle-file-read';
import { engineFactory } from '../policy/engine-registry';
import { parseExactJSON, type ExactJSONResult } from '../request/exact-json-parse';
import type { InputDocument } from '../request/input-document';
import { HAS_EXACT_NUMBERS } from '../request/input-json';
import { commandConfig, commandEngineOptions, configOptions, type ConfigOpts } from './config-options';
import { readBundleFile } from './named-files';

export function registerEval(program: Command): void {
  configOptions(
    program
      .command('eval')
      .description('Evaluate one input document (JSON) against a bundle and print the decision; exit 2 on deny')
      .requiredOption('-i, --input <file>', 'input document JSON (the shape verdict builds from a CheckRequest)')
      .option('-b, --bundle <file>', 'bundle (default: policy.bundle of the config, else the embedded default)')
      .option('--entrypoint <path>', 'rule path (default: policy.entrypoint, envoy/authz/allow)')
      .option('--explain', 'print the whole result with the reasons the engine gave'),
  ).action(async (opts: ConfigOpts & { input: string; bundle?: string; entrypoint?: string; explain?: boolean }) => {
    const config = await commandConfig(opts);
    const input = readInput(opts.input, config.limits.maxInputDepth);
    const b = await readBundleFile(opts.bundle ?? config.policy.bundle ?? defaultBundlePath());
    const engine = await engineFactory(b.engine)(b, commandEngineOptions(config, opts.entrypoint));
    const result = await Promise.resolve(engine.evaluate(input)).finally(() => engine.close());
    // --explain: the decision first, then the engine's reasons (Rego reason fields, Cedar policy ids, custom engine reason).
    const { allowed, reasons, ...rest } = result;
    const bundle = { name: b.name, revision: b.revision, sha256: b.sha256 };
    const out = opts.explain ? { allowed, reasons, engine: b.engine, bundle, ...rest } : { allowed };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    if (!result.allowed) process.exitCode = 2;
  });
}

/**
 * The input document in `file`, refused as the server refuses a request it cannot build one from: a regular
 * file of at most MAX_LINE_BYTES (any input a decision-log line holds; else ERR_CONFIG, as a file the config
 * names), one JSON object (ERR_REQUEST_MALFORMED) nested at most limits.maxInputDepth (ERR_REQUEST_TOO_DEEP).
 * Parsed as a JSON body is: numbers keep their text.
 */
function readInput(file: string, maxDepth: number): InputDocument {
  const text = readConfiguredFile(file, 'input', MAX_LINE_BYTES).toString('utf8');
  let parsed: ExactJSONResult;
  try {
    parsed = parseExactJSON(text, 0, maxDepth);
  } catch (err) {
    // The file is the whole input, not a body: what does not parse is a malformed request.
    const code = err instanceof VerdictError && err.code === 'ERR_REQUEST_TOO_DEEP' ? err.code : 'ERR_REQUEST_MALFORMED';
    throw new VerdictError(code, `input ${file}: ${(err as Error).message}`, { cause: err });
  }
  const { value, exactNumbers } = parsed;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new VerdictError('ERR_REQUEST_MALFORMED', `input ${file} is not a JSON object`);
  const input = value as InputDocument;
  if (exactNumbers) input[HAS_EXACT_NUMBERS] = true;
  return input;
}
