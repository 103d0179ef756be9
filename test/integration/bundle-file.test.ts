import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningVerdict } from '../../src/main';
import { claimsFile, makeKeyPair, opaBuild, revisionPolicy, type KeyPair } from '../helpers/bundle-fixtures';
import { nextActivation, nextRefusal, publishBundle } from '../helpers/bundle-publish';
import { checkClient, headerValue, httpCheckRequest, startTestVerdict, tempDir } from '../helpers/verdict-harness';

/** Signed by the real opa build with a chosen signing time (iat), so rollback can be shown. */
async function signedBundle(key: KeyPair, revision: string, iat: number, files = revisionPolicy(revision)): Promise<string> {
  return opaBuild({ files, revision, signingKey: key.privatePath, claimsFile: claimsFile({ iat }) });
}

async function servingRevision(verdict: RunningVerdict): Promise<string | undefined> {
  const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
  try {
    const res = await client.check(httpCheckRequest({ path: '/x' }));
    return headerValue(res.okResponse?.headers, 'x-bundle-rev');
  } finally {
    client.close();
  }
}

describe('file bundle source: hot reload, refusals, persistence', () => {
  let key: KeyPair;
  let dir: string;
  let bundles: Record<'a' | 'b' | 'old' | 'selfTestFails', string>;
  let verdict: RunningVerdict | null = null;

  beforeAll(async () => {
    key = makeKeyPair('rsa');
    const [a, b, old, selfTestFails] = await Promise.all([
      signedBundle(key, 'A', 2000),
      signedBundle(key, 'B', 3000),
      signedBundle(key, 'OLD', 1000),
      // Two complete rules that both hold for the self-test's GET /: evaluation fails with a conflict.
      signedBundle(key, 'BAD', 4000, {
        'authz.rego':
          'package envoy.authz\n\nallow := true if input.attributes.request.http.method == "GET"\n\nallow := false if count(input.parsed_path) == 0\n',
      }),
    ]);
    bundles = { a, b, old, selfTestFails };
  });

  afterEach(async () => {
    await verdict?.stop();
    verdict = null;
  });

  function start(path: string, persistDir: string): Promise<RunningVerdict> {
    return startTestVerdict([
      'bundles.source.type=file',
      `bundles.source.path=${path}`,
      'bundles.source.debounceMs=20',
      `bundles.opaSigning.keys.main.keyFile=${key.publicPath}`,
      'bundles.opaSigning.keyId=main',
      `bundles.persistDir=${persistDir}`,
    ]);
  }

  it('swaps on an atomic rename, refuses bad bundles with their code and keeps serving, survives a restart', async () => {
    dir = tempDir('verdict-file-source-');
    const live = join(dir, 'bundle.tar.gz');
    const persistDir = join(dir, 'state');
    publishBundle(bundles.a, live);
    verdict = await start(live, persistDir);
    const loader = verdict.bundles;
    if (loader === null) throw new Error('a configured file source must start a bundle loader');
    expect(await servingRevision(verdict)).toBe('A');
    expect(verdict.policy.current?.bundle.signer?.opa?.keyId).toBe('main');

    const activated = nextActivation(loader);
    publishBundle(bundles.b, live);
    expect((await activated).bundle.revision).toBe('B');
    expect(await servingRevision(verdict)).toBe('B');

    // Replay of an older signed bundle: signature valid, signing time older than the active one.
    let refused = nextRefusal(verdict.policy);
    publishBundle(bundles.old, live);
    expect((await refused).code).toBe('ERR_BUNDLE_REPLAY');

    // A bundle that instantiates but throws on evaluation never replaces the serving one.
    refused = nextRefusal(verdict.policy);
    publishBundle(bundles.selfTestFails, live);
    expect((await refused).code).toBe('ERR_BUNDLE_SELF_TEST');
    expect(await servingRevision(verdict)).toBe('B');

    const metrics = await verdict.metrics.registry.getSingleMetricAsString('verdict_bundle_loads_total');
    expect(metrics).toContain('outcome="rejected",reason="ERR_BUNDLE_REPLAY"} 1');
    expect(metrics).toContain('outcome="rejected",reason="ERR_BUNDLE_SELF_TEST"} 1');

    // Restart while the source is gone: the persisted last good bundle (B) serves.
    await verdict.stop();
    verdict = null;
    rmSync(live);
    expect(existsSync(join(persistDir, 'bundle.tar.gz'))).toBe(true);
    verdict = await start(live, persistDir);
    expect(await servingRevision(verdict)).toBe('B');
    expect(verdict.policy.current?.bundle.revision).toBe('B');

    // The source comes back with A (iat 2000), older than the persisted B (iat 3000): the rollback floor
    // survives the restart.
    refused = nextRefusal(verdict.policy);
    publishBundle(bundles.a, live);
    expect((await refused).code).toBe('ERR_BUNDLE_REPLAY');
    expect(await servingRevision(verdict)).toBe('B');
  });

  it('refuses an unsigned bundle when a key is configured: starts NOT_SERVING instead of serving it', async () => {
    const d = tempDir('verdict-file-unsigned-');
    const live = join(d, 'bundle.tar.gz');
    publishBundle(await opaBuild({ files: revisionPolicy('U') }), live);
    verdict = await start(live, join(d, 'state'));
    expect(verdict.policy.current).toBeNull();
    const metrics = await verdict.metrics.registry.getSingleMetricAsString('verdict_bundle_loads_total');
    expect(metrics).toContain('outcome="rejected",reason="ERR_BUNDLE_SIGNATURE"} 1');
    const client = checkClient(`127.0.0.1:${verdict.grpcPort}`);
    const res = await client.check(httpCheckRequest({ path: '/x' }));
    client.close();
    expect(res.okResponse).toBeUndefined();
  });
});
