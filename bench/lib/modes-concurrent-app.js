'use strict';
// node [--require agent] modes-concurrent-app.js <root> <callers> <seconds>: <callers> loops, each awaiting
// fs.promises.writeFile of 4 KiB to a file of its own, one after another, for <seconds>; prints writes/s and
// the per-call latency p50 (µs) as its last line.
const fs = require('node:fs');
const path = require('node:path');

const [root, callersText, secondsText] = process.argv.slice(2);
const callers = Number(callersText);
const ms = Number(secondsText) * 1000;
const data = Buffer.alloc(4096, 7);

async function main() {
  for (let i = 0; i < 20; i++) await fs.promises.writeFile(path.join(root, `warm${i % 10}`), data);
  const us = [];
  let done = 0;
  const t0 = Date.now();
  const loop = async (c) => {
    for (let i = 0; Date.now() - t0 < ms; i++) {
      const s = process.hrtime.bigint();
      await fs.promises.writeFile(path.join(root, `c${c}-${i % 8}`), data);
      us.push(Number(process.hrtime.bigint() - s) / 1000);
      done++;
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, c) => loop(c)));
  const elapsed = (Date.now() - t0) / 1000;
  us.sort((a, b) => a - b);
  console.log(JSON.stringify({ callers, done, perSecond: done / elapsed, p50: us[Math.floor(us.length / 2)] }));
}
main().catch((err) => { console.error(err); process.exit(1); });
