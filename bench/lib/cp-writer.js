'use strict';
/**
 * A writer for bench/checkpoint.js, run under the agent: a 4 KiB writeFileSync and a 4 KiB
 * fs.promises.appendFile in turn, as fast as it can, timing every call, until told to stop
 * over IPC; then it sends how long its calls took (the freeze shows as the slowest ones).
 */
const fs = require('node:fs');
const path = require('node:path');

const root = process.argv[2];
const data = Buffer.alloc(4096, 'x');
const took = [];
let stop = false;
process.on('message', (m) => {
  if (m && m.type === 'stop') stop = true;
});
(async () => {
  process.send({ type: 'ready' });
  let n = 0;
  while (!stop) {
    const t0 = process.hrtime.bigint();
    if (n % 2 === 0) fs.writeFileSync(path.join(root, `f${n % 64}`), data);
    else await fs.promises.appendFile(path.join(root, 'log'), data);
    took.push(Number(process.hrtime.bigint() - t0) / 1e6);
    n++;
    // Let the event loop run (IPC, the control port) between calls, as a service does.
    if (n % 16 === 0) await new Promise((r) => setImmediate(r));
  }
  took.sort((a, b) => a - b);
  const q = (p) => took[Math.min(took.length - 1, Math.floor(p * took.length))];
  process.send({ type: 'done', calls: took.length, p50: q(0.5), p99: q(0.99), p999: q(0.999), max: took[took.length - 1] });
  process.disconnect();
})();
