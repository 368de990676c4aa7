import test from 'ava';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { REPO } from './helpers/pair';

/** Runs one of the example scripts as the README tells a new user to, and collects its output. */
function runExample(script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO, 'examples', script)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

test.serial('the demo (npm run demo) replicates the notes service, its baseline and a repair, byte-identical', async (t) => {
  const r = await runExample('demo.js');
  t.is(r.code, 0, r.out);
  t.regex(r.out, /equal after repairing 1 object\(s\)/);
  t.regex(r.out, /the standby is byte-identical to the primary: \d+ objects/);
});

test.serial('the failover demo (npm run demo:failover) promotes a standby with the files, flags and pending jobs', async (t) => {
  const r = await runExample('failover.js');
  t.is(r.code, 0, r.out);
  t.regex(r.out, /checked: pending on the standby = enqueued − done on the primary/);
});

test.serial('the SQLite demo (npm run demo:sqlite) kills a service that keeps its orders in SQLite; the standby has every confirmed one', async (t) => {
  const r = await runExample('sqlite.js');
  t.is(r.code, 0, r.out);
  t.regex(r.out, /standby: integrity_check ok; \d+ orders/);
  t.regex(r.out, /checked: every confirmed order and its receipt are on the standby/);
});
