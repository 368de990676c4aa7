'use strict';
// npm run demo: replicates the notes service (examples/notes) to a standby directory.
// Starts a nats-server from PATH on a free port and `understudy replay` following the
// stream; the primary already holds notes from before, which `understudy baseline`
// brings over; then the service runs under `node --require understudy/agent` and is
// driven over HTTP. Afterwards a shell edits a file behind the agent's back:
// `understudy verify` names it and `--repair` mends it. The standby must match.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startNatsServer, freePort } = require('../dist/test/helpers/nats-server.js');
const { diffTrees, readTree } = require('../dist/test/helpers/tree.js');

const REPO = path.resolve(__dirname, '..');
const CLI = path.join(REPO, 'dist', 'cli.js');
const DEMO = path.join(REPO, '.demo');
const dirs = Object.fromEntries(['primary', 'standby', 'spool', 'state', 'nats'].map((d) => [d, path.join(DEMO, d)]));
const say = (line) => console.log(`\x1b[1m==>\x1b[0m ${line}`);

function start(label, args, env) {
  const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (d) => d.toString().split('\n').filter(Boolean).map((l) => `   [${label}] ${l}`).join('\n');
  child.stdout.on('data', (d) => console.log(prefix(d)));
  child.stderr.on('data', (d) => console.log(prefix(d)));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  return child;
}

function waitForLine(child, pattern, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}`)), ms);
    child.stdout.on('data', (d) => {
      const m = d.toString().match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

async function call(base, method, url, body, raw) {
  const res = await fetch(base + url, { method, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const value = await res.json();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(value)}`);
  return value;
}

function cli(args, env) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8' });
}

