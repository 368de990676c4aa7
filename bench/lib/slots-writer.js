'use strict';
// node --require agent slots-writer.js <root>: on {type:'write', mib, mibPerS} rewrites 64 files of 64 KiB
// round-robin until `mib` MiB were written at that pace, then says {type:'written'}; stays up (its agent
// answers resends and takes rebase requests) until its parent disconnects.
const fs = require('node:fs');
const path = require('node:path');

const [root] = process.argv.slice(2);
const BLOCK = 64 * 1024;
let n = 0;
process.on('message', (m) => {
  if (m.type !== 'write') return;
  const blocks = Math.round((m.mib * 1024 * 1024) / BLOCK);
  const start = Date.now();
  let done = 0;
  const timer = setInterval(() => {
    const due = Math.min(blocks, Math.floor(((Date.now() - start) / 1000) * ((m.mibPerS * 1024 * 1024) / BLOCK)));
    for (; done < due; done++, n++) fs.writeFileSync(path.join(root, `f${n % 64}`), Buffer.alloc(BLOCK, n % 251));
    if (done >= blocks) {
      clearInterval(timer);
      process.send({ type: 'written', blocks, ms: Date.now() - start });
    }
  }, 5);
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
