'use strict';
/**
 * The standby's cost of keeping checkpoints, and restore against `cp -a`, in one run.
 *
 * Two standbys side by side under os.tmpdir(), each a 10,000-file tree (1-4 KiB files in 100
 * directories) and a --state: one with the checkpoint store behind its appliers, one without.
 * Every round reaches a checkpoint on the first (timed: `reached`), then applies the same 1 %
 * of changes to both through the real appliers (60 puts over files, 20 appends, 10 pwrites,
 * 5 removals, 5 new files) and commits (the group commit's fsyncs): the difference is what
 * keeping costs per checkpoint; the bytes kept are the store's own count. Then, in rotating
 * order, a restore of the newest checkpoint and of the oldest (every log undone) into an empty
 * directory, against `cp -a` of the live tree (a child process) into another; each result is
 * compared with the tree at its checkpoint (`cp -a` copies taken at each reach). Warm cache.
 *
 *   node bench/checkpoints.js
 *   BENCH_CP_FILES=10000 BENCH_CP_ROUNDS=5 BENCH_CP_RESTORES=3
 */
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { requireDist, tempDir, median, fmt, table, machine, runMain } = require('./lib/common');
const { makeSmallTree, assertSameTree, diskOf, loadNow } = require('./lib/commands');

const FILES = Number(process.env.BENCH_CP_FILES ?? 10_000);
const ROUNDS = Number(process.env.BENCH_CP_ROUNDS ?? 5);
const RESTORES = Number(process.env.BENCH_CP_RESTORES ?? 3);

const { Appliers } = requireDist('replayer/apply/registry.js');
const { NO_HISTORY } = requireDist('replayer/apply/applier.js');
const { CheckpointStore } = requireDist('replayer/checkpoints/store.js');
const { planRestore, runRestore } = requireDist('replayer/checkpoints/restore.js');
const { writeSync } = requireDist('replayer/write.js');

/** One standby: its root, state and appliers, with or without the store. */
function standby(label, tree, withStore) {
  const base = tempDir(`cp-${label}`);
  const root = path.join(base, 'data');
  execFileSync('cp', ['-a', tree, root]);
  const stateDir = path.join(base, 'state');
  fs.mkdirSync(stateDir);
  const roots = new Map([['data', root]]);
  const store = withStore ? new CheckpointStore({ stateDir, roots, keep: ROUNDS, standby: 'bench', log: () => undefined }) : undefined;
  store?.open();
  const appliers = Appliers.open({ roots, stateDir, write: writeSync, log: () => undefined, ...NO_HISTORY, applied: () => undefined, keep: store?.keep, keepSync: store === undefined ? undefined : () => store.sync() });
  return { base, root, stateDir, roots: [{ name: 'data', dir: root, realDir: root }], store, appliers };
}

/** 1 % of the tree's files, changed the ways an application changes them. */
function changesOf(round, names) {
  const n = Math.max(1, Math.round(names.length / 100));
  const pick = () => names[crypto.randomInt(names.length)];
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = i % 20;
    const data = crypto.randomBytes(1024 + crypto.randomInt(3072));
    if (k < 12) out.push([{ r: 'data', p: pick(), op: 'put', mode: 0o644 }, data]);
    else if (k < 16) out.push([{ r: 'data', p: pick(), op: 'append', at: 4096 }, data.subarray(0, 200)]);
    else if (k < 18) out.push([{ r: 'data', p: pick(), op: 'pwrite', at: 10 }, data.subarray(0, 64)]);
    else if (k < 19) out.push([{ r: 'data', p: pick(), op: 'rm' }, Buffer.alloc(0)]);
    else out.push([{ r: 'data', p: `d000/new-${round}-${i}.bin`, op: 'put', mode: 0o644 }, data]);
  }
  return out;
}

