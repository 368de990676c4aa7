import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startNatsServer } from './helpers/nats-server';
import { CLI, makePair, PRELOAD, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { listSegments, scanFrames } from '../lib/spool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An app that keeps changing files (puts, appends, renames) until a stop file appears; then exits. */
function busyApp(pair: Pair, name = 'app', fresh = false): { child: ChildProcess; stop: () => Promise<number | null> } {
  const stopFile = path.join(pair.dir, `stop-${name}`);
  const code = `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)}; let i = 0;
    fs.mkdirSync(r + '/d', { recursive: true });
    ${fresh ? "fs.rmSync(r + '/d', { recursive: true }); fs.mkdirSync(r + '/d'); fs.writeFileSync(r + '/log.txt', '');" : ''}
    const t = setInterval(() => {
      for (let k = 0; k < 5; k++, i++) {
        fs.writeFileSync(r + '/d/f' + (i % 50), 'version ' + i);
        fs.appendFileSync(r + '/log.txt', 'line ' + i + '\\n');
        if (i % 7 === 0) fs.renameSync(r + '/d/f' + (i % 50), r + '/d/g' + (i % 13));
      }
      if (fs.existsSync(${JSON.stringify(stopFile)})) { clearInterval(t); }
    }, 5);`;
  const script = path.join(pair.dir, `busy-${name}.js`);
  fs.writeFileSync(script, code);
  const child = spawn(process.execPath, ['--require', PRELOAD, script], { env: pair.env({ UNDERSTUDY_NAME: name }), stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { child, stop: async () => { fs.writeFileSync(stopFile, ''); return exited; } };
}

function replayer(pair: Pair, url = pair.server.url): ChildProcess {
  return spawn(process.execPath, [CLI, 'replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--nats', url], { stdio: 'ignore' });
}

/** Resolves when the child has exited, at once if it already has (waiting for 'exit' then would hang). */
function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** The last seq in a journal's spool. */
function lastSpooled(dir: string): number {
  const segs = listSegments(dir);
  const records = segs.length === 0 ? [] : scanFrames(fs.readFileSync(segs[segs.length - 1].file)).records;
  return records.at(-1)?.seq ?? 0;
}

/** What the replayer following in `pair.state` has applied of journal `name`, as it last recorded it. */
function appliedSeq(pair: Pair, name: string): number {
  try {
    const first = fs.readFileSync(path.join(pair.state, 'positions.json'), 'utf8').split('\n')[0];
    return (JSON.parse(first) as { journals: Record<string, { s: number }> }).journals[name]?.s ?? 0;
  } catch {
    return 0;
  }
}

function temps(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.startsWith('.understudy-')) out.push(path.join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

test.serial('the replayer SIGKILLed 20 times during one stream: it resumes each time, applies each entry once, leaves no temporary file', async (t) => {
  const pair = await makePair('kill-replayer');
  t.teardown(() => pair.close());
  const app = busyApp(pair);
  const position = (): number => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(pair.state, 'positions.json'), 'utf8').split('\n')[0]) as { streamSeq: number }).streamSeq;
    } catch {
      return 0;
    }
  };
  let killedWhileApplying = 0;
  for (let i = 0; i < 20; i++) {
    const r = replayer(pair);
    const before = position();
    // Kill it while it works: once it has made progress, a little later, at a different moment each time.
    for (let w = 0; w < 300 && position() === before; w++) await sleep(20);
    await sleep((i * 37) % 60);
    if (position() > before) killedWhileApplying++;
    r.kill('SIGKILL');
    await exitOf(r);
  }
  t.true(killedWhileApplying >= 15, `${killedWhileApplying} of 20 kills came while applying`);
  t.is(await app.stop(), 0);
  const s = await pair.drain();
  t.log(`after 20 kills the last drain applied ${s.applied} entries and skipped ${s.duplicates} duplicates`);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.deepEqual(temps(pair.standby), []);
});

test.serial('nats-server killed and restarted mid-stream: nothing is lost', async (t) => {
  const pair = await makePair('kill-nats');
  t.teardown(() => pair.close());
  const app = busyApp(pair);
  const r = replayer(pair);
  t.teardown(() => r.kill('SIGKILL'));
  await sleep(800);
  pair.server.process.kill('SIGKILL');
  await new Promise((resolve) => pair.server.process.on('exit', resolve));
  await sleep(2000);
  // Same port, same store: what the server had not flushed is gone, and is pulled back from the agent's spool.
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  await sleep(1500);
  // The entries the server lost are pulled from the agent while it runs: the following replayer
  // must reach what the agent had spooled by now, however loaded the machine is.
  const spooled = lastSpooled(path.join(pair.spool, 'app'));
  let applied = 0;
  for (const until = Date.now() + 60_000; applied < spooled && Date.now() < until; await sleep(100)) applied = appliedSeq(pair, 'app');
  t.true(applied >= spooled, `the following replayer reached ${applied} of ${spooled} spooled entries`);
  t.is(await app.stop(), 0);
  r.kill('SIGTERM');
  await exitOf(r);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('the application SIGKILLed mid-write: the next start cuts any torn tail, ships what was left, and goes on', async (t) => {
  const pair = await makePair('kill-app');
  t.teardown(() => pair.close());
  const first = busyApp(pair);
  await sleep(700);
  first.child.kill('SIGKILL');
  await new Promise((resolve) => first.child.on('exit', resolve));
  // The next process of the same journal rewrites every file it touches, so the end state is known.
  const second = busyApp(pair, 'app', true);
  await sleep(700);
  t.is(await second.stop(), 0);
  await pair.drain();
  // A call that completed just before the kill may not have reached the spool; the second
  // process starts the tree afresh, so whatever was lost, the trees must now match.
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const spoolFiles = fs.readdirSync(path.join(pair.spool, 'app'));
  t.true(spoolFiles.some((f) => f.endsWith('.seg')));
});
