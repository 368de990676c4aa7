'use strict';
// npm run demo:failover: kills a primary in the middle of its work and promotes the standby.
// Starts a nats-server on a free port, `understudy replay` following the stream, and the
// jobs service (examples/jobs) under `node --require understudy/agent`. Uploads files, flips
// feature flags (nconf and process.env), enqueues 12 jobs that take 300 ms each, and kills
// the primary with SIGKILL after a few are done. Then promotes the standby and shows its
// files, its flags and its pending jobs, and checks them against what the primary had done.
// The primary runs in sync mode: every change, a job's end included, is in JetStream before
// the call returns, so what the primary did before it died is exactly what the standby has.
// (In async mode what was spooled in the last few milliseconds and not yet shipped stays in the
// dead primary's spool: a restarted primary ships it; `promote` reports it as in doubt.)
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startNatsServer, freePort } = require('../dist/test/helpers/nats-server.js');
const { REPO, say, sleep, start } = require('./lib/run');
const { readConfigReplica, pendingJobs } = require('../dist/index.js');

const CLI = path.join(REPO, 'dist', 'cli.js');
const DEMO = path.join(REPO, '.demo-failover');
const dirs = Object.fromEntries(['primary', 'standby', 'spool', 'state', 'nats'].map((d) => [d, path.join(DEMO, d)]));

function cli(args, env = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`understudy ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

async function call(base, method, url, raw) {
  const res = await fetch(base + url, { method, body: raw });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function main() {
  fs.rmSync(DEMO, { recursive: true, force: true });
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const server = await startNatsServer({ storeDir: dirs.nats });
  const nats = { UNDERSTUDY_NATS_URL: server.url };
  let replayer;
  let app;
  try {
    replayer = start('replay', [CLI, 'replay', '--root', `data=${dirs.standby}`, '--state', dirs.state], nats);
    const port = await freePort();
    app = start('primary', ['--require', 'understudy/agent', 'examples/jobs/server.js'], {
      ...nats, UNDERSTUDY_ROOTS: `data=${dirs.primary}`, UNDERSTUDY_SPOOL_DIR: dirs.spool, UNDERSTUDY_NAME: 'jobs',
      UNDERSTUDY_MODE: 'sync', JOBS_DATA: dirs.primary, PORT: String(port), JOB_MS: '300',
    });
    for (let i = 0; !app.lines.includes('jobs service on'); i++) {
      if (i > 100) throw new Error('the jobs service did not start');
      await sleep(100);
    }
    const base = `http://127.0.0.1:${port}`;
    say(`primary: UNDERSTUDY_MODE=sync node --require understudy/agent examples/jobs/server.js; standby: understudy replay (${server.url})`);

    await call(base, 'POST', '/uploads/logo.png', Buffer.from('\x89PNG pretend image'));
    await call(base, 'POST', '/uploads/report.csv', Buffer.from('a,b\n1,2\n'));
    await call(base, 'POST', '/flags/newCheckout?on=true');
    await call(base, 'POST', '/flags/darkMode?on=true');
    await call(base, 'POST', '/flags/darkMode?on=false');
    await call(base, 'POST', '/maintenance?on=1');
    for (let i = 1; i <= 12; i++) await call(base, 'POST', '/jobs', JSON.stringify({ id: `thumb-${i}`, image: `img-${i}.jpg`, sizes: [64, 256] }));
    say('2 uploads, 3 flag changes, MAINTENANCE=on, 12 jobs enqueued (300 ms each, one at a time)');

    let status;
    do {
      await sleep(100);
      status = await call(base, 'GET', '/status');
    } while (status.done.length < 4);
    app.kill('SIGKILL');
    await app.exited;
    const doneOnPrimary = fs.readdirSync(path.join(dirs.primary, 'done')).map((f) => f.replace(/\.json$/, '')).sort();
    say(`primary killed (SIGKILL) in the middle of work: ${doneOnPrimary.length} jobs done on its disk`);

    // The journal went out as it was written; give the standby a moment to apply the last of it.
    await sleep(1500);
    replayer.kill('SIGTERM');
    await replayer.exited;
    say('understudy promote');
    process.stdout.write(cli(['promote', '--root', `data=${dirs.standby}`, '--state', dirs.state], nats));

    say('the standby\'s files');
    for (const sub of ['uploads', 'done']) console.log(`   ${sub}/: ${fs.readdirSync(path.join(dirs.standby, sub)).sort().join(' ')}`);
    say('understudy config show');
    process.stdout.write(cli(['config', 'show', '--state', dirs.state]));
    say('understudy queue pending');
    process.stdout.write(cli(['queue', 'pending', '--state', dirs.state]));

    // What the standby application does at promotion: load its flags, run the unfinished jobs again.
    const flags = readConfigReplica('nconf', dirs.state).flags;
    const env = readConfigReplica('env', dirs.state);
    const pending = pendingJobs('thumbnails', dirs.state).map((j) => j.payload.id);
    const enqueued = Array.from({ length: 12 }, (_, i) => `thumb-${i + 1}`);
    const expected = enqueued.filter((id) => !doneOnPrimary.includes(id));
    say(`the standby application would start with flags ${JSON.stringify(flags)}, MAINTENANCE=${env.MAINTENANCE}, and run ${pending.length} jobs again`);
    const ok = JSON.stringify(pending) === JSON.stringify(expected) && flags.newCheckout === true && flags.darkMode === false && env.MAINTENANCE === 'on';
    if (!ok) throw new Error(`the standby differs: pending ${pending.join()} expected ${expected.join()}`);
    say(`checked: pending on the standby = enqueued − done on the primary (${expected.join(' ')}); flags and files match. Left in ${DEMO}`);
  } finally {
    app?.kill('SIGKILL');
    replayer?.kill('SIGKILL');
    await server.stop();
  }
}

main().catch((err) => {
  console.error(`failover demo failed: ${err.message}`);
  process.exit(1);
});
