'use strict';
/**
 * End to end: an application under the agent writes, its shipper publishes to
 * JetStream, a Replayer in another process applies to a standby directory.
 * All on 127.0.0.1, with a nats-server of its own.
 *
 *  (a) throughput: N distinct 4 KiB files written with fs.writeFileSync as fast
 *      as the application can; reported: the application's call rate, the rate
 *      at which they reach JetStream (flush), the standby's apply rate, and
 *      entries/s from the first write until the standby applied the last one.
 *      Then a second, fresh replayer drains the same N from JetStream alone:
 *      the apply rate with nothing else running.
 *  (b) lag at a steady rate (default 1,000 writes/s for 20 s): per entry, from
 *      the primary's journal time to (1) the apply on the standby and (2) the
 *      replayer's commit that made it durable; plus what the KV position that
 *      `understudy status` reads says (appliedAt - t). p50/p99 and whether the
 *      lag grew (first quarter against last quarter).
 *
 *   node bench/e2e.js
 *   BENCH_E2E_N=20000 BENCH_LAG_RATE=1000[,250…] BENCH_LAG_SECONDS=20 node bench/e2e.js
 *   BENCH_PROF=/abs/dir node bench/e2e.js   (CPU profiles of the app and the replayer, summarised)
 *   BENCH_STANDBY_BASE=/dev/shm node bench/e2e.js   (standby tree elsewhere; BENCH_PRIMARY_BASE likewise)
 *   BENCH_DRAIN_STALL_S=30   a fresh drain that applies nothing for this long is stopped and reported as stalled
 *   BENCH_REPLAY_CONSUME='{"max_messages":48}'   experiment: replaces the options the replayer passes to consume()
 *
 * Here primary, spool, JetStream store and standby share one disk and the
 * machine's cores: in production the standby is another machine.
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./lib/common');

const APP = path.join(__dirname, 'lib', 'e2e-app.js');
const REPLAYER = path.join(__dirname, 'lib', 'e2e-replayer.js');

/** Follows `applied.<name>` in the state bucket, as `understudy status` would read it. */
async function watchApplied(url, name) {
  const { connect } = require(require.resolve('@nats-io/transport-node', { paths: [c.REPO] }));
  const { openStateKv } = c.requireDist('lib/nats.js');
  const { stateKey } = c.requireDist('lib/state-bucket.js');
  const nc = await connect({ servers: url });
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  const samples = [];
  const waiters = [];
  const watch = await kv.watch({ key: stateKey('applied', name) });
  (async () => {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      const v = JSON.parse(e.string());
      const seenAt = performance.timeOrigin + performance.now();
      samples.push({ s: v.s, t: v.t, appliedAt: v.appliedAt, seenAt });
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (v.s >= waiters[i].seq) {
          waiters[i].resolve({ ...v, seenAt });
          waiters.splice(i, 1);
        }
      }
    }
  })().catch(() => undefined);
  return {
    samples,
    until(seq, timeoutMs = 120_000) {
      const hit = samples.find((x) => x.s >= seq);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { seq, resolve: (v) => { clearTimeout(timer); resolve(v); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`applied.${name} did not reach ${seq} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async close() {
      watch.stop();
      await nc.close();
    },
  };
}

function profArgs(label) {
  const dir = process.env.BENCH_PROF;
  if (!dir) return [];
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${label}.cpuprofile`];
}

/** Starts a replayer child and the KV watch; returns once both are there. */
async function startReplayer(nats, name, label, drain = false) {
  const standby = c.tempDir(`${label}-standby`, process.env.BENCH_STANDBY_BASE);
  const state = c.tempDir(`${label}-state`);
  const rp = c.spawnIpc(REPLAYER, [JSON.stringify({ url: nats.url, standby, state, name, drain })], { execArgv: profArgs(`${label}-replayer`) });
  const started = await rp.next('started', 30_000);
  return { ...rp, standby, state, instrumented: started.instrumented };
}

/** Waits for the replayer to have applied `seq`: its own signal when it has one, else the KV position. */
async function appliedAt(rp, kv, seq, timeoutMs = 300_000) {
  if (rp.instrumented) {
    const reached = rp.next('reached', timeoutMs);
    rp.child.send({ type: 'waitFor', seq });
    return (await reached).at;
  }
  return (await kv.until(seq, timeoutMs)).seenAt;
}

async function stopReplayer(rp) {
  const result = rp.next('result');
  rp.child.send({ type: 'stop' });
  const r = await result;
  await rp.exited;
  return r;
}

/** Runs the app child through warm-up (applied on the standby), then its timed phase. */
async function runApp(nats, name, args, rp, kv, label) {
  const primary = c.tempDir(`${label}-primary`, process.env.BENCH_PRIMARY_BASE);
  const spool = c.tempDir(`${label}-spool`);
  const app = c.spawnIpc(APP, [...args, primary], {
    agent: true,
    execArgv: profArgs(`${label}-app`),
    env: { UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${primary}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: name },
  });
  const warm = await app.next('warm', 60_000);
  await appliedAt(rp, kv, warm.seq);
  const done = app.next('done', 300_000);
  app.child.send({ type: 'go' });
  const result = await done;
  const exit = await app.exited;
  if (exit.code !== 0) throw new Error(`e2e-app exited with ${exit.code ?? exit.signal}\n${app.stderr()}`);
  if (app.stderr().trim() !== '') console.log(`  (app: ${app.stderr().trim()})`);
  if (!result.flushed) console.log('  warning: the app\'s flush did not complete');
  return { ...result, primary, spool };
}

/** Compares every regular file of two trees; returns the count and the first difference. */
function compareTrees(a, b) {
  const names = fs.readdirSync(a).sort();
  let files = 0;
  for (const n of names) {
    const pa = path.join(a, n);
    const pb = path.join(b, n);
    if (!fs.statSync(pa).isFile()) continue;
    files++;
    if (!fs.existsSync(pb)) return { files, same: false, why: `${n} missing on the standby` };
    if (!fs.readFileSync(pa).equals(fs.readFileSync(pb))) return { files, same: false, why: `${n} differs` };
  }
  const extra = fs.readdirSync(b).filter((n) => !n.startsWith('.') && !names.includes(n));
  if (extra.length > 0) return { files, same: false, why: `standby has ${extra.length} extra, e.g. ${extra[0]}` };
  return { files, same: true };
}

/** Entries of the replayer's record whose journal seq lies in [first, last]. */
function inRange(r, first, last) {
  const idx = [];
  for (let i = 0; i < r.s.length; i++) if (r.s[i] >= first && r.s[i] <= last) idx.push(i);
  return idx;
}

/** Writes back what earlier phases left dirty, so one phase does not pay for another. */
function syncDisks() {
  try {
    require('node:child_process').execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // no sync(1)
  }
}

async function throughput(nats, n, log) {
  syncDisks();
  const name = 'bench-burst';
  log(`## (a) throughput: ${c.fmt(n)} distinct 4 KiB files, fs.writeFileSync as fast as the app can`);
  const kv = await watchApplied(nats.url, name);
  const rp = await startReplayer(nats, name, 'burst');
  try {
    const app = await runApp(nats, name, ['burst', String(n)], rp, kv, 'burst');
    const lastApplied = await appliedAt(rp, kv, app.last);
    const lastDurable = await kv.until(app.last, 300_000);
    const r = await stopReplayer(rp);
    const cmp = compareTrees(app.primary, rp.standby);
    const entries = app.last - app.first + 1;
    const out = {
      n, entries,
      callRate: entries / ((app.tCalls - app.t0) / 1000),
      shipRate: entries / ((app.tFlushed - app.t0) / 1000),
      endToEndRate: entries / ((lastApplied - app.t0) / 1000),
      endToEndDurableRate: entries / ((lastDurable.appliedAt - app.t0) / 1000),
      endToEndSeconds: (lastApplied - app.t0) / 1000,
      standbyBehindAtFlushMs: lastApplied - app.tFlushed,
      appCpuUsPerEntry: (app.cpuMs * 1000) / entries,
      replayerCpuUsPerEntry: (r.cpuMs * 1000) / Math.max(1, r.summary.applied),
      verified: cmp,
      instrumented: r.instrumented,
    };
    if (r.instrumented) {
      const idx = inRange(r, app.first, app.last);
      const first = r.applied[idx[0]];
      out.followApplyRate = (idx.length - 1) / ((r.applied[idx[idx.length - 1]] - first) / 1000);
      out.firstApplyAfterMs = first - app.t0;
      out.commits = r.commits;
      out.commitMsAvg = r.commitMsTotal / Math.max(1, r.commits);
      out.commitBusyPct = (100 * r.commitMsTotal) / Math.max(1, r.ended - r.started);
      out.steps = replayerSteps(r, idx);
    }
    log(c.table([
      ['measure', 'value'],
      ['app fs.writeFileSync calls (agent-side rate)', `${c.fmt(out.callRate)} entries/s`],
      ['in JetStream (first write → flush() returned)', `${c.fmt(out.shipRate)} entries/s`],
      ...(r.instrumented ? [['standby apply rate while following', `${c.fmt(out.followApplyRate)} entries/s`]] : []),
      ['end to end (first write → last applied on standby)', `${c.fmt(out.endToEndRate)} entries/s (${c.fmt(out.endToEndSeconds, 1)} s)`],
      ['end to end, durable (→ KV applied.<name> appliedAt)', `${c.fmt(out.endToEndDurableRate)} entries/s`],
      ['standby behind when the app\'s flush returned', `${c.fmt(out.standbyBehindAtFlushMs)} ms`],
      ['app process CPU per entry (shipper thread incl.)', `${c.fmt(out.appCpuUsPerEntry, 1)} µs`],
      ['replayer process CPU per entry', `${c.fmt(out.replayerCpuUsPerEntry, 1)} µs`],
      ['standby == primary', cmp.same ? `yes (${c.fmt(cmp.files)} files)` : `NO: ${cmp.why}`],
    ]));
    if (out.steps) log(`${stepsLine(out.steps)}; a whole commit ${c.fmt(out.commitMsAvg, 1)} ms on average (KV put included), ${c.fmt(out.commitBusyPct, 1)} % of the replayer's run`);
    if (eventsLine(r)) log(eventsLine(r));
    out.consumerEvents = r.consumerEvents?.counts;

    // The same entries again, from JetStream alone, into a fresh standby.
    syncDisks();
    const d = await startReplayer(nats, name, 'drain', true);
    const { r: dr, stalled } = await resultOrStall(d, Number(process.env.BENCH_DRAIN_STALL_S ?? 30) * 1000);
    await d.exited;
    if (stalled) {
      const got = dr?.applied?.length ?? 0;
      log(`DRAIN STALLED: the fresh replayer applied nothing for ${process.env.BENCH_DRAIN_STALL_S ?? 30} s after ${c.fmt(got)} of ${c.fmt(entries + 1)} entries, and was stopped` +
        (d.stderr().trim() !== '' ? ` (its stderr: ${d.stderr().trim().slice(0, 300)})` : ''));
      out.drain = { stalled: true, applied: got, of: entries + 1, slowConsumer: nats.slowConsumers?.() };
      if (eventsLine(dr)) log(eventsLine(dr));
      out.drain.consumerEvents = dr?.consumerEvents?.counts;
      if (out.drain.slowConsumer) log(`nats-server: ${out.drain.slowConsumer}`);
      c.removeDir(app.primary);
      c.removeDir(app.spool);
      c.removeDir(d.standby);
      c.removeDir(d.state);
      return out;
    }
    const dcmp = compareTrees(app.primary, d.standby);
    out.drain = {
      applied: dr.summary.applied,
      totalRate: dr.summary.applied / ((dr.ended - dr.started) / 1000),
      cpuUsPerEntry: (dr.cpuMs * 1000) / Math.max(1, dr.summary.applied),
      verified: dcmp,
    };
    if (dr.instrumented && dr.applied.length > 1) {
      out.drain.applyRate = (dr.applied.length - 1) / ((dr.applied[dr.applied.length - 1] - dr.applied[0]) / 1000);
    }
    out.drain.steps = replayerSteps(dr);
    log(c.table([
      ['drain by a fresh replayer (nothing else running)', 'value'],
      ['entries applied', c.fmt(dr.summary.applied)],
      ...(out.drain.applyRate ? [['apply rate (first → last apply)', `${c.fmt(out.drain.applyRate)} entries/s`]] : []),
      ['rate including connect and final commit', `${c.fmt(out.drain.totalRate)} entries/s`],
      ['replayer CPU per entry', `${c.fmt(out.drain.cpuUsPerEntry, 1)} µs`],
      ['standby == primary', dcmp.same ? `yes (${c.fmt(dcmp.files)} files)` : `NO: ${dcmp.why}`],
    ]));
    if (dr.instrumented) {
      out.drain.commitMsAvg = dr.commitMsTotal / Math.max(1, dr.commits);
      out.drain.commitBusyPct = (100 * dr.commitMsTotal) / Math.max(1, dr.ended - dr.started);
    }
    if (out.drain.steps) log(`${stepsLine(out.drain.steps)}; a whole commit ${c.fmt(out.drain.commitMsAvg, 1)} ms on average (KV put included), ${c.fmt(out.drain.commitBusyPct, 1)} % of the replayer's run`);
    out.drain.fsyncs = fsyncStats(dr);
    if (out.drain.fsyncs) log(fsyncLine(out.drain.fsyncs));
    if (eventsLine(dr)) log(eventsLine(dr));
    out.drain.consumerEvents = dr.consumerEvents?.counts;
    c.removeDir(app.primary);
    c.removeDir(app.spool);
    c.removeDir(d.standby);
    c.removeDir(d.state);
    return out;
  } finally {
    rp.child.kill('SIGKILL');
    await kv.close();
    c.removeDir(rp.standby);
    c.removeDir(rp.state);
  }
}

/**
 * Waits for a drain replayer's result; if it applies nothing for `stallMs` it is stopped
 * (its partial result, if it still sends one, comes back with stalled: true).
 */
async function resultOrStall(rp, stallMs, totalMs = 600_000) {
  const result = rp.next('result', totalMs);
  result.catch(() => undefined);
  let applied = -1;
  let changedAt = Date.now();
  for (;;) {
    const r = await Promise.race([result, c.sleep(2000).then(() => undefined)]);
    if (r !== undefined) return { r, stalled: false };
    if (!rp.instrumented) continue;
    const p = rp.next('progress', 5000);
    rp.child.send({ type: 'progress' });
    const pr = await p.catch(() => undefined);
    if (pr !== undefined && pr.applied !== applied) {
      applied = pr.applied;
      changedAt = Date.now();
    }
    if (Date.now() - changedAt > stallMs) {
      rp.child.send({ type: 'stop' });
      const r = await Promise.race([result, c.sleep(15_000).then(() => undefined)]).catch(() => undefined);
      if (r === undefined) rp.child.kill('SIGKILL');
      return { r: r ?? { applied: { length: applied } }, stalled: true };
    }
  }
}

/** How long the replayer's own steps took: one apply, and the sync steps of a commit. */
function replayerSteps(r, idx) {
  if (!r.instrumented) return undefined;
  const applyMs = (idx ?? r.applyMs.map((_, i) => i)).map((i) => r.applyMs[i]);
  const calls = Math.max(1, r.syncMs.calls);
  return {
    applyMsP50: c.quantile(applyMs, 0.5),
    applyMsP99: c.quantile(applyMs, 0.99),
    applyMsMean: applyMs.reduce((a, b) => a + b, 0) / Math.max(1, applyMs.length),
    commitSyncMsMean: (r.syncMs.applier + r.syncMs.store) / calls,
    commitSyncMsMax: r.syncMs.max,
    syncAsync: r.syncMs.async === true,
    syncCalls: r.syncMs.calls,
    filesPerCommit: r.syncMs.files / calls,
    dirsPerCommit: r.syncMs.dirs / calls,
    appliesDuringCommit: r.appliesDuringCommit,
    msgs: r.msgs?.n,
    msgsPending0: r.msgs?.pending0,
    entriesPerMsg: r.msgs?.n ? r.applyMs.length / r.msgs.n : undefined,
  };
}

/**
 * The commits' fsyncs (applier.sync, then store.sync) that began within [from, to]: how long
 * each took, how often they came, and the share of that window they held the replayer up.
 */
function fsyncStats(r, from = -Infinity, to = Infinity) {
  const f = r?.fsyncs;
  if (!f || f.at.length === 0) return undefined;
  const idx = f.at.map((_, i) => i).filter((i) => f.at[i] >= from && f.at[i] <= to);
  if (idx.length === 0) return undefined;
  const ms = idx.map((i) => f.applierMs[i] + (f.storeMs[i] ?? 0));
  const gaps = idx.slice(1).map((i, k) => f.at[i] - f.at[idx[k]]);
  const span = Math.min(to, r.ended) - Math.max(from, r.started);
  const q = (xs, p) => (xs.length === 0 ? undefined : c.quantile(xs, p));
  return {
    count: idx.length,
    msP50: q(ms, 0.5), msP99: q(ms, 0.99), msMax: Math.max(...ms),
    applierMsP50: q(idx.map((i) => f.applierMs[i]), 0.5),
    storeMsP50: q(idx.map((i) => f.storeMs[i]).filter((x) => x !== undefined), 0.5),
    intervalMsP50: q(gaps, 0.5), intervalMsP99: q(gaps, 0.99),
    busyPct: span > 0 ? (100 * ms.reduce((a, b) => a + b, 0)) / span : undefined,
  };
}

function fsyncLine(st) {
  return `commit fsyncs (applier.sync + store.sync, nothing applied meanwhile): ${c.fmt(st.count)}, one every ${c.fmt(st.intervalMsP50)} ms p50 (p99 ${c.fmt(st.intervalMsP99)} ms); ` +
    `each ${c.fmt(st.msP50, 1)} ms p50 (applier ${c.fmt(st.applierMsP50, 1)}, store ${c.fmt(st.storeMsP50, 1)}), p99 ${c.fmt(st.msP99, 1)} ms, max ${c.fmt(st.msMax, 1)} ms; ${c.fmt(st.busyPct, 1)} % of the time`;
}

/** nats.js's notifications about the replayer's consumer, one line; '' when there were none. */
function eventsLine(r) {
  const ev = r?.consumerEvents;
  if (!ev || Object.keys(ev.counts).length === 0) return '';
  const t0 = r.started;
  return `replayer's consumer (nats.js status): ${Object.entries(ev.counts).map(([k, n]) => `${k} ×${n}`).join(', ')}; first at [s into its run]: ` +
    ev.first.slice(0, 8).map((e) => `${c.fmt((e.at - t0) / 1000, 1)} ${e.key}`).join('; ');
}

function stepsLine(st) {
  const sync = st.syncAsync
    ? `a commit's fsyncs (applier.sync: ${c.fmt(st.filesPerCommit, 1)} files + ${c.fmt(st.dirsPerCommit, 1)} dirs in parallel, then store.sync) ` +
      `${c.fmt(st.commitSyncMsMean, 1)} ms mean over ${c.fmt(st.syncCalls)} commits, slowest single sync ${c.fmt(st.commitSyncMsMax, 1)} ms, no entry applied meanwhile` +
      (st.appliesDuringCommit === undefined ? '' : ` (applies seen during a commit: ${st.appliesDuringCommit})`)
    : `fsyncs of a commit (applier.sync + store.sync) ${c.fmt(st.commitSyncMsMean, 1)} ms mean, slowest single sync ${c.fmt(st.commitSyncMsMax, 1)} ms, blocking the event loop`;
  const msgs = st.msgs ? `; ${c.fmt(st.msgs)} stream messages (${c.fmt(st.entriesPerMsg, 1)} entries each), ${c.fmt(st.msgsPending0)} of them with info.pending 0` : '';
  return `replayer steps: one apply p50 ${c.fmt(st.applyMsP50, 2)} ms, p99 ${c.fmt(st.applyMsP99, 2)} ms, mean ${c.fmt(st.applyMsMean, 2)} ms ` +
    `(at most ${c.fmt(1000 / st.applyMsMean)} applies/s if it did nothing else); ${sync}${msgs}`;
}

function lagStats(values) {
  return { n: values.length, p50: c.quantile(values, 0.5), p99: c.quantile(values, 0.99), max: Math.max(...values) };
}

async function lag(nats, rate, seconds, log, k = 0, catchUpS = Number(process.env.BENCH_LAG_CATCHUP_S ?? 60)) {
  syncDisks();
  const name = `bench-lag-${k}`;
  log(`## (b) lag at a steady ${c.fmt(rate)} writes/s for ${seconds} s (4 KiB fs.writeFileSync over 1,000 rotating names)`);
  const kv = await watchApplied(nats.url, name);
  const rp = await startReplayer(nats, name, 'lag');
  try {
    const app = await runApp(nats, name, ['paced', String(rate), String(seconds)], rp, kv, 'lag');
    // A standby slower than the writes has a backlog to work off; it gets a bounded time for it.
    let caughtUp = true;
    try {
      await appliedAt(rp, kv, app.last, catchUpS * 1000);
      await kv.until(app.last, 10_000);
    } catch {
      caughtUp = false;
    }
    const r = await stopReplayer(rp);
    const cmp = caughtUp ? compareTrees(app.primary, rp.standby) : { same: false, why: 'not caught up', files: 0 };
    const out = { rate, seconds, caughtUp, catchUpMs: caughtUp && r.instrumented ? Math.max(...r.applied) - app.tFlushed : undefined, achievedRate: app.achievedRate, maxBehindSchedule: app.maxBehind, maxCallMs: app.maxCallMs, slowCalls: app.slowCalls, stalls: app.stalls, entries: app.last - app.first + 1, verified: cmp };
    const rows = [['lag (ms)', 'samples', 'p50', 'p99', 'max', 'p50 1st quarter', 'p50 last quarter', 'p99 1st quarter', 'p99 last quarter']];
    const addRow = (label, xs, ys) => {
      if (ys.length === 0) return undefined;
      const q = Math.floor(ys.length / 4);
      const first = ys.slice(0, q);
      const last = ys.slice(ys.length - q);
      const s = lagStats(ys);
      const row = {
        ...s,
        firstQuarter: lagStats(first), lastQuarter: lagStats(last),
        // ms of extra lag per second of run
        trendMsPerS: c.slope(xs.map((x) => x / 1000), ys) || 0,
      };
      rows.push([label, c.fmt(s.n), c.fmt(s.p50, 1), c.fmt(s.p99, 1), c.fmt(s.max, 1),
        c.fmt(row.firstQuarter.p50, 1), c.fmt(row.lastQuarter.p50, 1), c.fmt(row.firstQuarter.p99, 1), c.fmt(row.lastQuarter.p99, 1)]);
      return row;
    };
    if (r.instrumented) {
      const idx = inRange(r, app.first, app.last);
      out.visible = addRow('journal → applied on standby', idx.map((i) => r.t[i]), idx.map((i) => r.applied[i] - r.t[i]));
      const sIdx = idx.filter((i) => typeof r.stored?.[i] === 'number');
      if (sIdx.length > 0) {
        out.shipping = addRow('  of which journal → stored in JetStream', sIdx.map((i) => r.t[i]), sIdx.map((i) => r.stored[i] - r.t[i]));
        out.replaying = addRow('  of which stored in JetStream → applied', sIdx.map((i) => r.t[i]), sIdx.map((i) => r.applied[i] - r.stored[i]));
      }
      const dIdx = idx.filter((i) => r.durable[i] !== undefined);
      out.durable = addRow('journal → durable (replayer commit)', dIdx.map((i) => r.t[i]), dIdx.map((i) => r.durable[i] - r.t[i]));
      // The replayer commits every 100 ms (commitMs); how often did it really?
      const ca = r.commitAt.filter((x) => x >= r.applied[idx[0]] && x <= r.applied[idx[idx.length - 1]] + 1000);
      const gaps = ca.slice(1).map((x, i) => x - ca[i]);
      out.steps = replayerSteps(r, idx);
      out.fsyncs = fsyncStats(r, r.applied[idx[0]], r.applied[idx[idx.length - 1]]);
      out.commits = {
        count: ca.length, gapP50: c.quantile(gaps, 0.5), gapMax: Math.max(...gaps), msAvg: r.commitMsTotal / Math.max(1, r.commits),
        // Share of the replayer's run spent inside commits (with group commit nothing is applied meanwhile).
        busyPct: (100 * r.commitMsTotal) / Math.max(1, r.ended - r.started),
      };
      out.perSecondP50 = [];
      const t0 = r.t[idx[0]];
      for (let sec = 0; sec < seconds; sec += 2) {
        const ys = idx.filter((i) => r.t[i] >= t0 + sec * 1000 && r.t[i] < t0 + (sec + 2) * 1000).map((i) => r.applied[i] - r.t[i]);
        if (ys.length > 0) out.perSecondP50.push(Math.round(c.quantile(ys, 0.5) * 10) / 10);
      }
    }
    const ks = kv.samples.filter((x) => x.s >= app.first && x.s <= app.last);
    out.kv = addRow('KV applied.<name>: appliedAt - t', ks.map((x) => x.t), ks.map((x) => x.appliedAt - x.t));
    log(`app achieved ${c.fmt(out.achievedRate)} writes/s (at most ${out.maxBehindSchedule} writes behind its schedule in one tick; ` +
      `slowest fs.writeFileSync ${c.fmt(out.maxCallMs, 1)} ms, ${out.slowCalls} over 50 ms), ${c.fmt(out.entries)} entries`);
    if (out.stalls.length > 0) {
      log(`app event loop stalls over 50 ms outside fs calls [ms into run, ms]: ${out.stalls.slice(0, 8).map((x) => `[${x}]`).join(' ')}${out.stalls.length > 8 ? ' …' : ''}`);
    }
    if (!caughtUp) {
      const applied = r.instrumented ? inRange(r, app.first, app.last).length : kv.samples.filter((x) => x.s <= app.last).length;
      log(`NOT CAUGHT UP: ${catchUpS} s after the app finished (its flush returned) the standby had applied ${c.fmt(applied)} of ${c.fmt(out.entries)} entries; ` +
        'the figures below cover the applied ones only and understate the lag');
    } else if (out.catchUpMs !== undefined) {
      log(out.catchUpMs <= 0 ? 'the standby had applied the last entry by the time the app\'s flush returned'
        : `the standby applied the last entry ${c.fmt(out.catchUpMs)} ms after the app's flush returned (its backlog at the end)`);
    }
    log(c.table(rows));
    const main = out.visible ?? out.kv;
    const grew = main === undefined || !caughtUp || main.lastQuarter.p50 > main.firstQuarter.p50 * 1.5 + 5;
    out.grew = grew;
    if (main) log(`lag trend: ${c.fmt(main.trendMsPerS, 2)} ms per second of run; ${grew ? 'GREW' : 'did not grow'} (last-quarter p50 vs first-quarter p50)`);
    if (out.perSecondP50) log(`apply-lag p50 per 2 s window (ms): ${out.perSecondP50.join(' ')}`);
    if (out.commits) {
      log(`replayer commits (configured every 100 ms): ${out.commits.count} during the run, interval p50 ${c.fmt(out.commits.gapP50)} ms, max ${c.fmt(out.commits.gapMax)} ms; a commit took ${c.fmt(out.commits.msAvg, 1)} ms on average (KV put included), ${c.fmt(out.commits.busyPct, 1)} % of the replayer's run`);
      log(stepsLine(out.steps));
      if (out.fsyncs) log(fsyncLine(out.fsyncs));
    }
    if (eventsLine(r)) log(eventsLine(r));
    out.consumerEvents = r.consumerEvents?.counts;
    log(`standby == primary: ${cmp.same ? `yes (${c.fmt(cmp.files)} files)` : `NO: ${cmp.why}`}`);
    c.removeDir(app.primary);
    c.removeDir(app.spool);
    return out;
  } finally {
    rp.child.kill('SIGKILL');
    await kv.close();
    c.removeDir(rp.standby);
    c.removeDir(rp.state);
  }
}

async function run({
  n = Number(process.env.BENCH_E2E_N ?? 20_000),
  rates = (process.env.BENCH_LAG_RATE ?? '1000').split(',').map(Number),
  seconds = Number(process.env.BENCH_LAG_SECONDS ?? 20),
  log = console.log,
} = {}) {
  c.hookSignals();
  const started = Date.now();
  log(`# e2e: app under the agent → nats-server (JetStream, file storage) → Replayer in another process, all on 127.0.0.1`);
  log(`# ${c.machine()}`);
  const os = require('node:os');
  log(`# primary under ${process.env.BENCH_PRIMARY_BASE ?? os.tmpdir()}, standby under ${process.env.BENCH_STANDBY_BASE ?? os.tmpdir()}, spool and JetStream store under ${os.tmpdir()}`);
  const nats = await c.startNats('e2e-nats');
  try {
    const a = n > 0 ? await throughput(nats, n, log) : undefined; // BENCH_E2E_N=0: lag only
    const b = [];
    for (const [k, rate] of rates.entries()) {
      log('');
      b.push(await lag(nats, rate, seconds, log, k));
    }
    const slow = nats.slowConsumers();
    if (slow) log(`nats-server during this bench: ${slow}`);
    if (process.env.BENCH_PROF) {
      const { summarize } = require('./prof-summary');
      for (const f of fs.readdirSync(process.env.BENCH_PROF).filter((x) => x.endsWith('.cpuprofile')).sort()) {
        log('\n' + summarize(path.join(process.env.BENCH_PROF, f), 15));
      }
    }
    log(`# e2e bench took ${c.fmt((Date.now() - started) / 1000, 1)} s`);
    return { throughput: a, lag: b, slowConsumers: slow };
  } finally {
    await nats.stop();
  }
}

module.exports = { run };

if (require.main === module) c.runMain(run);
