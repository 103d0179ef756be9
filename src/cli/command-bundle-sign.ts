import { createPrivateKey, type KeyObject } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { VerdictError } from '../errors';
import { keyLimitProblem } from '../identity/key-limits';
import { DEFAULT_BUNDLE_LIMITS } from '../policy/bundle';
import { MAX_CONFIGURED_FILE_BYTES, readRegularFileBounded } from '../policy/bundle-file-read';
import { readBundle } from '../policy/bundle-reader';
import { SIGNATURES_FILE, isOPASigningAlgorithm, signOPABundle } from '../policy/bundle-signature-opa';
import { publicKeyFromPEM, verifyBundle } from '../policy/bundle-verifier';
import { writeBundle } from '../policy/bundle-writer';
import { readBundleBytes, readBundleFile, readKeyFile } from './named-files';

interface SignOptions {
  key: string;
  alg: string;
  keyId: string;
  scope?: string;
  issuer?: string;
  out?: string;
}

interface VerifyOptions {
  opaKey?: string;
  alg: string;
  keyId?: string;
  scope?: string;
  cosignKey?: string;
  signature?: string;
  sha256?: string;
}

/** `verdict bundle sign` and `verdict bundle verify`, added to the group `registerBundle` returns. */
export function registerBundleSign(bundle: Command): void {
  bundle
    .command('sign <file>')
    .description("Sign a bundle with OPA's bundle signing (.signatures.json: a JWT over every file's hash)")
    .requiredOption('-k, --key <pem>', 'private key (PEM: RSA or EC)')
    .option('--alg <alg>', 'RS256 | PS256 | ES256 (and the 384/512 variants)', 'RS256')
    .option('--key-id <id>', 'key id written as the JWT kid', 'default')
    .option('--scope <scope>', 'scope claim the verifier must expect')
    .option('--issuer <iss>', 'iss claim')
    .option('-o, --out <file>', 'output bundle (default: replace the input)')
    .action(async (file: string, opts: SignOptions) => {
      if (!isOPASigningAlgorithm(opts.alg)) throw new VerdictError('ERR_CONFIG', `unsupported signing algorithm ${opts.alg}`);
      const b = await readBundleFile(file);
      const files = new Map(b.files);
      files.delete(SIGNATURES_FILE);
      const privateKey = privateKeyFromPEM(await readKeyFile(opts.key), opts.key);
      const signatures = signOPABundle(files, {
        privateKey,
        algorithm: opts.alg,
        keyId: opts.keyId,
        scope: opts.scope,
        issuer: opts.issuer,
        issuedAtSec: Math.floor(Date.now() / 1000),
      });
      files.set(SIGNATURES_FILE, signatures);
      const out = opts.out ?? file;
      // Checked as a bundle before it is written (a signed bundle the server would refuse is not left in
      // place), from the bytes themselves: nothing is read back from a path.
      const bytes = await writeBundle(files);
      const signed = await readBundle(bytes, out);
      const tmp = `${out}.${process.pid}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, out);
      process.stdout.write(`${JSON.stringify({ out, sha256: signed.sha256, keyId: opts.keyId, algorithm: opts.alg })}\n`);
    });
  bundle
    .command('verify <file>')
    .description('Verify a bundle: sha256 pin, OPA signature, cosign signature; exit 1 with the error code if refused')
    .option('--opa-key <pem>', 'public key for .signatures.json')
    .option('--alg <alg>', 'algorithm of --opa-key', 'RS256')
    .option('--key-id <id>', 'key id of --opa-key (default: the one the JWT names)')
    .option('--scope <scope>', 'required signature scope')
    .option('--cosign-key <pem>', 'cosign public key')
    .option('--signature <file>', 'cosign signature or sigstore bundle (default: <file>.sig)')
    .option('--sha256 <hex>', 'pinned sha256 of the bundle file')
    .action(async (file: string, opts: VerifyOptions) => {
      if (!isOPASigningAlgorithm(opts.alg)) throw new VerdictError('ERR_CONFIG', `unsupported signing algorithm ${opts.alg}`);
      // What is verified comes from elsewhere: each file is read bounded, a regular file only.
      const bytes = await readBundleBytes(file);
      const opa = opts.opaKey
        ? await (async () => {
            const header = (await readBundle(bytes, file)).files.get(SIGNATURES_FILE);
            const kid = opts.keyId ?? claimedKeyId(header) ?? 'default';
            const publicKey = publicKeyFromPEM(await readKeyFile(opts.opaKey as string), `--opa-key ${opts.opaKey}`);
            const key = { algorithm: opts.alg as never, publicKey, scope: opts.scope };
            return { keys: { [kid]: key }, keyId: kid, scope: opts.scope };
          })()
        : null;
      const cosignKey = opts.cosignKey ? publicKeyFromPEM(await readKeyFile(opts.cosignKey), `--cosign-key ${opts.cosignKey}`) : null;
      const cosignSignature =
        cosignKey !== null
          ? await readRegularFileBounded(opts.signature ?? `${file}.sig`, MAX_CONFIGURED_FILE_BYTES, 'signature')
          : undefined;
      const b = await verifyBundle(
        { bytes, origin: file, cosignSignature },
        { limits: DEFAULT_BUNDLE_LIMITS, sha256: opts.sha256 ?? null, opa, cosignPublicKey: cosignKey },
      );
      process.stdout.write(
        `${JSON.stringify({ verified: true, name: b.name, revision: b.revision, sha256: b.sha256, engine: b.engine, signer: b.signer ?? null }, null, 2)}\n`,
      );
    });
}

/**
 * The --key file's key, held to the rule verification keys are (key-limits.ts: a bundle signed with an
 * RSA-1024 key would be refused by every verdict). Node's parse error (an OpenSSL decoder's name) is not
 * passed on, as publicKeyFromPEM does.
 */
function privateKeyFromPEM(pem: string, path: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new VerdictError('ERR_CONFIG', `--key ${path} is not an unencrypted PEM private key`);
  }
  const problem = keyLimitProblem(key);
  if (problem !== null) throw new VerdictError('ERR_CONFIG', `--key ${path} ${problem}`);
  return key;
}

function claimedKeyId(signatures: Buffer | undefined): string | undefined {
  if (signatures === undefined) return undefined;
  try {
    const token = (JSON.parse(signatures.toString('utf8')) as { signatures: string[] }).signatures[0] ?? '';
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    return undefined;
  }
}
