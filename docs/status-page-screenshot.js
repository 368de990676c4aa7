'use strict';
// How docs/status-page.png is made (after `npm run build`): node docs/status-page-screenshot.js [FILE]
// A nats-server on a free port, three services writing under the agent (a burst now and then),
// two standbys following (site-b serves the page), a baseline and a verify; site-c is stopped
// for 40 s and started again, and the page is shot while it catches up. Everything lives in a
// temporary directory that is removed at the end.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startNatsServer } = require('../dist/test/helpers/nats-server.js');

const REPO = path.resolve(__dirname, '..');
const CLI = path.join(REPO, 'dist', 'cli.js');
const OUT = path.resolve(process.argv[2] ?? path.join(__dirname, 'status-page.png'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const WRITER = `const fs = require('fs');
const [dir, name] = process.argv.slice(2);
let i = 0;
setInterval(() => {
  const n = Math.random() < 0.15 ? 40 : 1 + Math.floor(Math.random() * 3);
  for (let k = 0; k < n; k++) fs.writeFileSync(dir + '/' + name + '-' + (i++ % 200) + '.json', JSON.stringify({ i, at: Date.now(), pad: 'x'.repeat(2000) }));
}, 400);
`;

async function main() {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-screenshot-'));
  const d = Object.fromEntries(['primary', 'b', 'c', 'state-b', 'state-c', 'spool'].map((n) => [n, path.join(base, n)]));
  for (const dir of Object.values(d)) fs.mkdirSync(dir);
  fs.writeFileSync(path.join(base, 'writer.js'), WRITER);
  const nats = await startNatsServer({ storeDir: path.join(base, 'nats') });
  const env = { ...process.env, UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_SPOOL_DIR: d.spool, UNDERSTUDY_ROOTS: `data=${d.primary}` };
  const children = [];
  const run = (args, extra = {}) => {
    const child = spawn(process.execPath, args, { env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    return child;
  };
  const replay = (site) => run([CLI, 'replay', '--root', `data=${d[site]}`, '--state', d[`state-${site}`], '--standby', `site-${site}`, ...(site === 'b' ? ['--http-port', '0'] : [])]);
  try {
    for (const app of ['notes', 'jobs', 'billing']) run(['--require', path.join(REPO, 'dist', 'agent', 'preload.js'), path.join(base, 'writer.js'), d.primary, app], { UNDERSTUDY_NAME: app });
    await sleep(1000);
    const b = replay('b');
    const url = await new Promise((resolve, reject) => {
      let err = '';
      b.on('exit', (code) => reject(new Error(`replay ended with ${code}: ${err}`)));
      b.stderr.on('data', (x) => {
        err += x;
        const m = /status page on (http:\S+)/.exec(err);
        if (m) resolve(m[1]);
      });
    });
    let c = replay('c');
    await sleep(4000);
    spawnSync(process.execPath, [CLI, 'baseline', '--root', `data=${d.primary}`, '--name', 'nightly'], { env, stdio: 'ignore' });
    await sleep(3000);
    spawnSync(process.execPath, [CLI, 'verify', '--root', `data=${d.primary}`, '--name', 'hourly'], { env, stdio: 'ignore' });
    await sleep(3000);
    c.kill('SIGTERM');
    await sleep(40_000);
    c = replay('c');
    await sleep(16_000);
    const shot = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${path.join(base, 'chromium')}`,
      `--screenshot=${OUT}`, '--window-size=1280,900', '--virtual-time-budget=3000', url], { stdio: 'ignore' });
    if (shot.status !== 0) throw new Error(`chromium ended with ${shot.status ?? shot.error}`);
    console.log(`wrote ${OUT}`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode === null ? new Promise((r) => child.on('exit', r)) : undefined)));
    await nats.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
