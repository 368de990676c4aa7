import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { parseRoots } from '../lib/roots';
import { readState, writeState, type RebaseRecord } from '../lib/state-bucket';
import { Replayer } from '../replayer/replayer';
import { makePair, type Pair, type RunResult } from './helpers/pair';
import { diffTrees } from './helpers/tree';

/**
 * The primary's side of a lost standby's recovery, end to end: agents under a running
 * application take a `rebase.<standby>` request (one of them), run baseline and verify --repair
 * as child processes, and leave the standby equal to the primary; a rebase whose children fail
 * ends `failed` with the reason while the application goes on.
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An application under the agent that appends to its own log every 20 ms until `stop` exists. */
function startApp(pair: Pair, root: string, stop: string, env: Record<string, string> = {}): Promise<RunResult> {
  return pair.runApp({
    env,
    code: `const fs = require('fs'); const log = ${JSON.stringify(root)} + '/log-' + process.pid; let i = 0;
      fs.writeFileSync(${JSON.stringify(root)} + '/started-' + process.pid, 'up');
      const t = setInterval(() => {
        fs.appendFileSync(log, (i++) + '\\n');
        if (fs.existsSync(${JSON.stringify(stop)})) { clearInterval(t); console.log('wrote ' + i); }
      }, 20);`,
  });
}

