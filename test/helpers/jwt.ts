import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nkeys } from '@nats-io/transport-node';
import { jetstreamBlock } from './nats-server';

// Operator-mode credentials for tests, made the way nsc makes them (NATS JWT v2:
// ed25519-nkey signatures over base64url JSON), so the suite needs no nsc binary.

type KeyPair = ReturnType<typeof nkeys.createOperator>;

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

function jwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url').slice(0, 52).toUpperCase();
  const head = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claims))}`;
  return `${head}.${b64url(issuer.sign(Buffer.from(head)))}`;
}

const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

/** An operator with one system account and one application account (JetStream on), and a way to mint its users. */
export function makeOperator(): { config: (port: number, storeDir: string) => string; userCreds: (dir: string, label: string) => string } {
  const op = nkeys.createOperator();
  const sys = nkeys.createAccount();
  const acc = nkeys.createAccount();
  const opJwt = jwt(op, op.getPublicKey(), 'test-operator', { type: 'operator' });
  const sysJwt = jwt(op, sys.getPublicKey(), 'SYS', { type: 'account', limits: UNLIMITED });
  const accJwt = jwt(op, acc.getPublicKey(), 'APP', {
    type: 'account',
    limits: { ...UNLIMITED, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
  });
  return {
    config: (port, storeDir) => `
listen: 127.0.0.1:${port}
${jetstreamBlock(storeDir)}
operator: ${opJwt}
system_account: ${sys.getPublicKey()}
resolver: MEMORY
resolver_preload: {
  ${sys.getPublicKey()}: ${sysJwt}
  ${acc.getPublicKey()}: ${accJwt}
}
`,
    userCreds(dir, label) {
      const user = nkeys.createUser();
      const userJwt = jwt(acc, user.getPublicKey(), label, { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
      const file = path.join(dir, `${label}.creds`);
      const seed = new TextDecoder().decode(user.getSeed());
      fs.writeFileSync(file, `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n` +
        `************************* IMPORTANT *************************\nNKEY Seed printed below can be used to sign and prove identity.\n\n` +
        `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`, { mode: 0o600 });
      return file;
    },
  };
}
