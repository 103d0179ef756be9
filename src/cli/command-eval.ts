import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { defaultBundlePath } from '../package-root';
import { readBundle } from '../policy/bundle-reader';
import { engineFactory } from '../policy/engine-registry';
import type { InputDocument } from '../request/input-document';

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Evaluate one input document (JSON) against a bundle and print the decision; exit 2 on deny')
    .requiredOption('-i, --input <file>', 'input document JSON (the shape verdict builds from a CheckRequest)')
    .option('-b, --bundle <file>', 'bundle (default: the embedded default)')
    .option('--entrypoint <path>', 'rule path', 'envoy/authz/allow')
    .option('--explain', 'print the whole result with the reasons the engine gave')
    .action(async (opts: { input: string; bundle?: string; entrypoint: string; explain?: boolean }) => {
      const path = opts.bundle ?? defaultBundlePath();
      const b = await readBundle(await readFile(path), path);
      const engine = await engineFactory(b.engine)(b, { entrypoint: opts.entrypoint, maxMemoryPages: 1024, recycleMemoryPages: 256 });
      const input = JSON.parse(await readFile(opts.input, 'utf8')) as InputDocument;
      const result = await Promise.resolve(engine.evaluate(input)).finally(() => engine.close());
      // --explain: the decision first, then the engine's reasons (Rego reason fields, Cedar policy ids, custom engine reason).
      const { allowed, reasons, ...rest } = result;
      const bundle = { name: b.name, revision: b.revision, sha256: b.sha256 };
      const out = opts.explain ? { allowed, reasons, engine: b.engine, bundle, ...rest } : { allowed };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      if (!result.allowed) process.exitCode = 2;
    });
}
