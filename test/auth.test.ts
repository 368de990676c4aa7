import { diffTrees } from './helpers/tree';
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, nkeys } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { encodeEntry } from '../lib/codec';
import { ensureStream, openStateKv } from '../lib/nats';
import { journalSubject } from '../lib/subjects';
import { startNatsServer, jetstreamBlock } from './helpers/nats-server';
import { makeOperator } from './helpers/jwt';
import { makePair, runCli, type Pair } from './helpers/pair';

/**
 * The least-privilege permission set SECURITY.md recommends, for a journal
 * named "app" on stream UNDERSTUDY: the agent may publish only its own journal
 * subject and its own heartbeat; the replayer may read the stream and report
 * its applied positions, and publish no journal entry.
 */
function permissionsConfig(port: number, storeDir: string, who = { agent: 'user: agent, password: agent-secret', replayer: 'user: replayer, password: replayer-secret' }): string {
  return `
listen: 127.0.0.1:${port}
${jetstreamBlock(storeDir)}
authorization {
  users: [
    { ${who.agent}, permissions: {
        publish: { allow: [
          "understudy.understudy.journal.app",
          "$JS.API.INFO", "$JS.API.STREAM.INFO.UNDERSTUDY", "$JS.API.STREAM.CREATE.UNDERSTUDY",
          "$JS.API.STREAM.INFO.KV_UNDERSTUDY_STATE", "$JS.API.STREAM.CREATE.KV_UNDERSTUDY_STATE",
          "$KV.UNDERSTUDY_STATE.agent.app",
          "$JS.API.CONSUMER.CREATE.KV_UNDERSTUDY_STATE", "$JS.API.CONSUMER.CREATE.KV_UNDERSTUDY_STATE.>",
          "$JS.API.CONSUMER.DELETE.KV_UNDERSTUDY_STATE.>"
        ] }
        subscribe: { allow: ["_INBOX.>", "understudy.understudy.applied.app"] } } }
    { ${who.replayer}, permissions: ${standbyPermissions(true)} }
    { user: standby-ro, password: standby-ro-secret, permissions: ${standbyPermissions(false)} }
    { user: standby-notrim, password: standby-notrim-secret, permissions: ${standbyPermissions(false, false)} }
    { user: admin, password: admin-secret }
  ]
}
`;
}

/**
 * A standby's user: it reads the stream, leaves its own records in the state bucket and reads
 * the other standbys'; with `purge`, it may also trim the stream below what every standby committed.
 */
function standbyPermissions(purge: boolean, trim = true): string {
  return `{
        publish: { allow: [
          "$JS.API.INFO", "$JS.API.STREAM.INFO.UNDERSTUDY", "$JS.API.STREAM.INFO.KV_UNDERSTUDY_STATE",
          "$JS.API.CONSUMER.CREATE.UNDERSTUDY", "$JS.API.CONSUMER.CREATE.UNDERSTUDY.>",
          "$JS.API.CONSUMER.INFO.UNDERSTUDY.>", "$JS.API.CONSUMER.DELETE.UNDERSTUDY.>",
          "$JS.API.CONSUMER.MSG.NEXT.UNDERSTUDY.>", "$JS.API.STREAM.MSG.GET.UNDERSTUDY",
          "$JS.API.DIRECT.GET.KV_UNDERSTUDY_STATE.>", "$JS.API.STREAM.MSG.GET.KV_UNDERSTUDY_STATE",
          "$KV.UNDERSTUDY_STATE.applied.>", "$KV.UNDERSTUDY_STATE.standby.>", "$KV.UNDERSTUDY_STATE.doubts.>",
          ${trim ? '"$KV.UNDERSTUDY_STATE.trim.>", ' : ''}"$KV.UNDERSTUDY_STATE.lost.>", "$KV.UNDERSTUDY_STATE.rebase.>",
          "$JS.API.CONSUMER.CREATE.KV_UNDERSTUDY_STATE.*.$KV.UNDERSTUDY_STATE.fence.>", "$JS.API.CONSUMER.DELETE.KV_UNDERSTUDY_STATE.>"${purge ? ', "$JS.API.STREAM.PURGE.UNDERSTUDY"' : ''},
          "understudy.understudy.applied.>"
        ] }
        subscribe: { allow: ["_INBOX.>", "understudy.understudy.verify.>"] } }`;
}

