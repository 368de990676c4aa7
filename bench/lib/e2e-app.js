'use strict';
/**
 * The primary side of the end-to-end bench: an application under the agent
 * that writes 4 KiB files with fs.writeFileSync, driven over IPC.
 *   node --require dist/agent/preload.js e2e-app.js burst <n> <dir>
 *   node --require dist/agent/preload.js e2e-app.js paced <perSecond> <seconds> <dir>
 *
 * It first writes one warm-up file and flushes it (the shipper is connected),
 * says {type:'warm', seq}, and waits for {type:'go'}. Then:
 *   burst: n distinct files as fast as it can;
 *   paced: a steady rate over rotating names, a 1 ms timer catching up to the schedule.
 * Afterwards it flushes and reports {type:'done', …} with wall-clock times (ms since epoch).
 */
const fs = require('node:fs');
const path = require('node:path');

const understudy = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));
const now = () => performance.timeOrigin + performance.now();
const [mode, ...rest] = process.argv.slice(2);
const payload = Buffer.alloc(4096, 0x62);

if (understudy.journalPosition() === undefined) {
  process.stderr.write('e2e-app: the agent is not running (run under --require dist/agent/preload.js)\n');
  process.exit(2);
}

function burst(n, dir) {
  const names = Array.from({ length: n }, (_, i) => path.join(dir, `b${String(i).padStart(6, '0')}`));
  const first = understudy.journalPosition().appended + 1;
  const cpu0 = process.cpuUsage();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    payload.writeUInt32BE(i, 0);
    fs.writeFileSync(names[i], payload);
  }
  const tCalls = now();
  const cpu = process.cpuUsage(cpu0);
  const last = understudy.journalPosition().appended;
  const flushed = understudy.flush(120_000);
  const tFlushed = now();
  return { n, first, last, t0, tCalls, tFlushed, flushed, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function paced(rate, seconds, dir) {
  const total = Math.round(rate * seconds);
  const files = 1000;
  const names = Array.from({ length: files }, (_, i) => path.join(dir, `p${String(i).padStart(4, '0')}`));
  const first = understudy.journalPosition().appended + 1;
  return new Promise((resolve) => {
    let done = 0;
    let maxBehind = 0;
    let maxCallMs = 0;
    let slowCalls = 0; // calls over 50 ms
    const t0 = now();
    let lastTick = t0;
    const stalls = []; // [ms into the run, ms the event loop did not tick] for gaps over 50 ms
    const tick = () => {
      const tickAt = now();
      if (tickAt - lastTick > 50) stalls.push([Math.round(lastTick - t0), Math.round(tickAt - lastTick)]);
      lastTick = tickAt;
      const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000) + 1);
      maxBehind = Math.max(maxBehind, due - done);
      while (done < due) {
        payload.writeUInt32BE(done, 0);
        const c0 = now();
        fs.writeFileSync(names[done % files], payload);
        const took = now() - c0;
        if (took > maxCallMs) maxCallMs = took;
        if (took > 50) slowCalls++;
        done++;
      }
      lastTick = now();
      if (done < total) return;
      clearInterval(timer);
      const tCalls = now();
      const last = understudy.journalPosition().appended;
      const flushed = understudy.flush(60_000);
      resolve({ n: total, first, last, t0, tCalls, tFlushed: now(), flushed, maxBehind, maxCallMs, slowCalls, stalls, achievedRate: total / ((tCalls - t0) / 1000) });
    };
    const timer = setInterval(tick, 1);
    tick();
  });
}

process.on('message', async (m) => {
  if (m.type !== 'go') return;
  let result;
  if (mode === 'burst') result = burst(Number(rest[0]), rest[1]);
  else if (mode === 'paced') result = await paced(Number(rest[0]), Number(rest[1]), rest[2]);
  else throw new Error(`unknown mode ${mode}`);
  process.send({ type: 'done', ...result }, () => process.disconnect());
});

const dir = rest[rest.length - 1];
fs.writeFileSync(path.join(dir, 'warm-up'), payload);
understudy.flush(30_000);
process.send({ type: 'warm', seq: understudy.journalPosition().appended });
