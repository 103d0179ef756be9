import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../../src/decisionlog/log-lines';
import { packageRoot } from '../../../src/package-root';
import { DEFAULT_BUNDLE_LIMITS } from '../../../src/policy/bundle';
import { MAX_CONFIGURED_FILE_BYTES } from '../../../src/policy/bundle-file-read';
import { DEFAULT_MAX_INPUT_DEPTH } from '../../../src/request/exact-json-parse';
import { makeKeyPair, type KeyPair } from '../../helpers/bundle-fixtures';
import { fifo } from '../../helpers/fifo';
import { tempDir } from '../../helpers/verdict-harness';

// Every file a command is named may come from anywhere: each hostile kind of path, given to the built CLI
// where a bundle, a key, an input or a policy directory's file goes, is one coded line and exit 1 — never a
// wait on a FIFO, a read of /dev/zero until memory runs out, or a stack trace.

const run = promisify(execFile);
const cli = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const goodBundle = join(packageRoot(), 'dist', 'bundles', 'default.tar.gz');
/** Past this a command is taken to be waiting on its input: killed, and the test fails saying so. */
const HANG_MS = 20_000;

async function verdict(args: string[]): Promise<{ exit: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { timeout: HANG_MS });
    return { exit: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; killed?: boolean; stdout?: string; stderr?: string };
    if (e.killed) throw new Error(`verdict ${args.join(' ')} still ran after ${HANG_MS} ms: it waits on what it reads`);
    return { exit: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Exit 1 with exactly one line, `verdict: <code>: …` naming `what`. */
async function expectRefused(args: string[], code: string, what: string): Promise<void> {
  const { exit, stderr } = await verdict(args);
  expect(stderr).toMatch(new RegExp(`^verdict: ${code}: [^\\n]*\\n$`));
  expect(stderr).toContain(what);
  expect(exit).toBe(1);
}

/** A sparse file of `bytes`: its size is judged before a byte of it is read. */
function sparse(path: string, bytes: number): string {
  writeFileSync(path, '');
  truncateSync(path, bytes);
  return path;
}

let dir: string;
let key: KeyPair;
let pipe: { readEnd: number; writeEnd: number };
let socket: Server;
const at = (name: string): string => join(dir, name);
const file = (name: string, data: string | Buffer): string => {
  writeFileSync(at(name), data);
  return at(name);
};

beforeAll(async () => {
  dir = tempDir('verdict-hostile-cli-');
  key = makeKeyPair('ec');
  // The test holds a writer: a blocking read of the FIFO would wait for ever, not see EOF.
  pipe = fifo(dir, 'fifo');
  symlinkSync(at('fifo'), at('link-to-fifo'));
  mkdirSync(at('directory'));
  socket = createServer();
  await new Promise<void>((resolve) => socket.listen(at('socket'), resolve));
  file('empty.log', '');
  file('input.json', '{"attributes":{}}');
});

afterAll(async () => {
  for (const fd of [pipe.readEnd, pipe.writeEnd]) closeSync(fd);
  await new Promise((resolve) => socket.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/** Paths that are not a readable regular file, and what each is refused as when it is read as `bundle`. */
const bundlePaths: { name: string; path: () => string; code: string; what: string }[] = [
  { name: 'a FIFO', path: () => at('fifo'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a FIFO' },
  { name: 'a symlink to a FIFO', path: () => at('link-to-fifo'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a FIFO' },
  { name: '/dev/zero', path: () => '/dev/zero', code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a character device' },
  { name: 'a directory', path: () => at('directory'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a directory' },
  { name: 'a socket', path: () => at('socket'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a socket' },
  {
    // Past the 2 GiB a plain readFile refuses with a RangeError; anything smaller it would hold whole.
    name: 'a 4 GiB file',
    path: () => sparse(at('huge.tar.gz'), 4 * 1024 ** 3),
    code: 'ERR_BUNDLE_TOO_LARGE',
    what: `(max ${DEFAULT_BUNDLE_LIMITS.maxCompressedBytes})`,
  },
  { name: 'a missing file', path: () => at('missing.tar.gz'), code: 'ERR_BUNDLE_SOURCE', what: 'ENOENT' },
];

describe.each([
  { command: 'bundle inspect', args: (b: string) => ['bundle', 'inspect', b] },
  { command: 'bundle sign', args: (b: string) => ['bundle', 'sign', b, '-k', key.privatePath, '--alg', 'ES256', '-o', at('signed')] },
  { command: 'replay', args: (b: string) => ['replay', '--log', at('empty.log'), '--bundle', b] },
  { command: 'eval', args: (b: string) => ['eval', '-i', at('input.json'), '-b', b] },
])('$command given a bundle that is not a bounded regular file', ({ args }) => {
  it.each(bundlePaths)('$name: $code', async ({ path, code, what }) => {
    await expectRefused(args(path()), code, what);
  });
});

describe('bundle sign given a key that is not a small PEM file', () => {
  const sign = (k: string): string[] => ['bundle', 'sign', goodBundle, '-k', k, '--alg', 'ES256', '-o', at('signed')];
  it.each([
    { name: 'a FIFO', path: () => at('fifo'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a FIFO' },
    { name: '/dev/zero', path: () => '/dev/zero', code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a character device' },
    { name: 'a directory', path: () => at('directory'), code: 'ERR_BUNDLE_FILE_TYPE', what: 'is a directory' },
    {
      name: `a file over ${MAX_CONFIGURED_FILE_BYTES} bytes`,
      path: () => sparse(at('big.pem'), MAX_CONFIGURED_FILE_BYTES + 1),
      code: 'ERR_BUNDLE_TOO_LARGE',
      what: `(max ${MAX_CONFIGURED_FILE_BYTES})`,
    },
    {
      name: 'bytes that are not UTF-8',
      path: () => file('binary.pem', Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0a])),
      code: 'ERR_CONFIG',
      what: 'is not an unencrypted PEM private key',
    },
    {
      // A signature verify (and the server) would refuse: the key rule of src/identity/key-limits.ts.
      name: 'an RSA-1024 key',
      path: () =>
        file(
          'rsa1024.pem',
          generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        ),
      code: 'ERR_CONFIG',
      what: 'is an RSA key of 1024 bits (at least 2048)',
    },
  ])('$name: $code', async ({ path, code, what }) => {
    await expectRefused(sign(path()), code, what);
  });
});

/** An object whose deepest container sits at `depth`, counted as the server counts (the input's root is 1). */
const nested = (depth: number): string => `{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;

describe('eval given an input that is not a bounded JSON object', () => {
  const evaluate = (input: string): string[] => ['eval', '-i', input, '-b', goodBundle];
  it.each([
    { name: 'a FIFO', path: () => at('fifo'), code: 'ERR_CONFIG', what: 'is a FIFO' },
    { name: '/dev/zero', path: () => '/dev/zero', code: 'ERR_CONFIG', what: 'is a character device' },
    { name: 'a directory', path: () => at('directory'), code: 'ERR_CONFIG', what: 'is a directory' },
    {
      name: `a file over ${MAX_LINE_BYTES} bytes`,
      path: () => sparse(at('big.json'), MAX_LINE_BYTES + 1),
      code: 'ERR_CONFIG',
      what: `(max ${MAX_LINE_BYTES})`,
    },
    {
      name: 'text that is not JSON',
      path: () => file('cut.json', '{"attributes": '),
      code: 'ERR_REQUEST_MALFORMED',
      what: 'unexpected EOF',
    },
    {
      name: 'JSON that is not an object',
      path: () => file('list.json', '[]'),
      code: 'ERR_REQUEST_MALFORMED',
      what: 'is not a JSON object',
    },
    {
      name: 'a depth bomb',
      path: () => file('bomb.json', '['.repeat(100_000) + ']'.repeat(100_000)),
      code: 'ERR_REQUEST_TOO_DEEP',
      what: `input bound of ${DEFAULT_MAX_INPUT_DEPTH} levels`,
    },
  ])('$name: $code', async ({ path, code, what }) => {
    await expectRefused(evaluate(path()), code, what);
  });

  it(`evaluates an input nested ${DEFAULT_MAX_INPUT_DEPTH} deep (limits.maxInputDepth's default) and refuses one level more`, async () => {
    const decided = await verdict(evaluate(file('at-bound.json', nested(DEFAULT_MAX_INPUT_DEPTH))));
    expect(JSON.parse(decided.stdout)).toEqual({ allowed: false });
    expect(decided.exit).toBe(2);
    await expectRefused(evaluate(file('past-bound.json', nested(DEFAULT_MAX_INPUT_DEPTH + 1))), 'ERR_REQUEST_TOO_DEEP', 'past-bound.json');
  });

  it('holds the input to the limits.maxInputDepth it is given (--set limits.maxInputDepth=8): 8 deep evaluated, 9 refused', async () => {
    const bound = ['--set', 'limits.maxInputDepth=8'];
    const decided = await verdict([...evaluate(file('at-8.json', nested(8))), ...bound]);
    expect(JSON.parse(decided.stdout)).toEqual({ allowed: false });
    expect(decided.exit).toBe(2);
    await expectRefused([...evaluate(file('past-8.json', nested(9))), ...bound], 'ERR_REQUEST_TOO_DEEP', 'input bound of 8 levels');
  });
});

describe('bundle build and lint given a policy directory or module that is not a bounded regular file', () => {
  /** A policy directory holding `files` ({name: text}), and what `add` puts in it. */
  const policyDir = (files: Record<string, string>, add: (d: string) => void = () => undefined): string => {
    const d = tempDir('verdict-hostile-policy-');
    for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
    add(d);
    return d;
  };
  const build = (d: string, ...more: string[]): string[] => ['bundle', 'build', d, '-o', join(d, 'out.tar.gz'), ...more];
  const wasm = JSON.stringify({ metadata: { verdict: { engine: 'wasm' } } });
  const cedar = JSON.stringify({ metadata: { verdict: { engine: 'cedar' } } });

  it('a .manifest that is a symlink to a FIFO: ERR_BUNDLE_FILE_TYPE', async () => {
    const d = policyDir({}, (p) => symlinkSync(at('fifo'), join(p, '.manifest')));
    await expectRefused(build(d), 'ERR_BUNDLE_FILE_TYPE', `manifest ${d}/.manifest is a FIFO`);
  });

  it('a .manifest that is JSON but not an object: ERR_BUNDLE_INVALID', async () => {
    await expectRefused(build(policyDir({ '.manifest': 'null' })), 'ERR_BUNDLE_INVALID', 'is not a JSON object');
  });

  it('--module naming a FIFO: ERR_BUNDLE_FILE_TYPE', async () => {
    await expectRefused(
      build(policyDir({ '.manifest': wasm }), '--module', at('fifo')),
      'ERR_BUNDLE_FILE_TYPE',
      `module ${at('fifo')} is a FIFO`,
    );
  });

  it('a Cedar policy file that is a symlink to /dev/zero: ERR_BUNDLE_FILE_TYPE', async () => {
    const d = policyDir({ '.manifest': cedar }, (p) => symlinkSync('/dev/zero', join(p, 'policies.cedar')));
    await expectRefused(build(d), 'ERR_BUNDLE_FILE_TYPE', 'is a character device');
  });

  it('lint of a path that does not exist: ERR_BUNDLE_SOURCE', async () => {
    await expectRefused(['bundle', 'lint', at('missing')], 'ERR_BUNDLE_SOURCE', 'ENOENT');
  });
});
