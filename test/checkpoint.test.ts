import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { spawn } from 'node:child_process';
import { CLI, makePair, runCli } from './helpers/pair';
import { streamEntries } from './helpers/stream-entries';
import { liveJournals, readNumber, startApp, until } from './helpers/agent-apps';
import { openStateKv } from '../lib/nats';
import { readState } from '../lib/state-bucket';
import { checkpointSubject, parseCheckpointReply } from '../lib/checkpoint-protocol';
import type { CheckpointOp, Entry } from '../lib/entry';
import { comparePosition } from '../lib/entry';

/**
 * A parent and a forked child take turns through IPC: the parent writes counter a = n and
 * appends n to log-a, then tells the child, which writes b = n and appends n to log-b, then
 * answers. Every instant of the primary has b <= a <= b + 1, and each log as long as its
 * counter or one shorter; a cut that a causal chain crossed (the child's change in, the
 * parent's change that caused it out) breaks them.
 */
const TURNS = `
const fs = require('fs');
const { fork } = require('child_process');
const dir = process.env.DATA;
if (process.argv[2] === 'child') {
  process.on('message', (n) => {
    fs.writeFile(dir + '/b', String(n), (err) => {
      if (err) throw err;
      fs.appendFileSync(dir + '/log-b', n + '\\n');
      process.send(n);
    });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  const child = fork(__filename, ['child']);
  fs.writeFileSync(dir + '/child.pid', String(child.pid));
  let n = 0;
  const turn = async () => {
    if (fs.existsSync(dir + '/../stop')) { child.disconnect(); return; }
    n++;
    fs.writeFileSync(dir + '/a', String(n));
    await fs.promises.appendFile(dir + '/log-a', n + '\\n');
    child.send(n);
  };
  child.on('message', () => void turn());
  void turn();
}
`;

/** The files of a root as the entries of each journal before its cut make them (puts and appends only: what the app does). */
function filesAtCut(entries: Map<string, Entry[]>, cp: CheckpointOp): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const c of cp.cut) {
    for (const e of entries.get(c.j) ?? []) {
      const h = e.header;
      if (comparePosition(h, c) >= 0) break;
      if (h.r !== 'data') continue;
      if (h.op === 'put') files.set(h.p, e.data);
      else if (h.op === 'append') {
        const had = files.get(h.p) ?? Buffer.alloc(0);
        files.set(h.p, Buffer.concat([had.subarray(0, h.at), e.data]));
      }
    }
  }
  return files;
}

const lines = (b: Buffer | undefined): number[] => (b === undefined ? [] : b.toString().split('\n').filter((l) => l !== '').map(Number));

