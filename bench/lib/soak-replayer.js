'use strict';
/**
 * The standby side of the soak: a following Replayer (the class `understudy replay`
 * runs), nothing wrapped, so its memory is the replayer's own.
 *   node soak-replayer.js '{"url":…,"standby":…,"state":…}'
 *
 * Messages in:  {type:'sample'}       → {type:'sample', mem}
 *               {type:'heap', main}   a heap snapshot into that file → {type:'heap'}
 *               {type:'stop'}         stops the run → {type:'result', summary}
 */
const path = require('node:path');
const v8 = require('node:v8');

const DIST = path.join(__dirname, '..', '..', 'dist');
const { Replayer } = require(path.join(DIST, 'replayer', 'replayer.js'));
const { parseRoots } = require(path.join(DIST, 'lib', 'roots.js'));

const opts = JSON.parse(process.argv[2]);
const replayer = new Replayer({
  nats: { url: opts.url },
  stream: 'UNDERSTUDY',
  roots: parseRoots(`data=${opts.standby}`),
  stateDir: opts.state,
  drain: false,
  log: (line) => process.stderr.write(`replayer: ${line}\n`),
});
const ac = new AbortController();

process.on('message', (m) => {
  if (m.type === 'sample') process.send({ type: 'sample', mem: process.memoryUsage() });
  else if (m.type === 'heap') {
    v8.writeHeapSnapshot(m.main);
    process.send({ type: 'heap' });
  } else if (m.type === 'stop') ac.abort();
});

replayer.run(ac.signal).then((summary) => {
  process.send({ type: 'result', summary }, () => process.disconnect());
}, (err) => {
  process.stderr.write(`replayer failed: ${err.stack}\n`);
  process.exit(1);
});
process.send({ type: 'started' });
