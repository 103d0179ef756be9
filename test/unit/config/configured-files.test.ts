import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock';
import { MAX_CONFIG_FILE_BYTES, loadConfig, validateConfig } from '../../../src/config/load-config';
import { intermediatesFromFiles } from '../../../src/identity/intermediate-source';
import { OIDCIssuerKeys } from '../../../src/identity/oidc-issuer-keys';
import { StaticBundleSource } from '../../../src/identity/static-bundle-source';
import { MAX_CONFIGURED_FILE_BYTES } from '../../../src/policy/bundle-file-read';
import { trustFromConfig } from '../../../src/policy/bundle-verifier';
import { GRPCBodyTypes, MAX_DESCRIPTOR_BYTES } from '../../../src/request/grpc-body-types';
import { verdictErrorOf } from '../../helpers/error-code';

// The config file and every file it names is a trust boundary: whatever the path points at, the read is
// refused with ERR_CONFIG before it can block (a FIFO with no writer) or grow without end (a device), and a
// regular file is read only up to its bound. Each hostile path is made here, at run time.

const dir = mkdtempSync(join(tmpdir(), 'verdict-configured-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let made = 0;
const fresh = (name: string): string => join(dir, `${made++}-${name}`);

/** Hostile paths, each with what the refusal must say about it; `maxBytes` is the reader's bound. */
const HOSTILE: { name: string; make: (maxBytes: number) => string; says: (maxBytes: number) => string }[] = [
  { name: 'a character device (/dev/zero)', make: () => '/dev/zero', says: () => 'is a character device, not a regular file' },
  {
    name: 'a symlink to /dev/urandom',
    make: () => {
      const link = fresh('urandom');
      symlinkSync('/dev/urandom', link);
      return link;
    },
    says: () => 'is a character device, not a regular file',
  },
  {
    name: 'a FIFO with no writer',
    make: () => {
      const path = fresh('fifo');
      execFileSync('mkfifo', [path]);
      return path;
    },
    says: () => 'is a FIFO, not a regular file',
  },
  {
    name: 'a directory',
    make: () => {
      const path = fresh('dir');
      mkdirSync(path);
      return path;
    },
    says: () => 'is a directory, not a regular file',
  },
  {
    name: 'a sparse file one byte over the bound',
    make: (maxBytes) => {
      const path = fresh('sparse');
      const fd = openSync(path, 'w');
      ftruncateSync(fd, maxBytes + 1);
      closeSync(fd);
      return path;
    },
    says: (maxBytes) => `is over ${maxBytes} bytes (max ${maxBytes})`,
  },
];

/** Each reader of a configured file, through the entry point verdict uses at start-up, with its bound. */
const READERS: { name: string; maxBytes: number; read: (path: string) => unknown }[] = [
  { name: 'the config file', maxBytes: MAX_CONFIG_FILE_BYTES, read: (path) => loadConfig({ file: path }) },
  {
    name: 'identity.staticBundles[].path',
    maxBytes: MAX_CONFIGURED_FILE_BYTES,
    read: (path) => StaticBundleSource.fromFiles([{ trustDomain: 'example.org', path }]),
  },
  { name: 'identity.x509.intermediates.files[]', maxBytes: MAX_CONFIGURED_FILE_BYTES, read: (path) => intermediatesFromFiles([path]) },
  {
    name: 'identity.jwt.issuers[].jwksFile (bounded by its keys.maxBytes)',
    maxBytes: 4096,
    read: (path) => {
      const issuer = { issuer: 'https://issuer.example', jwksFile: path, audiences: ['verdict'], keys: { maxBytes: 4096 } };
      const config = validateConfig({ identity: { jwt: { issuers: [issuer] } } });
      return new OIDCIssuerKeys(config.identity.jwt.issuers[0] as (typeof config.identity.jwt.issuers)[0], systemClock);
    },
  },
  {
    name: 'bundles.opaSigning.keys.*.keyFile',
    maxBytes: MAX_CONFIGURED_FILE_BYTES,
    read: (path) =>
      trustFromConfig(validateConfig({ bundles: { opaSigning: { keys: { k1: { algorithm: 'ES256', keyFile: path } } } } }).bundles),
  },
  {
    name: 'bundles.cosign.publicKeyFile',
    maxBytes: MAX_CONFIGURED_FILE_BYTES,
    read: (path) => trustFromConfig(validateConfig({ bundles: { cosign: { publicKeyFile: path } } }).bundles),
  },
  { name: 'policy.protoDescriptor', maxBytes: MAX_DESCRIPTOR_BYTES, read: (path) => GRPCBodyTypes.fromFile(path) },
];

describe('files the configuration names', () => {
  for (const reader of READERS) {
    it.each(HOSTILE)(`refuses $name as ${reader.name} with ERR_CONFIG, saying what it is`, ({ make, says }) => {
      const path = make(reader.maxBytes);
      const err = verdictErrorOf(() => reader.read(path));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toContain(`${path} ${says(reader.maxBytes)}`);
    });
  }

  it('refuses an empty policy.protoDescriptor (a descriptor set of no files) with ERR_CONFIG', () => {
    const path = fresh('empty.binpb');
    writeFileSync(path, '');
    const err = verdictErrorOf(() => GRPCBodyTypes.fromFile(path));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toBe(`policy.protoDescriptor ${path} holds no file descriptors`);
  });
});

describe('bundle verification keys are parsed when the trust is built, before anything serves', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPEM = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePEM = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keyFile = (text: string): string => {
    const path = fresh('key.pem');
    writeFileSync(path, text);
    return path;
  };
  const KEY_SETTINGS = [
    {
      name: 'bundles.opaSigning.keys.*.keyFile',
      trust: (path: string, algorithm = 'ES256') =>
        trustFromConfig(validateConfig({ bundles: { opaSigning: { keys: { k1: { algorithm, keyFile: path } } } } }).bundles),
    },
    {
      name: 'bundles.cosign.publicKeyFile',
      trust: (path: string) => trustFromConfig(validateConfig({ bundles: { cosign: { publicKeyFile: path } } }).bundles),
    },
  ];

  for (const setting of KEY_SETTINGS) {
    it.each([
      { what: 'text that is no key', text: 'not a key\n' },
      { what: 'an empty file', text: '' },
    ])(`refuses $what as ${setting.name} with ERR_CONFIG`, ({ text }) => {
      const path = keyFile(text);
      const err = verdictErrorOf(() => setting.trust(path));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toBe(`bundle verification key ${path} is not a PEM public key or certificate`);
    });

    it(`refuses an RSA-1024 public key as ${setting.name} with ERR_CONFIG (a key that weak lets whoever factors it sign bundles)`, () => {
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
      const path = keyFile(weak);
      const err = verdictErrorOf(() => setting.trust(path, 'RS256'));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toBe(`bundle verification key ${path} is an RSA key of 1024 bits (at least 2048)`);
    });

    it(`refuses a private key as ${setting.name} with ERR_CONFIG, without its material in the message`, () => {
      const path = keyFile(privatePEM);
      const err = verdictErrorOf(() => setting.trust(path));
      expect(err.code).toBe('ERR_CONFIG');
      expect(err.message).toBe(`bundle verification key ${path} holds a private key; give its public key`);
    });
  }

  it('keeps a public key as a public KeyObject, and no PEM text', () => {
    const opa = KEY_SETTINGS[0]?.trust(keyFile(publicPEM));
    const cosign = KEY_SETTINGS[1]?.trust(keyFile(publicPEM));
    expect(opa?.opa?.keys.k1).toEqual({ algorithm: 'ES256', publicKey: expect.objectContaining({ type: 'public' }), scope: undefined });
    expect(cosign?.cosignPublicKey).toMatchObject({ type: 'public', asymmetricKeyType: 'ec' });
  });

  it('refuses an OPA key that cannot verify its configured algorithm (a P-256 key for RS256) with ERR_CONFIG', () => {
    const path = keyFile(publicPEM);
    const err = verdictErrorOf(() => KEY_SETTINGS[0]?.trust(path, 'RS256'));
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toBe(`bundle verification key ${path} (ec prime256v1) cannot verify RS256`);
  });
});
