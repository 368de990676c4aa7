import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import type { AgentHeartbeat } from '../lib/state-bucket';
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
  const p = await cli(pair, ['promote', '--json']);
  t.is(p.code, 0, p.stderr);
  const report = JSON.parse(p.stdout) as { applied_now: number; took_seconds: number; journals: { journal: string; applied: string; in_doubt: number; fence: { s: number } }[] };
  t.is(report.applied_now, 3);
  t.like(report.journals[0], { journal: 'app', in_doubt: 0, fence: { s: 3 } });
  t.regex(report.journals[0].applied, /^\d+\.3$/);
  t.true(report.took_seconds >= 0);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);

  // The old primary goes on writing: it is told it was fenced, and the standby refuses what it sends.
  const late = await pair.runApp({ env: { UNDERSTUDY_EXIT_TIMEOUT_MS: '3000' }, code: `require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/late', 'split brain'); setTimeout(() => {}, 1500);` });
  t.is(late.code, 0);
  t.regex(late.stderr, /journal "app" was fenced at \d+\.3 by the promotion of .* \(split brain\)/);
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
  await kv.put('agent.app', JSON.stringify({ name: 'app', epoch: 1, mode: 'async', pid: 1, host: 'primary', appended: 5, acked: { epoch: 1, seq: 2 }, time: Date.now(), dropped: 0 } satisfies AgentHeartbeat));
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
