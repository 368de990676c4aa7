import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { openStateKv } from '../lib/nats';
import { readState } from '../lib/state-bucket';
import { listSegments } from '../lib/spool';
import { allJournalsSubject } from '../lib/subjects';
import { startNatsServer, type NatsServer } from './helpers/nats-server';
import { makePair, runCli, type Pair } from './helpers/pair';
import { startStandby, type StandbyProc } from './helpers/standby-proc';
import { diffTrees } from './helpers/tree';

const MiB = 1024 * 1024;
/** The stream these tests run against: small, so that a test writes several times its size. */
const STREAM_BYTES = 8 * MiB;

interface Rig {
  pair: Pair;
  server: NatsServer;
  nc: NatsConnection;
  jsm: JetStreamManager;
  env: Record<string, string>;
  standby(name: string, args?: string[]): StandbyProc;
}

/**
 * A server with little JetStream storage (max_file_store) and a stream of 8 MiB on it, made as
 * understudy makes its own (limits retention, discard new), which the agents then adopt.
 */
async function rig(t: ExecutionContext, label: string, streamBytes = STREAM_BYTES): Promise<Rig> {
  const pair = await makePair(label);
  t.teardown(() => pair.close());
  await pair.server.stop();
  const server = await startNatsServer({
    storeDir: path.join(pair.dir, 'small-store'),
    config: (port, store) => `listen: 127.0.0.1:${port}\njetstream { store_dir: "${store}", max_file_store: 64MB }\n`,
  });
  t.teardown(() => server.stop());
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'UNDERSTUDY', subjects: [allJournalsSubject('UNDERSTUDY')], storage: StorageType.File, retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New, max_bytes: streamBytes, num_replicas: 1, duplicate_window: 120 * 1e9,
  });
  const procs: StandbyProc[] = [];
  t.teardown(async () => {
    for (const p of procs) await p.stop();
  });
  return {
    pair, server, nc, jsm,
    env: { UNDERSTUDY_NATS_URL: server.url, UNDERSTUDY_SPOOL_SEGMENT_BYTES: String(256 * 1024) } as Record<string, string>,
    standby(name, args = []) {
      const p = startStandby(pair.dir, name, server.url, ['--keep-stream', '0', ...args]);
      procs.push(p);
      return p;
    },
  };
}

/** An application under the agent that rewrites `files` files of 64 KiB `rounds` times, paced, so `files * rounds * 64 KiB` go through the stream. */
function writer(r: Rig, rounds: number, files = 16, tag = 'r') {
  return r.pair.runApp({
    env: r.env,
    code: `
      const fs = require('fs');
      const block = (round, i) => Buffer.alloc(64 * 1024, '${tag}' + round + '.' + i);
      (async () => {
        for (let round = 0; round < ${rounds}; round++) {
          for (let i = 0; i < ${files}; i++) {
            fs.writeFileSync(${JSON.stringify(r.pair.primary)} + '/f' + i, block(round, i));
            await new Promise((ok) => setTimeout(ok, 20));
          }
        }
      })();`,
  });
}

/** Polls `cond` for up to `ms`; fails the test with `what` if it never holds. */
async function until(t: ExecutionContext, what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) t.fail(`never: ${what}`);
    if (Date.now() > end) return;
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

/** Whether two trees are equal now (a live replayer's temporary file may vanish under the walk: not equal yet). */
function equal(a: string, b: string): boolean {
  try {
    return diffTrees(a, b).length === 0;
  } catch {
    return false;
  }
}

