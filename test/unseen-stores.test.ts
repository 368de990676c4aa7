import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { collect, makePair, PRELOAD, REPO, type Pair, type RunResult } from './helpers/pair';
import { packageOf, storeOfAddon, UNSEEN_STORES, unseenNotice } from '../agent/unseen-stores';
import { readDb } from './helpers/sqlite-app';

// Real native addons under the agent. better-sqlite3 is captured (agent/sqlite); the stores it
// cannot see are played by a copy of better-sqlite3's addon placed where such a store's addon
// lies (node_modules/classic-level/...): a real dlopen of real native code from that package.
const SQLITE = path.join(REPO, 'node_modules', 'better-sqlite3');
const ADDON = path.join(SQLITE, 'build', 'Release', 'better_sqlite3.node');
const LEVEL_NOTICE = 'understudy: classic-level writes its LevelDB files from native code, which understudy does not see';

/** A copy of a real addon at `node_modules/classic-level/prebuilds/linux-x64/classic-level.node` under `dir`. */
function levelAddon(dir: string): string {
  const at = path.join(dir, 'node_modules', 'classic-level', 'prebuilds', 'linux-x64');
  fs.mkdirSync(at, { recursive: true });
  const file = path.join(at, 'classic-level.node');
  if (!fs.existsSync(file)) fs.copyFileSync(ADDON, file);
  return file;
}

/** The agent's lines about native stores in `stderr`. */
function notices(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.includes('from native code'));
}

let pair: Pair;
test.before(async () => {
  pair = await makePair('unseen');
});
test.after.always(async () => {
  await pair?.close();
});

test('the package of an addon: the innermost node_modules entry, scoped or not', (t) => {
  t.is(packageOf('/srv/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'), 'better-sqlite3');
  t.is(packageOf('/srv/app/node_modules/.pnpm/sqlite3@5.1.7/node_modules/sqlite3/build/Release/node_sqlite3.node'), 'sqlite3');
  t.is(packageOf('/srv/app/node_modules/lmdb/node_modules/@lmdb/lmdb-linux-x64/node.abi115.glibc.node'), '@lmdb/lmdb-linux-x64');
  t.is(packageOf('/srv/app/build/Release/own.node'), undefined);
  t.is(storeOfAddon('/a/node_modules/@lmdb/lmdb-linux-x64/node.abi115.glibc.node')?.library, 'lmdb');
  t.is(storeOfAddon('/a/node_modules/@libsql/linux-x64-gnu/index.node')?.library, 'libsql');
  t.is(storeOfAddon('/a/node_modules/classic-level/prebuilds/linux-x64/classic-level.glibc.node')?.library, 'classic-level');
  // An addon that is not a store, and a package whose name only begins like one.
  t.is(storeOfAddon('/a/node_modules/bufferutil/prebuilds/linux-x64/bufferutil.node'), undefined);
  t.is(storeOfAddon('/a/node_modules/sqlite3-extra/build/Release/x.node'), undefined);
  // Every store's notice names it and UNDERSTUDY_WATCH, watching or not.
  for (const s of UNSEEN_STORES) {
    for (const watch of [false, true]) {
      const line = unseenNotice(s, watch);
      t.true(line.startsWith(`${s.library} `) && line.includes('UNDERSTUDY_WATCH=1'), line);
    }
  }
});

const TWO_DATABASES = `
  const Database = require(${JSON.stringify(SQLITE)});
  const again = require(${JSON.stringify(SQLITE)});
  for (const [D, name] of [[Database, 'a.db'], [again, 'b.db']]) {
    const db = new D(require('node:path').join(process.env.DATA, name));
    db.exec('create table t (x)');
    db.prepare('insert into t values (?)').run(1);
    db.close();
  }
  console.log('ok');
`;

test.serial('better-sqlite3 required twice, two databases opened: nothing is said, and both are on the standby', async (t) => {
  const r = await pair.runApp({ code: TWO_DATABASES, env: { DATA: pair.primary } });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'ok');
  t.deepEqual(notices(r.stderr), []);
  await pair.drain();
  for (const name of ['a.db', 'b.db']) t.deepEqual(readDb(path.join(pair.standby, name))?.rows, { t: ['[1]'] }, name);
});