async function applyAll(sb, changes, seq) {
  const t0 = process.hrtime.bigint();
  for (const [h, data] of changes) sb.appliers.apply({ ...h, j: 'app', e: 1, s: ++seq.n, t: seq.n }, { buf: data });
  await sb.appliers.sync();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function timedMs(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function run() {
  console.log(`checkpoints.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}`);
  console.log(`  at start: ${loadNow()}`);
  const seedDir = tempDir('cp-seed');
  const made = makeSmallTree(path.join(seedDir, 'data'), { files: FILES });
  const names = execFileSync('find', ['.', '-type', 'f', '-printf', '%P\n'], { cwd: path.join(seedDir, 'data'), encoding: 'utf8' }).trim().split('\n');
  const kept = standby('kept', path.join(seedDir, 'data'), true);
  const plain = standby('plain', path.join(seedDir, 'data'), false);
  const snaps = tempDir('cp-snaps');
  const rows = [['round', 'reach ms', 'changes', 'apply+commit ms, store', 'same, no store', 'keeping costs ms', 'bytes kept', 'objects kept']];
  const seqA = { n: 0 };
  const seqB = { n: 0 };
  const costs = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const reach = timedMs(() => kept.store.reached({ name: `c${r}`, id: `c${r}`, time: Date.now(), cut: [{ j: 'app', e: 1, s: seqA.n }] }));
    execFileSync('cp', ['-a', kept.root, path.join(snaps, `c${r}`)]);
    const changes = changesOf(r, names);
    // The two standbys take turns going first, so neither always has the warmer cache.
    let a2;
    let b2;
    if (r % 2 === 0) {
      a2 = await applyAll(kept, changes, seqA);
      b2 = await applyAll(plain, changes, seqB);
    } else {
      b2 = await applyAll(plain, changes, seqB);
      a2 = await applyAll(kept, changes, seqA);
    }
    const cp = kept.store.list().find((c) => c.name === `c${r}`);
    const objectsDir = path.join(kept.stateDir, 'checkpoints', String(r).padStart(6, '0'), 'o');
    const objects = fs.existsSync(objectsDir) ? fs.readdirSync(objectsDir).length : 0;
    costs.push({ reach, store: a2, plain: b2, bytes: cp.bytes });
    rows.push([r, fmt(reach, 2), changes.length, fmt(a2, 1), fmt(b2, 1), fmt(a2 - b2, 1), fmt(cp.bytes), objects]);
  }
  console.log(`\n${FILES} files (${fmt(made.bytes / 1024 / 1024, 1)} MiB) per standby; ${ROUNDS} checkpoints, 1 % of the files changed after each:`);
  console.log(table(rows));

  const restores = { newest: [], oldest: [], cp: [] };
  const out = tempDir('cp-out');
  let k = 0;
  for (let i = 0; i < RESTORES; i++) {
    const order = [['newest', `c${ROUNDS}`], ['oldest', 'c1'], ['cp', null]];
    for (let j = 0; j < i % 3; j++) order.push(order.shift());
    for (const [which, name] of order) {
      const to = path.join(out, String(++k));
      if (name === null) {
        restores.cp.push(timedMs(() => execFileSync('cp', ['-a', kept.root, to])));
      } else {
        restores[which].push(timedMs(() => runRestore(planRestore(kept.stateDir, kept.roots, name, to), kept.roots)));
        assertSameTree(path.join(snaps, name), path.join(to, 'data'));
      }
      fs.rmSync(to, { recursive: true, force: true });
    }
  }
  console.log(`\nrestore of ${FILES} files into an empty directory, median of ${RESTORES} (each restore checked against the cp -a copy taken at its reach):`);
  const cpMs = median(restores.cp);
  console.log(table([
    ['what', 'ms', 'against cp -a'],
    [`restore c${ROUNDS} (its log undone)`, fmt(median(restores.newest), 0), `${fmt(median(restores.newest) / cpMs, 2)} x`],
    [`restore c1 (${ROUNDS} logs undone)`, fmt(median(restores.oldest), 0), `${fmt(median(restores.oldest) / cpMs, 2)} x`],
    ['cp -a of the live tree', fmt(cpMs, 0), '1.00 x'],
  ]));
  console.log(`\nper checkpoint, median: reach ${fmt(median(costs.map((c) => c.reach)), 2)} ms; keeping ${fmt(median(costs.map((c) => c.store - c.plain)), 1)} ms over ${fmt(median(costs.map((c) => c.plain)), 1)} ms of applying and committing; ${fmt(median(costs.map((c) => c.bytes)))} bytes kept`);
  console.log(`  at end: ${loadNow()}`);
  kept.appliers.close();
  plain.appliers.close();
  kept.store.close();
}

runMain(run);
