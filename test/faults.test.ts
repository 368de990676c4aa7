import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startNatsServer } from './helpers/nats-server';
import { CLI, makePair, PRELOAD, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { FRAME_HEAD, listSegments, scanFrames, writeFrameHead } from '../lib/spool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An app that keeps changing files (puts, appends, renames) until a stop file appears; then exits. */
function busyApp(pair: Pair, name = 'app', fresh = false): { child: ChildProcess; stop: () => Promise<number | null>; stderr: () => string } {
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
  const child = spawn(process.execPath, ['--require', PRELOAD, script], { env: pair.env({ UNDERSTUDY_NAME: name }), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close', not 'exit': its stderr has been read to the end by then.
  const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { child, stop: async () => { fs.writeFileSync(stopFile, ''); return exited; }, stderr: () => stderr };
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

test.serial('the application SIGKILLed mid-write: the next start cuts the torn tail, keeps every byte before it, and ships on', async (t) => {
  const pair = await makePair('kill-app');
  t.teardown(() => pair.close());
  const dir = path.join(pair.spool, 'app');
  const first = busyApp(pair);
  for (const until = Date.now() + 30_000; lastSpooled(dir) < 200 && Date.now() < until;) await sleep(20);
  first.child.kill('SIGKILL');
  await exitOf(first.child);
  const seg = listSegments(dir).at(-1)!.file;
  const killed = fs.readFileSync(seg);
  const good = scanFrames(killed);
  const last = good.records.at(-1)!;
  t.true(last.seq >= 200, `the first process journaled ${last.seq} entries before the kill`);
  // A kill lands between two appends far more often than inside one, so the tear a kill inside
  // an append leaves (the next frame's head and part of its entry) is made certain here.
  const head = Buffer.alloc(FRAME_HEAD);
  writeFrameHead(head, 0, last.entry.length, last.epoch, last.seq + 1);
  fs.appendFileSync(seg, Buffer.concat([head, last.entry.subarray(0, Math.ceil(last.entry.length / 2))]));
  const torn = fs.readFileSync(seg);
  const tornBytes = torn.length - good.goodBytes;
  // Torn before: whole frames up to the last good one, then bytes that are no frame.
  t.true(tornBytes > FRAME_HEAD);
  t.is(scanFrames(torn).goodBytes, good.goodBytes);
  t.regex(scanFrames(torn).problem ?? '', /^(partial entry|bad entry) at byte \d+/);

  const second = busyApp(pair, 'app', true);
  for (const until = Date.now() + 30_000; lastSpooled(dir) < last.seq + 50 && Date.now() < until;) await sleep(20);
  t.is(await second.stop(), 0);
  t.true(second.stderr().includes(`journal "app": cut a torn spool tail of ${tornBytes} bytes left by a crash`), second.stderr());
  // Cut after: every byte before the tear is as the first process left it, and the second
  // process's first entry begins exactly where the tear began (nothing of it is left).
  const after = fs.readFileSync(seg);
  t.true(after.subarray(0, good.goodBytes).equals(killed.subarray(0, good.goodBytes)), 'the frames before the tear are unchanged');
  const rescan = scanFrames(after);
  t.is(rescan.problem, undefined);
  t.deepEqual(rescan.records.slice(0, good.records.length).map((r) => r.seq), good.records.map((r) => r.seq));
  const next = rescan.records[good.records.length];
  t.is(next?.seq, last.seq + 1, 'the second process goes on from the last whole entry');
  t.true(next !== undefined && next.epoch > last.epoch, 'and that entry is its own (a new epoch), not the torn one');

  await pair.drain();
  // Nothing before the tear was lost: the standby applied every entry both processes spooled.
  t.is(appliedSeq(pair, 'app'), lastSpooled(dir));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