const cli = (args: string[], env: NodeJS.ProcessEnv) => runCli(args, env);

/** The stream and the state bucket are made once by an administrator (or the first agent), whose process journals one directory. */
async function setUpAsAdmin(t: ExecutionContext, pair: Pair, url: string): Promise<void> {
  const admin = await pair.runApp({
    env: { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_NATS_USER: 'admin', UNDERSTUDY_NATS_PASS: 'admin-secret', UNDERSTUDY_NAME: 'setup' },
    code: `require('fs').mkdirSync(${JSON.stringify(path.join(pair.primary, 'made-by-admin'))});`,
  });
  t.is(admin.code, 0, admin.stderr);
}

test.serial('with authentication and per-subject permissions, the right credentials work and wrong ones fail clearly', async (t) => {
  const pair = await makePair('auth');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const server = await startNatsServer({ storeDir: path.join(pair.dir, 'secured-store'), config: permissionsConfig });
  t.teardown(() => server.stop());
  const url = server.url;

  await setUpAsAdmin(t, pair, url);

  const agentEnv = { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_NATS_USER: 'agent', UNDERSTUDY_NATS_PASS: 'agent-secret' };
  const ok = await pair.runApp({ env: agentEnv, code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'app.txt'))}, 'with credentials');` });
  t.is(ok.code, 0);
  t.is(ok.stderr, '', 'the agent with its credentials ships without complaint');

  const replay = (user: string, pass: string) => cli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain', '--nats', url, '--user', user, '--password', pass, '--name', 'app'], {});
  const wrong = await replay('replayer', 'guess');
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/);
  const right = await replay('replayer', 'replayer-secret');
  t.is(right.code, 0, right.stderr);
  // It may follow promotions (the fences in the state bucket): without that a promotion elsewhere would not stop it.
  t.notRegex(right.stderr, /cannot follow promotions/);
  t.is(fs.readFileSync(path.join(pair.standby, 'app.txt'), 'utf8'), 'with credentials');

  const badPass = await pair.runApp({
    env: { ...agentEnv, UNDERSTUDY_NATS_PASS: 'wrong', UNDERSTUDY_EXIT_TIMEOUT_MS: '1500' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'later.txt'))}, 'spooled'); console.log('app ran');`,
  });
  t.is(badPass.code, 0);
  t.is(badPass.stdout.trim(), 'app ran');
  t.regex(badPass.stderr, /[Aa]uthorization/);
  t.regex(badPass.stderr, /1 entries not yet in JetStream at exit; they stay in/);

  // A journal the agent's user may not publish: refused by the server, kept in the spool, said once.
  const other = await pair.runApp({
    env: { ...agentEnv, UNDERSTUDY_NAME: 'other', UNDERSTUDY_EXIT_TIMEOUT_MS: '1500' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'other.txt'))}, 'not allowed');`,
  });
  t.is(other.code, 0);
  t.regex(other.stderr, /journal "other" cannot reach JetStream \(.*[Pp]ermission/);
  t.true(fs.existsSync(path.join(pair.spool, 'other')), 'its entries stay in its spool');
});

test.serial('under the permission set of SECURITY.md, a standby\'s user can publish no entry, forge no heartbeat, and delete nothing; only one given it may purge', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-perm-'));
  const server = await startNatsServer({ storeDir: path.join(dir, 'store'), config: permissionsConfig });
  t.teardown(async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const admin = await connect({ servers: server.url, user: 'admin', pass: 'admin-secret' });
  await ensureStream(await jetstreamManager(admin), 'UNDERSTUDY');
  await openStateKv(admin, 'UNDERSTUDY');
  const replayer = await connect({ servers: server.url, user: 'replayer', pass: 'replayer-secret' });
  t.teardown(async () => {
    await replayer.close();
    await admin.close();
  });
  const entry = encodeEntry({ j: 'app', e: 1, s: 1, t: 0, r: 'data', p: 'forged.txt', op: 'put', mode: 0o644 }, Buffer.from('forged'));
  const refused = [
    journalSubject('UNDERSTUDY', 'app'), // an entry
    '$KV.UNDERSTUDY_STATE.agent.app', // the agent's heartbeat
    '$KV.UNDERSTUDY_STATE.fence.app', // a fence
    '$JS.API.STREAM.DELETE.UNDERSTUDY', '$JS.API.STREAM.MSG.DELETE.UNDERSTUDY',
    '$JS.API.CONSUMER.CREATE.KV_UNDERSTUDY_STATE.w.$KV.UNDERSTUDY_STATE.agent.>', // a watch of anything but the fences
  ];
  for (const subject of refused) {
    await t.throwsAsync(replayer.request(subject, entry, { timeout: 2000 }), { message: /[Pp]ermission/ }, subject);
  }
  const readOnly = await connect({ servers: server.url, user: 'standby-ro', pass: 'standby-ro-secret' });
  t.teardown(() => readOnly.close());
  await t.throwsAsync(readOnly.request('$JS.API.STREAM.PURGE.UNDERSTUDY', '{}', { timeout: 2000 }), { message: /[Pp]ermission/ }, 'a standby without the purge permission');
  const info = await (await jetstreamManager(admin)).streams.info('UNDERSTUDY');
  t.is(info.state.messages, 0, 'nothing reached the stream');
  t.false(replayer.isClosed(), 'a refused publish does not cost the replayer its connection');
});

/** An nkey user: its public key for the server, its seed in a file ending in a newline, as `nk` and editors write it. */
function nkeyUser(dir: string, label: string): { pub: string; seedFile: string } {
  const kp = nkeys.createUser();
  const seedFile = path.join(dir, `${label}.nk`);
  fs.writeFileSync(seedFile, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
  return { pub: kp.getPublicKey(), seedFile };
}

test.serial('nkey authentication: agent and replayer sign in with seed files, an unknown nkey is refused clearly', async (t) => {
  const pair = await makePair('nkey');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const agent = nkeyUser(pair.dir, 'agent');
  const replayer = nkeyUser(pair.dir, 'replayer');
  const stranger = nkeyUser(pair.dir, 'stranger');
  const server = await startNatsServer({
    storeDir: path.join(pair.dir, 'nkey-store'),
    config: (port, store) => permissionsConfig(port, store, { agent: `nkey: ${agent.pub}`, replayer: `nkey: ${replayer.pub}` }),
  });
  t.teardown(() => server.stop());
  const url = server.url;
  await setUpAsAdmin(t, pair, url);
  const ok = await pair.runApp({
    env: { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_NATS_NKEY: agent.seedFile },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'app.txt'))}, 'signed in with an nkey');`,
  });
  t.is(ok.code, 0);
  t.is(ok.stderr, '', 'the agent with its nkey ships without complaint');
  const replay = (seed: string) => cli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain', '--nats', url, '--nkey', seed, '--name', 'app'], {});
  const wrong = await replay(stranger.seedFile);
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/);
  const right = await replay(replayer.seedFile);
  t.is(right.code, 0, right.stderr);
  t.is(fs.readFileSync(path.join(pair.standby, 'app.txt'), 'utf8'), 'signed in with an nkey');
});