test.serial('checkpoints taken while two processes take turns are consistent cuts: the cross-process invariant holds at each', async (t) => {
  const pair = await makePair('cp-turns');
  t.teardown(() => pair.close());
  startApp(pair, TURNS, t);
  await until('both processes writing and heartbeating', async () => readNumber(path.join(pair.primary, 'b')) > 20 && (await liveJournals(pair)).length === 2);
  const names = ['c1', 'c2', 'c3', 'c4'];
  for (const name of names) {
    const r = await runCli(['checkpoint', name, '--nats', pair.server.url]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`checkpoint ${name} taken: 2 journals`));
    await new Promise((res) => setTimeout(res, 100));
  }
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  // Every checkpoint entry is in the stream already (acked before the command exited); what came before each is too.
  const entries = await streamEntries(pair.server.url);
  const nc = await connect({ servers: pair.server.url });
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  for (const name of names) {
    const record = await readState(kv, 'checkpoint', name);
    t.is(record?.state, 'taken');
    t.is(record?.cut.length, 2);
    // Each journal holds its checkpoint entry exactly at its cut.
    const found: CheckpointOp[] = [];
    for (const c of record?.cut ?? []) {
      const at = entries.get(c.j)?.find((e) => e.header.e === c.e && e.header.s === c.s);
      t.is(at?.header.op, 'checkpoint', `journal ${c.j} has its ${name} entry at ${c.e}.${c.s}`);
      if (at?.header.op === 'checkpoint') {
        t.is(at.header.name, name);
        t.is(at.header.id, record?.id ?? '');
        found.push(at.header);
      }
    }
    const cp = found[0];
    t.deepEqual(cp.cut, record?.cut);
    const files = filesAtCut(entries, cp);
    const a = Number(files.get('a')?.toString() ?? 0);
    const b = Number(files.get('b')?.toString() ?? 0);
    const logA = lines(files.get('log-a'));
    const logB = lines(files.get('log-b'));
    t.true(a > 0, `${name}: the parent had written`);
    t.true(b <= a && a <= b + 1, `${name}: b <= a <= b + 1 (a=${a}, b=${b})`);
    t.true(logA.length === a || logA.length === a - 1, `${name}: log-a has a or a-1 lines (a=${a}, ${logA.length})`);
    t.true(logB.length === b || logB.length === b - 1, `${name}: log-b has b or b-1 lines (b=${b}, ${logB.length})`);
    // Across processes: the child's turn n follows the parent's log line n, and the parent's turn n+1 the child's log line n.
    t.true(logA.length >= b, `${name}: every b the child wrote has its cause in log-a (b=${b}, log-a ${logA.length})`);
    t.true(logB.length >= a - 1, `${name}: every a the parent wrote has its cause in log-b (a=${a}, log-b ${logB.length})`);
    t.deepEqual(logA, logA.map((_, i) => i + 1));
  }
  await nc.close();
});

/** Two processes that each tick a counter every few ms, independently. */
const TICKERS = `
const fs = require('fs');
const { fork } = require('child_process');
const dir = process.env.DATA;
const me = process.argv[2] === 'child' ? 'child' : 'parent';
if (me === 'parent') {
  const child = fork(__filename, ['child']);
  fs.writeFileSync(dir + '/child.pid', String(child.pid));
}
let n = 0;
let m = 0;
const sync = setInterval(() => {
  if (fs.existsSync(dir + '/../stop')) { clearInterval(sync); clearInterval(later); return; }
  fs.writeFileSync(dir + '/' + me + '-sync', String(++n));
}, 5);
const later = setInterval(() => { void fs.promises.writeFile(dir + '/' + me + '-async', String(++m)); }, 5);
`;

test.serial('an agent that does not answer fails the checkpoint, named, within the timeout; the others thaw, and it writes no entry after SIGCONT', async (t) => {
  const pair = await makePair('cp-stop');
  t.teardown(() => pair.close());
  startApp(pair, TICKERS, t);
  const file = (n: string): string => path.join(pair.primary, n);
  await until('both ticking and heartbeating', async () => readNumber(file('child-sync')) > 10 && (await liveJournals(pair)).length === 2);
  const childPid = Number(fs.readFileSync(file('child.pid'), 'utf8'));
  process.kill(childPid, 'SIGSTOP');
  const r = await runCli(['checkpoint', 'stuck', '--nats', pair.server.url, '--timeout-ms', '800']);
  t.not(r.code, 0);
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  const record = await readState(kv, 'checkpoint', 'stuck');
  t.is(record?.state, 'failed');
  t.is(record?.missing?.length, 1);
  const missing = record?.missing?.[0].journal ?? '';
  t.is((await readState(kv, 'agent', missing))?.pid, childPid, 'the journal named is the stopped process\'s');
  t.regex(r.stderr, new RegExp(`journal ${missing}: did not answer within 800 ms`));
  // The parent was frozen, then thawed by the abort: its application goes on.
  const parentSync = readNumber(file('parent-sync'));
  const parentAsync = readNumber(file('parent-async'));
  await until('the parent ticking after the failed checkpoint', () => readNumber(file('parent-sync')) > parentSync + 5 && readNumber(file('parent-async')) > parentAsync + 5);
  const childSync = readNumber(file('child-sync'));
  const childAsync = readNumber(file('child-async'));
  process.kill(childPid, 'SIGCONT');
  // The stale prepare (and its abort) reach the child now; that it freezes nothing for them is
  // shown by the next test, which sends a prepare with no abort after it.
  await until('the child ticking after SIGCONT', () => readNumber(file('child-sync')) > childSync && readNumber(file('child-async')) > childAsync);
  await until('the child ticking on', () => readNumber(file('child-sync')) > childSync + 5 && readNumber(file('child-async')) > childAsync + 5);
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  await new Promise((res) => setTimeout(res, 1500));
  const entries = await streamEntries(pair.server.url);
  t.true((entries.get(missing)?.length ?? 0) > 0);
  for (const [j, es] of entries) t.false(es.some((e) => e.header.op === 'checkpoint'), `journal ${j} has no checkpoint entry`);
});

