import test from 'ava';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { freePort } from './helpers/nats-server';
import { spawnSync } from 'node:child_process';
import { CLI, makePair } from './helpers/pair';

test.serial('the replayer serves Prometheus metrics: positions of agent and standby, lag, counters', async (t) => {
  const pair = await makePair('metrics');
  t.teardown(() => pair.close());
  const port = await freePort();
  const ac = new AbortController();
  const replaying = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`), stateDir: pair.state,
    drain: false, log: () => undefined, metricsPort: port,
  }).run(ac.signal);
  const run = await pair.runApp({ code: `for (let i = 0; i < 25; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x');` });
  t.is(run.code, 0);
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (/understudy_journal_applied_seq\{journal="app"\} 25/.test(text)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  ac.abort();
  await replaying;
  t.regex(text, /^# TYPE understudy_replayer_applied_entries_total counter$/m);
  t.regex(text, /^understudy_replayer_applied_entries_total 25$/m);
  t.regex(text, /^understudy_journal_applied_seq\{journal="app"\} 25$/m);
  t.regex(text, /^understudy_journal_agent_seq\{journal="app"\} 25$/m);
  t.regex(text, /^understudy_journal_lag_entries\{journal="app"\} 0$/m);
  t.regex(text, /^understudy_journal_heartbeat_age_seconds\{journal="app"\} [\d.]+$/m);
  t.regex(text, /^understudy_journal_dropped_changes\{journal="app"\} 0$/m);
});

test.serial('a full spool drops changes: said once, counted in status, and the application never notices', async (t) => {
  const pair = await makePair('full');
  t.teardown(() => pair.close());
  // No replayer runs, so nothing is applied and the spool is never trimmed.
  const run = await pair.runApp({
    env: { UNDERSTUDY_SPOOL_MAX_BYTES: '20000' },
    code: `for (let i = 0; i < 20; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, Buffer.alloc(3000)); console.log('all written');`,
  });
  t.is(run.code, 0);
  t.is(run.stdout.trim(), 'all written');
  t.is(run.stderr.match(/the spool holds \d+ bytes the standby has not applied .*changes are NOT replicated/g)?.length, 1);
  const status = spawnSync(process.execPath, [CLI, 'status', '--json'], { env: { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url }, encoding: 'utf8' });
  const row = (JSON.parse(status.stdout) as { journals: { journal: string; dropped: number; agent_last_seq: number }[] }).journals.find((r) => r.journal === 'app');
  t.true((row?.dropped ?? 0) > 0, JSON.stringify(row));
  t.is((row?.dropped ?? 0) + (row?.agent_last_seq ?? 0), 20);
});