test.serial('a store the agent cannot see, loaded with UNDERSTUDY_WATCH=1: the notice says what watching gives, snapshots that may be torn', async (t) => {
  const addon = levelAddon(pair.dir);
  const r = await pair.runApp({ code: `require(${JSON.stringify(addon)}); console.log('ok');`, env: { DATA: pair.primary, UNDERSTUDY_WATCH: '1' } });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(notices(r.stderr), [`${LEVEL_NOTICE}; UNDERSTUDY_WATCH=1 replicates its files under the roots as snapshots, not transactions, which may be torn between a log write and a compaction`]);
});

test.serial('a second copy of the addon, and a worker thread loading it again: still once per process', async (t) => {
  const addon = levelAddon(pair.dir);
  // A nested node_modules with its own copy, as a dependency tree with two versions has.
  const copy = levelAddon(path.join(pair.dir, 'vendored'));
  const r = await pair.runApp({
    env: { DATA: pair.primary },
    code: `
      const { Worker } = require('node:worker_threads');
      require(${JSON.stringify(addon)});
      require(${JSON.stringify(copy)});
      const w = new Worker(\`
        require(${JSON.stringify(addon)});
        require('node:worker_threads').parentPort.postMessage('opened');
      \`, { eval: true });
      w.on('message', (m) => { console.log(m); w.terminate(); });
    `,
  });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'opened');
  t.deepEqual(notices(r.stderr), [`${LEVEL_NOTICE}: its files under the roots are not replicated unless UNDERSTUDY_WATCH=1 (snapshots, not transactions)`]);
});

test.serial('a process that loads no native store says nothing', async (t) => {
  const r = await pair.runApp({
    env: { DATA: pair.primary },
    code: `
      const fs = require('node:fs');
      fs.writeFileSync(require('node:path').join(process.env.DATA, 'plain.txt'), 'plain');
      console.log('ok');
    `,
  });
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
});

/** Runs an ES module that imports better-sqlite3 by name under `flag understudy/agent`. */
function runModule(flag: '--import' | '--require', code: string): Promise<RunResult> {
  const dir = path.join(pair.dir, `esm${flag}`);
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  fs.symlinkSync(SQLITE, path.join(dir, 'node_modules', 'better-sqlite3'));
  fs.symlinkSync(REPO, path.join(dir, 'node_modules', 'understudy'));
  fs.writeFileSync(path.join(dir, 'app.mjs'), code);
  return collect(spawn(process.execPath, [flag, flag === '--require' ? PRELOAD : 'understudy/agent', 'app.mjs'], { cwd: dir, env: pair.env({ DATA: pair.primary }), stdio: ['ignore', 'pipe', 'pipe'] }));
}

test.serial('an ES module importing better-sqlite3 under --import: captured, nothing said', async (t) => {
  const r = await runModule('--import', `
    import Database from 'better-sqlite3';
    import { join } from 'node:path';
    const a = new Database(join(process.env.DATA, 'esm-import.db'));
    a.exec('create table t (x); insert into t values (7)');
    a.close();
    console.log('ok');
  `);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'ok');
  t.deepEqual(notices(r.stderr), []);
  await pair.drain();
  t.deepEqual(readDb(path.join(pair.standby, 'esm-import.db'))?.rows, { t: ['[7]'] });
});

test.serial('an ES module importing better-sqlite3 under --require, where no hook reaches it: said once, naming --import', async (t) => {
  const r = await runModule('--require', `
    import Database from 'better-sqlite3';
    import { join } from 'node:path';
    const a = new Database(join(process.env.DATA, 'esm-require-a.db'));
    const b = new Database(join(process.env.DATA, 'esm-require-b.db'));
    a.close(); b.close();
    console.log('ok');
  `);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'ok');
  t.deepEqual(notices(r.stderr).length, 0, 'not "from native code": the library is one understudy captures');
  const said = r.stderr.split('\n').filter((l) => l.includes('could not wrap it'));
  t.is(said.length, 1, r.stderr);
  t.regex(said[0], /^understudy: better-sqlite3 was loaded where understudy could not wrap it .*--import understudy\/agent/);
});
