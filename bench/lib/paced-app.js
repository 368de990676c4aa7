'use strict';
// node --require agent paced-app.js <root> <rate> <seconds>: writes 4 KiB files at a steady rate, then stays
// up (so its shipper can catch up and answer) until its parent disconnects.
const fs = require('node:fs');
const path = require('node:path');

const [root, rateText, secondsText] = process.argv.slice(2);
const rate = Number(rateText);
const total = rate * Number(secondsText);
const data = Buffer.alloc(4096, 3);
const start = Date.now();
let i = 0;
const timer = setInterval(() => {
  const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * rate));
  for (; i < due; i++) fs.writeFileSync(path.join(root, `f${i % 500}`), data);
  if (i >= total) {
    clearInterval(timer);
    process.send?.({ type: 'written', n: i, ms: Date.now() - start });
  }
}, 5);
process.on('disconnect', () => process.exit(0));
