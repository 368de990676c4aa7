'use strict';
// npm run demo:sqlite: a service that stores its orders in SQLite (examples/orders), killed at a
// random moment while 8 clients place orders, and a standby whose database has every order the
// service confirmed. Starts a nats-server on a free port, `understudy replay` following the
// stream, and the service under `node --require understudy/agent` in sync mode: a confirmed
// order's transaction is in JetStream before the service answers. After the SIGKILL the standby
// is drained and its database opened read-only: it must pass integrity_check, hold every
// confirmed order (with its receipt file) and nothing half done (each order's stock move is there).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const Database = require('better-sqlite3');
const { startNatsServer, freePort } = require('../dist/test/helpers/nats-server.js');
const { REPO, say, sleep, start } = require('./lib/run');

const CLI = path.join(REPO, 'dist', 'cli.js');
const DEMO = path.join(REPO, '.demo-sqlite');
const dirs = Object.fromEntries(['primary', 'standby', 'spool', 'state', 'nats'].map((d) => [d, path.join(DEMO, d)]));

async function main() {
  fs.rmSync(DEMO, { recursive: true, force: true });
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const server = await startNatsServer({ storeDir: dirs.nats });
  const nats = { UNDERSTUDY_NATS_URL: server.url };
  let app;
  let replayer;
  try {
    replayer = start('replay', [CLI, 'replay', '--root', `data=${dirs.standby}`, '--state', dirs.state], nats, 'stderr');
    const port = await freePort();
    app = start('primary', ['--require', 'understudy/agent', 'examples/orders/server.js'], {
      ...nats, UNDERSTUDY_ROOTS: `data=${dirs.primary}`, UNDERSTUDY_SPOOL_DIR: dirs.spool, UNDERSTUDY_NAME: 'orders',
      UNDERSTUDY_MODE: 'sync', ORDERS_DATA: dirs.primary, PORT: String(port),
    }, 'stderr');
    for (let i = 0; !app.lines.includes('orders service on'); i++) {
      if (i > 100) throw new Error(`the orders service did not start: ${app.lines}`);
      await sleep(100);
    }
    say('primary: UNDERSTUDY_MODE=sync node --require understudy/agent examples/orders/server.js (SQLite in WAL mode); standby: understudy replay');
    const base = `http://127.0.0.1:${port}`;
    const confirmed = [];
    let stop = false;
    const client = async (c) => {
      for (let i = 0; !stop; i++) {
        try {
          const res = await fetch(`${base}/orders`, { method: 'POST', body: JSON.stringify({ item: `item-${(c + i) % 5}`, qty: 1 + (i % 3) }) });
          if (!res.ok) continue;
          const { id } = await res.json();
          const r = await fetch(`${base}/receipts/${id}`, { method: 'POST', body: `receipt of order ${id}` });
          if (r.ok) confirmed.push(id);
        } catch {
          return; // the service is gone
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    const killAt = 1500 + Math.floor(Math.random() * 2000);
    await sleep(killAt);
    app.kill('SIGKILL');
    stop = true;
    await Promise.all(clients);
    await app.exited;
    say(`primary killed (SIGKILL) after ${killAt} ms, with 8 clients placing orders: ${confirmed.length} orders confirmed (order and receipt)`);

    replayer.kill('SIGTERM');
    await replayer.exited;
    const drain = spawnSync(process.execPath, [CLI, 'replay', '--root', `data=${dirs.standby}`, '--state', dirs.state, '--drain'], { cwd: REPO, env: { ...process.env, ...nats }, encoding: 'utf8' });
    if (drain.status !== 0) throw new Error(`understudy replay --drain exited ${drain.status}: ${drain.stderr}`);

    const standby = new Database(path.join(dirs.standby, 'orders.db'), { readonly: true, fileMustExist: true });
    const integrity = standby.pragma('integrity_check', { simple: true });
    const ids = new Set(standby.prepare('SELECT id FROM orders').pluck().all());
    const [qty, moved] = [standby.prepare('SELECT coalesce(sum(qty), 0) FROM orders').pluck().get(), standby.prepare('SELECT coalesce(sum(moved), 0) FROM stock').pluck().get()];
    standby.close();
    const primary = new Database(path.join(dirs.primary, 'orders.db'));
    const onPrimary = primary.prepare('SELECT count(*) FROM orders').pluck().get();
    primary.close();
    const missing = confirmed.filter((id) => !ids.has(id) || !fs.existsSync(path.join(dirs.standby, 'receipts', String(id))));
    say(`standby: integrity_check ${integrity}; ${ids.size} orders (the primary's disk has ${onPrimary}); stock moved ${moved} = ordered ${qty}`);
    if (integrity !== 'ok' || missing.length > 0 || qty !== moved || ids.size < confirmed.length) {
      throw new Error(`the standby differs: ${missing.length} confirmed orders missing (${missing.slice(0, 5).join(', ')}), stock ${moved} vs ${qty}`);
    }
    say(`checked: every confirmed order and its receipt are on the standby, and no transaction is half there. Left in ${DEMO}`);
  } finally {
    app?.kill('SIGKILL');
    replayer?.kill('SIGKILL');
    await server.stop();
  }
}

main().catch((err) => {
  console.error(`sqlite demo failed: ${err.message}`);
  process.exit(1);
});
