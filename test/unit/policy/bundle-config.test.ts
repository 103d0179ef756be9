import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load-config';
import { bundleSourceFromConfig } from '../../../src/policy/bundle-source-config';

describe('bundles config section', () => {
  it('is off by default: no source, no pin, no keys', () => {
    const { bundles } = loadConfig();
    expect(bundles).toMatchObject({ source: null, sha256: null, opaSigning: null, cosign: null, persistDir: null });
    expect(bundleSourceFromConfig(bundles)).toBeNull();
  });

  it('builds the named source with a default cosign signature path when a cosign key is configured', () => {
    const { bundles } = loadConfig({
      overrides: ['bundles.source.type=file', 'bundles.source.path=/srv/b.tar.gz', 'bundles.cosign.publicKeyFile=/k.pub'],
    });
    expect(bundleSourceFromConfig(bundles)?.description).toBe('file /srv/b.tar.gz');
  });

  const invalid: { name: string; overrides: string[] }[] = [
    { name: 'pin that is not sha256 hex', overrides: ['bundles.sha256=abc'] },
    { name: 'unknown source type', overrides: ['bundles.source.type=ftp', 'bundles.source.path=/x'] },
    { name: 'http source with a file: URL', overrides: ['bundles.source.type=http', 'bundles.source.url=file:///etc/passwd'] },
    {
      name: 'OCI digest pin without sha256: prefix',
      overrides: [
        'bundles.source.type=oci',
        'bundles.source.registry=http://127.0.0.1:1',
        'bundles.source.repository=a/b',
        'bundles.source.reference=v1',
        `bundles.source.digest=${'a'.repeat(64)}`,
      ],
    },
    { name: 'unknown signing algorithm', overrides: ['bundles.opaSigning.keys.k.keyFile=/k', 'bundles.opaSigning.keys.k.algorithm=HS256'] },
  ];
  it.each(invalid)('refuses $name (ERR_CONFIG)', ({ overrides }) => {
    expect(() => loadConfig({ overrides })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});
