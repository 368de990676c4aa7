'use strict';
/**
 * What the agent adds to a short-lived process's start and exit (issue 15, goal 3), in one
 * alternating run: each case is timed bare and with the agent, in turns, in fresh processes.
 *
 *   node bench/startup.js            (after npx tsc -p tsconfig.json)
 *   BENCH_ROUNDS=15 node bench/startup.js
 *
 * (a) `node -e 0`, nothing journaled: NATS up, then NATS down (a port nothing listens on);
 * (b) a process that writes 3 files under a root and exits, NATS up; its added time is also
 *     given as a multiple of a bare JetStream publish round trip measured here;
 * (c) an app that spawns 10 `node -e 0` children, NODE_OPTIONS carrying the preload.
 * Every agent process has a spool directory of its own.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./lib/common');

const APP = path.join(__dirname, 'lib', 'startup-apps.js');

/** Wall time of one child run, in ms; fails loudly on a non-zero exit. */
function timeRun(args, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr}`);
  return ms;
}

async function run({ rounds = Number(process.env.BENCH_ROUNDS ?? 11), log = console.log } = {}) {
  c.hookSignals();
  const nats = await c.startNats('startup-nats');
  const root = c.tempDir('startup-root');
  const spools = c.tempDir('startup-spools');
  let n = 0;
  const agentEnv = (url, extra = {}) => ({
    ...process.env, UNDERSTUDY_NATS_URL: url, UNDERSTUDY_ROOTS: `data=${root}`,
    UNDERSTUDY_SPOOL_DIR: path.join(spools, `s${n++}`), ...extra,
  });
  const bareEnv = { ...process.env, BENCH_ROOT: root };
  delete bareEnv.NODE_OPTIONS;
  const down = 'nats://127.0.0.1:1'; // nothing listens there
  const cases = [
    { label: '(a) node -e 0, NATS up', bare: () => timeRun(['-e', '0'], bareEnv), agent: () => timeRun(['--require', c.PRELOAD, '-e', '0'], agentEnv(nats.url)) },
    { label: '(a) node -e 0, NATS down', bare: () => timeRun(['-e', '0'], bareEnv), agent: () => timeRun(['--require', c.PRELOAD, '-e', '0'], agentEnv(down)) },
    { label: '(b) 3 files written, exit, NATS up', bare: () => timeRun([APP, 'write3'], bareEnv), agent: () => timeRun(['--require', c.PRELOAD, APP, 'write3'], { ...agentEnv(nats.url), BENCH_ROOT: root }), rtt: true },
    { label: '(c) 10 node children, NODE_OPTIONS', bare: () => timeRun([APP, 'spawn10'], bareEnv), agent: () => timeRun([APP, 'spawn10'], { ...agentEnv(nats.url), NODE_OPTIONS: `--require ${c.PRELOAD}` }) },
  ];
  const times = cases.map(() => ({ bare: [], agent: [] }));
  // One warm-up round, not counted (page cache, the stream's creation).
  for (let r = -1; r < rounds; r++) {
    cases.forEach((k, i) => {
      const order = r % 2 === 0 ? ['bare', 'agent'] : ['agent', 'bare'];
      for (const o of order) {
        const ms = k[o]();
        if (r >= 0) times[i][o].push(ms);
      }
    });
  }
  const rtt = (await c.publishRoundTrip(nats.url, { n: 200, bytes: 200 })).p50 / 1000;
  log(`startup bench: ${rounds} rounds, ${c.machine()}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  log(`bare JetStream publish round trip (200 B) p50: ${rtt.toFixed(2)} ms`);
  const rows = [['case', 'bare ms', 'agent ms', 'added ms', 'ratio', 'added / publish RTT']];
  cases.forEach((k, i) => {
    const b = c.median(times[i].bare);
    const a = c.median(times[i].agent);
    rows.push([k.label, b.toFixed(1), a.toFixed(1), (a - b).toFixed(1), (a / b).toFixed(2), k.rtt ? ((a - b) / rtt).toFixed(1) : '']);
  });
  log(c.table(rows));
  const leftovers = fs.readdirSync(spools).length;
  log(`spool dirs created by ${n} agent runs: ${leftovers}`);
  await nats.stop();
  c.removeDir(root);
  c.removeDir(spools);
}

if (require.main === module) c.runMain(() => run());
module.exports = { run };
