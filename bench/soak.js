'use strict';
/**
 * Soak: memory and descriptors of the agent and of the replayer over a long steady run.
 * An application under the agent (lib/soak-app.js) keeps up a mixed workload (files,
 * appends, a write stream, directories, renames, unlinks, process.env, fastq jobs,
 * overlapping appends) at BENCH_SOAK_RATE ops/s for BENCH_SOAK_SECONDS; a following
 * Replayer (lib/soak-replayer.js) applies it to a standby directory. Every
 * BENCH_SOAK_SAMPLE_S seconds: RSS (from /proc), heap and external memory (from
 * process.memoryUsage(), the main thread's isolate), open descriptors (/proc/<pid>/fd)
 * of both, and how far the standby is behind. Both run with --trace-gc (BENCH_SOAK_TRACE_GC=0:
 * without): what each isolate (the app's main thread, its shipper worker, the replayer)
 * holds after each full collection is the figure a leak moves; RSS and heap used also move
 * with garbage not yet collected. Every BENCH_SOAK_HEAP_S seconds (default 0: never) heap
 * snapshots of the three: their live size, and at the end which object kinds grew from
 * the first snapshot to the last. A snapshot raises the RSS of its process for good (the
 * allocator keeps what it took to build it): RSS figures after the first are not the app's.
 * Slopes (MB/min, fds/min) are least-squares over the samples after BENCH_SOAK_WARMUP_S.
 *
 *   node bench/soak.js                       (after npx tsc -p tsconfig.json; 300 s)
 *   BENCH_SOAK_SECONDS=60 node bench/soak.js (a quick look)
 *   BENCH_SOAK_HEAP_S=240 BENCH_SOAK_KEEP=/abs/dir node bench/soak.js   (heap snapshots, kept there with the GC logs)
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./lib/common');

const APP = path.join(__dirname, 'lib', 'soak-app.js');
const REPLAYER = path.join(__dirname, 'lib', 'soak-replayer.js');
const MB = 1024 * 1024;

/** RSS (bytes) and open descriptors of a process, from /proc; undefined once it is gone. */
function procFigures(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
    const threads = Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    return { rss, fds: fs.readdirSync(`/proc/${pid}/fd`).length, threads };
  } catch {
    return undefined;
  }
}

function range(xs) {
  return xs.length === 0 ? '–' : `${Math.min(...xs)}-${Math.max(...xs)}`;
}

/** What a process's descriptors point at, by kind: the primary's subdirectories, the spool, sockets, pipes… */
function fdKinds(pid, names) {
  const kinds = {};
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      let target;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed meanwhile
      }
      const named = Object.entries(names).find(([, dir]) => target.startsWith(dir + path.sep));
      const kind = named !== undefined ? `${named[0]}/${target.slice(named[1].length + 1).split(path.sep)[0]}` : target.replace(/:\[\d+\]$/, '').replace(/^\/.*/, 'other file');
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
  } catch {
    // gone
  }
  return kinds;
}

/**
 * What a V8 heap snapshot holds: its total size, and per kind of object (constructor
 * name for objects and closures, else the node type) the count and bytes.
 */
function summarizeSnapshot(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const F = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const nodes = snap.nodes;
  const kinds = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += F) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    const key = type === 'object' || type === 'closure' ? `${type === 'closure' ? 'closure ' : ''}${snap.strings[nodes[i + iName]]}` : `(${type})`;
    const k = kinds.get(key) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += size;
    kinds.set(key, k);
  }
  return { total, kinds };
}

/** The kinds that grew most from `a` to `b` (by bytes), with counts. */
function grown(a, b, top = 8) {
  const rows = [];
  for (const [key, kb] of b.kinds) {
    const ka = a.kinds.get(key) ?? { count: 0, bytes: 0 };
    rows.push({ key, dCount: kb.count - ka.count, dBytes: kb.bytes - ka.bytes, count: kb.count });
  }
  return rows.sort((x, y) => y.dBytes - x.dBytes).slice(0, top);
}

/**
 * The collections a --trace-gc log shows, per isolate (in the order each first appears): the
 * scavenges counted, and each Mark-Compact with its time (s since the process began) and
 * the heap used before and after it.
 */
