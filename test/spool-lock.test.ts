import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ownerText, takeLock } from '../agent/spool-lock';
import { REPO } from './helpers/pair';

function lockFile(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'lock');
}

const host = os.hostname();

/** A pid that was a process on this host a moment ago and is none now. */
function gonePid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim());
}

test('which locks are taken over: those whose holder is gone, an earlier life of this pid among them', async (t) => {
  const lock = lockFile(t);
  const taken = (text: string): boolean => {
    fs.rmSync(lock, { force: true });
    fs.writeFileSync(lock, text);
    return takeLock(lock);
  };
  t.true(taken(`${gonePid()}@${host}\n`), 'a process that is gone');
  // A container restarted: its pid 1 (or 7) is the same number again. Written without a start time by older agents.
  t.true(taken(`${process.pid}@${host}\n`), 'this pid, in an earlier life, old form');
  t.true(taken(`${process.pid}@${host} start=1 thread=0\n`), 'this pid, in an earlier life');
  t.is(fs.readFileSync(lock, 'utf8'), ownerText());
  t.false(takeLock(lock), 'held by this very process (another of its threads)');
  t.false(taken(`${process.pid + 1}@not-${host} start=1 thread=0\n`), 'a process on another host');
  const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(path.join(REPO, 'dist', 'agent', 'spool-lock.js'))}).takeLock(${JSON.stringify(lock)}); console.log('taken'); setInterval(() => {}, 1000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  fs.rmSync(lock);
  await new Promise((r) => child.stdout.once('data', r));
  t.false(takeLock(lock), 'a live process');
});

test('many processes taking one stale lock at once: exactly one gets it', async (t) => {
  const lock = lockFile(t);
  const mod = JSON.stringify(path.join(REPO, 'dist', 'agent', 'spool-lock.js'));
  for (let round = 0; round < 10; round++) {
    fs.writeFileSync(lock, `${gonePid()}@${host}\n`);
    const go = path.join(path.dirname(lock), `go${round}`);
    // Each waits for the same moment, then takes the lock and stays alive until told, so no one's lock looks stale.
    const code = `const fs=require('fs');while(!fs.existsSync(${JSON.stringify(go)}));console.log(require(${mod}).takeLock(${JSON.stringify(lock)}));setTimeout(()=>{},3000)`;
    const kids = Array.from({ length: 6 }, () => spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const answers = kids.map((k) => new Promise<string>((r) => k.stdout.once('data', (d: Buffer) => r(d.toString().trim()))));
    await new Promise((r) => setTimeout(r, 300));
    fs.writeFileSync(go, '');
    const got = await Promise.all(answers);
    for (const k of kids) k.kill('SIGKILL');
    t.is(got.filter((a) => a === 'true').length, 1, `round ${round}: ${got.join(' ')}`);
  }
});
