'use strict';
/**
 * Operate forever: the stream's capacity written ten times over while two standbys follow,
 * one of them stopped for a minute half way. A stream of BENCH_SLOTS_STREAM_MIB (32) MiB is
 * made as understudy makes its own (limits retention, discard new); an application under the
 * agent rewrites 64 files of 64 KiB: 5x the capacity at BENCH_SLOTS_FAST_MIB_S (4) MiB/s, then,
 * with standby b2 stopped for BENCH_SLOTS_STOP_S (60) s, a third of the capacity (what b2 may
 * hold back: its limit is three quarters of it), then b2 is started again and the rest goes at
 * the fast pace. Every second: the stream's bytes and first sequence, each standby's lag in
 * entries and bytes (as status says it). At the end: the stream's size over time (bounded?),
 * lag per standby, how fast b2 caught up, whether the agent was ever refused or dropped a
 * change, and whether both standbys equal the primary.
 *
 *   node bench/slots.js     (after npx tsc -p tsconfig.json)
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const c = require('./lib/common');

const MiB = 1024 * 1024;
const STREAM_MIB = Number(process.env.BENCH_SLOTS_STREAM_MIB ?? 32);
const FAST = Number(process.env.BENCH_SLOTS_FAST_MIB_S ?? 4);
const STOP_S = Number(process.env.BENCH_SLOTS_STOP_S ?? 60);

/** A following `understudy replay` with its own tree and state: stop() ends it with SIGTERM. */
function standby(dir, name, url) {
  const tree = path.join(dir, `standby-${name}`);
  fs.mkdirSync(tree, { recursive: true });
  const child = spawn(process.execPath, [c.CLI, 'replay', '--root', `data=${tree}`, '--state', path.join(dir, `state-${name}`), '--standby', name, '--keep-stream', '0'], {
    env: { ...process.env, UNDERSTUDY_NATS_URL: url }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const ended = new Promise((resolve) => child.on('close', resolve));
  return { tree, log: () => log, stop: async () => { child.kill('SIGTERM'); await ended; } };
}

async function run() {
  const dir = c.tempDir('slots');
  const primary = path.join(dir, 'primary');
  fs.mkdirSync(primary);
  const nats = await c.startNats('slots-nats');
  const { connect } = require('@nats-io/transport-node');
  const { jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType } = require('@nats-io/jetstream');
  const { openStateKv } = c.requireDist('lib/nats.js');
  const { readSlots } = c.requireDist('replayer/slots/slots.js');
  const { heldBytes, committedIn } = c.requireDist('replayer/slots/plan.js');
  const { readState } = c.requireDist('lib/state-bucket.js');
  const { diffTrees } = c.requireDist('test/helpers/tree.js');
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({
    name: 'UNDERSTUDY', subjects: ['understudy.understudy.journal.*'], storage: StorageType.File, retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.New, max_bytes: STREAM_MIB * MiB, num_replicas: 1, duplicate_window: 120e9,
  });
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  const b1 = standby(dir, 'b1', nats.url);
  let b2 = standby(dir, 'b2', nats.url);
  const app = c.spawnIpc(path.join(__dirname, 'lib', 'slots-writer.js'), [primary], {
    agent: true, env: { UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${primary}`, UNDERSTUDY_SPOOL_DIR: path.join(dir, 'spool'), UNDERSTUDY_NAME: 'app' },
  });
  await app.next('ready');
  const samples = [];
  const t0 = Date.now();
  let phase = 'fast';
  const sampler = setInterval(() => void (async () => {
    const { stream, slots } = await readSlots(jsm, kv, 'UNDERSTUDY');
    const lag = {};
    for (const v of slots) {
      const seq = committedIn(v.record, stream);
      lag[v.key] = { entries: Math.max(0, stream.lastSeq - seq), bytes: heldBytes(seq, stream), lost: v.lost };
    }
    samples.push({ t: (Date.now() - t0) / 1000, phase, bytes: stream.bytes, firstSeq: stream.firstSeq, lastSeq: stream.lastSeq, lag });
  })().catch(() => undefined), 1000);
  const write = async (mib, mibPerS) => {
    app.child.send({ type: 'write', mib, mibPerS });
    await app.next('written', 600_000);
  };
  const total = 10 * STREAM_MIB;
  await write(5 * STREAM_MIB, FAST);
  phase = 'b2 stopped';
  await b2.stop();
  const stoppedAt = Date.now();
  const slow = STREAM_MIB / 3;
  await write(slow, slow / STOP_S);
  await c.sleep(Math.max(0, STOP_S * 1000 - (Date.now() - stoppedAt)));
  const behind = await readState(kv, 'standby', 'b2');
  phase = 'b2 catching up';
  const restart = Date.now();
  const lastBefore = (await jsm.streams.info('UNDERSTUDY')).state.last_seq;
  b2 = standby(dir, 'b2', nats.url);
  // Its catch-up: until its committed position reaches where the stream was when it started again.
  let caughtUpMs;
  const catchUp = (async () => {
    for (;;) {
      const r = await readState(kv, 'standby', 'b2');
      if (r !== undefined && r.streamSeq >= lastBefore && r.time > restart) return (caughtUpMs = Date.now() - restart);
      await c.sleep(100);
    }
  })();
  phase = 'fast';
  await write(total - 5 * STREAM_MIB - slow, FAST);
  await catchUp;
  const caughtUpBy = await readState(kv, 'standby', 'b2');
  // Until both have everything.
  for (let i = 0; i < 600; i++) {
    const { stream, slots } = await readSlots(jsm, kv, 'UNDERSTUDY');
    if (slots.every((v) => v.record.streamSeq >= stream.lastSeq)) break;
    await c.sleep(200);
  }
  clearInterval(sampler);
  const beat = await readState(kv, 'agent', 'app');
  const differ = (tree) => { try { return diffTrees(primary, tree).length; } catch (e) { return `unreadable (${e.message})`; } };
  const result = {
    streamMiB: STREAM_MIB, writtenMiB: total, seconds: (Date.now() - t0) / 1000,
    streamBytes: { max: Math.max(...samples.map((s) => s.bytes)), p50: c.quantile(samples.map((s) => s.bytes), 0.5), last: samples.at(-1)?.bytes },
    lag: Object.fromEntries(['b1', 'b2'].map((k) => {
      const xs = samples.filter((s) => s.lag[k] !== undefined && (k !== 'b2' || s.phase === 'fast'));
      return [k, { entriesP50: c.quantile(xs.map((s) => s.lag[k].entries), 0.5), entriesP99: c.quantile(xs.map((s) => s.lag[k].entries), 0.99), bytesMax: Math.max(...xs.map((s) => s.lag[k].bytes)) }];
    })),
    b2: {
      behindWhenRestarted: lastBefore - (behind?.streamSeq ?? 0), caughtUpMs,
      catchUpEntriesPerS: caughtUpMs ? (((caughtUpBy?.journals.app?.s ?? 0) - (behind?.journals.app?.s ?? 0)) / (caughtUpMs / 1000)) : undefined,
      everLost: samples.some((s) => s.lag.b2?.lost === true),
    },
    agent: { entries: beat?.acked.seq, dropped: beat?.dropped, refused: /refuses its entries/.test(app.stderr()) },
    differences: { b1: differ(b1.tree), b2: differ(b2.tree) },
    timeline: samples.filter((_, i) => i % 5 === 0).map((s) => `${c.fmt(s.t)}s ${s.phase}: stream ${c.fmt(s.bytes / MiB, 1)} MiB (from ${s.firstSeq}), lag b1 ${s.lag.b1?.entries ?? '-'} / b2 ${s.lag.b2?.entries ?? '-'} msgs`),
  };
  console.log(`# slots soak: a ${STREAM_MIB} MiB stream written ${c.fmt(total / STREAM_MIB)}x over (${total} MiB) in ${c.fmt(result.seconds)} s, two standbys, b2 stopped ${STOP_S} s; ${c.machine()}`);
  console.log(`stream bytes: max ${c.fmt(result.streamBytes.max / MiB, 1)} MiB of ${STREAM_MIB}, median ${c.fmt(result.streamBytes.p50 / MiB, 1)} MiB`);
  for (const [k, l] of Object.entries(result.lag)) console.log(`lag ${k}${k === 'b2' ? ' (while running)' : ''}: p50 ${l.entriesP50} msgs, p99 ${l.entriesP99} msgs, at most ${c.fmt(l.bytesMax / MiB, 1)} MiB held`);
  console.log(`b2: ${result.b2.behindWhenRestarted} messages behind when started again; caught up in ${c.fmt((caughtUpMs ?? NaN) / 1000, 1)} s (${c.fmt(result.b2.catchUpEntriesPerS)} entries/s of 64 KiB) while writes went on${result.b2.everLost ? '; it was marked LOST' : ''}`);
  console.log(`agent: ${result.agent.entries} entries, ${result.agent.dropped} dropped, ${result.agent.refused ? 'REFUSED by the stream at some point' : 'never refused'}; standbys differ from the primary by ${result.differences.b1} and ${result.differences.b2} objects`);
  for (const line of result.timeline) console.log(`  ${line}`);
  app.child.disconnect();
  await app.exited;
  await b1.stop();
  await b2.stop();
  await nc.close();
  await nats.stop();
  c.removeDir(dir);
  return result;
}

module.exports = { run };
if (require.main === module) c.runMain(run);