test.serial('an application writes several times the stream\'s size while one and then two standbys follow: nothing dropped, never refused, both identical, the stream trimmed', async (t) => {
  // A stream of 16 MiB: one that joins late holds it back while it reads past what is gone and is rebased.
  const r = await rig(t, 'slots-soak', 2 * STREAM_BYTES);
  // A long-lived process of the service: its agent answers resends and takes rebase requests throughout.
  const stopFile = path.join(r.pair.dir, 'stop-idle-app');
  t.teardown(() => fs.writeFileSync(stopFile, ''));
  const idle = r.pair.runApp({
    env: { ...r.env, UNDERSTUDY_NAME: 'server' },
    code: `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(r.pair.primary)} + '/alive', 'yes');
      setInterval(() => { if (fs.existsSync(${JSON.stringify(stopFile)})) process.exit(0); }, 200);`,
  });
  const b1 = r.standby('b1');
  await b1.waitFor(/following stream/);
  let biggest = 0;
  const watch = setInterval(() => void r.jsm.streams.info('UNDERSTUDY').then((i) => (biggest = Math.max(biggest, i.state.bytes)), () => undefined), 200);
  t.teardown(() => clearInterval(watch));
  // 48 × 16 × 64 KiB: 48 MiB through a stream of 16, from one process of the service; b2 joins half way,
  // when the stream was trimmed. (Another process of it, idle, runs throughout too.)
  const kv0 = await openStateKv(r.nc, 'UNDERSTUDY');
  const app = writer(r, 48, 16, 'p');
  await until(t, 'half of it was shipped', async () => ((await readState(kv0, 'agent', 'app'))?.acked.seq ?? 0) >= 384);
  const b2 = r.standby('b2');
  const written = await app;
  t.is(written.code, 0, written.stderr);
  t.notRegex(written.stderr, /refuses|spool is full|cannot journal/, 'the stream took every entry, and the spool every change');
  const kv = await openStateKv(r.nc, 'UNDERSTUDY');
  // b2 joined a trimmed stream: what came before is gone for it, so it is lost, asks for a rebase, and is made whole.
  await until(t, 'both standbys equal the primary, and neither is lost', async () =>
    equal(r.pair.primary, b1.dir) && equal(r.pair.primary, b2.dir) && (await readState(kv, 'lost', 'b2')) === undefined, 120_000);
  clearInterval(watch);
  t.regex(b2.log(), /entries it needs are gone[^]*this standby is whole again/);
  const info = await r.jsm.streams.info('UNDERSTUDY');
  const beat = await readState(kv, 'agent', 'app');
  t.true((beat?.acked.seq ?? 0) * 64 * 1024 >= 3 * 2 * STREAM_BYTES, `${beat?.acked.seq} entries of 64 KiB went through the stream`);
  t.true(info.state.first_seq > 1, 'the stream was trimmed');
  t.log(`the stream held at most ${(biggest / MiB).toFixed(1)} MiB of its ${2 * STREAM_BYTES / MiB} MiB`);
  t.is(beat?.dropped, 0);
  t.is(beat?.refused, undefined);
  t.notRegex(b1.log(), /LOST|gone|cannot trim/);
  fs.writeFileSync(stopFile, '');
  t.is((await idle).code, 0);
});

test.serial('a standby stopped for a while holds the stream and the spools back, and catches up from what they kept', async (t) => {
  const r = await rig(t, 'slots-stopped');
  const b1 = r.standby('b1');
  let b2 = r.standby('b2');
  await b1.waitFor(/following stream/);
  await b2.waitFor(/following stream/);
  t.is((await writer(r, 1)).code, 0);
  await until(t, 'both caught up', () => equal(r.pair.primary, b1.dir) && equal(r.pair.primary, b2.dir));
  await new Promise((ok) => setTimeout(ok, 1500)); // b2's last commit is recorded
  t.is(await b2.stop(), 0);
  const kv = await openStateKv(r.nc, 'UNDERSTUDY');
  const held = await readState(kv, 'standby', 'b2');
  // 3 MiB while it is down: under its default limit (75 % of the stream).
  t.is((await writer(r, 3, 16, 'later')).code, 0);
  await until(t, 'b1 caught up', () => equal(r.pair.primary, b1.dir));
  await new Promise((ok) => setTimeout(ok, 2500)); // a few slot rounds
  const info = await r.jsm.streams.info('UNDERSTUDY');
  t.true(info.state.first_seq <= held!.streamSeq + 1, `the stream (from ${info.state.first_seq}) keeps what b2 (at ${held!.streamSeq}) lacks`);
  const segments = listSegments(path.join(r.pair.spool, 'app'));
  t.true(segments.length > 0 && segments[0].first <= held!.journals.app.s + 1, `the spool (from ${segments[0]?.first}) keeps what b2 (at ${held!.journals.app.s}) lacks`);
  const status = await runCli(['status'], r.env);
  t.regex(status.stdout, /^standby b2 on \S+: STOPPED since \S+ \(it holds the stream and spools back\); committed stream position \d+ of \d+ \(\d+ behind, about [\d.]+ MiB, [\d.]+ s\); may fall [\d.]+ MiB further behind before it is lost/m, status.stdout);
  b2 = r.standby('b2');
  await until(t, 'b2 caught up after its restart', () => equal(r.pair.primary, b2.dir));
  t.notRegex(b2.log(), /LOST|gone/);
  await until(t, 'with b2 back the stream and the spool are trimmed past where it was', async () => (await r.jsm.streams.info('UNDERSTUDY')).state.first_seq > held!.streamSeq + 1);
});

