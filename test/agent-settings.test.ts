import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentSettings } from '../lib/settings';
import { SettingsError } from '../lib/errors';
import { PRELOAD } from './helpers/pair';

/** The spool and the roots must not overlap, either way, through symlinks too: one clear line each. */

function dirs(t: { teardown: (fn: () => void) => void }) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-settings-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const spool = path.join(base, 'spool');
  const data = path.join(base, 'data');
  fs.mkdirSync(spool);
  fs.mkdirSync(data);
  return { base, spool, data };
}

const settings = (roots: string, spool: string) => agentSettings({ UNDERSTUDY_ROOTS: roots, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'app' }, undefined);

test('a root inside the spool directory is refused', (t) => {
  const { spool } = dirs(t);
  const root = path.join(spool, 'uploads');
  t.throws(() => settings(`data=${root}`, spool), {
    instanceOf: SettingsError,
    message: `UNDERSTUDY_ROOTS: root "data" (${root}) lies inside UNDERSTUDY_SPOOL_DIR (${spool}), the agent's own files; give the spool a directory of its own`,
  });
});

test("a root equal to a journal's own spool is refused", (t) => {
  const { spool } = dirs(t);
  t.throws(() => settings(`data=${path.join(spool, 'app')}`, spool), { instanceOf: SettingsError, message: /root "data" .* lies inside UNDERSTUDY_SPOOL_DIR/ });
});

test('a root equal to the spool directory, or containing it, is refused', (t) => {
  const { base, spool } = dirs(t);
  for (const root of [spool, base]) {
    t.throws(() => settings(`data=${root}`, spool), {
      instanceOf: SettingsError,
      message: `UNDERSTUDY_SPOOL_DIR (${spool}) lies inside root "data" (${root}); the spool must never be replicated`,
    });
  }
});

test('a spool directory that is a symlink into a root is refused', (t) => {
  const { base, data } = dirs(t);
  fs.mkdirSync(path.join(data, 'hidden'));
  const link = path.join(base, 'spool-link');
  fs.symlinkSync(path.join(data, 'hidden'), link);
  t.throws(() => settings(`data=${data}`, link), { instanceOf: SettingsError, message: /UNDERSTUDY_SPOOL_DIR .* lies inside root "data"/ });
  // Not made yet, below the link: still inside the root.
  t.throws(() => settings(`data=${data}`, path.join(link, 'not-yet', 'spool')), { instanceOf: SettingsError, message: /lies inside root "data"/ });
});

test('a root that is a symlink into the spool is refused', (t) => {
  const { base, spool } = dirs(t);
  fs.mkdirSync(path.join(spool, 'app'));
  const link = path.join(base, 'data-link');
  fs.symlinkSync(path.join(spool, 'app'), link);
  t.throws(() => settings(`data=${link}`, spool), { instanceOf: SettingsError, message: /root "data" .* lies inside UNDERSTUDY_SPOOL_DIR/ });
});

test('a spool beside the roots is accepted', (t) => {
  const { spool, data } = dirs(t);
  const s = settings(`data=${data},other=${path.join(path.dirname(spool), 'spool-other')}`, spool);
  t.is(s.spoolDir, spool);
  t.is(s.roots.length, 2);
});

test('under the agent, a root inside the spool is said in one line and the application runs without replication', (t) => {
  const { spool } = dirs(t);
  const run = spawnSync(process.execPath, ['--require', PRELOAD, '-e', "console.log('ran')"], {
    env: { ...process.env, UNDERSTUDY_ROOTS: `data=${path.join(spool, 'app')}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'app' },
    encoding: 'utf8',
  });
  t.is(run.status, 0);
  t.is(run.stdout, 'ran\n');
  t.is(run.stderr.trim().split('\n').length, 1, run.stderr);
  t.regex(run.stderr, /^understudy: agent not started, the application runs without replication: UNDERSTUDY_ROOTS: root "data" .* lies inside UNDERSTUDY_SPOOL_DIR/);
  t.false(fs.existsSync(path.join(spool, 'app', 'lock')), 'no journal was opened');
});
