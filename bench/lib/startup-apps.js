'use strict';
/**
 * The apps bench/startup.js times: `write3` writes three files under $BENCH_ROOT and exits;
 * `spawn10` runs ten `node -e 0` children one after another (they inherit NODE_OPTIONS).
 */
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const what = process.argv[2];
if (what === 'write3') {
  for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(process.env.BENCH_ROOT, `f${i}.txt`), `entry ${i} ${Date.now()}\n`);
} else if (what === 'spawn10') {
  for (let i = 0; i < 10; i++) execFileSync(process.execPath, ['-e', '0'], { stdio: 'ignore' });
} else {
  throw new Error(`unknown app ${what}`);
}