async function main() {
  fs.rmSync(DEMO, { recursive: true, force: true });
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const server = await startNatsServer({ storeDir: dirs.nats });
  const nats = { UNDERSTUDY_NATS_URL: server.url };
  say(`nats-server with JetStream on ${server.url}`);
  let replayer;
  let app;
  try {
    replayer = start('replay', [CLI, 'replay', '--root', `notes=${dirs.standby}`, '--state', dirs.state], nats);
    say(`standby: understudy replay --root notes=${dirs.standby}`);

    // Data from before understudy: written without the agent, so no journal has it.
    fs.mkdirSync(path.join(dirs.primary, 'notes'), { recursive: true });
    for (let i = 1; i <= 8; i++) {
      const id = `old-${String(i).padStart(3, '0')}`;
      fs.writeFileSync(path.join(dirs.primary, 'notes', `${id}.json`), JSON.stringify({ id, title: `note ${i} from last year`, text: 'x'.repeat(i * 50) }, null, 2));
    }
    fs.symlinkSync('notes/old-001.json', path.join(dirs.primary, 'pinned'));
    const base0 = cli(['baseline', '--root', `notes=${dirs.primary}`, '--name', 'notes-baseline'], { ...nats, UNDERSTUDY_SPOOL_DIR: dirs.spool });
    if (base0.status !== 0) throw new Error(`baseline failed: ${base0.stderr}`);
    say(`understudy baseline: the ${fs.readdirSync(path.join(dirs.primary, 'notes')).length} notes that existed before understudy, and a link`);
    console.log(`   ${base0.stderr.trim().split('\n').at(-1)}`);

    const port = await freePort();
    app = start('notes', ['--require', 'understudy/agent', 'examples/notes/server.js'], {
      ...nats, UNDERSTUDY_ROOTS: `notes=${dirs.primary}`, UNDERSTUDY_SPOOL_DIR: dirs.spool, UNDERSTUDY_NAME: 'notes',
      NOTES_DATA: dirs.primary, PORT: String(port),
    });
    await waitForLine(app, /notes service on/, 10_000);
    say(`primary: node --require understudy/agent examples/notes/server.js (data in ${dirs.primary})`);

    const base = `http://127.0.0.1:${port}`;
    const ids = [];
    for (const [title, text] of [['groceries', 'eggs, milk'], ['ideas', 'a warm standby'], ['todo', 'ship it'], ['日本語', 'ノート'], ['scratch', '...']]) {
      ids.push((await call(base, 'POST', '/notes', { title, text })).id);
    }
    await call(base, 'PUT', `/notes/${ids[0]}`, { text: 'eggs, milk, bread' });
    await call(base, 'PUT', `/notes/${ids[2]}`, { text: 'shipped' });
    const photo = Buffer.alloc(2 * 1024 * 1024 + 123);
    for (let i = 0; i < photo.length; i++) photo[i] = (i * 7919) & 0xff;
    await call(base, 'POST', '/uploads/photo.bin', undefined, photo);
    await call(base, 'DELETE', `/notes/${ids[4]}`);
    await call(base, 'POST', '/snapshots');
    await call(base, 'DELETE', `/notes/${ids[3]}`);
    await call(base, 'POST', '/empty-trash');
    await call(base, 'POST', '/notes', { title: 'last', text: 'written just before the service stops' });
    say('drove the service: 6 notes created, 2 updated, 2 trashed, a 2 MiB upload, a snapshot, trash emptied');

    app.kill('SIGTERM');
    await app.exited;
    say('primary stopped; waiting for the standby to apply everything');
    const deadline = Date.now() + 20_000;
    let rows = [];
    for (;;) {
      const s = cli(['status', '--json', '--name', 'notes'], nats);
      rows = s.status === 0 ? JSON.parse(s.stdout).journals : [];
      const row = rows[0];
      if (row && row.applied_seq !== undefined && row.applied_seq === row.agent_last_seq && row.lag_entries === 0) break;
      if (Date.now() > deadline) throw new Error(`standby did not catch up: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 200));
    }

    // A change no agent saw: an operator's shell edits a note in place.
    spawnSync('sh', ['-c', `echo '{"id":"old-007","title":"edited in vi","text":"behind the agent'"'"'s back"}' > notes/old-007.json`], { cwd: dirs.primary });
    say('a shell edited notes/old-007.json without the agent');
    const check = cli(['verify', '--root', `notes=${dirs.primary}`], nats);
    say(`understudy verify (exit ${check.status})`);
    process.stdout.write(check.stdout.split('\n').map((l) => (l ? `   ${l}` : l)).join('\n'));
    if (check.status !== 1 || !/content\s+notes\/notes\/old-007\.json/.test(check.stdout)) throw new Error(`verify did not find the edit: ${check.stdout}${check.stderr}`);
    const fix = cli(['verify', '--root', `notes=${dirs.primary}`, '--repair'], { ...nats, UNDERSTUDY_SPOOL_DIR: dirs.spool });
    say(`understudy verify --repair (exit ${fix.status})`);
    process.stdout.write(fix.stdout.split('\n').map((l) => (l ? `   ${l}` : l)).join('\n'));
    if (fix.status !== 0) throw new Error(`repair failed: ${fix.stdout}${fix.stderr}`);

    replayer.kill('SIGTERM');
    await replayer.exited;

    say('understudy status');
    process.stdout.write(cli(['status'], nats).stdout);
    say('understudy inspect (last 8 entries)');
    const lines = cli(['inspect'], nats).stdout.trim().split('\n');
    console.log(lines.slice(-8).join('\n'));

    say(`the standby tree (${dirs.standby})`);
    const tree = readTree(dirs.standby);
    for (const [rel, node] of tree) {
      const detail = node.type === 'file' ? `${node.size} bytes  sha256 ${node.sha256.slice(0, 12)}…` : node.type === 'symlink' ? `-> ${node.target}` : '';
      console.log(`   ${node.type.padEnd(7)} ${node.mode.toString(8).padStart(4, '0')}  ${rel}  ${detail}`);
    }
    const diff = diffTrees(dirs.primary, dirs.standby);
    if (diff.length > 0) {
      console.log(diff.join('\n'));
      throw new Error('the standby differs from the primary');
    }
    say(`the standby is byte-identical to the primary: ${tree.size} objects (types, bytes, permission bits, link targets)`);
    say(`both trees are left in ${DEMO} to look at`);
  } finally {
    app?.kill('SIGKILL');
    replayer?.kill('SIGKILL');
    await server.stop();
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
