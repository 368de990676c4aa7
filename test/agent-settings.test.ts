import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PRELOAD } from './helpers/pair';

/**
 * A refused setting, under the agent: said in one line, and the application runs without
 * replication. What each variable accepts or refuses is the table in settings-table.test.ts.
 */

function dirs(t: { teardown: (fn: () => void) => void }) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-settings-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const spool = path.join(base, 'spool');
  const data = path.join(base, 'data');
  fs.mkdirSync(spool);
  fs.mkdirSync(data);
  return { base, spool, data };
}

/** Runs a one-line application under the agent with `env`. */
function underAgent(env: Record<string, string>) {
  return spawnSync(process.execPath, ['--require', PRELOAD, '-e', "console.log('ran')"], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

test('under the agent, a root inside the spool is said in one line and the application runs without replication', (t) => {
  const { spool } = dirs(t);
  const run = underAgent({ UNDERSTUDY_ROOTS: `data=${path.join(spool, 'app')}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'app' });
  t.is(run.status, 0);
  t.is(run.stdout, 'ran\n');
  t.is(run.stderr.trim().split('\n').length, 1, run.stderr);
  t.regex(run.stderr, /^understudy: agent not started, the application runs without replication: UNDERSTUDY_ROOTS: root "data" .* lies inside UNDERSTUDY_SPOOL_DIR/);
  t.false(fs.existsSync(path.join(spool, 'app', 'lock')), 'no journal was opened');
});

test('under the agent, UNDERSTUDY_DISABLE=true is refused in one line (it used to start the agent) and nothing is journaled', (t) => {
  const { spool, data } = dirs(t);
  const run = underAgent({ UNDERSTUDY_ROOTS: `data=${data}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'app', UNDERSTUDY_DISABLE: 'true' });
  t.is(run.status, 0);
  t.is(run.stdout, 'ran\n');
  t.is(run.stderr, 'understudy: agent not started, the application runs without replication: UNDERSTUDY_DISABLE: "true" is not one of 0, 1\n');
  t.deepEqual(fs.readdirSync(spool), [], 'no journal was opened');
});

test('under the agent, UNDERSTUDY_DISABLE=1 loads nothing and says nothing', (t) => {
  const { spool, data } = dirs(t);
  const run = underAgent({ UNDERSTUDY_ROOTS: `data=${data}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'app', UNDERSTUDY_DISABLE: '1' });
  t.is(run.status, 0);
  t.is(run.stdout, 'ran\n');
  t.is(run.stderr, '');
  t.deepEqual(fs.readdirSync(spool), []);
});
