import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { standbyName } from '../lib/settings';
import { readState, writeState } from '../lib/state-bucket';
import type { Fence } from '../replayer/fence';
import type { JournalPos } from '../replayer/state';
import { makePair, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const cli = (pair: Pair, args: string[]) => runCli([...args, '--root', `data=${pair.standby}`, '--state', pair.state], { UNDERSTUDY_NATS_URL: pair.server.url });

const writeFiles = (pair: Pair, names: string[]) => pair.runApp({
  code: `const fs = require('fs'); for (const n of ${JSON.stringify(names)}) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/' + n, n);`,
});

test.serial('promote applies what it can get, fences the old primary, and reports', async (t) => {
  const pair = await makePair('promote');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['a', 'b', 'c'])).code, 0);
  const began = Date.now();
  const p = await cli(pair, ['promote', '--json']);
  const ranSeconds = (Date.now() - began) / 1000;
  t.is(p.code, 0, p.stderr);
  const report = JSON.parse(p.stdout) as { promoted: boolean; applied_now: number; took_seconds: number; journals: Record<string, unknown>[] };
  t.true(report.promoted);
  t.is(report.applied_now, 3);
  // The report is what was applied and fenced: the standby's own position and fence files say the same.
  const applied = (JSON.parse(fs.readFileSync(path.join(pair.state, 'positions.json'), 'utf8').split('\n')[0]) as { journals: Record<string, JournalPos> }).journals.app;
  const fenced = (JSON.parse(fs.readFileSync(path.join(pair.state, 'fence.json'), 'utf8')) as Record<string, Fence>).app;
  t.is(applied.s, 3);
  // Named by the promoted standby's name (promote --standby, by default as replay's), so other standbys and status can say who took over.
  t.like(fenced, { e: applied.e, s: 3, by: os.hostname(), standby: standbyName(process.env) });
  t.deepEqual(report.journals, [{
    journal: 'app', applied: `${applied.e}.3`, applied_entry_time: new Date(applied.t).toISOString(), stream_last: `${applied.e}.3`, in_doubt: 0, fence: fenced,
  }]);
  // And the fence the old primary will see in the state bucket is that one.
  const nc = await connect({ servers: pair.server.url });
  t.deepEqual(await readState(await openStateKv(nc, 'UNDERSTUDY'), 'fence', 'app'), fenced);
  await nc.close();
  // Measured by promote itself, so within the time the command ran, and in seconds (not ms).
  t.true(report.took_seconds > 0 && report.took_seconds <= ranSeconds, `took_seconds ${report.took_seconds} of ${ranSeconds} s run`);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);

  // The old primary goes on writing: it is told it was fenced, and the standby refuses what it sends.
  const late = await pair.runApp({ env: { UNDERSTUDY_EXIT_TIMEOUT_MS: '3000' }, code: `require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/late', 'split brain'); setTimeout(() => {}, 1500);` });
  t.is(late.code, 0);
  t.regex(late.stderr, new RegExp(`journal "app" was fenced at \\d+\\.3 by the promotion of standby ${standbyName(process.env)} \\(on [^)]+\\) at .* \\(split brain\\)`));
  const r = await cli(pair, ['replay', '--drain']);
  t.is(r.code, 1);
  t.regex(r.stderr, /split brain: journal app was fenced at \d+\.3 .*; entry app\.\d+\.4 came from the old primary afterwards; quarantined in/);
  t.false(fs.existsSync(path.join(pair.standby, 'late')));
});

test.serial('promote says what is known to be missing', async (t) => {
  const pair = await makePair('indoubt');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['a', 'b'])).code, 0);
  // The primary's last heartbeat said it had journaled 5: three never reached the stream.
  const nc = await connect({ servers: pair.server.url });
  const kv = await openStateKv(nc, 'UNDERSTUDY');
  // Written as the agent writes it (typed): a hand-made record missing a field is no heartbeat to its readers.
  await writeState(kv, 'agent', 'app', { name: 'app', epoch: 1, mode: 'async', pid: 1, host: 'primary', appended: 5, acked: { epoch: 1, seq: 2 }, time: Date.now(), dropped: 0 });
  await nc.close();
  const p = await cli(pair, ['promote']);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, /^promoted in \d+\.\d s; applied 2 more entries$/m);
  t.regex(p.stdout, /journal app: last applied \d+\.2 \(written on the primary at .*\); IN DOUBT: 3 entries \(entries 3\.\.5 were reported by the primary but never reached the stream\); fenced at \d+\.2/);
});

test.serial('promote refuses while a replayer is running on the same state', async (t) => {
  const pair = await makePair('busy');
  t.teardown(() => pair.close());
  // The lock a live replayer holds (this test process stands in for it).
  fs.writeFileSync(path.join(pair.state, 'lock'), JSON.stringify({ pid: process.pid, host: os.hostname(), command: 'replay', since: new Date().toISOString() }) + '\n');
  const p = await cli(pair, ['promote']);
  t.is(p.code, 2);
  t.regex(p.stderr, new RegExp(`^understudy promote: --state \\S+ is in use by understudy replay \\(pid ${process.pid} on [^,]+, since [^)]+\\); one process per state directory`));
  t.false(fs.existsSync(path.join(pair.state, 'fence.json')));
});