function majorGcs(file) {
  const isolates = new Map();
  const re = /^\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: (Scavenge|Mark-Compact|Minor Mark-Compact|Mark-Sweep)\S*(?: \(reduce\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = re.exec(line);
    if (m === null) continue;
    const iso = isolates.get(m[1]) ?? { scavenges: 0, full: [] };
    isolates.set(m[1], iso);
    iso.lastTotal = Number(m[7]);
    if (m[3] === 'Mark-Compact') iso.full.push({ t: Number(m[2]) / 1000, before: Number(m[4]), after: Number(m[6]) });
    else iso.scavenges++;
  }
  return [...isolates.values()];
}

/**
 * Names the isolates of the app's log: the log says only their addresses, so the main
 * thread's is the one whose last heap size is nearest the main thread's own heapTotal at
 * the end (process.memoryUsage()); the other is the shipper's worker.
 */
function nameIsolates(isolates, mainHeapTotal) {
  const mb = mainHeapTotal / MB;
  const main = isolates.reduce((best, iso) => (best === undefined || Math.abs(iso.lastTotal - mb) < Math.abs(best.lastTotal - mb) ? iso : best), undefined);
  for (const iso of isolates) iso.label = iso === main ? 'main thread' : 'shipper worker';
  return isolates;
}

function ask(proc, msg, type, timeoutMs = 60_000) {
  const p = proc.next(type, timeoutMs);
  proc.child.send(msg);
  return p;
}

async function run({
  seconds = Number(process.env.BENCH_SOAK_SECONDS ?? 300),
  rate = Number(process.env.BENCH_SOAK_RATE ?? 480),
  sampleS = Number(process.env.BENCH_SOAK_SAMPLE_S ?? 5),
  tableS = Number(process.env.BENCH_SOAK_TABLE_S ?? 30),
  heapS = Number(process.env.BENCH_SOAK_HEAP_S ?? 0),
  warmupS = Number(process.env.BENCH_SOAK_WARMUP_S ?? Math.min(60, Math.round(seconds / 5))),
  keep = process.env.BENCH_SOAK_KEEP,
  traceGc = process.env.BENCH_SOAK_TRACE_GC !== '0',
  log = console.log,
} = {}) {
  c.hookSignals();
  log(`# soak: ${rate} ops/s for ${seconds} s, samples every ${sampleS} s, heap snapshots every ${heapS || '–'} s, slopes after ${warmupS} s`);
  log(`# ${c.machine()}; load average at start ${require('node:os').loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const nats = await c.startNats('soak-nats');
  const primary = c.tempDir('soak-primary');
  const spool = c.tempDir('soak-spool');
  const standby = c.tempDir('soak-standby');
  const state = c.tempDir('soak-state');
  const snapDir = keep ?? c.tempDir('soak-heap');
  fs.mkdirSync(snapDir, { recursive: true });
  // --trace-gc prints every collection of every isolate (the app's main thread and its shipper worker) to stdout.
  const traces = { app: path.join(snapDir, 'app-gc.log'), rp: path.join(snapDir, 'replayer-gc.log') };
  const gcOut = (file) => (traceGc ? { execArgv: ['--trace-gc'], stdout: fs.openSync(file, 'w') } : {});
  const rp = c.spawnIpc(REPLAYER, [JSON.stringify({ url: nats.url, standby, state })], gcOut(traces.rp));
  await rp.next('started', 30_000);
  const app = c.spawnIpc(APP, [JSON.stringify({ dir: primary, rate })], {
    ...gcOut(traces.app),
    agent: true,
    env: { UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${primary}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'soak' },
  });
  await app.next('ready', 30_000);
  const samples = [];
  const heaps = [];
  const t0 = Date.now();
  app.child.send({ type: 'go' });
  let nextHeap = heapS > 0 ? warmupS : Infinity;
  let mostFds;
  try {
    for (let due = 0; due <= seconds; due += sampleS) {
      await c.sleep(Math.max(0, t0 + due * 1000 - Date.now()));
      const [a, r] = await Promise.all([ask(app, { type: 'sample' }, 'sample'), ask(rp, { type: 'sample' }, 'sample')]);
      const s = {
        t: (Date.now() - t0) / 1000, ops: a.ops, errors: a.errors, behind: a.positions.appended - a.positions.applied,
        app: { ...procFigures(app.child.pid), heap: a.mem.heapUsed, heapTotal: a.mem.heapTotal, external: a.mem.external, buffers: a.mem.arrayBuffers },
        rp: { ...procFigures(rp.child.pid), heap: r.mem.heapUsed, heapTotal: r.mem.heapTotal, external: r.mem.external, buffers: r.mem.arrayBuffers },
        nats: procFigures(nats.pid),
      };
      samples.push(s);
      // The most descriptors the app has had so far: what they were.
      if (s.app.fds > (mostFds?.fds ?? 0)) mostFds = { t: s.t, fds: s.app.fds, kinds: fdKinds(app.child.pid, { primary, spool }) };
      if (a.errors > 0 && samples.length === 1 + samples.findIndex((x) => x.errors > 0)) log(`  (app: ${a.errors} failed call(s), first: ${a.firstError})`);
      if (s.t >= nextHeap) {
        nextHeap += heapS;
        const n = heaps.length;
        const files = { main: path.join(snapDir, `app-main-${n}.heapsnapshot`), worker: path.join(snapDir, `app-worker-${n}.heapsnapshot`), rp: path.join(snapDir, `replayer-${n}.heapsnapshot`) };
        await Promise.all([ask(app, { type: 'heap', main: files.main, worker: files.worker }, 'heap', 120_000), ask(rp, { type: 'heap', main: files.rp }, 'heap', 120_000)]);
        const h = { t: s.t };
        for (const [k, f] of Object.entries(files)) {
          h[k] = summarizeSnapshot(f);
          if (keep === undefined) fs.rmSync(f);
        }
        heaps.push(h);
      }
    }
    const done = await ask(app, { type: 'stop' }, 'done', 90_000);
    await app.exited;
    if (!done.flushed) log('  warning: the app\'s flush at the end did not complete');
    const end = await ask(rp, { type: 'stop' }, 'result', 60_000);
    await rp.exited;
    if (app.stderr().trim() !== '') log(`  (app stderr: ${app.stderr().trim().slice(0, 600)})`);
    if (rp.stderr().trim() !== '') log(`  (replayer stderr: ${rp.stderr().trim().slice(0, 600)})`);
    const gc = traceGc ? { app: nameIsolates(majorGcs(traces.app), done.mem.heapTotal), rp: majorGcs(traces.rp) } : undefined;
    return report({ samples, heaps, gc, mostFds, warmupS, sampleS, tableS, rate, seconds, done, end: end.summary, log });
  } finally {
    if (app.child.exitCode === null) app.child.kill('SIGKILL');
    if (rp.child.exitCode === null) rp.child.kill('SIGKILL');
    await nats.stop();
  }
}

function report({ samples, heaps, gc, mostFds, warmupS, sampleS, tableS, rate, seconds, done, end, log }) {
  const mb = (b) => c.fmt(b / MB, 1);
  // A row every tableS (and the last sample); all samples go into the slopes.
  const every = Math.max(1, Math.round(tableS / sampleS));
  const rows = [['t s', 'ops', 'behind', 'app RSS MB', 'app heap MB', 'app heap total MB', 'app ext MB', 'app fds', 'rp RSS MB', 'rp heap MB', 'rp heap total MB', 'rp ext MB', 'rp fds', 'nats RSS MB']];
  samples.forEach((s, i) => {
    if (i % every !== 0 && i !== samples.length - 1) return;
    rows.push([c.fmt(s.t), c.fmt(s.ops), c.fmt(s.behind), mb(s.app.rss), mb(s.app.heap), mb(s.app.heapTotal), mb(s.app.external), s.app.fds, mb(s.rp.rss), mb(s.rp.heap), mb(s.rp.heapTotal), mb(s.rp.external), s.rp.fds, mb(s.nats?.rss ?? NaN)]);
  });
  log('');
  log(c.table(rows));
  const after = samples.filter((s) => s.t >= warmupS);
  const t = after.map((s) => s.t / 60);
  const fig = (pick) => c.slope(t, after.map(pick));
  const slopes = {
    appRss: fig((s) => s.app.rss / MB), appHeap: fig((s) => s.app.heap / MB), appExternal: fig((s) => s.app.external / MB), appFds: fig((s) => s.app.fds),
    rpRss: fig((s) => s.rp.rss / MB), rpHeap: fig((s) => s.rp.heap / MB), rpExternal: fig((s) => s.rp.external / MB), rpFds: fig((s) => s.rp.fds),
  };
  const first = after[0];
  const last = samples[samples.length - 1];
  log('');
  log(`slopes after ${warmupS} s (least squares over ${after.length} samples, ${c.fmt(first?.t ?? NaN)}-${c.fmt(last.t)} s):`);
  log(c.table([
    ['process', 'RSS MB/min', 'heap used MB/min', 'external MB/min', 'fds/min', 'fds min-max', `RSS at ${c.fmt(first?.t ?? NaN)} s → end`],
    ['app (agent + shipper)', c.fmt(slopes.appRss, 2), c.fmt(slopes.appHeap, 2), c.fmt(slopes.appExternal, 2), c.fmt(slopes.appFds, 2), range(after.map((s) => s.app.fds)), `${mb(first?.app.rss)} → ${mb(last.app.rss)} MB`],
    ['replayer', c.fmt(slopes.rpRss, 2), c.fmt(slopes.rpHeap, 2), c.fmt(slopes.rpExternal, 2), c.fmt(slopes.rpFds, 2), range(after.map((s) => s.rp.fds)), `${mb(first?.rp.rss)} → ${mb(last.rp.rss)} MB`],
  ]));
  const opsDone = done.ops;
  log(`ops: ${c.fmt(opsDone)} in ${seconds} s (${c.fmt(opsDone / seconds)} /s, target ${rate}); app errors ${done.errors}; ` +
    `journal ${done.positions.appended} entries, applied on the standby ${end?.applied ?? '?'}; max behind ${c.fmt(Math.max(...samples.map((s) => s.behind)))} entries`);
  if (mostFds !== undefined) {
    const kinds = Object.entries(mostFds.kinds).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    log(`the app's most descriptors: ${mostFds.fds} at ${c.fmt(mostFds.t)} s (${kinds})`);
  }
  if (heaps.length > 0) {
    log('');
    log('live heap (heap snapshots, after a full GC of that isolate):');
    log(c.table([['t s', 'app main MB', 'app shipper worker MB', 'replayer MB'], ...heaps.map((h) => [c.fmt(h.t), mb(h.main.total), mb(h.worker.total), mb(h.rp.total)])]));
    if (heaps.length >= 2) {
      const a = heaps[0];
      const b = heaps[heaps.length - 1];
      for (const [k, label] of [['main', 'app main thread'], ['worker', 'shipper worker'], ['rp', 'replayer']]) {
        log('');
        log(`grown most in the ${label}, ${c.fmt(a.t)} → ${c.fmt(b.t)} s (live ${mb(a[k].total)} → ${mb(b[k].total)} MB):`);
        log(c.table([['kind', 'Δ count', 'Δ KB', 'count now'], ...grown(a[k], b[k]).map((r) => [r.key.slice(0, 60), c.fmt(r.dCount), c.fmt(r.dBytes / 1024, 1), c.fmt(r.count)])]));
      }
    }
  }
  if (gc !== undefined) {
    log('');
    log('full collections (--trace-gc, Mark-Compact): heap used after each is what was live then');
    const rows = [['process', 'isolate', 'full GCs', 'scavenges', 'at s (heap before → after MB)']];
    for (const [k, label] of [['app', 'app'], ['rp', 'replayer']]) {
      gc[k].forEach((iso) => rows.push([label, iso.label ?? 'main thread', iso.full.length, iso.scavenges,
        iso.full.slice(-6).map((g) => `${c.fmt(g.t)} (${c.fmt(g.before, 1)} → ${c.fmt(g.after, 1)})`).join(', ') || '–']));
    }
    log(c.table(rows));
    // What was live after each full collection past the warm-up is the figure a leak moves: garbage is gone then.
    const trend = [['process', 'isolate', 'full GCs after warm-up', 'live after the first → last MB', 'live MB/min (least squares)']];
    for (const [k, label] of [['app', 'app'], ['rp', 'replayer']]) {
      for (const iso of gc[k]) {
        const late = iso.full.filter((g) => g.t >= warmupS);
        trend.push([label, iso.label ?? 'main thread', late.length, late.length === 0 ? '–' : `${c.fmt(late[0].after, 1)} → ${c.fmt(late.at(-1).after, 1)}`,
          late.length < 3 ? '–' : c.fmt(c.slope(late.map((g) => g.t / 60), late.map((g) => g.after)), 2)]);
      }
    }
    log('');
    log(c.table(trend));
  }
  return { samples, heaps: heaps.map((h) => ({ t: h.t, main: h.main.total, worker: h.worker.total, rp: h.rp.total })), slopes };
}

module.exports = { run };

if (require.main === module) c.runMain(run);
