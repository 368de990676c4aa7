'use strict';
// node [--require agent] modes-app.js <root> <n>: n sequential 4 KiB writeFileSync calls after a warm-up;
// prints per-call latency quantiles (µs) as its last line.
const fs = require('node:fs');
const path = require('node:path');

const [root, nText] = process.argv.slice(2);
const n = Number(nText);
const data = Buffer.alloc(4096, 7);
for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(root, `warm${i % 10}`), data);
const us = [];
for (let i = 0; i < n; i++) {
  const t0 = process.hrtime.bigint();
  fs.writeFileSync(path.join(root, `f${i % 100}`), data);
  us.push(Number(process.hrtime.bigint() - t0) / 1000);
}
us.sort((a, b) => a - b);
const q = (p) => us[Math.min(us.length - 1, Math.ceil(p * us.length) - 1)];
console.log(JSON.stringify({ n, p50: q(0.5), p99: q(0.99), mean: us.reduce((a, b) => a + b, 0) / n }));
