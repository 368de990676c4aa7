import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { makePair, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { freePort } from './helpers/nats-server';

function seed(root: string): void {
  for (let i = 0; i < 200; i++) {
    fs.mkdirSync(path.join(root, `d${i % 7}`), { recursive: true });
    fs.writeFileSync(path.join(root, `d${i % 7}`, `f${i}`), `content ${i}\n`.repeat(i % 5));
  }
  fs.symlinkSync('d1/f1', path.join(root, 'link'));
  fs.writeFileSync(path.join(root, 'modal'), 'x');
}

/** A replayer that keeps following, as on a real standby, until the test ends. */
async function follow(pair: Pair): Promise<{ stop: () => Promise<void>; metricsPort: number }> {
  const ac = new AbortController();
  const metricsPort = await freePort();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`),
    stateDir: pair.state, drain: false, log: () => undefined, metricsPort,
  }).run(ac.signal);
  return { stop: async () => { ac.abort(); await running; }, metricsPort };
}

function verifyCli(pair: Pair, extra: string[] = []): ReturnType<typeof runCli> {
  return runCli(['verify', '--root', `data=${pair.primary}`, '--nats', pair.server.url, ...extra], { UNDERSTUDY_SPOOL_DIR: pair.spool });
}

async function baselined(label: string, t: { teardown(fn: () => unknown): void }): Promise<{ pair: Pair; replayer: Awaited<ReturnType<typeof follow>> }> {
  const pair = await makePair(label);
  seed(pair.primary);
  const b = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  if (b.code !== 0) throw new Error(b.stderr);
  const replayer = await follow(pair);
  t.teardown(async () => {
    await replayer.stop();
    await pair.close();
  });
  // Baselined and applied: the trees agree before each test does its part.
  for (let i = 0; diffTrees(pair.primary, pair.standby).length > 0; i++) {
    if (i > 200) throw new Error(`standby never caught up: ${diffTrees(pair.primary, pair.standby).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pair, replayer };
}

test.serial('verify on equal trees exits 0 and says so; status and the metrics show it', async (t) => {
  const { pair, replayer } = await baselined('verify-equal', t);
  const r = await verifyCli(pair);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.regex(r.stdout, /^equal$/m);
  const st = await runCli(['status', '--nats', pair.server.url]);
  t.regex(st.stdout, /verify "verify": \S+ data: equal/);
  t.regex(st.stdout, /baseline "baseline": done \S+, \d+ objects/);
  const metrics = await (await fetch(`http://127.0.0.1:${replayer.metricsPort}/metrics`)).text();
  t.regex(metrics, /^understudy_verify_equal\{name="verify"\} 1$/m);
  t.regex(metrics, /^understudy_verify_differences\{name="verify"\} 0$/m);
  t.regex(metrics, /^understudy_baseline_ok\{name="baseline"\} 1$/m);
});

test.serial('verify names exactly the five damages to the standby and exits 1; --repair mends them', async (t) => {
  const { pair } = await baselined('verify-damage', t);
  const sb = (p: string): string => path.join(pair.standby, p);
  fs.writeFileSync(sb('d3/f3'), 'changed on the standby');
  fs.rmSync(sb('d4/f4'));
  fs.writeFileSync(sb('d5/added'), 'not on the primary');
  fs.chmodSync(sb('modal'), 0o600);
  fs.rmSync(sb('link'));
  fs.symlinkSync('elsewhere', sb('link'));
  const r = await verifyCli(pair, ['--json']);
  t.is(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as { equal: boolean; found: { root: string; path: string; kind: string }[] };
  t.false(out.equal);
  t.deepEqual(out.found.map((d) => `${d.kind} ${d.path}`).sort(), ['content d3/f3', 'extra d5/added', 'link link', 'missing d4/f4', 'mode modal']);
  const fixed = await verifyCli(pair, ['--repair']);
  t.is(fixed.code, 0, fixed.stderr + fixed.stdout);
  t.regex(fixed.stdout, /equal after repairing 5 object\(s\)/);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a type difference (a directory where the primary has a file) is repaired too', async (t) => {
  const { pair } = await baselined('verify-type', t);
  fs.rmSync(path.join(pair.standby, 'modal'));
  fs.mkdirSync(path.join(pair.standby, 'modal', 'inner'), { recursive: true });
  const r = await verifyCli(pair, ['--repair', '--json']);
  t.is(r.code, 0, r.stderr + r.stdout);
  t.deepEqual((JSON.parse(r.stdout) as { found: { kind: string; path: string }[] }).found.map((d) => `${d.kind} ${d.path}`), ['type modal', 'extra modal/inner']);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('verify during a steady stream of writes under the agent reports no difference', async (t) => {
  const { pair } = await baselined('verify-live', t);
  const stopFile = path.join(pair.dir, 'stop');
  const app = pair.runApp({
    code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)}; let i = 0;
      const t = setInterval(() => {
        fs.writeFileSync(r + '/d' + (i % 7) + '/f' + (i % 200), 'live ' + i); fs.appendFileSync(r + '/log', i++ + '\\n');
        if (fs.existsSync(${JSON.stringify(stopFile)})) clearInterval(t);
      }, 10);`,
  });
  await new Promise((r) => setTimeout(r, 500));
  const r = await verifyCli(pair);
  fs.writeFileSync(stopFile, '');
  t.is((await app).code, 0);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.notRegex(r.stdout, /^(missing|extra|content|mode|type|link) /m);
  t.log(r.stdout.trim().split('\n').at(-1));
});

test('verify without a running replayer, or with bad flags, says what is wrong', async (t) => {
  const pair = await makePair('verify-alone');
  t.teardown(() => pair.close());
  const r = await verifyCli(pair);
  t.is(r.code, 1);
  t.regex(r.stderr, /no standby is registered in stream UNDERSTUDY's state bucket/);
  const named = await verifyCli(pair, ['--standby', 'nobody']);
  t.is(named.code, 1);
  t.regex(named.stderr, /no replayer answered on understudy\.understudy\.verify\.nobody .* is "understudy replay" running/);
  const bad = await verifyCli(pair, ['--hash', 'md5']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--hash md5 is not one of xxh64, sha256/);
  const badName = await verifyCli(pair, ['--standby', 'a b']);
  t.is(badName.code, 2);
  t.regex(badName.stderr, /--standby "a b" is not a standby's name/);
});

test.serial('two standbys: verify --standby compares with the one it names, and finds the damage only where it is', async (t) => {
  const pair = await makePair('verify-two');
  t.teardown(() => pair.close());
  seed(pair.primary);
  const b = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(b.code, 0, b.stderr);
  const dirs = { east: path.join(pair.dir, 'east'), west: path.join(pair.dir, 'west') };
  for (const [standby, dir] of Object.entries(dirs)) {
    const ac = new AbortController();
    const running = new Replayer({
      nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${dir}`), standby,
      stateDir: path.join(pair.dir, `state-${standby}`), drain: false, log: () => undefined,
    }).run(ac.signal);
    t.teardown(async () => { ac.abort(); await running; });
  }
  for (let i = 0; Object.values(dirs).some((d) => diffTrees(pair.primary, d).length > 0); i++) {
    if (i > 200) throw new Error('the standbys never caught up');
    await new Promise((r) => setTimeout(r, 50));
  }
  fs.writeFileSync(path.join(dirs.west, 'd3', 'f3'), 'changed on west only');
  fs.writeFileSync(path.join(dirs.west, 'extra'), 'only on west');
  // Both have committed (and so registered) by now: unnamed, the choice is refused with their names.
  let unnamed = await verifyCli(pair);
  for (let i = 0; i < 50 && !/2 standbys/.test(unnamed.stderr); i++) {
    await new Promise((r) => setTimeout(r, 100));
    unnamed = await verifyCli(pair);
  }
  t.is(unnamed.code, 2, unnamed.stdout + unnamed.stderr);
  t.regex(unnamed.stderr, /2 standbys are registered \(east, west\): say which to compare with, --standby NAME/);
  const east = await verifyCli(pair, ['--standby', 'east']);
  t.is(east.code, 0, east.stdout + east.stderr);
  t.regex(east.stdout, /^equal$/m);
  const west = await verifyCli(pair, ['--standby', 'west', '--json']);
  t.is(west.code, 1, west.stderr);
  const out = JSON.parse(west.stdout) as { standby: string; found: { path: string; kind: string }[] };
  t.is(out.standby, 'west');
  t.deepEqual(out.found.map((d) => `${d.kind} ${d.path}`).sort(), ['content d3/f3', 'extra extra']);
  const fixed = await verifyCli(pair, ['--standby', 'west', '--repair']);
  t.is(fixed.code, 0, fixed.stdout + fixed.stderr);
  t.regex(fixed.stdout, /equal after repairing 2 object\(s\)/);
  t.deepEqual(diffTrees(pair.primary, dirs.west), []);
  t.deepEqual(diffTrees(pair.primary, dirs.east), [], 'the repair reached east too, where it changed nothing');
});
