import { createHash, createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { SettingsError } from './errors';

/**
 * Entry signatures. The agent signs each encoded entry with Ed25519 (a PEM
 * private key) or HMAC-SHA256 (a file `hmac-sha256:<base64 secret>`); the
 * signature travels in a message header as `<key id>:<base64>`. The replayer
 * holds one or more verification keys (several during a rotation) and refuses
 * entries that are unsigned, signed by an unknown key, or badly signed.
 */

/** NATS header that carries an entry's signature. */
export const SIGNATURE_HEADER = 'Understudy-Signature';
const HMAC_PREFIX = 'hmac-sha256:';

export interface Signer {
  keyId: string;
  sign(entry: Uint8Array): string;
}

export interface Verifier {
  /** Key ids it accepts. */
  keyIds: string[];
  /** Undefined when the signature is good; otherwise why it is not. */
  check(entry: Uint8Array, header: string | undefined): string | undefined;
}

type Key = { kind: 'ed25519'; id: string; key: KeyObject } | { kind: 'hmac'; id: string; secret: Buffer };

function idOf(material: Buffer): string {
  return createHash('sha256').update(material).digest('hex').slice(0, 16);
}

function readKeyFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new SettingsError(`${what}: cannot read ${file}: ${(err as Error).message}`);
  }
}

function hmacKey(text: string, file: string, what: string): Key {
  const secret = Buffer.from(text.trim().slice(HMAC_PREFIX.length), 'base64');
  if (secret.length < 32) throw new SettingsError(`${what}: HMAC secret in ${file} is shorter than 32 bytes`);
  return { kind: 'hmac', id: idOf(Buffer.concat([Buffer.from(HMAC_PREFIX), secret])), secret };
}

/** Loads the agent's signing key (UNDERSTUDY_SIGNING_KEY). */
export function loadSigner(file: string, what = 'UNDERSTUDY_SIGNING_KEY'): Signer {
  const text = readKeyFile(file, what);
  if (text.trim().startsWith(HMAC_PREFIX)) {
    const k = hmacKey(text, file, what) as Extract<Key, { kind: 'hmac' }>;
    return { keyId: k.id, sign: (entry) => createHmac('sha256', k.secret).update(entry).digest('base64') };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (err) {
    throw new SettingsError(`${what}: ${file} is neither a PEM private key nor ${HMAC_PREFIX}<base64>: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new SettingsError(`${what}: ${file} is a ${key.asymmetricKeyType} key; understudy signs with Ed25519`);
  const id = idOf(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  return { keyId: id, sign: (entry) => sign(null, entry, key).toString('base64') };
}

/** Loads the replayer's verification keys: Ed25519 public (or private) PEM files, or HMAC secret files. */
export function loadVerifier(files: string[], what = '--verify-key'): Verifier {
  const keys = new Map<string, Key>();
  for (const file of files) {
    const text = readKeyFile(file, what);
    let k: Key;
    if (text.trim().startsWith(HMAC_PREFIX)) k = hmacKey(text, file, what);
    else {
      let pub: KeyObject;
      try {
        pub = createPublicKey(text);
      } catch (err) {
        throw new SettingsError(`${what}: ${file} is neither a PEM public key nor ${HMAC_PREFIX}<base64>: ${(err as Error).message}`);
      }
      if (pub.asymmetricKeyType !== 'ed25519') throw new SettingsError(`${what}: ${file} is a ${pub.asymmetricKeyType} key; understudy verifies Ed25519`);
      k = { kind: 'ed25519', id: idOf(pub.export({ type: 'spki', format: 'der' })), key: pub };
    }
    keys.set(k.id, k);
  }
  return {
    keyIds: [...keys.keys()],
    check(entry, header) {
      if (header === undefined || header === '') return 'entry is not signed';
      const colon = header.indexOf(':');
      const k = colon > 0 ? keys.get(header.slice(0, colon)) : undefined;
      if (k === undefined) return `entry is signed by key ${header.slice(0, Math.max(0, colon))}, which this replayer does not trust`;
      const sig = Buffer.from(header.slice(colon + 1), 'base64');
      const ok = k.kind === 'ed25519'
        ? sig.length === 64 && verify(null, entry, k.key, sig)
        : timingSafeEqualLen(sig, createHmac('sha256', k.secret).update(entry).digest());
      return ok ? undefined : `entry signature does not verify with key ${k.id}`;
    },
  };
}

function timingSafeEqualLen(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
