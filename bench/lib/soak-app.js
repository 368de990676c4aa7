'use strict';
/**
 * The primary side of the soak: an application under the agent that keeps up a
 * steady mixed workload over bounded sets of names, driven over IPC.
 *   node --require dist/agent/preload.js soak-app.js '{"dir":…,"rate":480}'
 *
 * The mix, one kind after another (each op one call the agent wraps):
 *   fs.writeFileSync, callback fs.writeFile, fs.promises.appendFile, a line on a write
 *   stream (a new stream every 2,000 lines, the old file unlinked), a directory made,
 *   a file written into it, renamed, unlinked, the directory removed, process.env
 *   set, a fastq job (enqueued and completed), three fs.appendFile callbacks in flight
 *   on one file at once (the overlap path), a file under a name never used before (and
 *   the one 2,000 names older unlinked), a FileHandle opened, written at 0 and closed.
 * The files stay few and small: memory that grows is the agent's, not the tree's.
 *
 * Messages in:  {type:'go'}                        starts the workload
 *               {type:'sample'}                    → {type:'sample', mem, ops, positions}
 *               {type:'heap', main, worker}        heap snapshots of this thread and of the
 *                                                  shipper's worker into the files named
 *                                                  → {type:'heap'}
 *               {type:'stop'}                      stops, flushes → {type:'done', ops, flushed}
 */
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const { pipeline } = require('node:stream/promises');
const fastq = require('fastq');

const understudy = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));

const opts = JSON.parse(process.argv[2]);
const dir = opts.dir;
const rate = opts.rate;
const line = 'x'.repeat(60) + '\n';
const payload = Buffer.alloc(1024, 0x61);

if (understudy.journalPosition() === undefined) {
  process.stderr.write('soak-app: the agent is not running (run under --require dist/agent/preload.js)\n');
  process.exit(2);
}

for (const sub of ['w', 'c', 'log', 'stream', 'dirs', 'ovl', 'new', 'fh']) fs.mkdirSync(path.join(dir, sub), { recursive: true });

let ops = 0;
let errors = 0;
let firstError;
const fail = (err) => {
  if (!err) return;
  errors++;
  firstError ??= err.message;
};

let streamN = 0;
let streamLines = 0;
let stream = fs.createWriteStream(path.join(dir, 'stream', `s${streamN}`));
stream.on('error', fail);
function streamLine() {
  stream.write(line);
  if (++streamLines < 2000) return;
  // A new stream; the old file goes once its stream has closed.
  const old = path.join(dir, 'stream', `s${streamN}`);
  stream.end(() => fs.unlink(old, fail));
  streamN++;
  streamLines = 0;
  stream = fs.createWriteStream(path.join(dir, 'stream', `s${streamN}`));
  stream.on('error', fail);
}

const queue = fastq((job, cb) => cb(null, job.n), 2);

let dirN = 0;
function dirCycle() {
  // Five ops: mkdir, writeFile into it, rename, unlink, rmdir.
  const d = path.join(dir, 'dirs', `d${dirN++ % 50}`);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'a'), payload);
  fs.renameSync(path.join(d, 'a'), path.join(d, 'b'));
  fs.unlinkSync(path.join(d, 'b'));
  fs.rmdirSync(d);
  return 5;
}

let ovlN = 0;
function overlapping() {
  const f = path.join(dir, 'ovl', `o${ovlN % 5}`);
  // Keep each file small: start it again now and then (when nothing is in flight on it).
  if (ovlN % 500 < 5) fs.writeFileSync(f, '');
  ovlN++;
  for (let i = 0; i < 3; i++) fs.appendFile(f, line, fail);
  return 3;
}

const KINDS = [
  (i) => { fs.writeFileSync(path.join(dir, 'w', `f${i % 100}`), payload); return 1; },
  (i) => { fs.writeFile(path.join(dir, 'c', `f${i % 100}`), payload, fail); return 1; },
  (i) => { fs.promises.appendFile(path.join(dir, 'log', `l${i % 10}`), line).catch(fail); return 1; },
  () => { streamLine(); return 1; },
  dirCycle,
  (i) => { process.env[`SOAK_K${i % 16}`] = String(i); return 1; },
  (i) => { queue.push({ n: i }, fail); return 2; }, // enqueued + completed
  overlapping,
  (i) => {
    // Names never seen before (an upload or cache directory): one written, an older one removed.
    fs.writeFileSync(path.join(dir, 'new', `n${i}`), payload);
    const old = i - KINDS.length * 200;
    if (old >= 0) fs.unlinkSync(path.join(dir, 'new', `n${old}`));
    return old >= 0 ? 2 : 1;
  },
  (i) => {
    // A FileHandle: open, a positioned write, close (the open and the write are journaled).
    fs.promises.open(path.join(dir, 'fh', `h${i % 20}`), 'w').then((h) => h.write(payload, 0, payload.length, 0).finally(() => h.close())).catch(fail);
    return 2;
  },
];

// The appended logs would grow without end: rewrite them every so often.
let logRounds = 0;
function trimLogs() {
  if (++logRounds % 2000 !== 0) return;
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(dir, 'log', `l${i}`), '');
}

let timer;
function start() {
  const t0 = performance.now();
  let k = 0;
  let skipped = 0;
  timer = setInterval(() => {
    // Catch up with the schedule, but by at most a second's worth after a long stall (a heap snapshot).
    let due = Math.floor(((performance.now() - t0) * rate) / 1000) - skipped;
    if (due - ops > rate) {
      skipped += due - ops - rate;
      due = ops + rate;
    }
    let budget = due - ops;
    while (budget > 0) {
      try {
        const n = KINDS[k % KINDS.length](k);
        ops += n;
        budget -= n;
      } catch (err) {
        fail(err);
        budget--;
        ops++;
      }
      k++;
      trimLogs();
    }
  }, 10);
}

async function heap(main, worker) {
  if (main) v8.writeHeapSnapshot(main);
  if (worker) {
    // The agent keeps its shipper Worker on the running agent (a private field; bench only).
    const agent = globalThis[Symbol.for('understudy.agent')];
    const w = agent?.shipper?.worker;
    if (w !== undefined) await pipeline(await w.getHeapSnapshot(), fs.createWriteStream(worker));
  }
}

process.on('message', (m) => {
  if (m.type === 'go') start();
  else if (m.type === 'sample') {
    process.send({ type: 'sample', mem: process.memoryUsage(), ops, errors, firstError, positions: understudy.journalPosition() });
  } else if (m.type === 'heap') {
    heap(m.main, m.worker).then(() => process.send({ type: 'heap' }), (err) => process.send({ type: 'heap', error: err.message }));
  } else if (m.type === 'stop') {
    clearInterval(timer);
    stream.end();
    queue.drain = () => undefined;
    setTimeout(() => {
      const flushed = understudy.flush(60_000);
      process.send({ type: 'done', ops, errors, firstError, flushed, positions: understudy.journalPosition(), mem: process.memoryUsage() }, () => process.disconnect());
    }, 200);
  }
});

process.send({ type: 'ready', pid: process.pid });