test.serial('creds (JWT) authentication in operator mode: agent and replayer sign in with creds files, a user of another operator is refused', async (t) => {
  const pair = await makePair('creds');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const operator = makeOperator();
  const server = await startNatsServer({ storeDir: path.join(pair.dir, 'creds-store'), config: operator.config });
  t.teardown(() => server.stop());
  const url = server.url;
  const ok = await pair.runApp({
    env: { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_NATS_CREDS: operator.userCreds(pair.dir, 'agent') },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'app.txt'))}, 'signed in with creds');`,
  });
  t.is(ok.code, 0);
  t.is(ok.stderr, '', 'the agent with its creds ships without complaint');
  const replay = (creds: string) => cli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain', '--nats', url, '--creds', creds], {});
  const wrong = await replay(makeOperator().userCreds(pair.dir, 'stranger'));
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*[Aa]uthorization/);
  const right = await replay(operator.userCreds(pair.dir, 'replayer'));
  t.is(right.code, 0, right.stderr);
  t.is(fs.readFileSync(path.join(pair.standby, 'app.txt'), 'utf8'), 'signed in with creds');
});

/** A CA and a server certificate for 127.0.0.1, made with openssl. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(['req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=understudy test CA']);
  run(['req', '-newkey', 'ed25519', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  // nats.js checks an IP server's certificate against the name localhost, so both are in it.
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

test.serial('TLS with a private CA and a token: agent and replayer connect with UNDERSTUDY_NATS_CA / --tls-ca', async (t) => {
  const pair = await makePair('tls');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const certs = makeCerts(pair.dir);
  const server = await startNatsServer({
    storeDir: path.join(pair.dir, 'tls-store'),
    config: (port, store) => `listen: 127.0.0.1:${port}
