import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

test.serial('a 50 MiB file replicates, and the standby never shows it half-written', async (t) => {
  const pair = await makePair('big');
  t.teardown(() => pair.close());
  const target = path.join(pair.primary, 'big.bin');
  const run = await pair.runApp({
    code: `const b = Buffer.alloc(50 * 1024 * 1024); for (let i = 0; i < b.length; i += 4096) b.writeUInt32BE(i, i);
      require('fs').writeFileSync(${JSON.stringify(target)}, b);`,
  });
  t.is(run.code, 0, run.stderr);
  const sizes = new Set<number>();
  const standbyFile = path.join(pair.standby, 'big.bin');
  const poll = setInterval(() => {
    try {
      sizes.add(fs.statSync(standbyFile).size);
    } catch {
      sizes.add(-1);
    }
  }, 1);
  const summary = await pair.drain();
  clearInterval(poll);
  t.true(summary.applied >= 67, `50 MiB arrives in chunks (${summary.applied} entries)`);
  t.deepEqual([...sizes].filter((s) => s !== -1 && s !== 50 * 1024 * 1024), [], 'only absent or complete');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.deepEqual(fs.readdirSync(pair.standby), ['big.bin']);
});

test.serial('a short-lived script that calls process.exit() loses nothing', async (t) => {
  const pair = await makePair('exit');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: `const fs = require('fs');
      for (let i = 0; i < 500; i++) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'content ' + i);
      process.exit(3);`,
  });
  t.is(run.code, 3);
  t.is(run.stderr, '');
  const summary = await pair.drain();
  t.is(summary.applied, 500);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a process that exits while NATS is down leaves its spool; the next one with the name ships it first', async (t) => {
  const pair = await makePair('down');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const first = await pair.runApp({
    env: { UNDERSTUDY_EXIT_TIMEOUT_MS: '500' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'while-down.txt'))}, 'spooled');`,
  });
  t.is(first.code, 0, 'the application is not broken by the outage');
  t.regex(first.stderr, /1 entries not yet in JetStream at exit; they stay in/);
  const { startNatsServer } = await import('./helpers/nats-server.js');
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  const second = await pair.runApp({
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'after.txt'))}, 'later');`,
  });
  t.is(second.code, 0, second.stderr);
  const summary = await pair.drain();
  t.is(summary.applied, 2);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a stopped replayer resumes where it was and applies each entry once', async (t) => {
  const pair = await makePair('resume');
  t.teardown(() => pair.close());
  const log = path.join(pair.primary, 'log.txt');
  const append = (from: number, to: number) => pair.runApp({
    code: `const fs = require('fs'); for (let i = ${from}; i < ${to}; i++) fs.appendFileSync(${JSON.stringify(log)}, 'line ' + i + '\\n');`,
  });
  t.is((await append(0, 100)).code, 0);
  t.is((await pair.drain()).applied, 100);
  t.is((await append(100, 150)).code, 0);
  const second = await pair.drain();
  t.is(second.applied, 50, 'only the new entries');
  t.is((await pair.drain()).applied, 0, 'nothing twice');
  // Forget the stream position (as if the position file were older): every entry comes again, none is re-applied.
  const posFile = path.join(pair.state, 'positions.json');
  const pos = JSON.parse(fs.readFileSync(posFile, 'utf8').split('\n')[0]) as { streamSeq: number };
  fs.writeFileSync(posFile, JSON.stringify({ ...pos, streamSeq: 0 }) + '\n');
  const replayed = await pair.drain();
  t.is(replayed.applied, 0);
  t.is(replayed.duplicates, 150);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a replayer that was killed mid-apply leaves no temporary file behind after its next start', async (t) => {
  const pair = await makePair('temps');
  t.teardown(() => pair.close());
  t.is((await pair.runApp({ code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'f.txt'))}, 'f');` })).code, 0);
  // What a SIGKILL between "write temp" and "rename" leaves: a temp file and the running marker.
  fs.mkdirSync(path.join(pair.standby, 'sub'));
  fs.writeFileSync(path.join(pair.standby, 'sub', '.understudy-0123456789ab.tmp'), 'half');
  fs.writeFileSync(path.join(pair.state, 'running'), '12345\n');
  fs.mkdirSync(path.join(pair.primary, 'sub'));
  await pair.drain();
  t.deepEqual(fs.readdirSync(path.join(pair.standby, 'sub')), []);
  t.false(fs.existsSync(path.join(pair.state, 'running')), 'a clean stop removes the marker');
});
