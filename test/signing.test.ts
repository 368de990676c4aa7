import test from 'ava';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeEntry, encodeEntry } from '../lib/codec';
import { lastEntry } from '../lib/batch';
import { loadSigner, loadVerifier } from '../lib/signing';
import { makePair, type Pair } from './helpers/pair';
import { publish, storedMessages } from './helpers/publish';
import { diffTrees } from './helpers/tree';

/** An Ed25519 key pair as PEM files: the agent's private key and the standby's public key. */
function keyPair(dir: string, label: string): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = path.join(dir, `${label}.key`);
  const pub = path.join(dir, `${label}.pub`);
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
}

function write(pair: Pair, file: string, text: string, key?: string) {
  return pair.runApp({
    env: key === undefined ? {} : { UNDERSTUDY_SIGNING_KEY: key },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, file))}, ${JSON.stringify(text)});`,
  });
}

test.serial('entries signed by the agent are applied by a replayer that trusts its key', async (t) => {
  const pair = await makePair('sign');
  t.teardown(() => pair.close());
  const a = keyPair(pair.dir, 'a');
  t.is((await write(pair, 'f.txt', 'signed', a.priv)).code, 0);
  const [msg] = await storedMessages(pair.server.url);
  t.regex(msg.hdrs['Understudy-Signature'], /^[0-9a-f]{16}:[A-Za-z0-9+/]+=*$/);
  const s = await pair.drain(undefined, { verifier: loadVerifier([a.pub]) });
  t.is(s.applied, 1);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('unsigned entries and entries signed by an untrusted key are refused and quarantined', async (t) => {
  const pair = await makePair('unsigned');
  t.teardown(() => pair.close());
  const a = keyPair(pair.dir, 'a');
  const b = keyPair(pair.dir, 'b');
  t.is((await write(pair, 'plain.txt', 'no signature')).code, 0);
  await t.throwsAsync(pair.drain(undefined, { verifier: loadVerifier([a.pub]) }), { message: /stream message 1 .*entry is not signed; quarantined in/ });
  t.deepEqual(fs.readdirSync(pair.standby), []);
  t.true(fs.existsSync(path.join(pair.state, 'quarantine', '000000000001.json')));

  const pair2 = await makePair('wrongkey');
  t.teardown(() => pair2.close());
  t.is((await write(pair2, 'b.txt', 'by b', b.priv)).code, 0);
  await t.throwsAsync(pair2.drain(undefined, { verifier: loadVerifier([a.pub]) }), { message: /signed by key [0-9a-f]{16}, which this replayer does not trust/ });
  t.deepEqual(fs.readdirSync(pair2.standby), []);
});

test.serial('a tampered payload with a valid checksum fails its signature', async (t) => {
  const pair = await makePair('tamper');
  t.teardown(() => pair.close());
  const a = keyPair(pair.dir, 'a');
  t.is((await write(pair, 'pay.txt', 'pay alice 10', a.priv)).code, 0);
  const [msg] = await storedMessages(pair.server.url);
  const { header } = decodeEntry(lastEntry(msg.data));
  // Re-encode with new bytes: the CRC is right again, the signature is not.
  const forged = encodeEntry({ ...header, s: header.s + 1 }, Buffer.from('pay mallory 1000'));
  await publish(pair.server.url, [{ header: { ...header, s: header.s + 1 }, raw: forged, hdrs: msg.hdrs }]);
  await t.throwsAsync(pair.drain(undefined, { verifier: loadVerifier([a.pub]) }), { message: /stream message 2 .*signature does not verify/ });
  t.is(fs.readFileSync(path.join(pair.standby, 'pay.txt'), 'utf8'), 'pay alice 10');
});

test.serial('a captured entry replayed later changes nothing', async (t) => {
  const pair = await makePair('replay');
  t.teardown(() => pair.close());
  const a = keyPair(pair.dir, 'a');
  t.is((await write(pair, 'state.txt', 'v1', a.priv)).code, 0);
  t.is((await write(pair, 'state.txt', 'v2', a.priv)).code, 0);
  const verifier = loadVerifier([a.pub]);
  t.is((await pair.drain(undefined, { verifier })).applied, 2);
  const [old] = await storedMessages(pair.server.url);
  // Same bytes and a valid signature, under a fresh message id so JetStream does not de-duplicate it.
  await publish(pair.server.url, [{ header: decodeEntry(lastEntry(old.data)).header, raw: old.data, hdrs: old.hdrs, id: `replayed-${randomBytes(4).toString('hex')}` }]);
  const again = await pair.drain(undefined, { verifier });
  t.is(again.applied, 0);
  t.is(again.duplicates, 1);
  t.is(fs.readFileSync(path.join(pair.standby, 'state.txt'), 'utf8'), 'v2');
});

test.serial('skip mode: an unsigned message with a forged Nats-Msg-Id moves no journal position; genuine entries after it are applied', async (t) => {
  const pair = await makePair('forged-id');
  t.teardown(() => pair.close());
  const a = keyPair(pair.dir, 'a');
  const verifier = loadVerifier([a.pub]);
  t.is((await write(pair, 'one.txt', '1', a.priv)).code, 0);
  const [genuine] = await storedMessages(pair.server.url);
  const { header } = decodeEntry(lastEntry(genuine.data));
  // Junk claiming, by its message id only, to be far ahead in the journal.
  await publish(pair.server.url, [{ header: { ...header, op: 'rm' }, raw: Buffer.from('junk'), id: `app.9999999999.1` }]);
  const first = await pair.drain(undefined, { verifier, onBadEntry: 'skip' });
  t.is(first.applied, 1);
  t.is(first.skipped, 1);
  const positions = JSON.parse(fs.readFileSync(path.join(pair.state, 'positions.json'), 'utf8').split('\n')[0]);
  t.deepEqual([positions.journals.app.e, positions.journals.app.s], [header.e, header.s]);
  t.is((await write(pair, 'two.txt', '2', a.priv)).code, 0);
  const second = await pair.drain(undefined, { verifier, onBadEntry: 'skip' });
  t.is(second.applied, 1);
  t.is(second.duplicates, 0);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('key rotation: both keys trusted during the change, only the new one after', async (t) => {
  const pair = await makePair('rotate');
  t.teardown(() => pair.close());
  const oldKey = keyPair(pair.dir, 'old');
  const newKey = keyPair(pair.dir, 'new');
  t.is((await write(pair, 'one.txt', 'old key', oldKey.priv)).code, 0);
  t.is((await write(pair, 'two.txt', 'new key', newKey.priv)).code, 0);
  t.is((await pair.drain(undefined, { verifier: loadVerifier([oldKey.pub, newKey.pub]) })).applied, 2);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is((await write(pair, 'three.txt', 'old key again', oldKey.priv)).code, 0);
  await t.throwsAsync(pair.drain(undefined, { verifier: loadVerifier([newKey.pub]) }), { message: /does not trust/ });
  t.false(fs.existsSync(path.join(pair.standby, 'three.txt')));
});

test.serial('HMAC-SHA256 keys sign and verify too', async (t) => {
  const pair = await makePair('hmac');
  t.teardown(() => pair.close());
  const secret = path.join(pair.dir, 'hmac.key');
  fs.writeFileSync(secret, `hmac-sha256:${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  const other = path.join(pair.dir, 'other.key');
  fs.writeFileSync(other, `hmac-sha256:${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  t.is((await write(pair, 'h.txt', 'hmac', secret)).code, 0);
  await t.throwsAsync(pair.drain(undefined, { verifier: loadVerifier([other]) }), { message: /does not trust/ });
  t.is((await pair.drain(undefined, { verifier: loadVerifier([secret]) })).applied, 1);
});

test('key files that cannot serve are refused with a clear error', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-keys-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rsa = path.join(dir, 'rsa.key');
  fs.writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  t.throws(() => loadSigner(rsa), { message: /is a rsa key; understudy signs with Ed25519/ });
  const short = path.join(dir, 'short.key');
  fs.writeFileSync(short, 'hmac-sha256:c2hvcnQ=');
  t.throws(() => loadSigner(short), { message: /shorter than 32 bytes/ });
  const junk = path.join(dir, 'junk');
  fs.writeFileSync(junk, 'not a key');
  t.throws(() => loadVerifier([junk]), { message: /neither a PEM public key nor hmac-sha256/ });
});
