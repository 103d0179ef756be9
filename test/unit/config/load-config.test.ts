import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, validateConfig } from '../../../src/config/load-config';
import { packageRoot } from '../../../src/package-root';
import { verdictErrorOf } from '../../helpers/error-code';

function yamlFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'verdict-config-')), 'verdict.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('defaults are complete and frozen', () => {
    const c = loadConfig();
    expect(c.server.grpc.port).toBe(9191);
    expect(c.decision.denyStatus).toBe(403);
    expect(c.policy.bundle).toBeNull();
    expect(Object.isFrozen(c.server.grpc)).toBe(true);
  });

  it('file, then env, then flags: last wins', () => {
    const file = yamlFile('server:\n  grpc:\n    port: 1000\nlog:\n  level: debug\n');
    const c = loadConfig({ file, env: { VERDICT_GRPC_PORT: '2000', VERDICT_LOG_LEVEL: 'warn' }, overrides: ['server.grpc.port=3000'] });
    expect(c.server.grpc.port).toBe(3000);
    expect(c.log.level).toBe('warn');
  });

  it('the shipped example config validates', () => {
    const c = loadConfig({ file: join(packageRoot(), 'config', 'verdict.example.yaml') });
    expect(c.identity.mtls.enabled).toBe(true);
    expect(c.bundles.source?.type).toBe('http');
  });

  it('ignores environment variables it does not own', () => {
    expect(loadConfig({ env: { PORT: '1', VERDICT_UNKNOWN: 'x' } }).server.grpc.port).toBe(9191);
  });

  const bad: { name: string; run: () => unknown; mentions: string }[] = [
    { name: 'unknown top-level key', run: () => loadConfig({ file: yamlFile('sever: {}\n') }), mentions: '"sever"' },
    {
      name: 'unknown nested key',
      run: () => loadConfig({ file: yamlFile('server:\n  grpc:\n    prot: 1\n') }),
      mentions: '"server.grpc.prot"',
    },
    { name: 'port out of range', run: () => loadConfig({ overrides: ['server.grpc.port=70000'] }), mentions: 'server.grpc.port' },
    { name: 'wrong type', run: () => loadConfig({ file: yamlFile('limits:\n  maxHeaders: many\n') }), mentions: 'limits.maxHeaders' },
    { name: 'bad enum', run: () => loadConfig({ env: { VERDICT_LOG_LEVEL: 'loud' } }), mentions: 'log.level' },
    { name: 'deny status outside HTTP', run: () => loadConfig({ overrides: ['decision.denyStatus=99'] }), mentions: 'decision.denyStatus' },
    {
      name: "deny status 451, outside Envoy's StatusCode enum",
      run: () => loadConfig({ overrides: ['decision.denyStatus=451'] }),
      mentions: 'decision.denyStatus',
    },
    {
      name: "error status 418, outside Envoy's StatusCode enum",
      run: () => loadConfig({ overrides: ['decision.errorStatus=418'] }),
      mentions: 'decision.errorStatus',
    },
    {
      name: 'a negative GC marking cadence',
      run: () => loadConfig({ overrides: ['server.gcMarkingEveryChecks=-1'] }),
      mentions: 'server.gcMarkingEveryChecks',
    },
    {
      name: 'a fractional GC marking cadence',
      run: () => loadConfig({ overrides: ['server.gcMarkingEveryChecks=1.5'] }),
      mentions: 'server.gcMarkingEveryChecks',
    },
    {
      name: 'a GC marking cadence past its bound',
      run: () => loadConfig({ overrides: ['server.gcMarkingEveryChecks=10000001'] }),
      mentions: 'server.gcMarkingEveryChecks',
    },
    {
      name: 'a negative malloc trim interval',
      run: () => loadConfig({ overrides: ['server.mallocTrimIntervalMs=-5'] }),
      mentions: 'server.mallocTrimIntervalMs',
    },
    { name: 'flag without =', run: () => loadConfig({ overrides: ['server.grpc.port'] }), mentions: 'key.path=value' },
    { name: 'prototype pollution key', run: () => loadConfig({ overrides: ['__proto__.x=1'] }), mentions: 'not a valid key path' },
    { name: 'not YAML', run: () => loadConfig({ file: yamlFile('a: [\n') }), mentions: 'not valid YAML' },
    { name: 'YAML list at the top', run: () => loadConfig({ file: yamlFile('- a\n') }), mentions: 'mapping' },
    { name: 'missing file', run: () => loadConfig({ file: '/nonexistent/verdict.yaml' }), mentions: 'cannot read' },
  ];
  for (const c of bad) {
    it(`refuses ${c.name} with ERR_CONFIG naming it`, () => {
      const err = verdictErrorOf(c.run);
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toContain(c.mentions);
    });
  }

  it('a YAML syntax error names its code, line and column, never the offending text', () => {
    const file = yamlFile(
      'bundles:\n  source:\n    type: http\n    url: https://b.example/b.tar.gz\n    authorization: "Bearer SECRET-TOKEN\n',
    );
    const err = verdictErrorOf(() => loadConfig({ file }));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toBe(`config file ${file} is not valid YAML: MISSING_CHAR at line 6, column 1`);
  });

  it.each([
    {
      name: 'an entry with no "="',
      overrides: ['Bearer-SECRET-TOKEN'],
      message: 'flag --set expects key.path=value; an entry has no key before "="',
    },
    {
      name: 'a key under a scalar',
      overrides: ['log.level=info', 'log.level.x=SECRET-TOKEN'],
      message: '--set: "level" in "log.level.x" is not a section',
    },
    {
      name: 'a value of the wrong type',
      overrides: ['server.grpc.port=SECRET-TOKEN'],
      message: '"server.grpc.port": Invalid input: expected number, received string',
    },
  ])('a --set refusal names the key, never the value: $name', ({ overrides, message }) => {
    const err = verdictErrorOf(() => loadConfig({ overrides }));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toBe(message);
  });

  it('a refusal lists at most 10 issues and counts the rest', () => {
    const keys = Array.from({ length: 25 }, (_, i) => `unknown${i}: 1`).join('\n');
    const err = verdictErrorOf(() => loadConfig({ file: yamlFile(`${keys}\n`) }));
    expect(err.message.split('; ')).toEqual([...Array.from({ length: 10 }, (_, i) => `unknown key "unknown${i}"`), 'and 15 more']);
  });

  it('a refusal cuts each key it names to 64 characters', () => {
    const err = verdictErrorOf(() => loadConfig({ file: yamlFile(`${'k'.repeat(1000)}: 1\n`) }));
    expect(err.message).toBe(`unknown key "${'k'.repeat(64)}…"`);
  });

  it.each(['server.grpc.host', 'server.http.host', 'httpAuthz.host'])(
    'bounds %s at 253 characters (a DNS name): 254 is ERR_CONFIG',
    (key) => {
      expect(loadConfig({ overrides: [`${key}=${'h'.repeat(253)}`] })).toBeDefined();
      const err = verdictErrorOf(() => loadConfig({ overrides: [`${key}=${'h'.repeat(254)}`] }));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toContain(`"${key}"`);
    },
  );

  describe('Unix socket paths fit Linux sun_path (107 bytes and its NUL)', () => {
    const path = (bytes: number): string => `/${'s'.repeat(bytes - 1)}`;
    it.each([
      { key: 'server.grpc.unixSocket', name: 'a path', form: (p: string) => p },
      { key: 'identity.workloadAPI.socket', name: 'unix:///path', form: (p: string) => `unix://${p}` },
      { key: 'identity.workloadAPI.socket', name: 'unix:/path', form: (p: string) => `unix:${p}` },
      { key: 'identity.workloadAPI.socket', name: 'a path', form: (p: string) => p },
      { key: 'kernelTelemetry.delegatedIdentity.socket', name: 'unix:///path', form: (p: string) => `unix://${p}` },
    ])('$key as $name: 107 bytes load, 108 are ERR_CONFIG naming the key', ({ key, form }) => {
      expect(loadConfig({ overrides: [`${key}=${form(path(107))}`] })).toBeDefined();
      const err = verdictErrorOf(() => loadConfig({ overrides: [`${key}=${form(path(108))}`] }));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toBe(`"${key}": a Unix socket path is at most 107 bytes (Linux sun_path)`);
    });

    it('counts bytes, not characters: 54 two-byte characters are refused', () => {
      const err = verdictErrorOf(() => loadConfig({ overrides: [`server.grpc.unixSocket=${'é'.repeat(54)}`] }));
      expect(err.code).toBe('ERR_CONFIG');
    });

    it('accepts a tcp:// Workload API target (no socket path to bound)', () => {
      const target = 'tcp://127.0.0.1:8081';
      expect(loadConfig({ overrides: [`identity.workloadAPI.socket=${target}`] }).identity.workloadAPI.socket).toBe(target);
    });
  });

  describe('keys that name JS object internals', () => {
    const opaKey = '{ algorithm: ES256, keyFile: /etc/verdict/k.pem }';
    it.each(
      ['__proto__', 'constructor', 'prototype'].flatMap((key) => [
        { key, text: `decisionLog:\n  labels:\n    ${key}: x\n`, path: `decisionLog.labels.${key}` },
        {
          key,
          text: `decisionLog:\n  http:\n    url: http://logs.example/\n    headers:\n      ${key}: x\n`,
          path: `decisionLog.http.headers.${key}`,
        },
        { key, text: `bundles:\n  opaSigning:\n    keys:\n      ${key}: ${opaKey}\n`, path: `bundles.opaSigning.keys.${key}` },
      ]),
    )('refuses $path in the file with ERR_CONFIG naming it', ({ text, path }) => {
      const err = verdictErrorOf(() => loadConfig({ file: yamlFile(text) }));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toBe(`"${path}" is not a usable key`);
    });

    it('refuses them in a document handed to validateConfig (JSON.parse keeps __proto__ as a key)', () => {
      const err = verdictErrorOf(() => validateConfig(JSON.parse('{"decisionLog": {"labels": {"__proto__": {"polluted": "x"}}}}')));
      expect(err.message).toBe('"decisionLog.labels.__proto__" is not a usable key');
    });
  });

  it('refuses bundles.opaSigning with no keys with ERR_CONFIG', () => {
    const err = verdictErrorOf(() => validateConfig({ bundles: { opaSigning: { keys: {} } } }));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toBe('"bundles.opaSigning.keys": needs at least one key');
  });

  describe('an OCI reference is a tag or a sha256 digest, in the distribution spec grammar', () => {
    const oci = (reference: string): unknown =>
      validateConfig({ bundles: { source: { type: 'oci', registry: 'http://127.0.0.1:5000', repository: 'p/a', reference } } });
    // Each becomes a path segment of the registry URL: these would name another resource.
    for (const reference of [
      '../../other/manifests/latest',
      'a/b',
      'latest?x=1',
      'latest#x',
      '.hidden',
      't'.repeat(129),
      'sha256:abc',
      '',
    ]) {
      it(`refuses ${JSON.stringify(reference.slice(0, 40))}`, () => {
        const err = verdictErrorOf(() => oci(reference));
        expect(err.code).toBe('ERR_CONFIG');
        expect(err.message).toContain('bundles.source.reference');
      });
    }
    it('accepts a 128-character tag and a digest', () => {
      expect(() => oci(`_${'v1.2-x'.repeat(21)}x`)).not.toThrow();
      expect(() => oci(`sha256:${'ab'.repeat(32)}`)).not.toThrow();
    });
  });

  describe('YAML is read strictly', () => {
    const refusal = (text: string | Buffer): string => {
      const file = yamlFile('');
      writeFileSync(file, text);
      const err = verdictErrorOf(() => loadConfig({ file }));
      expect(err.code).toBe('ERR_CONFIG');
      return err.message.slice(`config file ${file} `.length);
    };
    it.each([
      {
        name: 'an unknown tag',
        text: 'decisionLog:\n  labels:\n    team: !secret x\n',
        says: 'is not valid YAML: TAG_RESOLVE_FAILED at line 3, column 11',
      },
      {
        name: 'a YAML 1.1 tag (!!binary)',
        text: 'decisionLog:\n  labels:\n    team: !!binary eA==\n',
        says: 'is not valid YAML: TAG_RESOLVE_FAILED at line 3, column 11',
      },
      {
        name: 'a %YAML 1.1 directive (yes booleans, << merges)',
        text: '%YAML 1.1\n---\nserver:\n  reflection: yes\n',
        says: 'is not valid YAML: a %YAML 1.1 directive (verdict reads YAML 1.2) at line 1, column 1',
      },
      {
        name: 'keys 1 and "1" (one JS key)',
        text: 'decisionLog:\n  labels:\n    1: first\n    "1": second\n',
        says: 'is not valid YAML: key "decisionLog.labels.1" a second time at line 4, column 5',
      },
      {
        name: 'keys ~ and "" (one JS key)',
        text: 'decisionLog:\n  labels:\n    ~: first\n    "": second\n',
        says: 'is not valid YAML: key "decisionLog.labels." a second time at line 4, column 5',
      },
      {
        name: 'a key repeated',
        text: 'log:\n  level: info\n  level: debug\n',
        says: 'is not valid YAML: key "log.level" a second time at line 3, column 3',
      },
      {
        name: 'a key that is a sequence',
        text: 'decisionLog:\n  labels:\n    ? [a, b]\n    : x\n',
        says: 'is not valid YAML: a mapping key that is not a scalar in "decisionLog.labels" at line 3, column 7',
      },
      {
        name: 'a second document',
        text: 'log: {level: info}\n---\nlog: {level: debug}\n',
        says: 'is not valid YAML: a second document at line 2, column 1',
      },
      {
        name: 'nesting past 64 levels',
        text: `decisionLog:\n  mask: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`,
        says: 'is not valid YAML: nesting deeper than 64 levels at line 2, column 71',
      },
      {
        name: 'more than 100 aliases',
        text: `decisionLog:\n  labels: &l {team: x}\n  mask: [${'*l, '.repeat(101)}x]\n`,
        says: 'expands aliases past 100',
      },
      {
        name: 'bytes that are not UTF-8',
        text: Buffer.from('decisionLog:\n  labels:\n    team: \xff\xfe\n', 'latin1'),
        says: 'is not UTF-8 text',
      },
      { name: 'UTF-16', text: Buffer.from('\ufefflog: {level: info}\n', 'utf16le'), says: 'is not UTF-8 text' },
    ])('refuses $name with ERR_CONFIG, naming the place', ({ text, says }) => {
      expect(refusal(text)).toBe(says);
    });

    it('reads a UTF-8 file with a byte order mark', () => {
      const file = yamlFile('\ufefflog:\n  level: warn\n');
      expect(loadConfig({ file }).log.level).toBe('warn');
    });
  });
});
