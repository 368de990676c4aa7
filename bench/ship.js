'use strict';
/**
 * The shipper alone: N 4 KiB entries are put in a spool with the agent's own
 * Journal (no application, no replayer), then the agent's real shipper worker
 * publishes them to a nats-server of its own. Reports entries/s from start to
 * the last JetStream ack, the CPU the shipper thread and nats-server used per
 * entry, and (BENCH_PROF=/abs/dir) a CPU profile of the shipper thread.
 *   node bench/ship.js            BENCH_SHIP_N=20000 BENCH_PROF=/tmp/prof node bench/ship.js
 * Not part of `npm run bench`; it is for finding where the shipper spends its time.
 * BENCH_SHIP_RATE=1000 spools the entries at that rate while the shipper runs (small batches, as
 * under an application) instead of all before it starts (the largest batches).
 * BENCH_SHIP_NO_ASYNC_TRACES=1 forces nats.js's noAsyncTraces option on the shipper connection; since
 * commit 53a948d the shipper sets it itself, so this changes nothing there (kept for older trees).
 * Also reported: how many stream messages carried the entries (the shipper batches since 53a948d).
 */
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const c = require('./lib/common');
const { threadCpuMs } = require('./lib/thread-cpu');

function procCpuMs(pid) {
  // utime + stime of a process, in ms (clock ticks of 10 ms on Linux).
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}


async function run({
  n = Number(process.env.BENCH_SHIP_N ?? 20_000),
  rate = process.env.BENCH_SHIP_RATE ? Number(process.env.BENCH_SHIP_RATE) : undefined,
  log = console.log,
} = {}) {
  c.hookSignals();
  const { Journal } = c.requireDist('agent/journal.js');
  const { createShared, publishPosition, readPosition, APPENDED, ACKED } = c.requireDist('agent/shared-state.js');
  const { DEFAULTS } = c.requireDist('lib/settings.js');
  const spoolRoot = c.tempDir('ship-spool');
  const name = 'bench-ship';
  const journal = new Journal(spoolRoot, name);
  const { epoch } = journal.open();
  const payload = Buffer.alloc(4096, 0x63);
  const record = (i) => journal.record({ root: 'data', path: `f${String(i).padStart(6, '0')}`, op: { op: 'put', mode: 0o644 }, data: payload });
  let journalUs;
  let last = n;
  if (rate === undefined) {
    // Everything spooled first: the shipper starts with a full spool (its largest batches).
    const j0 = performance.now();
    for (let i = 0; i < n; i++) record(i);
    journalUs = ((performance.now() - j0) * 1000) / n;
    last = journal.lastSeq;
    journal.close();
  }

  const nats = await c.startNats('ship-nats');
  const prof = process.env.BENCH_PROF;
  if (prof) fs.mkdirSync(prof, { recursive: true });
  const shared = createShared();
  if (rate === undefined) publishPosition(shared, APPENDED, last);
  try {
    const natsCpu0 = procCpuMs(nats.pid);
    const cpu0 = process.cpuUsage();
    const th0 = threadCpuMs();
    const t0 = performance.now();
    const worker = new Worker(path.join(__dirname, 'lib', 'shipper-profiled.js'), {
      workerData: {
        nats: { url: nats.url }, stream: 'UNDERSTUDY', name, dir: path.join(spoolRoot, name), epoch, mode: 'async', shared, firstSeq: 1,
        spoolFsync: DEFAULTS.spoolFsync,
        profileFile: prof ? path.join(prof, 'shipper.cpuprofile') : undefined,
        noAsyncTraces: process.env.BENCH_SHIP_NO_ASYNC_TRACES === '1',
      },
      stdout: false, stderr: false,
    });
    if (rate !== undefined) {
      // Paced: entries are spooled at `rate` per second while the shipper runs, as an application
      // under the agent would (a 1 ms timer catching up with the schedule), so batches stay small.
      let done = 0;
      const p0 = performance.now();
      let recUs = 0;
      await new Promise((resolve) => {
        const tick = () => {
          const due = Math.min(n, Math.floor(((performance.now() - p0) / 1000) * rate));
          const r0 = performance.now();
          while (done < due) {
            record(done++);
            publishPosition(shared, APPENDED, journal.lastSeq);
          }
          recUs += (performance.now() - r0) * 1000;
          if (done >= n) resolve();
          else setTimeout(tick, 1);
        };
        tick();
      });
      journalUs = recUs / n;
      last = journal.lastSeq;
      journal.close();
    }
    let failed;
    worker.on('error', (err) => (failed = err));
    while (readPosition(shared, ACKED) < last) {
      if (failed) throw failed;
      await c.sleep(2);
      if (performance.now() - t0 > 120_000) throw new Error(`shipper acked ${readPosition(shared, ACKED)} of ${last} in 120 s`);
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const th1 = threadCpuMs();
    const natsCpu = procCpuMs(nats.pid) - natsCpu0;
    const stopped = new Promise((r) => worker.once('message', r));
    worker.postMessage('stop');
    await stopped;
    await worker.terminate();
    let messages;
    try {
      const { connect } = require(require.resolve('@nats-io/transport-node', { paths: [c.REPO] }));
      const { jetstreamManager } = require(require.resolve('@nats-io/jetstream', { paths: [c.REPO] }));
      const nc = await connect({ servers: nats.url });
      messages = (await (await jetstreamManager(nc)).streams.info('UNDERSTUDY')).state.messages;
      await nc.close();
    } catch {
      // not reported
    }
    const out = {
      n, journalUsPerEntry: journalUs, messages,
      shipRate: n / (ms / 1000),
      // Paced, the main thread spools entries too: then only the other threads (the worker) count.
      shipperCpuUsPerEntry: rate === undefined ? ((cpu.user + cpu.system) / n) : ((th1.others - th0.others) * 1000) / n,
      natsCpuUsPerEntry: (natsCpu * 1000) / n,
    };
    log(`# shipper alone: ${c.fmt(n)} ${rate === undefined ? 'spooled' : `paced (${c.fmt(rate)}/s)`} 4 KiB entries → JetStream (file storage) on 127.0.0.1; ${c.machine()}` +
      (process.env.BENCH_SHIP_NO_ASYNC_TRACES === '1' ? '; EXPERIMENT: noAsyncTraces on the shipper connection' : ''));
    log(c.table([
      ['measure', 'value'],
      ['Journal.record (encode + spool append), app thread', `${c.fmt(out.journalUsPerEntry, 1)} µs/entry`],
      ['shipped (worker start → last ack)', `${c.fmt(out.shipRate)} entries/s${rate === undefined ? '' : ' (paced: about the rate)'}`],
      ...(messages ? [['stream messages carrying them', `${c.fmt(messages)} (${c.fmt(n / messages, 1)} entries each)`]] : []),
      [rate === undefined ? 'shipper thread CPU (this process)' : 'shipper thread CPU (threads other than main, /proc)', `${c.fmt(out.shipperCpuUsPerEntry, 1)} µs/entry`],
      ['nats-server CPU', `${c.fmt(out.natsCpuUsPerEntry, 1)} µs/entry`],
    ]));
    if (prof) {
      const { summarize } = require('./prof-summary');
      log('\n' + summarize(path.join(prof, 'shipper.cpuprofile'), 20));
    }
    return out;
  } finally {
    await nats.stop();
    c.removeDir(spoolRoot);
  }
}

module.exports = { run };

if (require.main === module) c.runMain(run);