test.serial('a standby down past its limit is lost while the other goes on; run again, it says so, asks for a rebase and is made whole by itself; standby drop forgets one', async (t) => {
  const r = await rig(t, 'slots-lost');
  const b1 = r.standby('b1');
  const b2 = r.standby('b2', ['--max-standby-lag', '1MiB']);
  await b1.waitFor(/following stream/);
  await b2.waitFor(/following stream/);
  t.is((await writer(r, 1)).code, 0);
  await until(t, 'both caught up', () => equal(r.pair.primary, b1.dir) && equal(r.pair.primary, b2.dir));
  await new Promise((ok) => setTimeout(ok, 1500));
  t.is(await b2.stop(), 0);
  const kv = await openStateKv(r.nc, 'UNDERSTUDY');
  const held = await readState(kv, 'standby', 'b2');
  t.deepEqual(held?.maxLag, { bytes: MiB });
  t.is((await writer(r, 3, 16, 'later')).code, 0);
  await b1.waitFor(/standby b2 is LOST: it held back about [\d.]+ MiB of the stream \(its limit: 1\.0 MiB\)/);
  await until(t, 'b1 caught up', () => equal(r.pair.primary, b1.dir));
  await until(t, 'the stream moved on past b2', async () => (await r.jsm.streams.info('UNDERSTUDY')).state.first_seq > held!.streamSeq + 1);
  const lost = await readState(kv, 'lost', 'b2');
  t.like(lost, { standby: 'b2', by: 'b1', streamSeq: held!.streamSeq });
  const status = await runCli(['status', '--max-lag', '1000000'], r.env);
  t.is(status.code, 1, 'a lost standby fails the monitoring check');
  t.regex(status.stdout, /^STANDBY b2 on \S+ IS LOST since \S+ \(marked by b1: it held back about/m);
  const json = JSON.parse((await runCli(['status', '--json'], r.env)).stdout) as { standbys: { name: string; state: string; safe_bytes: number }[] };
  t.deepEqual(json.standbys.map((s) => [s.name, s.state]), [['b1', 'streaming'], ['b2', 'lost']]);

  // An application runs on the primary while b2 comes back: its agent resends what b2 asks for, and takes
  // b2's rebase request (a baseline of its roots, then verify --repair against b2).
  const stopFile = path.join(r.pair.dir, 'stop-idle-app');
  const idle = r.pair.runApp({
    env: r.env,
    code: `const fs = require('fs'); fs.writeFileSync(${JSON.stringify(r.pair.primary)} + '/alive', 'yes');
      setInterval(() => { if (fs.existsSync(${JSON.stringify(stopFile)})) process.exit(0); }, 200);`,
  });
  t.teardown(() => fs.writeFileSync(stopFile, ''));
  const again = r.standby('b2', ['--max-standby-lag', '1MiB']);
  await again.waitFor(/THIS STANDBY \(b2\) IS LOST since \S+, marked by b1: .* It asks the primary for a baseline and a verify/);
  await until(t, 'b2 is in doubt: never "in sync"', async () => ((await readState(kv, 'doubts', 'b2'))?.objects ?? []).some((o) => /^this standby was lost at \S+ \(it held back/.test(o.why)), 10_000);
  await again.waitFor(/asked the primary's agents for a rebase/);
  t.regex(again.log(), /entries \d+\.\.\d+ are gone: neither the stream nor its agent's spool[^]*asked the primary's agents for a rebase/, 'asked only once past what was trimmed: the rebase\'s verify covers that doubt too');
  t.like(await readState(kv, 'rebase', 'b2'), { standby: 'b2' });

  await again.waitFor(/this standby is whole again: the baseline and verify by .+ ended \S+ \(\d+ difference\(s\), \d+ repaired\); it counts again for trimming/, 80_000);
  t.true(equal(r.pair.primary, again.dir), 'b2 equals the primary after its rebase');
  t.is(await readState(kv, 'lost', 'b2'), undefined, 'no longer lost');
  await until(t, 'b2 is no longer in doubt', async () => ((await readState(kv, 'doubts', 'b2'))?.count ?? 0) === 0, 10_000);
  const healed = JSON.parse((await runCli(['status', '--json'], r.env)).stdout) as { standbys: { name: string; state: string }[] };
  t.deepEqual(healed.standbys.map((s) => [s.name, s.state]), [['b1', 'streaming'], ['b2', 'streaming']]);
  fs.writeFileSync(stopFile, '');
  t.is((await idle).code, 0);
  t.is(await again.stop(), 0);

  const running = await runCli(['standby', 'drop', 'b1'], r.env);
  t.is(running.code, 1);
  t.regex(running.stderr, /standby b1 is running \(on \S+, pid \d+, heard from [\d.]+ s ago\): stop its replayer first, or give --force/);
  const unknown = await runCli(['standby', 'drop', 'b9'], r.env);
  t.regex(unknown.stderr, /no standby "b9" is registered in stream UNDERSTUDY \(registered: b1, b2\)/);
  const dropped = await runCli(['standby', 'drop', 'b2'], r.env);
  t.is(dropped.code, 0, dropped.stderr);
  for (const kind of ['standby', 'lost', 'rebase', 'doubts'] as const) t.is(await readState(kv, kind, 'b2'), undefined, kind);
  const after = JSON.parse((await runCli(['status', '--json'], r.env)).stdout) as { standbys: { name: string }[] };
  t.deepEqual(after.standbys.map((s) => s.name), ['b1']);
  fs.rmSync(again.state, { recursive: true, force: true });
});
