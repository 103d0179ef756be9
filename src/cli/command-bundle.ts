import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { readOPASignatureClaims } from '../policy/bundle-signature-opa';
import { buildPackedBundle, buildRegoBundle, directoryEngine } from './bundle-build';
import { readBundleFile } from './named-files';

/** `verdict bundle …`: returns the group so other files can add subcommands to it. */
export function registerBundle(program: Command): Command {
  const bundle = program.command('bundle').description('Build and inspect policy bundles');
  bundle
    .command('build <dir>')
    .description('Build a policy directory into a bundle: Rego with the pinned opa; Cedar or custom wasm by its .manifest engine')
    .requiredOption('-o, --out <file>', 'output .tar.gz')
    .option('-e, --entrypoint <path...>', 'rule path(s) to compile (default: manifest metadata.verdict.entrypoint)')
    .option('--revision <rev>', 'bundle revision')
    .option('--module <file>', "custom wasm engine: the module to package (default: the directory's engine.wasm)")
    .option('--no-lint', 'Rego: skip the cache-key check of the source (on by default when the manifest declares a cache)')
    .action(async (dir: string, opts: { out: string; entrypoint?: string[]; revision?: string; module?: string; lint: boolean }) => {
      const engine = await directoryEngine(dir);
      const revision = opts.revision ? { revision: opts.revision } : {};
      const b =
        engine === 'opa'
          ? await buildRegoBundle(dir, {
              out: opts.out,
              lint: opts.lint,
              ...(opts.entrypoint ? { entrypoints: opts.entrypoint } : {}),
              ...revision,
            })
          : await buildPackedBundle(dir, engine, { out: opts.out, ...revision, ...(opts.module ? { module: opts.module } : {}) });
      process.stdout.write(
        `${JSON.stringify({ out: opts.out, name: b.name, revision: b.revision, sha256: b.sha256, engine: b.engine })}\n`,
      );
    });
  bundle
    .command('inspect <file>')
    .description('Print a bundle manifest, files, hashes, engine and (claimed) signer')
    .action(async (file: string) => {
      const b = await readBundleFile(file);
      const files = [...b.files].map(([path, data]) => ({
        path,
        bytes: data.length,
        sha256: createHash('sha256').update(data).digest('hex'),
      }));
      const out = {
        name: b.name,
        revision: b.revision,
        sha256: b.sha256,
        engine: b.engine,
        manifest: b.manifest,
        files,
        signer: claimedSigner(b.files),
      };
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });
  return bundle;
}

/** Who the .signatures.json says signed the bundle: claimed, not verified (`bundle verify` verifies). */
function claimedSigner(files: ReadonlyMap<string, Buffer>): Record<string, unknown> | null {
  const s = readOPASignatureClaims(files);
  if (s === null) return null;
  const { header, claims } = s;
  return {
    verified: false,
    keyId: header.kid ?? claims.keyid ?? null,
    algorithm: header.alg ?? null,
    issuedAtSec: claims.iat ?? null,
    issuer: claims.iss ?? null,
    scope: claims.scope ?? null,
    filesSigned: Array.isArray(claims.files) ? claims.files.length : 0,
  };
}