/** A following replayer of standby `standby` into `dir`, until the test ends. */
function follow(t: { teardown(fn: () => unknown): void }, pair: Pair, standby: string, dir: string): void {
  const ac = new AbortController();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${dir}`), standby,
    stateDir: path.join(pair.dir, `state-${standby}`), drain: false, log: () => undefined,
  }).run(ac.signal);
  t.teardown(async () => {
    ac.abort();
    await running;
  });
}

async function state(t: { teardown(fn: () => unknown): void }, pair: Pair): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  return { nc, kv: await openStateKv(nc, 'UNDERSTUDY') };
}

/** Every version of `rebase.<standby>` written, until it ends (done or failed) or `ms` pass. */
async function followRequest(kv: KV, standby: string, ms: number): Promise<RebaseRecord[]> {
  const seen: RebaseRecord[] = [];
  const deadline = Date.now() + ms;
  const w = await kv.watch({ key: `rebase.${standby}` });
  const timer = setTimeout(() => w.stop(), ms);
  try {
    for await (const e of w) {
      if (e.operation !== 'PUT') continue;
      const r = JSON.parse(e.string()) as RebaseRecord;
      seen.push(r);
      if (r.state === 'done' || r.state === 'failed' || Date.now() > deadline) break;
    }
  } finally {
    clearTimeout(timer);
    w.stop();
  }
  return seen;
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !ok(); await sleep(50)) if (Date.now() > deadline) throw new Error(`never: ${what}`);
}

test.serial('a lost standby\'s request: one of two agents takes it, runs baseline and verify --repair, and the standby equals the primary', async (t) => {
  const pair = await makePair('rebase');
  t.teardown(() => pair.close());
  // What was there before any agent: never journaled, so the standby lacks all of it.
  for (let i = 0; i < 40; i++) {
    fs.mkdirSync(path.join(pair.primary, `d${i % 4}`), { recursive: true });
    fs.writeFileSync(path.join(pair.primary, `d${i % 4}`, `f${i}`), `before the agent ${i}\n`.repeat(i));
  }
  fs.writeFileSync(path.join(pair.primary, 'kept'), 'the standby will lose this');
  fs.writeFileSync(path.join(pair.primary, 'altered'), 'the standby will change this');
  follow(t, pair, 'east', pair.standby);
  const stop = path.join(pair.dir, 'stop');
  const apps = [startApp(pair, pair.primary, stop), startApp(pair, pair.primary, stop)];
  const { kv } = await state(t, pair);
  // Both agents run and the standby follows them (it has their first files).
  await until('both applications are replicated', () => fs.readdirSync(pair.standby).filter((n) => n.startsWith('started-')).length === 2);
  t.true(fs.existsSync(path.join(pair.primary, 'd3', 'f39')) && !fs.existsSync(path.join(pair.standby, 'd3')), 'the standby lacks what was never journaled');
  // The standby's tree is damaged behind its back too.
  fs.writeFileSync(path.join(pair.standby, 'kept'), 'x');
  fs.rmSync(path.join(pair.standby, 'kept'));
  fs.writeFileSync(path.join(pair.standby, 'altered'), 'changed on the standby');
  fs.writeFileSync(path.join(pair.standby, 'extra'), 'only on the standby');
  fs.mkdirSync(path.join(pair.standby, 'extra-dir', 'inner'), { recursive: true });

  const watching = followRequest(kv, 'east', 120_000);
  await writeState(kv, 'rebase', 'east', { standby: 'east', state: 'requested', requested: Date.now() });
  const versions = await watching;
  const last = versions.at(-1)!;
  t.is(last.state, 'done', JSON.stringify(versions, null, 1));
  const takers = new Set(versions.filter((v) => v.state !== 'requested').map((v) => v.by));
  t.is(takers.size, 1, `one agent ran it: ${[...takers].join(', ')}`);
  t.regex(last.by ?? '', /^app(-\d+)?@\S+ \(pid \d+\)$/);
  t.deepEqual(versions.map((v) => v.step).filter((s) => s !== undefined && s !== 'starting'), ['baseline', 'verify', 'done']);
  t.true(typeof last.started === 'number' && typeof last.finished === 'number' && last.finished >= last.started);
  // The baseline put back what the standby lacked or lost; verify found what a baseline cannot remove.
  t.true((last.differences ?? 0) >= 2, `differences: ${last.differences}`);
  // The extra directory's removal takes what is below it: repaired counts objects sent.
  t.true((last.repaired ?? 0) >= 2 && (last.repaired ?? 0) <= (last.differences ?? 0), `repaired: ${last.repaired}`);
  t.like(await readState(kv, 'baseline', 'rebase-east'), { state: 'done' });
  t.like(await readState(kv, 'verify', 'rebase-east'), { equal: true, standby: 'east', repaired: last.repaired });

  fs.writeFileSync(stop, '');
  const ended = await Promise.all(apps);
  for (const a of ended) t.is(a.code, 0, a.stderr);
  const said = ended.map((a) => a.stderr).filter((s) => s.includes('rebases lost standby "east"'));
  t.is(said.length, 1, ended.map((a) => a.stderr).join('\n---\n'));
  t.regex(said[0], /the rebase of standby "east" is done: baseline "rebase-east" journaled, and verify found \d+ difference\(s\) and repaired \d+/);
  await until('the standby has the applications\' last lines', () => diffTrees(pair.primary, pair.standby).length === 0, 30_000).catch(() => undefined);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.false(fs.existsSync(path.join(pair.standby, 'extra')));
  t.false(fs.existsSync(path.join(pair.standby, 'extra-dir')));
  t.is(fs.readFileSync(path.join(pair.standby, 'altered'), 'utf8'), 'the standby will change this');
});

test.serial('a rebase whose verify fails (the standby\'s replayer is not running) ends failed with the reason; the application goes on writing', async (t) => {
  const pair = await makePair('rebase-fail');
  t.teardown(() => pair.close());
  const stop = path.join(pair.dir, 'stop');
  const app = startApp(pair, pair.primary, stop);
  const { kv } = await state(t, pair);
  await until('the application runs', () => fs.readdirSync(pair.primary).some((n) => n.startsWith('log-')));
  const watching = followRequest(kv, 'west', 60_000);
  await writeState(kv, 'rebase', 'west', { standby: 'west', state: 'requested', requested: Date.now() });
  const last = (await watching).at(-1)!;
  t.is(last.state, 'failed', JSON.stringify(last));
  t.is(last.step, 'verify');
  t.regex(last.error ?? '', /^verify --repair exited with 1: understudy verify: no replayer answered on understudy\.understudy\.verify\.west/);
  t.true(typeof last.finished === 'number');
  t.is(last.differences, undefined, 'nothing was compared');
  t.like(await readState(kv, 'baseline', 'rebase-west'), { state: 'done' });
  // The application is still there and still writing.
  const log = fs.readdirSync(pair.primary).find((n) => n.startsWith('log-'))!;
  const before = fs.statSync(path.join(pair.primary, log)).size;
  await until('the application writes on', () => fs.statSync(path.join(pair.primary, log)).size > before);
  fs.writeFileSync(stop, '');
  const ended = await app;
  t.is(ended.code, 0, ended.stderr);
  t.regex(ended.stdout, /wrote \d+/);
  t.regex(ended.stderr, /the rebase of standby "west" failed: verify --repair exited with 1/);
});
