'use strict';
/**
 * The shipper alone: N 4 KiB entries are put in a spool with the agent's own
 * Journal (no application, no replayer), then the agent's real shipper worker
 * publishes them to a nats-server of its own. Reports entries/s from start to
 * the last JetStream ack, the CPU the shipper thread and nats-server used per
 * entry, and (BENCH_PROF=/abs/dir) a CPU profile of the shipper thread.
 *   node bench/ship.js            BENCH_SHIP_N=20000 BENCH_PROF=/tmp/prof node bench/ship.js
 * Not part of `npm run bench`; it is for finding where the shipper spends its time.
 * BENCH_SHIP_NO_ASYNC_TRACES=1 forces nats.js's noAsyncTraces option on the shipper connection; since
 * commit 53a948d the shipper sets it itself, so this changes nothing there (kept for older trees).
 * Also reported: how many stream messages carried the entries (the shipper batches since 53a948d).
 */
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const c = require('./lib/common');

function procCpuMs(pid) {
  // utime + stime of a process, in ms (clock ticks of 10 ms on Linux).
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function run({ n = Number(process.env.BENCH_SHIP_N ?? 20_000), log = console.log } = {}) {
  c.hookSignals();
  const { Journal } = c.requireDist('agent/journal.js');
  const { createShared, publishPosition, readPosition, APPENDED, ACKED } = c.requireDist('agent/shared-state.js');
  const spoolRoot = c.tempDir('ship-spool');
  const name = 'bench-ship';
  const journal = new Journal(spoolRoot, name);
  const { epoch } = journal.open();
  const payload = Buffer.alloc(4096, 0x63);
  const j0 = performance.now();
  for (let i = 0; i < n; i++) journal.record('data', `f${String(i).padStart(6, '0')}`, { op: 'put', mode: 0o644 }, payload);
  const journalUs = ((performance.now() - j0) * 1000) / n;
  const last = journal.lastSeq;
  journal.close();

  const nats = await c.startNats('ship-nats');
  const prof = process.env.BENCH_PROF;
  if (prof) fs.mkdirSync(prof, { recursive: true });
  const shared = createShared();
  publishPosition(shared, APPENDED, last);
  try {
    const natsCpu0 = procCpuMs(nats.pid);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = new Worker(path.join(__dirname, 'lib', 'shipper-profiled.js'), {
      workerData: {
        nats: { url: nats.url }, stream: 'UNDERSTUDY', name, dir: path.join(spoolRoot, name), epoch, mode: 'async', shared, firstSeq: 1,
        profileFile: prof ? path.join(prof, 'shipper.cpuprofile') : undefined,
        noAsyncTraces: process.env.BENCH_SHIP_NO_ASYNC_TRACES === '1',
      },
      stdout: false, stderr: false,
    });
    let failed;
    worker.on('error', (err) => (failed = err));
    while (readPosition(shared, ACKED) < last) {
      if (failed) throw failed;
      await c.sleep(2);
      if (performance.now() - t0 > 120_000) throw new Error(`shipper acked ${readPosition(shared, ACKED)} of ${last} in 120 s`);
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
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
      shipperCpuUsPerEntry: ((cpu.user + cpu.system) / n),
      natsCpuUsPerEntry: (natsCpu * 1000) / n,
    };
    log(`# shipper alone: ${c.fmt(n)} spooled 4 KiB entries → JetStream (file storage) on 127.0.0.1; ${c.machine()}` +
      (process.env.BENCH_SHIP_NO_ASYNC_TRACES === '1' ? '; EXPERIMENT: noAsyncTraces on the shipper connection' : ''));
    log(c.table([
      ['measure', 'value'],
      ['Journal.record (encode + spool append), app thread', `${c.fmt(out.journalUsPerEntry, 1)} µs/entry`],
      ['shipped (worker start → last ack)', `${c.fmt(out.shipRate)} entries/s`],
      ...(messages ? [['stream messages carrying them', `${c.fmt(messages)} (${c.fmt(n / messages, 1)} entries each)`]] : []),
      ['shipper thread CPU (this process)', `${c.fmt(out.shipperCpuUsPerEntry, 1)} µs/entry`],
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

if (require.main === module) {
  run().then(() => c.cleanup(), async (err) => {
    console.error(err);
    await c.cleanup();
    process.exitCode = 1;
  });
}