${jetstreamBlock(store)}
tls { cert_file: "${certs.cert}", key_file: "${certs.key}" }
authorization { token: "s3cret-token" }
`,
  });
  t.teardown(() => server.stop());
  const url = server.url.replace('nats://', 'tls://');
  const run = await pair.runApp({
    env: { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_NATS_CA: certs.ca, UNDERSTUDY_NATS_TOKEN: 's3cret-token' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'tls.txt'))}, 'over tls');`,
  });
  t.is(run.code, 0);
  t.is(run.stderr, '');
  const noCa = await cli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain', '--nats', url, '--token', 's3cret-token'], {});
  t.is(noCa.code, 1, 'without the CA the server is not trusted');
  t.regex(noCa.stderr, /cannot connect to NATS/);
  const ok = await cli(['replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--drain', '--nats', url, '--token', 's3cret-token', '--tls-ca', certs.ca], {});
  t.is(ok.code, 0, ok.stderr);
  t.is(fs.readFileSync(path.join(pair.standby, 'tls.txt'), 'utf8'), 'over tls');
});

test.serial('a standby without the purge permission, or without the trim records, applies all the same and says what that costs; one with both trims', async (t) => {
  const pair = await makePair('no-purge');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const server = await startNatsServer({ storeDir: path.join(pair.dir, 'secured-store'), config: permissionsConfig });
  t.teardown(() => server.stop());
  await setUpAsAdmin(t, pair, server.url);
  const agentEnv = { UNDERSTUDY_NATS_URL: server.url, UNDERSTUDY_NATS_USER: 'agent', UNDERSTUDY_NATS_PASS: 'agent-secret' };
  const app = await pair.runApp({ env: agentEnv, code: `for (let i = 0; i < 20; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x' + i);` });
  t.is(app.code, 0, app.stderr);
  const drain = (user: string, pass: string, state: string, dir: string) => cli(['replay', '--drain', '--root', `data=${dir}`, '--state', state, '--nats', server.url, '--user', user, '--password', pass, '--standby', user, '--keep-stream', '0'], {});
  const ro = await drain('standby-ro', 'standby-ro-secret', pair.state, pair.standby);
  t.is(ro.code, 0, ro.stderr);
  t.regex(ro.stderr, /cannot trim stream UNDERSTUDY below what every standby committed \(.*[Pp]ermission.*\): it keeps everything and fills up; allow this standby \$JS\.API\.STREAM\.PURGE\.UNDERSTUDY \(SECURITY\.md\), or another standby that has it trims it/);
  t.notRegex(ro.stderr, /cannot look after this standby's slot/, 'everything else a slot needs is allowed');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const admin = await connect({ servers: server.url, user: 'admin', pass: 'admin-secret' });
  t.teardown(() => admin.close());
  const jsm = await jetstreamManager(admin);
  t.is((await jsm.streams.info('UNDERSTUDY')).state.first_seq, 1, 'nothing was trimmed');
  // A standby that may not tell the agents how far to trim their spools says what that costs.
  const noTrim = await drain('standby-notrim', 'standby-notrim-secret', path.join(pair.dir, 'state-3'), path.join(pair.dir, 'standby-3'));
  t.is(noTrim.code, 0, noTrim.stderr);
  t.regex(noTrim.stderr, /cannot tell the agents how far their spools may be trimmed \(.*[Pp]ermission.*\): they go by what other standbys wrote there, or, while none did, by what one standby applied, which a slower one may still need; allow this standby \$KV\.UNDERSTUDY_STATE\.trim\.> \(SECURITY\.md\)/);
  const second = path.join(pair.dir, 'standby-2');
  const trimmer = await drain('replayer', 'replayer-secret', path.join(pair.dir, 'state-2'), second);
  t.is(trimmer.code, 0, trimmer.stderr);
  t.notRegex(trimmer.stderr, /cannot trim|cannot look after/);
  const info = await jsm.streams.info('UNDERSTUDY', { subjects_filter: 'understudy.understudy.journal.app' });
  t.is(info.state.subjects?.['understudy.understudy.journal.app'] ?? 0, 0, 'every standby committed every entry of app: trimmed below all');
});