test.serial('a prepare that never gets its commit freezes the application only until its deadline; a commit after it is refused', async (t) => {
  const pair = await makePair('cp-bounded');
  t.teardown(() => pair.close());
  startApp(pair, TICKERS, t);
  const file = (n: string): string => path.join(pair.primary, n);
  await until('ticking and heartbeating', async () => readNumber(file('parent-sync')) > 10 && (await liveJournals(pair)).length === 2);
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const journals = await liveJournals(pair);
  // A client that prepares and never commits, as a command killed after its prepare.
  const replies = await Promise.all(journals.map(async (j) => parseCheckpointReply((await nc.request(checkpointSubject('UNDERSTUDY', j), JSON.stringify({ op: 'prepare', name: 'never', id: 'p1', thawAfterMs: 700, sentAt: Date.now() }), { timeout: 5000 })).string())));
  for (const r of replies) t.true(r.ok, JSON.stringify(r));
  const frozen = { sync: readNumber(file('parent-sync')), async: readNumber(file('parent-async')), childSync: readNumber(file('child-sync')), childAsync: readNumber(file('child-async')) };
  await until('sync and async calls going on after the deadline', () => readNumber(file('parent-sync')) > frozen.sync + 5 && readNumber(file('parent-async')) > frozen.async + 5
    && readNumber(file('child-sync')) > frozen.childSync + 5 && readNumber(file('child-async')) > frozen.childAsync + 5);
  const cut = replies.map((r) => (r.ok ? { j: r.j, e: r.e, s: r.s } : { j: 'x', e: 0, s: 1 }));
  for (const j of journals) {
    const late = parseCheckpointReply((await nc.request(checkpointSubject('UNDERSTUDY', j), JSON.stringify({ op: 'commit', name: 'never', id: 'p1', cut }), { timeout: 5000 })).string());
    t.false(late.ok, `journal ${j} refuses a commit after its thaw`);
  }
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  await new Promise((res) => setTimeout(res, 1500));
  const entries = await streamEntries(pair.server.url);
  for (const [j, es] of entries) t.false(es.some((e) => e.header.op === 'checkpoint'), `journal ${j} has no checkpoint entry`);
});

