'use strict';
// node watch-writer.js <dir> <rate> <seconds> <prefix>: creates <rate> new small files a second, spread
// over the tree's 100 directories (d000..d099), for <seconds>; prints {"n","ms"} at the end.
const fs = require('node:fs');
const path = require('node:path');

const [dir, rateText, secondsText, prefix] = process.argv.slice(2);
const rate = Number(rateText);
const total = Math.round(rate * Number(secondsText));
const start = Date.now();
let i = 0;
const timer = setInterval(() => {
  const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * rate));
  for (; i < due; i++) {
    const d = `d${String(i % 100).padStart(3, '0')}`;
    fs.writeFileSync(path.join(dir, d, `${prefix}${i}.txt`), `${prefix} ${i}\n`);
  }
  if (i >= total) {
    clearInterval(timer);
    console.log(JSON.stringify({ n: i, ms: Date.now() - start }));
  }
}, 5);
