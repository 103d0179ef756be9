import { once } from 'node:events';
import { copyFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BundleLoader } from '../../src/policy/bundle-loader';
import type { VerdictError } from '../../src/errors';
import type { ActivePolicy, PolicyStore } from '../../src/policy/policy-store';

/** Publishes a bundle the safe way (copy to a temp name in the same directory, rename over the target). */
export function publishBundle(from: string, to: string): void {
  const tmp = join(dirname(to), `.publish-${process.pid}-${Date.now()}.tmp`);
  copyFileSync(from, tmp);
  renameSync(tmp, to);
}

/** Resolves with the next activation (by the loader). */
export async function nextActivation(loader: BundleLoader): Promise<ActivePolicy> {
  const [active] = (await once(loader, 'activated')) as [ActivePolicy];
  return active;
}

/** Resolves with the next refusal counted by the store. */
export async function nextRefusal(store: PolicyStore): Promise<VerdictError> {
  const [err] = (await once(store, 'rejected')) as [VerdictError];
  return err;
}