test.serial('a prepare that reaches a stopped agent only after its deadline (its command gone, no abort) is refused as too late: the agent does not freeze after SIGCONT', async (t) => {
  const pair = await makePair('cp-late');
  t.teardown(() => pair.close());
  startApp(pair, TICKERS, t);
  const file = (n: string): string => path.join(pair.primary, n);
  await until('both ticking and heartbeating', async () => readNumber(file('child-sync')) > 10 && (await liveJournals(pair)).length === 2);
  const childPid = Number(fs.readFileSync(file('child.pid'), 'utf8'));
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  let journal = '';
  // Its record names its pid once its shipper has reported; under load that may come after both heartbeat.
  await until('the child\'s journal in the state bucket', async () => {
    for (const j of await liveJournals(pair)) if ((await readState(kv, 'agent', j))?.pid === childPid) journal = j;
    return journal !== '';
  }, 20_000).catch(() => undefined);
  t.not(journal, '', 'the child\'s journal');
  process.kill(childPid, 'SIGSTOP');
  // As a command killed after its prepare: no abort follows. The prepare waits in the child's socket.
  const thawAfterMs = 3000;
  const sentAt = Date.now();
  nc.publish(checkpointSubject('UNDERSTUDY', journal), JSON.stringify({ op: 'prepare', name: 'stale', id: 'stale1', thawAfterMs, sentAt }));
  await nc.flush();
  await until('the prepare\'s deadline passed', () => Date.now() > sentAt + thawAfterMs);
  const childSync = readNumber(file('child-sync'));
  const childAsync = readNumber(file('child-async'));
  process.kill(childPid, 'SIGCONT');
  const resumed = Date.now();
  // Frozen on it, the child would tick again only thawAfterMs after the prepare reached it (now):
  // a tick before that instant is a call that was not held. The bound is the protocol's, not a speed.
  await until('the child ticking after SIGCONT', () => readNumber(file('child-sync')) > childSync && readNumber(file('child-async')) > childAsync);
  t.true(Date.now() < resumed + thawAfterMs, 'the child\'s calls went on before a freeze on the stale prepare could have ended: it did not freeze');
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  await new Promise((res) => setTimeout(res, 1500));
  const entries = await streamEntries(pair.server.url);
  t.true((entries.get(journal)?.length ?? 0) > 0);
  for (const [j, es] of entries) t.false(es.some((e) => e.header.op === 'checkpoint'), `journal ${j} has no checkpoint entry`);
});

test.serial('--every takes checkpoints named NAME-<UTC stamp> until SIGINT, saying each one', async (t) => {
  const pair = await makePair('cp-every');
  t.teardown(() => pair.close());
  startApp(pair, TICKERS, t);
  await until('ticking and heartbeating', async () => readNumber(path.join(pair.primary, 'parent-sync')) > 10 && (await liveJournals(pair)).length === 2);
  const cmd = spawn(process.execPath, [CLI, 'checkpoint', 'nightly', '--every', '2s', '--nats', pair.server.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => cmd.kill('SIGKILL'));
  let stdout = '';
  cmd.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => cmd.on('close', (code) => resolve(code)));
  await until('two checkpoints taken', () => (stdout.match(/taken: 2 journals/g) ?? []).length >= 2);
  cmd.kill('SIGINT');
  t.is(await exited, 0);
  const names = [...stdout.matchAll(/checkpoint (\S+) taken/g)].map((m) => m[1]);
  t.true(names.length >= 2);
  for (const n of names) t.regex(n, /^nightly-\d{8}T\d{6}Z$/);
  t.is(new Set(names).size, names.length);
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  for (const n of names) t.is((await readState(kv, 'checkpoint', n))?.state, 'taken');
});

test.serial('a checkpoint that meets fs.writeFile, fs.cp and fs.rm in flight waits for them: their own inner fs calls are not held', async (t) => {
  const pair = await makePair('cp-inner');
  t.teardown(() => pair.close());
  // Each of these calls public fs functions from its own callbacks (write and close, promises, unlink).
  startApp(pair, `
    const fs = require('fs');
    const dir = process.env.DATA;
    const big = Buffer.alloc(2 * 1024 * 1024, 'z');
    fs.mkdirSync(dir + '/src/a/b', { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(dir + '/src/a/b/f' + i, 'x');
    let n = 0;
    const loop = () => {
      if (fs.existsSync(dir + '/../stop')) return;
      fs.writeFile(dir + '/big', big, (err) => {
        if (err) throw err;
        fs.cp(dir + '/src', dir + '/copy', { recursive: true }, (err2) => {
          if (err2) throw err2;
          fs.rm(dir + '/copy', { recursive: true }, (err3) => {
            if (err3) throw err3;
            fs.writeFileSync(dir + '/count', String(++n));
            setImmediate(loop);
          });
        });
      });
    };
    loop();
  `, t);
  await until('looping and heartbeating', async () => readNumber(path.join(pair.primary, 'count')) > 3 && (await liveJournals(pair)).length === 1);
  for (let i = 0; i < 8; i++) {
    const r = await runCli(['checkpoint', `inner${i}`, '--nats', pair.server.url, '--timeout-ms', '3000']);
    t.is(r.code, 0, r.stderr);
  }
});
